"""The gateway's API spend caps and its usage line: the rendered config, then the real pinned proxy enforcing them.

Caps come from the plan (`llm-hosting:spend` apiRequestsPerMinute / apiTokensPerMinute, for the whole gateway) and
land on the third-party upstreams only, split per replica and per deployment; LiteLLM's router enforces them with
`optional_pre_call_checks: [enforce_model_rate_limits]` (simple-shuffle alone only weighs deployments by rpm/tpm).
The usage line is what the serverless runtimes turn into cloud metrics: one JSON line per successful completion.

The live part starts one proxy for the module in front of fakes on loopback (tests/fake_upstream.py, plus a small
streaming upstream here): a self-hosted engine, two API providers (one capped by requests, one by tokens) and a
managed endpoint that streams. LiteLLM counts per clock minute, so each burst starts early enough in a minute to end
in it.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from planner.stack_config import load_stack_config
from preview.harness import load_config
from serving.gateway_config import (API_CAP_CHECK, FILES_ENV, GUARD_SOURCE, MASTER_KEY_ENV, PUBLIC_MODEL, USAGE_CALLBACK, USAGE_FILE,
                                    USAGE_MARK, USAGE_SOURCE, Consumer, GatewayRoutes, Upstream, api_upstream,
                                    config_files, key_envs, over_api_cap, packed_files, per_replica_limit, render_config,
                                    self_hosted_upstream, stack_routes, usage_record,
                                    write_config_dir)
from tests.conftest import ROOT
from tests.fake_upstream import FakeUpstream
from tests.test_gateway_live import swap_addresses
from tests.tools import LiteLLMProxy, litellm_bin, post_json

SELF_HOSTED_URL = "http://vllm.llm-serving.svc.cluster.local:8000/v1"
# The planner's spend block for startup-api (a Groq API stack), as `llmhost plan` writes it.
SPEND = {"plannedMonthlyUsd": 575.0, "cloudMonthlyUsd": 493.0, "apiMonthlyUsd": 82.13, "staffingMonthlyUsd": 0.0,
         "apiRequestsPerMinute": 8, "apiTokensPerMinute": 9600, "apiHeadroom": 1.5,
         "drift": {"dailyTokensNow": 1800000, "dailyTokensProjected": 2500000, "growthMonthlyPercent": 10.0,
                   "upperDailyTokens": 450000000,
                   "upperReason": "self-hosted costs no more than openai/gpt-4o-mini at every volume from 13.5B "
                                  "tokens/month",
                   "lowerDailyTokens": None, "lowerReason": None}}
CONSUMERS = (Consumer("app", 600, 1_000_000),)


def stack_config(stack: str, spend):
    """An example stack with `spend` as its spend section (None: none, as in a stack written by hand)."""
    _, merged, _, _ = load_config(ROOT, stack)
    merged.pop("llm-hosting:spend", None)
    if spend is not None:
        merged["llm-hosting:spend"] = spend
    return load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")


def entries(config: dict, upstream: str) -> list[dict]:
    return [e for e in config["model_list"] if e["model_info"]["upstream"] == upstream]


# -- the rendered config ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_the_plans_caps_land_on_the_api_route_per_replica(replicas):
    cfg = stack_config("startup-api", SPEND)
    routes = stack_routes(cfg, consumers=CONSUMERS)
    [api] = routes.upstreams
    assert (api.rpm, api.tpm) == (8, 9600)
    config = render_config(routes, replicas=replicas)
    [entry] = entries(config, api.name)
    params = entry["litellm_params"]
    assert (params["rpm"], params["tpm"]) == (per_replica_limit(8, replicas), per_replica_limit(9600, replicas))
    assert params["rpm"] * replicas >= 8 and (params["rpm"] - 1) * replicas < 8  # the share, rounded up, no more
    assert config["router_settings"]["optional_pre_call_checks"] == [API_CAP_CHECK]
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"


def test_pulumis_json_string_form_of_the_spend_block_gives_the_same_caps():
    as_yaml = render_config(stack_routes(stack_config("startup-api", SPEND), consumers=CONSUMERS), replicas=2)
    as_json = render_config(stack_routes(stack_config("startup-api", json.dumps(SPEND)), consumers=CONSUMERS), replicas=2)
    assert as_json == as_yaml


def test_a_burst_hybrid_caps_only_its_api_overflow_and_never_the_in_boundary_engine():
    cfg = stack_config("burst-hybrid", SPEND)
    config = render_config(stack_routes(cfg, self_hosted_url=SELF_HOSTED_URL, consumers=CONSUMERS), replicas=2)
    [inside] = entries(config, "self-hosted")
    [api] = entries(config, "groq")
    assert api["model_name"] == "tier-groq" and (api["litellm_params"]["rpm"], api["litellm_params"]["tpm"]) == (4, 4800)
    assert "rpm" not in inside["litellm_params"] and "tpm" not in inside["litellm_params"]


def test_a_stack_without_a_spend_section_gets_no_caps():
    config = render_config(stack_routes(stack_config("burst-hybrid", None), self_hosted_url=SELF_HOSTED_URL,
                                        consumers=CONSUMERS), replicas=2)
    assert all("rpm" not in e["litellm_params"] and "tpm" not in e["litellm_params"] for e in config["model_list"])
    assert "optional_pre_call_checks" not in config["router_settings"]


def test_an_upstream_serving_two_groups_splits_its_cap_between_them():
    # tiered-by-complexity: the API is llm-frontier's primary and llm's last fallback (tier-groq). LiteLLM counts per
    # deployment, so each gets half of the replica's share: together they admit the cap, not twice it.
    routes = GatewayRoutes("tiered-by-complexity", (self_hosted_upstream("m", SELF_HOSTED_URL),
                           api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1",
                                        rpm=100, tpm=100_000)), consumers=CONSUMERS)
    config = render_config(routes, replicas=2)
    api = entries(config, "groq")
    assert sorted(e["model_name"] for e in api) == ["llm-frontier", "tier-groq"]
    assert {(e["litellm_params"]["rpm"], e["litellm_params"]["tpm"]) for e in api} == {(25, 25_000)}


@pytest.mark.parametrize("value", [0, -5, 1.5, "8", True])
@pytest.mark.parametrize("what", ["rpm", "tpm"])
def test_caps_must_be_positive_whole_numbers(what, value):
    with pytest.raises(ValueError, match=f"{what} must be a whole number of at least 1"):
        api_upstream("groq", "m", "https://api.groq.com/openai/v1", **{what: value})


@pytest.mark.parametrize("what", ["rpm", "tpm"])
def test_caps_are_refused_on_in_boundary_upstreams(what):
    with pytest.raises(ValueError, match="caps spend on a third-party API"):
        Upstream("self-hosted", "self-hosted", "hosted_vllm/m", SELF_HOSTED_URL, None, 30, False, **{what: 10})
    with pytest.raises(ValueError, match="caps spend on a third-party API"):
        Upstream("managed", "managed", "sagemaker_chat/ep", None, None, 30, False, **{what: 10})


@pytest.mark.parametrize("what", ["rpm", "tpm"])
def test_caps_cannot_be_smuggled_in_through_params(what):
    with pytest.raises(ValueError, match=f"params may not set '{what}'"):
        Upstream("groq", "api", "openai/m", "https://api.groq.com/openai/v1", "LLMHOST_GROQ_API_KEY", 30, True,
                 params={what: 5})


def test_the_guard_recognises_a_cap_refusal_also_behind_the_primary_tiers_error():
    # What LiteLLM 1.106.2 reports when the engine was full and the fallback to the capped API was refused: the
    # engine's 503, with the refusal only in the message. The guard answers that with 429 (live test below).
    behind = ("litellm.ServiceUnavailableError: Hosted_vllmException - self-hosted: service_unavailable\n\nLiteLLM: "
              "model group 'llm' failed with the error above. Fallback to tier-groq also failed: "
              "litellm.RateLimitError: Model rate limit exceeded. RPM limit=3, current usage=4")
    assert over_api_cap(behind)
    assert over_api_cap("litellm.RateLimitError: Model rate limit exceeded. TPM limit=20, current usage=27")
    assert not over_api_cap("litellm.ServiceUnavailableError: Hosted_vllmException - self-hosted: service_unavailable")
    assert inspect.getsource(over_api_cap) in GUARD_SOURCE and "async_post_call_failure_hook" in GUARD_SOURCE


# -- the usage module ------------------------------------------------------------------------------------------------

def test_the_usage_module_is_loaded_and_shipped_to_every_runtime(tmp_path):
    config = render_config(stack_routes(stack_config("startup-api", SPEND), consumers=CONSUMERS), replicas=2)
    assert USAGE_CALLBACK in config["litellm_settings"]["callbacks"] and USAGE_CALLBACK == "gateway_usage.usage"
    assert config_files(config)[USAGE_FILE] == USAGE_SOURCE  # the ConfigMap (Kubernetes)
    unpacked = json.loads(gzip.decompress(base64.b64decode(packed_files(config))))  # FILES_ENV (ECS, Cloud Run)
    assert unpacked[USAGE_FILE] == USAGE_SOURCE and FILES_ENV == "LLMHOST_GATEWAY_FILES"
    write_config_dir(config, tmp_path)
    assert (tmp_path / USAGE_FILE).read_text() == USAGE_SOURCE
    compile(USAGE_SOURCE, USAGE_FILE, "exec")
    assert inspect.getsource(usage_record) in USAGE_SOURCE  # the function tested here is the one the proxy runs


DEPLOYMENTS = {"llm/self-hosted": {"id": "llm/self-hosted", "upstream": "self-hosted", "third_party": False},
               "tier-groq/groq": {"id": "tier-groq/groq", "upstream": "groq", "third_party": True}}


def payload(**over):
    p = {"status": "success", "model_group": "tier-groq", "model_id": "tier-groq/groq", "prompt_tokens": 12,
         "completion_tokens": 30, "total_tokens": 42, "messages": [{"role": "user", "content": "the patient's chart"}],
         "metadata": {"user_api_key_alias": "app", "user_api_key_hash": "llmhost-9f2c"}}
    p.update(over)
    return p


def test_a_usage_record_names_the_public_route_and_the_upstream_and_copies_only_counts():
    record = usage_record(payload(), "llm", DEPLOYMENTS)
    assert record == {"llmhost_usage": 1, "route": "llm", "upstream": "groq", "third_party": True, "consumer": "app",
                      "prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    assert "chart" not in json.dumps(record) and "llmhost-9f2c" not in json.dumps(record)
    inside = usage_record(payload(model_group="llm", model_id="llm/self-hosted"), None, DEPLOYMENTS)
    assert (inside["route"], inside["upstream"], inside["third_party"]) == ("llm", "self-hosted", False)


def test_a_failure_or_an_unknown_deployment_is_not_reported_as_in_boundary():
    assert usage_record(payload(status="failure"), "llm", DEPLOYMENTS) is None
    assert usage_record(None, "llm", DEPLOYMENTS) is None
    stray = usage_record(payload(model_id="somewhere-else"), "llm", DEPLOYMENTS)
    assert stray["upstream"] is None and stray["third_party"] is True


# -- live: the pinned proxy --------------------------------------------------------------------------------------------

MASTER_KEY = "sk-spend-master-31c7"
API_KEY = "gsk-spend-provider-c0ffee"
APP_KEY = "llmhost-app-spend-8d1e"
AUTH = {"Authorization": f"Bearer {APP_KEY}"}
PROMPT = "zebra-umbrella-4471 tell me about the quarterly numbers"
RPM_CAP, TPM_CAP = 3, 20  # whole gateway; one replica here, so also what the replica admits
FAKE_USAGE = (5, 4, 9)  # what tests/fake_upstream.py reports for every answer
STREAM_USAGE = (7, 3, 10)


class StreamingUpstream:
    """An OpenAI-compatible upstream that answers `stream: true` with server-sent events ending in a usage chunk."""

    def __init__(self):
        self.hits = 0
        self.server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> "StreamingUpstream":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.hits += 1
                base = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model", "m")}
                chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w}}]}
                          for w in ("hello ", "from ", "managed")]
                chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                p, c, t = STREAM_USAGE
                chunks.append({**base, "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c,
                                                                "total_tokens": t}})
                data = "".join(f"data: {json.dumps(x)}\n\n" for x in chunks) + "data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data.encode())))
                self.end_headers()
                self.wfile.write(data.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def live_routes() -> GatewayRoutes:
    # Burst overflow on `llm` (the engine, then groq: capped by requests); `llm-frontier` straight to a second
    # provider capped by tokens; `llm-open` overflowing to a third, uncapped (the usage line's test, whatever the
    # other tests counted this minute); `llm-stream` to a managed endpoint that streams (in-boundary: never capped).
    return GatewayRoutes(
        "burst-overflow",
        (self_hosted_upstream("m", SELF_HOSTED_URL, timeout_seconds=5),
         api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1", 5, rpm=RPM_CAP),
         api_upstream("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "https://api.together.xyz/v1", 5,
                      tpm=TPM_CAP),
         api_upstream("fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", "https://api.fireworks.ai/inference/v1", 5),
         Upstream("managed", "managed", "hosted_vllm/m", "https://managed.llm.internal/v1", None, 5, False)),
        routes={PUBLIC_MODEL: ("self-hosted", "groq"), "llm-frontier": ("together",),
                "llm-open": ("self-hosted", "fireworks"), "llm-stream": ("managed",)},
        overflow_on_refusal=True, consumers=(Consumer("app", 600, 1_000_000),))


class Live:
    def __init__(self, proxy: LiteLLMProxy, fakes: dict):
        self.proxy, self.fakes = proxy, fakes

    def chat(self, model: str, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}
        return post_json(self.proxy.base_url, "/v1/chat/completions", body, AUTH, timeout=20)

    def usage_lines(self) -> list[dict]:
        lines = self.proxy.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{") and f'"{USAGE_MARK}"' in line]

    def wait_for_usage(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.usage_lines()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # and no more than that: a second line for the same request would show up here
        return self.usage_lines()

    def settled_usage_count(self) -> int:
        """How many usage lines there are once the last request's line (written just after its reply) is out."""
        count = -1
        while count != len(self.usage_lines()):
            count = len(self.usage_lines())
            time.sleep(0.5)
        return count


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    litellm_bin()
    tmp = tmp_path_factory.mktemp("spend")
    routes = live_routes()
    fakes = {u.name: FakeUpstream(u.name).start() for u in routes.upstreams if u.name != "managed"}
    fakes["managed"] = StreamingUpstream().start()
    proxy = None
    try:
        config = swap_addresses(render_config(routes), {n: f.base_url for n, f in fakes.items()})
        path = write_config_dir(config, tmp / "config")
        (tmp / "work").mkdir()
        env = {MASTER_KEY_ENV: MASTER_KEY, **{name: API_KEY for name in key_envs(routes)},
               routes.consumers[0].key_env: APP_KEY}
        proxy = LiteLLMProxy(path, env=env, log_path=tmp / "litellm.log", cwd=tmp / "work").start(ready_timeout=90)
        yield Live(proxy, fakes)
    finally:
        if proxy is not None:
            proxy.stop()
        for f in fakes.values():
            f.stop()


