"""A real Prometheus (loopback only) scraping fake vLLM v0.30 replicas, asked the exact queries the KEDA scaler and
the alert rules use.

The static targets carry the labels the PodMonitor gives real pods (`namespace`, `pod`, `app_kubernetes_io_name`,
`container`), so the same PromQL applies; a third target belongs to another Deployment in the namespace and must
never be counted.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Callable, Optional

import pytest
import yaml

from serving.alerts import AlertContext, rule_groups
from serving.autoscaling import SERVER_LABEL, hpa_name, scaler_queries
from serving.engine import EngineInputs
from serving.vllm import vllm_spec
from fake_engine import FakeEngine

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (Debian package `prometheus`); CI installs it, so the "
                               "scaler queries are not run against a real server here")

NS, DEP = "llm-serving", "llm"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
POLL_SECONDS = 20  # the first sample takes ~6 s (targets are applied on a 5 s tick), later ones ~1-2 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def spec():
    from planner.catalog import load_catalog

    return vllm_spec(EngineInputs(model_id=MODEL, size_class="8b", gpu="H100", gpus_per_replica=1,
                                  max_context_tokens=8192, image="docker.io/vllm/vllm-openai:v0.30.0"), load_catalog())


@pytest.fixture(scope="module")
def cluster(spec, tmp_path_factory):
    """Two replicas of the Deployment, one pod of another Deployment, and a Prometheus scraping all three."""
    tmp = tmp_path_factory.mktemp("prometheus")
    pods = {"a": ("llm-5d8f7c9b4-aaaaa", DEP), "b": ("llm-5d8f7c9b4-bbbbb", DEP), "other": ("other-6c7d8e9f5-ccccc", "other")}
    fakes = {key: FakeEngine(spec, model_name=MODEL) for key in pods}
    proc: Optional[subprocess.Popen] = None
    try:
        for fake in fakes.values():
            fake.__enter__()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "llm-serving/llm",
                "metrics_path": spec.metrics_path,
                "static_configs": [{"targets": [fakes[key].target],
                                    "labels": {"namespace": NS, "pod": pod, SERVER_LABEL: dep, "container": "engine"}}
                                   for key, (pod, dep) in pods.items()],
            }],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = open(tmp / "prometheus.log", "wb")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        yield {"url": f"http://127.0.0.1:{port}", "fakes": fakes, "proc": proc, "log": tmp / "prometheus.log"}
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for fake in fakes.values():
            fake.__exit__(None, None, None)


def query(url: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(cluster, promql: str, check: Callable[[list[dict]], bool]) -> list[dict]:
    """Poll `promql` until `check(result)` holds, for at most POLL_SECONDS; fail with the last result."""
    deadline, result = time.monotonic() + POLL_SECONDS, None
    while time.monotonic() < deadline:
        assert cluster["proc"].poll() is None, cluster["log"].read_text()[-2000:]
        try:
            result = query(cluster["url"], promql)
        except OSError:  # not listening yet
            result = None
        if result is not None and check(result):
            return result
        time.sleep(0.5)
    pytest.fail(f"{promql!r}: still {result!r} after {POLL_SECONDS} s")


def value_is(expected: float) -> Callable[[list[dict]], bool]:
    return lambda r: len(r) == 1 and abs(float(r[0]["value"][1]) - expected) < 1e-9


def empty(r: list[dict]) -> bool:
    return r == []


def alert_expr(ctx: AlertContext, alert: str) -> str:
    return next(r["expr"] for g in rule_groups(ctx) for r in g["rules"] if r["alert"] == alert)


def context(spec) -> AlertContext:
    return AlertContext(stack="dev", namespace=NS, deployment=DEP, spec=spec, ttft_p95_ms=500, queue_target_per_replica=5,
                        max_replicas=4, hpa_name=hpa_name(DEP))


def test_scaler_queries_sum_this_deployments_replicas(cluster, spec):
    fakes = cluster["fakes"]
    fakes["a"].set(waiting=8, kv_cache=0.95)
    fakes["b"].set(waiting=6, kv_cache=0.91)
    fakes["other"].set(waiting=100, kv_cache=1.0)  # another model's queue must not scale this one
    queries = scaler_queries(namespace=NS, deployment=DEP, spec=spec)
    assert set(queries) == {"queue", "kv-cache"}
    wait_for(cluster, queries["queue"], value_is(14))
    wait_for(cluster, queries["kv-cache"], value_is(1.86))
    # The scrape follows the replicas: the value KEDA divides by the per-replica threshold moves with them.
    fakes["a"].set(waiting=0)
    wait_for(cluster, queries["queue"], value_is(6))
    targets = json.load(urllib.request.urlopen(f"{cluster['url']}/api/v1/targets", timeout=5))["data"]["activeTargets"]
    assert sorted(t["health"] for t in targets) == ["up"] * 3


def test_queue_and_kv_alert_expressions_on_live_series(cluster, spec):
    fakes, ctx = cluster["fakes"], context(spec)
    queue, kv = alert_expr(ctx, "LLMQueueBacklog"), alert_expr(ctx, "LLMKVCacheNearlyFull")
    fakes["a"].set(waiting=8, kv_cache=0.95)
    fakes["b"].set(waiting=6, kv_cache=0.91)
    fakes["other"].set(waiting=100, kv_cache=1.0)
    wait_for(cluster, queue, value_is(7))  # waiting requests per replica, above the target of 5
    wait_for(cluster, kv, value_is(93))  # average KV-cache usage in percent, above 90
    fakes["a"].set(waiting=4, kv_cache=0.5)
    fakes["b"].set(waiting=4, kv_cache=0.5)
    wait_for(cluster, queue, empty)
    wait_for(cluster, kv, empty)


def test_ttft_alert_expression_reads_the_pinned_histogram(cluster, spec):
    ttft = alert_expr(context(spec), "LLMTimeToFirstTokenHigh")
    quantile = ttft.split(" > ")[0]
    fakes = cluster["fakes"]
    # Requests must arrive between scrapes for rate() to see them: wait until the histogram is being scraped.
    wait_for(cluster, f'count({spec.metrics.ttft_histogram}_bucket{{namespace="{NS}",{SERVER_LABEL}="{DEP}"}})',
             lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0)
    time.sleep(1.5)
    fakes["a"].add_requests(20, ttft_seconds=0.7, prompt_tokens=500, generation_tokens=100)
    fakes["b"].add_requests(20, ttft_seconds=0.7, prompt_tokens=500, generation_tokens=100)
    fakes["other"].add_requests(100, ttft_seconds=0.01)  # fast requests of another model must not dilute the p95
    # Every request in the (0.5 s, 0.75 s] bucket: p95 = 0.5 + 0.25 * 0.95 s.
    wait_for(cluster, quantile, lambda r: len(r) == 1 and abs(float(r[0]["value"][1]) - 737.5) < 1e-6)
    wait_for(cluster, ttft, lambda r: len(r) == 1)  # above the 500 ms SLA
