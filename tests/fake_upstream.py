"""A tiny OpenAI-compatible upstream for gateway tests and benches: stdlib only, loopback only.

    with FakeUpstream("self-hosted") as fake:      # serves http://127.0.0.1:<free port>/v1
        fake.set_mode("503")                       # "ok" | "503" | "500" | "429" | "hang" | "slow", switchable
        fake.hits                                  # chat completions received (any mode)

Modes: "ok" answers at once; "503" refuses as a full vLLM replica does (past --max-num-queued-reqs); "429" refuses as
a full TGI does (past --max-concurrent-requests); "500" fails as a broken engine does; "hang" never answers; "slow"
answers after `slow_seconds`.
Routes: `POST /v1/chat/completions` (also `/chat/completions`), `GET /v1/models`, `GET /health`; and the SageMaker
runtime's `POST /endpoints/<endpoint>/invocations`, which for an OpenAI-compatible container (LiteLLM's
sagemaker_chat/ provider) takes and returns the same chat bodies (`last_path` says which was called); and an OAuth2
token endpoint, `POST /token`, answering any refresh with the access token `TOKEN` (google-auth's token_uri, for a
Vertex AI endpoint's caller; `token_requests` counts them). Over HTTP, for
other processes: `POST /_mode {"mode": ...}` and `GET /_state`. A "hang" holds the request until `hang_seconds`
pass or the server stops, then drops the connection without an answer.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

MODES = ("ok", "503", "500", "429", "hang", "slow")
TOKEN = "ya29.fake-access-token"  # what POST /token hands out
REFUSALS = {"503": (503, "service_unavailable"), "500": (500, "internal_server_error"), "429": (429, "rate_limit_exceeded")}


class FakeUpstream:
    def __init__(self, name: str, model: str = "fake-model", hang_seconds: float = 30.0, slow_seconds: float = 1.0):
        self.name, self.model, self.hang_seconds, self.slow_seconds = name, model, hang_seconds, slow_seconds
        self._lock = threading.Lock()
        self._mode = "ok"
        self._hits = 0
        self._stopping = threading.Event()
        self.last_request: Optional[dict] = None
        self.last_headers: dict[str, str] = {}
        self.last_path: Optional[str] = None
        self.token_requests = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- control ---------------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    def reset(self, mode: str = "ok") -> None:
        self.set_mode(mode)
        with self._lock:
            self._hits = 0
            self.last_request = None
            self.last_headers = {}

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (clients append /chat/completions)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> "FakeUpstream":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms on Nagle / delayed ACK

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict, close: bool = False) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return {}

            def do_GET(self):
                path = self.path.split("?", 1)[0].rstrip("/")
                if path in ("/v1/models", "/models"):
                    self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": fake.name}]})
                elif path == "/health":
                    self._send(200 if fake.mode == "ok" else 503, {"status": fake.mode})
                elif path == "/_state":
                    self._send(200, {"name": fake.name, "mode": fake.mode, "hits": fake.hits})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                path = self.path.split("?", 1)[0].rstrip("/")
                body = self._body()
                if path == "/_mode":
                    try:
                        fake.set_mode(str(body.get("mode")))
                    except ValueError as exc:
                        self._send(400, {"error": str(exc)})
                        return
                    self._send(200, {"mode": fake.mode})
                    return
                sagemaker = path.startswith("/endpoints/") and path.endswith("/invocations")
                if path == "/token":
                    with fake._lock:
                        fake.token_requests += 1
                    self._send(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                    return
                if path not in ("/v1/chat/completions", "/chat/completions") and not sagemaker:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with fake._lock:
                    fake._hits += 1
                    fake.last_request = body
                    fake.last_headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.last_path = path
                    mode = fake._mode
                if mode in REFUSALS:
                    status, kind = REFUSALS[mode]
                    self._send(status, {"error": {"message": f"{fake.name}: {kind}", "type": kind, "code": status}},
                               close=True)
                    return
                if mode == "hang":
                    fake._stopping.wait(fake.hang_seconds)
                    self.close_connection = True
                    return
                if mode == "slow":  # a busy but healthy server: answers after slow_seconds
                    fake._stopping.wait(fake.slow_seconds)
                self._send(200, {
                    "id": f"chatcmpl-{fake.name}-{fake.hits}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", fake.model),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"hello from {fake.name}"}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                })

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fake-upstream-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # release hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # a standalone fake for manual poking: python tests/fake_upstream.py [name]
    import sys

    with FakeUpstream(sys.argv[1] if len(sys.argv) > 1 else "fake") as f:
        print(f.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
