"""The gateway's added latency: the pinned LiteLLM proxy on the kit's rendered config, against the fake upstream direct.

Series (sequential requests on one kept-alive connection, after a warm-up):
  direct            the fake upstream itself, no gateway
  gateway ok        through the gateway, primary healthy
  fallback, cooled  primary answers 503; config as rendered, so after `allowed_fails` the primary is cooled down
                    and skipped (the steady state during an outage)
  fallback, tried   primary answers 503 and is tried on every request (the rendered config plus
                    `disable_cooldowns: true`): the full cost of a failover

Everything runs on 127.0.0.1 (fakes from tests/fake_upstream.py, the proxy venv from tests/tools.py) and stops itself.
Prints figures; asserts nothing. Usage: python bench/gateway_latency.py [--requests 300] [--warmup 20]
"""

from __future__ import annotations

import argparse
import copy
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.gateway_config import MASTER_KEY_ENV, PUBLIC_MODEL, Consumer, GatewayRoutes, api_upstream, key_envs, \
    render_config, self_hosted_upstream, write_config_dir  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.tools import LiteLLMProxy, litellm_bin, post_json  # noqa: E402

MASTER_KEY = "sk-bench-master"
# Requests go in as an application would send them: a consumer's key, checked by the shipped custom auth and counted
# by the rate limiter (limits far above what the bench sends, so the series measure their cost, not a refusal).
CONSUMER = Consumer("bench", 1_000_000, 1_000_000_000)
CONSUMER_KEY = "llmhost-bench-consumer"
BODY = {"model": PUBLIC_MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def routes() -> GatewayRoutes:
    # The burst-overflow shape of the checked-in burst-hybrid stack, with the kit's default timeouts.
    return GatewayRoutes("burst-overflow", (
        self_hosted_upstream("meta-llama/Llama-3.1-70B-Instruct", "http://vllm.llm-serving.svc.cluster.local:8000/v1"),
        api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1")), consumers=(CONSUMER,))


def measure(base: str, path: str, body: dict, headers: dict, n: int, warmup: int, expect_group=None) -> list[float]:
    host_port = base.split("://", 1)[1].split("/", 1)[0]
    conn = http.client.HTTPConnection(host_port, timeout=30)
    out: list[float] = []
    try:
        for i in range(warmup + n):
            r = post_json(base, path, body, headers, conn=conn)
            if r.status != 200 or (expect_group and r.model_group != expect_group):
                raise RuntimeError(f"unexpected reply on request {i}: {r}")
            if r.headers.get("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(host_port, timeout=30)
            if i >= warmup:
                out.append(r.seconds * 1000)
    finally:
        conn.close()
    return out


def summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"median": statistics.median(samples), "p90": q[89], "p99": q[98], "min": min(samples), "max": max(samples)}


def start_gateway(config: dict, directory: Path, fakes_env: dict) -> LiteLLMProxy:
    path = write_config_dir(config, directory / "config")
    (directory / "work").mkdir(exist_ok=True)
    return LiteLLMProxy(path, env=fakes_env, log_path=directory / "litellm.log", cwd=directory / "work").start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    n, warmup = max(10, min(args.requests, 2000)), max(0, min(args.warmup, 200))

    t = time.monotonic()
    litellm_bin()
    print(f"litellm venv ready in {time.monotonic() - t:.1f} s; {n} requests per series after {warmup} warm-up")
    r = routes()
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream("self-hosted") as primary, FakeUpstream("groq") as api:
        bases = {"self-hosted": primary.base_url, "groq": api.base_url}
        config = render_config(r)
        for entry in config["model_list"]:  # only the addresses change
            entry["litellm_params"]["api_base"] = bases[entry["model_info"]["upstream"]]
        env = {MASTER_KEY_ENV: MASTER_KEY, **{k: "bench-provider-key" for k in key_envs(r)},
               CONSUMER.key_env: CONSUMER_KEY}
        auth = {"Authorization": f"Bearer {CONSUMER_KEY}"}

        rows.append(("direct (fake upstream)", summary(measure(primary.base_url, "/chat/completions", BODY, {}, n, warmup))))

        proxy = start_gateway(config, Path(tmp) / "rendered", env)
        try:
            print(f"gateway (rendered config) ready in {proxy.startup_seconds:.1f} s")
            rows.append(("gateway, primary ok", summary(measure(proxy.base_url, "/v1/chat/completions", BODY, auth, n,
                                                                 warmup, expect_group=PUBLIC_MODEL))))
            primary.reset("503")
            api.reset()
            rows.append(("gateway, 503 -> fallback (cooled)", summary(measure(
                proxy.base_url, "/v1/chat/completions", BODY, auth, n, warmup, expect_group="tier-groq"))))
            cooled_primary_hits = primary.hits
        finally:
            proxy.stop()

        variant = copy.deepcopy(config)
        variant["router_settings"]["disable_cooldowns"] = True
        primary.reset("503")
        proxy = start_gateway(variant, Path(tmp) / "no-cooldown", env)
        try:
            rows.append(("gateway, 503 -> fallback (tried)", summary(measure(
                proxy.base_url, "/v1/chat/completions", BODY, auth, n, warmup, expect_group="tier-groq"))))
            tried_primary_hits = primary.hits
        finally:
            proxy.stop()

    direct = rows[0][1]["median"]
    print(f"\n{'series':<36} {'median':>8} {'p90':>8} {'p99':>8} {'min':>8} {'max':>8} {'added (median)':>15}")
    for name, s in rows:
        added = "" if name.startswith("direct") else f"{s['median'] - direct:+.1f}"
        print(f"{name:<36} {s['median']:8.1f} {s['p90']:8.1f} {s['p99']:8.1f} {s['min']:8.1f} {s['max']:8.1f} {added:>15}")
    print("(milliseconds)")
    print(f"primary attempts: cooled series {cooled_primary_hits} of {n + warmup} requests "
          f"(allowed_fails={r.allowed_fails}, cooldown {r.cooldown_seconds} s); tried series {tried_primary_hits}")


if __name__ == "__main__":
    main()