def early_in_a_minute(budget_seconds: float = 15.0) -> None:
    """Wait until a burst of `budget_seconds` ends in the minute it starts in (LiteLLM's counters are per minute)."""
    second = time.gmtime().tm_sec
    if second > 60 - budget_seconds:
        time.sleep(61 - second)


def test_past_the_request_cap_overflow_gets_429_while_the_in_boundary_route_keeps_answering(live):
    engine, groq, others = live.fakes["self-hosted"], live.fakes["groq"], (live.fakes["together"], live.fakes["fireworks"])
    early_in_a_minute()
    engine.reset("503")  # the fleet is full: every request overflows to the API
    groq.reset()
    for other in others:
        other.reset()
    replies = [live.chat(PUBLIC_MODEL) for _ in range(RPM_CAP + 2)]
    assert [r.status for r in replies] == [200] * RPM_CAP + [429, 429], replies
    assert {r.model_group for r in replies[:RPM_CAP]} == {"tier-groq"}
    assert all(r.seconds < 5 for r in replies[RPM_CAP:]), replies  # refused at once, not after a timeout
    assert "spend cap" in replies[-1].body.decode() and replies[-1].headers.get("retry-after") == "60"
    assert groq.hits == RPM_CAP  # the refused requests never reached the provider
    assert [o.hits for o in others] == [0, 0]  # nor another provider the route does not name
    engine.reset("ok")  # the fleet has room again: the route answers from inside the boundary, cap or not
    back = live.chat(PUBLIC_MODEL)
    assert back.status == 200 and back.json()["choices"][0]["message"]["content"] == "hello from self-hosted", back


