"""The rendered gateway config exercised for real: the pinned LiteLLM proxy on 127.0.0.1 in front of fake upstreams.

Routes come from the checked-in hybrid stacks through `stack_routes` and `render_config`, exactly as the kit
deploys them; only the upstream addresses are swapped for small OpenAI-compatible fakes (tests/fake_upstream.py),
and the test checks that nothing else changed. The proxy runs from its own venv (tests/tools.py; the first run
installs litellm[proxy]==1.106.2, ~50 s) with LITELLM_LOCAL_MODEL_COST_MAP=True, so it never leaves loopback.

Every scenario starts its own proxy (cooldown state is per process), sends a bounded number of requests with
timeouts, and stops the proxy and the fakes in teardown.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from planner.stack_config import load_stack_config
from preview.harness import load_config
from serving.gateway import (MASTER_KEY_ENV, METRICS_PATH, PUBLIC_MODEL, SENSITIVE_MODEL, GatewayRoutes, Upstream, key_envs,
                             render_config, stack_routes, write_config_dir)
from tests.conftest import ROOT
from tests.fake_upstream import FakeUpstream
from tests.tools import LiteLLMProxy, litellm_bin, post_json

SELF_HOSTED_URL = "http://vllm.llm-serving.svc.cluster.local:8000/v1"
MASTER_KEY = "sk-live-master-0b5e"
API_KEY = "gsk-live-provider-7d21"
PRIMARY_TIMEOUT = 2.0  # seconds per attempt, as the stack would configure it
SLACK = 4.0  # proxy overhead plus LiteLLM's one-off lazy init on the first failover (measured 1.3-1.6 s)
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
# What the proxy logs when it reaches for the network (DNS fails in a loopback-only sandbox; hosts it is known to try).
OUTBOUND_SIGNS = ("Name or service not known", "Temporary failure in name resolution", "huggingface.co",
                  "raw.githubusercontent.com", "api.groq.com")


@pytest.fixture(scope="session")
def litellm_installed() -> Path:
    return litellm_bin()  # a dedicated venv under .tools/, reused once installed


def stack_config(stack: str):
    _, merged, _, _ = load_config(ROOT, stack)
    return load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")


def burst_routes(max_parallel=None) -> GatewayRoutes:
    # The burst-hybrid stack: self-hosted vLLM first, then groq; a full replica's refusal overflows to groq.
    return stack_routes(stack_config("burst-hybrid"), self_hosted_url=SELF_HOSTED_URL, timeout_seconds=PRIMARY_TIMEOUT,
                        self_hosted_max_parallel=max_parallel)


def sensitivity_routes() -> GatewayRoutes:
    # The tiered-sensitivity stack, plus a second in-boundary tier (an OpenAI-compatible managed endpoint) so that
    # "every in-boundary upstream down" means more than one.
    cfg = stack_config("tiered-sensitivity")
    managed = Upstream("managed", "managed", f"hosted_vllm/{cfg.model.id}", "https://managed.llm.internal/v1", None,
                       PRIMARY_TIMEOUT, False)
    return stack_routes(cfg, self_hosted_url=SELF_HOSTED_URL, managed=managed, timeout_seconds=PRIMARY_TIMEOUT)


def swap_addresses(config: dict, bases: dict[str, str]) -> dict:
    """The rendered config with each upstream's api_base replaced; everything else stays as rendered."""
    out = copy.deepcopy(config)
    for entry in out["model_list"]:
        entry["litellm_params"]["api_base"] = bases[entry["model_info"]["upstream"]]

    def without_addresses(c):
        c = copy.deepcopy(c)
        for e in c["model_list"]:
            e["litellm_params"].pop("api_base", None)
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

    def start(routes: GatewayRoutes, remove_guard: bool = False) -> Running:
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
        env = {MASTER_KEY_ENV: MASTER_KEY, **{name: API_KEY for name in key_envs(routes)}}
        proxy = LiteLLMProxy(path, env=env, log_path=tmp_path / "litellm.log", cwd=workdir)
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


def test_clients_need_the_master_key(gateway):
    gw = gateway(sensitivity_routes())
    denied = gw.chat(SENSITIVE_MODEL, headers={"Authorization": "Bearer not-the-key"})
    assert denied.status in (400, 401), denied
    assert gw.hits() == {"self-hosted": 0, "managed": 0, "groq": 0}


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
    status, page = scrape(gw.proxy.base_url, AUTH)
    assert status == 200
    assert LITELLM_REQUESTS in page
    assert any(line.startswith(LITELLM_FALLBACKS) and 'fallback_model="tier-groq"' in line and not line.endswith(" 0.0")
               for line in page.splitlines()), page[:2000]
