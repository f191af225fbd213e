"""The rendered gateway config exercised for real: the pinned LiteLLM proxy on 127.0.0.1 in front of fake upstreams.

Routes come from the checked-in hybrid stacks through `stack_routes` and `render_config`, exactly as the kit
deploys them; only the upstream addresses are swapped for small OpenAI-compatible fakes (tests/fake_upstream.py),
and the test checks that nothing else changed. The proxy runs from its own venv (tests/tools.py; the first run
installs litellm[proxy]==1.106.2, ~50 s) with LITELLM_LOCAL_MODEL_COST_MAP=True, so it never leaves loopback.

Clients are the stack's consumers, each with its own key (LLMHOST_CONSUMER_<NAME>_KEY) and limits, checked by the
shipped gateway_auth.py; the master key is the operators'. Managed tiers are fakes on loopback: a SageMaker runtime
reached by LiteLLM's sagemaker_chat/ provider with SigV4 over dummy AWS credentials, and a Vertex AI dedicated
endpoint reached by its vertex_ai/openai/ provider with an access token google-auth gets from a fake token_uri for a
throwaway service-account key (that provider needs the Google client libraries: a second proxy venv, ~100 s once).

Every scenario starts its own proxy (cooldown and rate-limit state are per process), sends a bounded number of
requests with timeouts, and stops the proxy and the fakes in teardown.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from planner.stack_config import load_stack_config
from preview.harness import load_config
from serving.gateway_config import (MASTER_KEY_ENV, METRICS_PATH, PUBLIC_MODEL, SENSITIVE_MODEL, Consumer, GatewayRoutes,
                                    Upstream, key_envs, render_config, sagemaker_upstream, stack_routes, vertex_upstream,
                                    write_config_dir)
from tests.conftest import ROOT
from tests.fake_upstream import TOKEN, FakeUpstream
from tests.tools import LiteLLMProxy, litellm_bin, litellm_vertex_bin, post_json

SELF_HOSTED_URL = "http://vllm.llm-serving.svc.cluster.local:8000/v1"
MASTER_KEY = "sk-live-master-0b5e"
API_KEY = "gsk-live-provider-7d21"
PRIMARY_TIMEOUT = 2.0  # seconds per attempt, as the stack would configure it
SLACK = 4.0  # proxy overhead plus LiteLLM's one-off lazy init on the first failover (measured 1.3-1.6 s)
# The application teams calling the gateway: "app" (generous limits; the key most scenarios use) and "batch" (a tight
# request limit, to be throttled). Keys reach the proxy as the environment variables their Secrets fill.
CONSUMERS = (Consumer("app", 600, 1_000_000), Consumer("batch", 3, 1_000_000))
CONSUMER_KEYS = {"app": "llmhost-app-5f0c2b", "batch": "llmhost-batch-a91e44"}
AUTH = {"Authorization": f"Bearer {CONSUMER_KEYS['app']}"}
OPERATOR = {"Authorization": f"Bearer {MASTER_KEY}"}
# SageMaker requests are signed (SigV4) with these; the fake runtime checks the signature's shape, not its value.
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEFAKEKEY00", "AWS_SECRET_ACCESS_KEY": "fake-secret-for-sigv4-only",
             "AWS_EC2_METADATA_DISABLED": "true"}
# What the proxy logs when it reaches for the network (DNS fails in a loopback-only sandbox; hosts it is known to try).
OUTBOUND_SIGNS = ("Name or service not known", "Temporary failure in name resolution", "huggingface.co",
                  "raw.githubusercontent.com", "api.groq.com", "amazonaws.com", "169.254.169.254", "googleapis.com",
                  "metadata.google.internal")


@pytest.fixture(scope="session")
def litellm_installed() -> Path:
    return litellm_bin()  # a dedicated venv under .tools/, reused once installed


def stack_config(stack: str):
    _, merged, _, _ = load_config(ROOT, stack)
    return load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")


def burst_routes(max_parallel=None) -> GatewayRoutes:
    # The burst-hybrid stack: self-hosted vLLM first, then groq; a full replica's refusal overflows to groq.
    return stack_routes(stack_config("burst-hybrid"), self_hosted_url=SELF_HOSTED_URL, timeout_seconds=PRIMARY_TIMEOUT,
                        self_hosted_max_parallel=max_parallel, consumers=CONSUMERS)


def sensitivity_routes() -> GatewayRoutes:
    # The tiered-sensitivity stack, plus a second in-boundary tier (an OpenAI-compatible managed endpoint) so that
    # "every in-boundary upstream down" means more than one.
    cfg = stack_config("tiered-sensitivity")
    managed = Upstream("managed", "managed", f"hosted_vllm/{cfg.model.id}", "https://managed.llm.internal/v1", None,
                       PRIMARY_TIMEOUT, False)
    return stack_routes(cfg, self_hosted_url=SELF_HOSTED_URL, managed=managed, timeout_seconds=PRIMARY_TIMEOUT,
                        consumers=CONSUMERS)


def swap_addresses(config: dict, bases: dict[str, str]) -> dict:
    """The rendered config with each upstream's address replaced; everything else stays as rendered.

    OpenAI-style upstreams get the fake's base URL as api_base. LiteLLM's sagemaker_chat/ provider builds
    https://runtime.sagemaker.<region>.amazonaws.com/endpoints/<endpoint>/invocations itself and ignores api_base; its
    override is the whole invocation URL in `sagemaker_base_url` (what a VPC interface endpoint would use too)."""
    out = copy.deepcopy(config)
    for entry in out["model_list"]:
        params, base = entry["litellm_params"], bases[entry["model_info"]["upstream"]]
        if params["model"].startswith("sagemaker_chat/"):
            root = base.rsplit("/v1", 1)[0]
            params["sagemaker_base_url"] = f"{root}/endpoints/{params['model'].split('/', 1)[1]}/invocations"
        else:
            params["api_base"] = base

    def without_addresses(c):
        c = copy.deepcopy(c)
        for e in c["model_list"]:
            e["litellm_params"].pop("api_base", None)
            e["litellm_params"].pop("sagemaker_base_url", None)
        return c

    assert without_addresses(out) == without_addresses(config)
    return out


class Running:
    def __init__(self, proxy: LiteLLMProxy, fakes: dict[str, FakeUpstream], routes: GatewayRoutes):
        self.proxy, self.fakes, self.routes = proxy, fakes, routes

    def chat(self, model: str, timeout: float = 20.0, headers=None, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
        return post_json(self.proxy.base_url, "/v1/chat/completions", body, AUTH if headers is None else headers,
                         timeout=timeout)

    def hits(self) -> dict[str, int]:
        return {name: f.hits for name, f in self.fakes.items()}


@pytest.fixture
def gateway(litellm_installed, tmp_path):
    """Start fakes for every upstream of `routes` and the proxy on the kit's config; stop all of them afterwards."""
    started: list = []

    def start(routes: GatewayRoutes, remove_guard: bool = False, consumer_env=None, extra_env=None,
              binary=None) -> Running:
        fakes = {}
        for u in routes.upstreams:
            fakes[u.name] = FakeUpstream(u.name, hang_seconds=PRIMARY_TIMEOUT + SLACK + 5, slow_seconds=1.5)
            started.append(fakes[u.name].start())
        config = swap_addresses(render_config(routes), {n: f.base_url for n, f in fakes.items()})
        config_dir = tmp_path / "config"
        path = write_config_dir(config, config_dir)
        if remove_guard:
            (config_dir / "gateway_guard.py").unlink()
        workdir = tmp_path / "work"
        workdir.mkdir(exist_ok=True)
        if consumer_env is None:
            consumer_env = {c.key_env: CONSUMER_KEYS[c.name] for c in routes.consumers}
        env = {MASTER_KEY_ENV: MASTER_KEY, **{name: API_KEY for name in key_envs(routes)}, **consumer_env, **DUMMY_AWS,
               **(extra_env(fakes) if extra_env else {})}
        proxy = LiteLLMProxy(path, env=env, log_path=tmp_path / "litellm.log", cwd=workdir, binary=binary)
        started.append(proxy)
        proxy.start(ready_timeout=90)
        return Running(proxy, fakes, routes)

    yield start
    for thing in reversed(started):  # the proxy first, then the fakes (releasing any hanging handler)
        thing.stop()
    for thing in started:
        if isinstance(thing, LiteLLMProxy) and thing.startup_seconds is not None:
            log = thing.log_path.read_text(errors="replace")
            seen = [s for s in OUTBOUND_SIGNS if s in log]
            assert not seen, f"the proxy reached for the network ({seen}):\n{thing.log_tail()}"


