"""A stand-in for one vLLM replica's /metrics page: stdlib only, loopback only, values switchable by the test.

    with FakeEngine(spec, model_name="m") as fake:   # serves http://127.0.0.1:<free port>/metrics
        fake.set(waiting=8, running=16, kv_cache=0.93)
        fake.add_requests(10, ttft_seconds=0.7, prompt_tokens=500, generation_tokens=200)

The series are named from the engine spec (so the pinned names are what is served), with vLLM v1's label set
(`model_name`, `engine`) and its exposition layout (HELP/TYPE, counters with `_total`, histograms with cumulative
`_bucket{le}`, `_sum`, `_count`).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from serving.engine import EngineSpec

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


class FakeEngine:
    def __init__(self, spec: EngineSpec, model_name: str = "fake-model"):
        if spec.engine != "vllm":
            raise ValueError("the fake serves vLLM's page")
        self.spec, self.model_name = spec, model_name
        self._lock = threading.Lock()
        self.waiting, self.running, self.kv_cache = 0.0, 0.0, 0.0
        self.prompt_tokens = self.generation_tokens = 0.0
        self.success = 0
        self.ttft_counts = [0] * len(TTFT_BUCKETS)
        self.ttft_sum, self.ttft_count = 0.0, 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- control ---------------------------------------------------------------------------------------------------
    def set(self, *, waiting: Optional[float] = None, running: Optional[float] = None,
            kv_cache: Optional[float] = None) -> None:
        with self._lock:
            if waiting is not None:
                self.waiting = waiting
            if running is not None:
                self.running = running
            if kv_cache is not None:
                self.kv_cache = kv_cache

    def add_requests(self, n: int, ttft_seconds: float, prompt_tokens: int = 0, generation_tokens: int = 0) -> None:
        with self._lock:
            self.success += n
            self.prompt_tokens += n * prompt_tokens
            self.generation_tokens += n * generation_tokens
            self.ttft_sum += n * ttft_seconds
            self.ttft_count += n
            for i, le in enumerate(TTFT_BUCKETS):
                if ttft_seconds <= le:
                    self.ttft_counts[i] += n

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- the page ----------------------------------------------------------------------------------------------------
    def page(self) -> str:
        spec, m = self.spec, self.spec.metrics
        base = {"model_name": self.model_name, "engine": "0"}
        lbl = _labels(base)
        with self._lock:
            out = [
                f"# TYPE {spec.queue_metric} gauge", f"{spec.queue_metric}{{{lbl}}} {self.waiting}",
                f"# TYPE {m.running} gauge", f"{m.running}{{{lbl}}} {self.running}",
                f"# TYPE {m.kv_cache_usage} gauge", f"{m.kv_cache_usage}{{{lbl}}} {self.kv_cache}",
            ]
            for series, value in ((m.prompt_tokens, self.prompt_tokens), (m.generation_tokens, self.generation_tokens)):
                out += [f"# TYPE {series.removesuffix('_total')} counter", f"{series}{{{lbl}}} {value}"]
            success = m.request_success
            out.append(f"# TYPE {success.removesuffix('_total')} counter")
            out += [f'{success}{{{lbl},finished_reason="{r}"}} {self.success if r == "stop" else 0}'
                    for r in ("stop", "length", "abort")]
            h = m.ttft_histogram
            out.append(f"# TYPE {h} histogram")
            out += [f'{h}_bucket{{{lbl},le="{le}"}} {c}' for le, c in zip(TTFT_BUCKETS, self.ttft_counts)]
            out += [f'{h}_bucket{{{lbl},le="+Inf"}} {self.ttft_count}',
                    f"{h}_sum{{{lbl}}} {self.ttft_sum}", f"{h}_count{{{lbl}}} {self.ttft_count}"]
        return "\n".join(out) + "\n"

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def __enter__(self) -> "FakeEngine":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.split("?", 1)[0] != fake.spec.metrics_path:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = fake.page().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