def test_past_the_token_cap_the_api_route_gets_429_while_the_in_boundary_route_keeps_answering(live):
    together, engine = live.fakes["together"], live.fakes["self-hosted"]
    early_in_a_minute()
    together.reset()
    engine.reset()
    # Tokens are counted after each answer (9 each; LiteLLM's success callback, just after the reply), so requests are
    # admitted until the minute's count reaches the cap: requests in flight together can pass it by their own tokens.
    admitted = -(-TPM_CAP // FAKE_USAGE[2])
    replies = []
    for _ in range(admitted + 2):
        replies.append(live.chat("llm-frontier"))
        time.sleep(0.3)
    assert [r.status for r in replies] == [200] * admitted + [429, 429], replies
    assert "spend cap" in replies[-1].body.decode() and replies[-1].headers.get("retry-after") == "60"
    assert together.hits == admitted
    assert live.chat(PUBLIC_MODEL).status == 200 and engine.hits == 1


def test_one_usage_line_per_completion_with_route_upstream_and_the_upstreams_token_counts(live):
    engine, fireworks = live.fakes["self-hosted"], live.fakes["fireworks"]
    before = live.settled_usage_count()
    engine.reset()
    assert live.chat(PUBLIC_MODEL).status == 200  # served in the boundary
    engine.reset("503")
    overflow = live.chat("llm-open")  # the engine is full: served by the API, as tier-fireworks
    assert overflow.status == 200 and overflow.model_group == "tier-fireworks" and fireworks.hits == 1, overflow
    stream = post_json(live.proxy.base_url, "/v1/chat/completions",
                       {"model": "llm-stream", "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
                       AUTH, timeout=20)
    assert stream.status == 200 and b"data: [DONE]" in stream.body, stream
    engine.reset()
    lines = live.wait_for_usage(before + 3)[before:]
    assert len(lines) == 3, json.dumps(lines, indent=1)  # one per completion, the stream included: not one per chunk
    inside, api, streamed = lines
    p, c, t = FAKE_USAGE
    assert inside == {"llmhost_usage": 1, "route": "llm", "upstream": "self-hosted", "third_party": False,
                      "consumer": "app", "prompt_tokens": p, "completion_tokens": c, "total_tokens": t}
    # The route the consumer asked for (not the tier-fireworks group that served it) and the provider behind it.
    assert api == {**inside, "route": "llm-open", "upstream": "fireworks", "third_party": True}
    p, c, t = STREAM_USAGE
    assert streamed == {"llmhost_usage": 1, "route": "llm-stream", "upstream": "managed", "third_party": False,
                        "consumer": "app", "prompt_tokens": p, "completion_tokens": c, "total_tokens": t}


def test_usage_lines_never_carry_the_prompt_or_a_key(live):
    live.chat(PUBLIC_MODEL)
    lines = live.wait_for_usage(1)
    assert lines
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in (PROMPT, "zebra-umbrella", APP_KEY, MASTER_KEY, API_KEY):
        assert secret not in text
    assert all(set(line) == {"llmhost_usage", "route", "upstream", "third_party", "consumer", "prompt_tokens",
                             "completion_tokens", "total_tokens"} for line in lines)