# -- burst overflow ---------------------------------------------------------------------------------------------------

def test_broken_primary_is_served_by_the_fallback_and_the_primary_cools_down(gateway):
    gw = gateway(burst_routes())
    primary, api = gw.fakes["self-hosted"], gw.fakes["groq"]

    ok = gw.chat(PUBLIC_MODEL)
    assert ok.status == 200, ok
    assert ok.model_group == PUBLIC_MODEL and ok.json()["choices"][0]["message"]["content"] == "hello from self-hosted"
    assert gw.hits() == {"self-hosted": 1, "groq": 0}

    primary.reset("500")  # a broken engine, not a full one
    replies = [gw.chat(PUBLIC_MODEL) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5, replies
    assert {r.model_group for r in replies} == {"tier-groq"}
    assert replies[0].attempted_fallbacks == 1
    assert api.hits == 5
    # allowed_fails=1: two failures, then the primary is skipped for cooldown_time instead of failing every request.
    assert 1 <= primary.hits <= gw.routes.allowed_fails + 1, primary.hits
    # The provider key came from the environment variable the config names, never from the config itself.
    assert api.last_headers.get("authorization") == f"Bearer {API_KEY}"


def test_primary_hang_is_served_by_the_fallback_within_the_configured_timeout(gateway):
    gw = gateway(burst_routes())
    primary, api = gw.fakes["self-hosted"], gw.fakes["groq"]
    assert gw.chat(PUBLIC_MODEL).status == 200  # warm: the first call initialises clients

    primary.reset("hang")
    api.reset()
    first = gw.chat(PUBLIC_MODEL, timeout=PRIMARY_TIMEOUT + SLACK + 10)
    assert first.status == 200, first
    assert first.model_group == "tier-groq"
    assert PRIMARY_TIMEOUT * 0.9 <= first.seconds <= PRIMARY_TIMEOUT + SLACK, first.seconds
    assert (primary.hits, api.hits) == (1, 1)  # a timeout is not retried on the hung tier


@pytest.mark.parametrize("refusal", ["503", "429"])
def test_full_replicas_overflow_each_request_to_the_api_and_take_traffic_again_at_once(gateway, refusal):
    # A vLLM replica past --max-num-queued-reqs answers 503, TGI past --max-concurrent-requests 429: the live signal
    # of a full fleet, whatever number of replicas is running. Each refused request goes to the API at once, and the
    # next request tries the fleet again: being full is not a failure, so the tier is never cooled down.
    gw = gateway(burst_routes())
    assert gw.routes.overflow_on_refusal
    primary, api = gw.fakes["self-hosted"], gw.fakes["groq"]
    assert gw.chat(PUBLIC_MODEL).model_group == PUBLIC_MODEL
    primary.reset(refusal)
    api.reset()
    refused = [gw.chat(PUBLIC_MODEL) for _ in range(6)]
    assert [r.status for r in refused] == [200] * 6, refused
    assert {r.model_group for r in refused} == {"tier-groq"}
    assert (primary.hits, api.hits) == (6, 6)  # every request asked the fleet first: no cooldown in between
    primary.reset("ok")
    after = gw.chat(PUBLIC_MODEL)
    assert after.status == 200 and after.model_group == PUBLIC_MODEL, after


def test_saturated_primary_overflows_to_the_api_without_cooling_down(gateway):
    gw = gateway(burst_routes(max_parallel=2))  # a static in-flight cap, for routes that set one
    primary, api = gw.fakes["self-hosted"], gw.fakes["groq"]
    assert gw.chat(PUBLIC_MODEL).status == 200
    primary.reset("slow")  # busy but healthy: answers after 1.5 s
    api.reset()
    replies: list = []
    lock = threading.Lock()

    def one():
        r = gw.chat(PUBLIC_MODEL, timeout=20)
        with lock:
            replies.append(r)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [r.status for r in replies] == [200] * 6, replies
    groups = sorted(r.model_group for r in replies)
    assert groups.count(PUBLIC_MODEL) == primary.hits <= 2
    assert groups.count("tier-groq") == api.hits >= 4
    primary.reset("ok")
    after = gw.chat(PUBLIC_MODEL)
    assert after.status == 200 and after.model_group == PUBLIC_MODEL  # saturation is not a failure: no cooldown


# -- tiering by sensitivity -------------------------------------------------------------------------------------------

def test_regulated_route_never_reaches_the_api_even_when_every_in_boundary_upstream_is_down(gateway):
    gw = gateway(sensitivity_routes())
    self_hosted, managed, api = gw.fakes["self-hosted"], gw.fakes["managed"], gw.fakes["groq"]

    served = gw.chat(SENSITIVE_MODEL)
    assert served.status == 200 and served.model_group == SENSITIVE_MODEL, served
    assert gw.hits() == {"self-hosted": 1, "managed": 0, "groq": 0}

    self_hosted.reset("503")
    inside = gw.chat(SENSITIVE_MODEL)
    assert inside.status == 200 and inside.model_group == "tier-managed", inside  # falls back, inside the boundary

    managed.reset("503")
    failed = [gw.chat(SENSITIVE_MODEL) for _ in range(5)]
    assert all(r.status >= 400 for r in failed), failed  # fails closed
    assert api.hits == 0

    # A request cannot bring its own route out of the boundary: the guard refuses it before routing.
    for extra in ({"fallbacks": [PUBLIC_MODEL]}, {"router_settings_override": {"fallbacks": [{SENSITIVE_MODEL: [PUBLIC_MODEL]}]}},
                  {"metadata": {"fallbacks": [PUBLIC_MODEL]}}):
        refused = gw.chat(SENSITIVE_MODEL, **extra)
        assert refused.status == 400 and b"request-level routing" in refused.body, refused
    refused = gw.chat(f"{SENSITIVE_MODEL},{PUBLIC_MODEL}")
    assert refused.status == 400, refused
    assert api.hits == 0

    # The API was up all along: general traffic reaches it.
    general = gw.chat(PUBLIC_MODEL)
    assert general.status == 200 and general.model_group == PUBLIC_MODEL, general
    assert api.hits == 1


# -- consumers ----------------------------------------------------------------------------------------------------------

def test_requests_without_a_consumer_key_are_refused(gateway):
    gw = gateway(sensitivity_routes())
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Bearer {CONSUMER_KEYS['app']}x"}):
        denied = gw.chat(SENSITIVE_MODEL, headers=headers)
        assert denied.status == 401, (headers, denied)
    assert gw.hits() == {"self-hosted": 0, "managed": 0, "groq": 0}
    served = gw.chat(SENSITIVE_MODEL)
    assert served.status == 200 and served.json()["choices"][0]["message"]["content"] == "hello from self-hosted"
    # The master key is the operators': it still opens every route; a consumer's key opens the model routes only.
    assert gw.chat(PUBLIC_MODEL, headers=OPERATOR).status == 200
    assert scrape(gw.proxy.base_url, AUTH)[0] in (401, 403)
    assert scrape(gw.proxy.base_url, OPERATOR)[0] == 200


def test_a_removed_consumer_and_a_rotated_key_are_refused(gateway):
    # The config lists only "app" ("batch" was removed) and app's key was rotated: its Secret holds a new value. The
    # old variables may linger in the environment; only the config and the current values decide.
    routes = replace(sensitivity_routes(), consumers=(CONSUMERS[0],))
    rotated = "llmhost-app-rotated-77d0"
    gw = gateway(routes, consumer_env={CONSUMERS[0].key_env: rotated,
                                       CONSUMERS[1].key_env: CONSUMER_KEYS["batch"]})
    assert gw.chat(PUBLIC_MODEL).status == 401  # app's old key
    assert gw.chat(PUBLIC_MODEL, headers={"Authorization": f"Bearer {CONSUMER_KEYS['batch']}"}).status == 401
    assert gw.hits() == {"self-hosted": 0, "managed": 0, "groq": 0}
    assert gw.chat(PUBLIC_MODEL, headers={"Authorization": f"Bearer {rotated}"}).status == 200


def test_a_consumer_over_its_request_limit_gets_429_while_another_is_served(gateway):
    gw = gateway(burst_routes())
    batch = {"Authorization": f"Bearer {CONSUMER_KEYS['batch']}"}
    replies = [gw.chat(PUBLIC_MODEL, headers=batch) for _ in range(CONSUMERS[1].requests_per_minute + 2)]
    assert [r.status for r in replies] == [200] * CONSUMERS[1].requests_per_minute + [429, 429], replies
    assert b"Rate limit exceeded" in replies[-1].body
    assert gw.hits() == {"self-hosted": CONSUMERS[1].requests_per_minute, "groq": 0}  # the refused never went upstream
    others = [gw.chat(PUBLIC_MODEL) for _ in range(3)]
    assert [r.status for r in others] == [200] * 3, others


def test_a_consumer_over_its_token_limit_gets_429(gateway):
    # Tokens are counted after each answer (the fake reports 9 per call): past the limit, the next request is refused.
    tight = Consumer("tokens", 600, 12)
    routes = replace(burst_routes(), consumers=(CONSUMERS[0], tight))
    gw = gateway(routes, consumer_env={CONSUMERS[0].key_env: CONSUMER_KEYS["app"], tight.key_env: "llmhost-tokens-3c"})
    headers = {"Authorization": "Bearer llmhost-tokens-3c"}
    statuses = [gw.chat(PUBLIC_MODEL, headers=headers).status for _ in range(4)]
    assert statuses[0] == 200 and 429 in statuses, statuses
    assert gw.chat(PUBLIC_MODEL).status == 200


# -- a managed tier behind the gateway -----------------------------------------------------------------------------------

def test_a_sagemaker_endpoint_answers_an_openai_style_chat_request(gateway):
    routes = GatewayRoutes("none", (sagemaker_upstream("llm-endpoint", "eu-west-1", PRIMARY_TIMEOUT),),
                           consumers=CONSUMERS)
    gw = gateway(routes)
    reply = gw.chat(PUBLIC_MODEL)
    assert reply.status == 200, reply
    answer = reply.json()
    assert answer["object"] == "chat.completion" and answer["model"] == PUBLIC_MODEL
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "hello from managed"}
    assert answer["usage"]["total_tokens"] == 9
    sm = gw.fakes["managed"]
    assert sm.last_path == "/endpoints/llm-endpoint/invocations"
    # Signed as the pod's IAM role would sign it: SigV4 for the sagemaker service in the endpoint's region.
    auth = sm.last_headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={DUMMY_AWS['AWS_ACCESS_KEY_ID']}/")
    assert "/eu-west-1/sagemaker/aws4_request" in auth and "x-amz-date" in sm.last_headers
    assert sm.last_request["messages"] == [{"role": "user", "content": "hello"}]


def test_the_proxy_refuses_to_start_without_its_guard(gateway):
    with pytest.raises(RuntimeError, match="exited"):
        gateway(sensitivity_routes(), remove_guard=True)


# -- metrics ----------------------------------------------------------------------------------------------------------

def scrape(base_url: str, headers: dict) -> tuple[int, str]:
    import http.client
    c = http.client.HTTPConnection(base_url.split("://", 1)[1].split("/", 1)[0], timeout=10)
    try:
        c.request("GET", METRICS_PATH, headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def test_metrics_are_closed_without_the_key_and_count_the_overflow_the_alert_reads(gateway):
    """The PodMonitor scrapes /metrics with the master key (by reference to the gateway's Secret): without it the page
    is refused; with it, LiteLLM's counters show the requests and the fallbacks to the API by group, the series the
    overflow alert (serving/alerts.py) divides."""
    from serving.alerts import LITELLM_FALLBACKS, LITELLM_REQUESTS

    gw = gateway(burst_routes())
    gw.fakes["self-hosted"].reset("503")
    assert gw.chat(PUBLIC_MODEL).model_group == "tier-groq"
    status, _ = scrape(gw.proxy.base_url, {})
    assert status in (401, 403)
    status, page = scrape(gw.proxy.base_url, OPERATOR)
    assert status == 200
    assert LITELLM_REQUESTS in page
    assert any(line.startswith(LITELLM_FALLBACKS) and 'fallback_model="tier-groq"' in line and not line.endswith(" 0.0")
               for line in page.splitlines()), page[:2000]


def test_a_vertex_endpoint_answers_an_openai_style_chat_request(gateway, tmp_path):
    # The pod's Google identity, stood in for by a throwaway service-account key whose token_uri is the fake's
    # /token: google-auth signs a JWT with it and trades it for an access token, as it would with Google.
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    endpoint = "https://1234.europe-west4-567.prediction.vertexai.goog/v1/projects/proj-x/locations/europe-west4/endpoints/1234"
    routes = GatewayRoutes("none", (vertex_upstream(endpoint, "1234", "proj-x", "europe-west4", 30.0),),
                           consumers=CONSUMERS)

    def google_identity(fakes):
        path = tmp_path / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "proj-x", "private_key_id": "0", "private_key": key,
            "client_email": "llm-gateway@proj-x.iam.gserviceaccount.com", "client_id": "0",
            "token_uri": fakes["managed"].base_url.rsplit("/v1", 1)[0] + "/token"}))
        return {"GOOGLE_APPLICATION_CREDENTIALS": str(path)}

    gw = gateway(routes, extra_env=google_identity, binary=litellm_vertex_bin())
    reply = gw.chat(PUBLIC_MODEL, timeout=40)
    assert reply.status == 200, reply
    answer = reply.json()
    assert answer["object"] == "chat.completion" and answer["model"] == PUBLIC_MODEL
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "hello from managed"}
    vertex = gw.fakes["managed"]
    # The dedicated endpoint's OpenAI-compatible route, called with the token google-auth fetched.
    assert vertex.last_path == "/v1/chat/completions"
    assert vertex.last_headers["authorization"] == f"Bearer {TOKEN}" and vertex.token_requests >= 1
    assert vertex.last_request["messages"] == [{"role": "user", "content": "hello"}]
