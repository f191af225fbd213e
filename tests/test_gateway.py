"""The gateway: the LiteLLM config `render_config` builds for each pattern, and the Gateway component under mocks.

The config tests read the rendered dict; tests/test_gateway_live.py starts the real proxy on the same config.
The component tests run `Gateway` alone with `run_program` through an explicit Kubernetes provider.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import inspect
import json
import re
from dataclasses import replace
from functools import lru_cache

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.versions import VERSIONS
from planner.stack_config import load_stack_config
from preview.harness import MASK, load_config, run_program
from serving.gateway_config import (AUTH_FILE, AUTH_FUNCTION, AUTH_SOURCE, CONSUMER_ROUTES, CONSUMERS_SETTING,
                                    FALLBACK_PREFIX, FRONTIER_MODEL, GUARD_CALLBACK, GUARD_FILE, GUARD_SOURCE,
                                    MASTER_KEY_ENV, PUBLIC_MODEL, SENSITIVE_MODEL, Consumer, GatewayRoutes, Upstream,
                                    api_upstream, assert_no_third_party_route, consumer_key_env, consumer_key_envs,
                                    default_routes, guard_violations, identify, per_replica_limit, render_config,
                                    render_yaml, sagemaker_upstream, self_hosted_upstream, stack_routes,
                                    USAGE_CALLBACK, USAGE_FILE, USAGE_SOURCE, write_config_dir)
from serving.gateway_k8s import Gateway, GatewayArgs
from tests.conftest import ROOT

PROJECT, STACK = "llm-hosting", "test"
SELF_HOSTED_URL = "http://vllm.llm-serving.svc.cluster.local:8000/v1"
MODEL_ID = "meta-llama/Llama-3.1-70B-Instruct"
GROQ_URL = "https://api.groq.com/openai/v1"
GROQ_ENV = "LLMHOST_GROQ_API_KEY"
FAKE_KEY = "gsk-test-4c1f0e9b7a2d-never-in-state"
FAKE_MASTER = "sk-master-test-91d3a6f2-never-in-state"
CONSUMERS = (Consumer("chat-app", 120, 200_000), Consumer("batch", 7, 50_001))
FAKE_CONSUMER_KEYS = {"chat-app": "llmhost-chat-app-test-2b8e-never-in-state",
                      "batch": "llmhost-batch-test-c07a-never-in-state"}
IMAGE = VERSIONS.gateway_image(None)

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
K8S_PROVIDER = "pulumi:providers:kubernetes"


def self_hosted(timeout=30.0, **kw) -> Upstream:
    return self_hosted_upstream(MODEL_ID, SELF_HOSTED_URL, timeout_seconds=timeout, **kw)


def managed(timeout=45.0) -> Upstream:
    return sagemaker_upstream("llm-hosting-test", "us-east-1", timeout_seconds=timeout)


def groq(timeout=20.0) -> Upstream:
    return api_upstream("groq", "llama-3.3-70b-versatile", GROQ_URL, timeout_seconds=timeout)


def routes(pattern="burst-overflow", upstreams=None, **kw) -> GatewayRoutes:
    kw.setdefault("consumers", CONSUMERS)
    return GatewayRoutes(pattern=pattern, upstreams=tuple(upstreams or (self_hosted(), groq())), **kw)


def entries(config, name) -> list[dict]:
    return [e for e in config["model_list"] if e["model_name"] == name]


def upstream_of(config, group) -> str:
    [e] = entries(config, group)
    return e["model_info"]["upstream"]


def fallbacks(config) -> dict[str, list[str]]:
    out = {}
    for item in config["router_settings"]["fallbacks"]:
        out.update(item)
    return out


def walk(value, path=""):
    """(path, leaf) pairs of a nested dict/list."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


# -- render_config: the patterns --------------------------------------------------------------------------------------

def test_burst_overflow_sends_llm_to_the_self_hosted_model_then_the_api():
    config = render_config(routes("burst-overflow"))
    [primary] = entries(config, PUBLIC_MODEL)
    assert primary["litellm_params"]["model"] == f"hosted_vllm/{MODEL_ID}"
    assert primary["litellm_params"]["api_base"] == SELF_HOSTED_URL
    assert primary["model_info"] == {"id": "llm/self-hosted", "upstream": "self-hosted", "kind": "self-hosted",
                                     "third_party": False}
    assert fallbacks(config) == {PUBLIC_MODEL: [f"{FALLBACK_PREFIX}groq"]}
    [api] = entries(config, "tier-groq")
    assert api["litellm_params"] == {"model": "openai/llama-3.3-70b-versatile", "api_base": GROQ_URL,
                                     "api_key": f"os.environ/{GROQ_ENV}", "timeout": 20}
    assert api["model_info"]["third_party"] is True
    assert [e["model_name"] for e in config["model_list"]] == [PUBLIC_MODEL, "tier-groq"]


def test_burst_overflow_with_a_managed_endpoint_keeps_it_before_the_api():
    config = render_config(routes("burst-overflow", (self_hosted(), managed(), groq())))
    assert fallbacks(config) == {PUBLIC_MODEL: ["tier-managed", "tier-groq"]}
    [m] = entries(config, "tier-managed")
    assert m["litellm_params"] == {"model": "sagemaker_chat/llm-hosting-test", "timeout": 45,
                                   "aws_region_name": "us-east-1"}  # IAM-signed: no key, no api_base


def test_in_boundary_upstreams_go_first_whatever_order_they_are_given_in():
    assert default_routes("burst-overflow", (groq(), self_hosted(), managed())) == {
        PUBLIC_MODEL: ("self-hosted", "managed", "groq")}


def test_single_tier_gateway_has_one_route_and_no_fallback():
    config = render_config(routes("none", (self_hosted(),)))
    assert [e["model_name"] for e in config["model_list"]] == [PUBLIC_MODEL]
    assert config["router_settings"]["fallbacks"] == []


def test_tiered_by_sensitivity_keeps_the_sensitive_route_in_the_boundary():
    r = routes("tiered-by-sensitivity", (self_hosted(), managed(), groq()))
    config = render_config(r)
    assert upstream_of(config, SENSITIVE_MODEL) == "self-hosted"
    assert fallbacks(config)[SENSITIVE_MODEL] == ["tier-managed"]
    assert upstream_of(config, "tier-managed") == "managed"
    assert_no_third_party_route(config, SENSITIVE_MODEL, r.third_party_names)


def test_tiered_by_sensitivity_sends_general_traffic_to_the_api_first():
    # The planner sizes the in-boundary fleet for the regulated share only; general traffic uses the API and falls
    # back into the boundary (always allowed) when the API fails.
    r = routes("tiered-by-sensitivity", (self_hosted(), managed(), groq()))
    config = render_config(r)
    assert upstream_of(config, PUBLIC_MODEL) == "groq"
    assert fallbacks(config)[PUBLIC_MODEL] == ["tier-self-hosted", "tier-managed"]
    with pytest.raises(AssertionError, match="third-party upstream 'groq'"):
        assert_no_third_party_route(config, PUBLIC_MODEL, r.third_party_names)


def test_tiered_by_sensitivity_without_managed_fails_closed_for_the_sensitive_route():
    config = render_config(routes("tiered-by-sensitivity"))
    assert SENSITIVE_MODEL not in fallbacks(config)  # nothing else in the boundary: an error, never the API
    assert upstream_of(config, SENSITIVE_MODEL) == "self-hosted"


def test_tiered_by_complexity_routes_frontier_to_the_api_without_fallback():
    config = render_config(routes("tiered-by-complexity"))
    assert upstream_of(config, PUBLIC_MODEL) == "self-hosted"
    assert upstream_of(config, FRONTIER_MODEL) == "groq"
    assert fallbacks(config) == {PUBLIC_MODEL: ["tier-groq"]}


@pytest.mark.parametrize("pattern", ["burst-overflow", "tiered-by-sensitivity", "tiered-by-complexity"])
def test_hybrid_patterns_need_both_sides_of_the_boundary(pattern):
    with pytest.raises(ValueError, match="third-party API upstream"):
        routes(pattern, (self_hosted(),))
    with pytest.raises(ValueError, match="in-boundary upstream"):
        routes(pattern, (groq(),))


# -- render_config: failure handling -----------------------------------------------------------------------------------

def test_timeouts_are_per_upstream_and_the_router_default_is_the_longest():
    config = render_config(routes("burst-overflow", (self_hosted(timeout=7.5), managed(timeout=45), groq(timeout=20))))
    by_group = {e["model_name"]: e["litellm_params"]["timeout"] for e in config["model_list"]}
    assert by_group == {PUBLIC_MODEL: 7.5, "tier-managed": 45, "tier-groq": 20}
    assert config["router_settings"]["timeout"] == 45
    assert config["litellm_settings"]["request_timeout"] >= 7.5 + 45 + 20  # the whole chain fits


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_retries_cooldown_and_allowed_fails_are_rendered(retries):
    config = render_config(routes(num_retries=retries, allowed_fails=2, cooldown_seconds=45))
    router = config["router_settings"]
    assert (router["num_retries"], router["allowed_fails"], router["cooldown_time"]) == (retries, 2, 45)
    assert router["routing_strategy"] == "simple-shuffle"
    if retries:
        # A hung or saturated tier is never retried: the next tier is the retry.
        assert router["retry_policy"]["TimeoutErrorRetries"] == 0
        assert router["retry_policy"]["RateLimitErrorRetries"] == 0
        assert router["retry_policy"]["ServiceUnavailableErrorRetries"] == retries
    else:
        assert "retry_policy" not in router


@pytest.mark.parametrize("field, value", [("num_retries", 3), ("num_retries", -1), ("allowed_fails", 0),
                                          ("cooldown_seconds", 0)])
def test_out_of_range_failure_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        routes(**{field: value})


def test_saturation_limit_makes_requests_overflow_per_gateway_replica():
    config = render_config(routes(upstreams=(self_hosted(max_parallel_requests=64), groq())))
    assert entries(config, PUBLIC_MODEL)[0]["litellm_params"]["max_parallel_requests"] == 64


def test_proxy_settings_telemetry_off_params_dropped_guard_loaded_master_key_from_env():
    config = render_config(routes())
    assert config["litellm_settings"]["telemetry"] is False
    assert config["litellm_settings"]["drop_params"] is True
    assert config["litellm_settings"]["disable_hf_tokenizer_download"] is True  # no hub fetch on the error path
    # the request guard, the usage line (serverless metrics), and LiteLLM's Prometheus metrics (requests, tokens,
    # fallbacks) for the alerts and the dashboard
    assert config["litellm_settings"]["callbacks"] == [GUARD_CALLBACK, USAGE_CALLBACK, "prometheus"]
    assert config["general_settings"]["master_key"] == f"os.environ/{MASTER_KEY_ENV}"
    assert config["general_settings"]["custom_auth"] == AUTH_FUNCTION == "gateway_auth.user_api_key_auth"


@pytest.mark.parametrize("pattern", ["none", "burst-overflow", "tiered-by-sensitivity", "tiered-by-complexity"])
def test_keys_appear_only_as_environment_references(pattern):
    ups = (self_hosted(),) if pattern == "none" else (self_hosted(), managed(), groq())
    config = render_config(routes(pattern, ups))
    keyish = [(p, v) for p, v in walk(config) if p.rsplit(".", 1)[-1] in ("api_key", "master_key")]
    assert keyish, "expected at least the master key"
    for path, value in keyish:
        assert isinstance(value, str) and value.startswith("os.environ/"), path
    assert "sk-" not in render_yaml(config)


def test_rendered_yaml_round_trips():
    config = render_config(routes("tiered-by-sensitivity", (self_hosted(), managed(), groq())))
    assert yaml.safe_load(render_yaml(config)) == config


def test_the_guard_rejects_request_level_routing_and_ships_that_same_function():
    assert guard_violations({"model": SENSITIVE_MODEL, "messages": [], "metadata": {"user": "x"}}) == []
    assert guard_violations({"model": SENSITIVE_MODEL, "fallbacks": [PUBLIC_MODEL]}) == ["fallbacks"]
    assert guard_violations({"model": SENSITIVE_MODEL, "router_settings_override": {}}) == ["router_settings_override"]
    assert guard_violations({"model": SENSITIVE_MODEL, "metadata": {"fallbacks": ["x"]}}) == ["metadata.fallbacks"]
    assert guard_violations({"model": SENSITIVE_MODEL, "extra_body": {"context_window_fallbacks": []}}) == [
        "extra_body.context_window_fallbacks"]
    assert guard_violations({"model": f"{SENSITIVE_MODEL},{PUBLIC_MODEL}"}) == ["model (several model groups in one call)"]
    compile(GUARD_SOURCE, GUARD_FILE, "exec")
    assert inspect.getsource(guard_violations) in GUARD_SOURCE
    assert "guard = RouteGuard()" in GUARD_SOURCE and GUARD_CALLBACK == "gateway_guard.guard"


# -- the sensitive route: impossible by construction ------------------------------------------------------------------

def test_render_refuses_a_sensitive_route_to_a_third_party_upstream():
    with pytest.raises(ValueError, match="llm-sensitive.*third-party upstream.*groq"):
        render_config(routes("tiered-by-sensitivity", routes={PUBLIC_MODEL: ("groq", "self-hosted"),
                                                              SENSITIVE_MODEL: ("self-hosted", "groq")}))


def test_render_refuses_a_sensitive_route_whose_primary_is_third_party():
    with pytest.raises(ValueError, match="third-party"):
        render_config(routes("tiered-by-sensitivity", routes={PUBLIC_MODEL: ("groq",), SENSITIVE_MODEL: ("groq",)}))


def test_render_refuses_the_sensitive_name_in_any_pattern():
    with pytest.raises(ValueError, match="third-party"):
        routes("burst-overflow", routes={PUBLIC_MODEL: ("self-hosted", "groq"), SENSITIVE_MODEL: ("self-hosted", "groq")})


def test_render_checks_again_even_if_the_routes_were_mutated_after_construction():
    r = routes("tiered-by-sensitivity")
    object.__setattr__(r, "routes", {PUBLIC_MODEL: ("groq",), SENSITIVE_MODEL: ("self-hosted", "groq")})
    with pytest.raises(ValueError, match="third-party"):
        render_config(r)


def test_tiered_by_sensitivity_needs_the_sensitive_route():
    with pytest.raises(ValueError, match="llm-sensitive"):
        routes("tiered-by-sensitivity", routes={PUBLIC_MODEL: ("groq", "self-hosted")})


def test_an_api_cannot_be_declared_in_boundary_and_self_hosted_cannot_be_third_party():
    with pytest.raises(ValueError, match="third_party must be True"):
        replace(groq(), third_party=False)
    with pytest.raises(ValueError, match="third_party must be False"):
        replace(self_hosted(), third_party=True)


def _tampered(mutate):
    r = routes("tiered-by-sensitivity", (self_hosted(), managed(), groq()))
    config = copy.deepcopy(render_config(r))
    mutate(config)
    return config, r.third_party_names


@pytest.mark.parametrize("mutate, reason", [
    (lambda c: c["router_settings"]["fallbacks"].append({SENSITIVE_MODEL: [PUBLIC_MODEL]}), "third-party"),
    (lambda c: c["router_settings"]["fallbacks"].append({SENSITIVE_MODEL: ["tier-groq"]}), "not in model_list"),
    (lambda c: c["router_settings"]["fallbacks"].append({"tier-managed": [PUBLIC_MODEL]}), "third-party"),
    (lambda c: c["router_settings"].update(context_window_fallbacks=[{SENSITIVE_MODEL: [PUBLIC_MODEL]}]), "third-party"),
    (lambda c: c["router_settings"].update(default_fallbacks=[PUBLIC_MODEL]), "default_fallbacks"),
    (lambda c: c["router_settings"].update(model_group_alias={SENSITIVE_MODEL: PUBLIC_MODEL}), "third-party"),
    (lambda c: c["model_list"].append({"model_name": "*", "litellm_params": {"model": "openai/*"}}), "wildcard"),
    (lambda c: c["model_list"].append({"model_name": SENSITIVE_MODEL, "litellm_params": {"model": "openai/x"}}),
     "unlabelled"),
    (lambda c: c["litellm_settings"].update(callbacks=[]), "guard"),
    (lambda c: c["general_settings"].update(allow_client_side_credentials=True), "client_side"),
    (lambda c: c.update(model_list=[e for e in c["model_list"] if e["model_name"] != SENSITIVE_MODEL]),
     "not in model_list"),
])
def test_post_render_check_catches_every_way_to_leave_the_boundary(mutate, reason):
    config, third = _tampered(mutate)
    with pytest.raises(AssertionError, match=reason):
        assert_no_third_party_route(config, SENSITIVE_MODEL, third)


# -- Upstream rules ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"api_base": "http://api.groq.com/openai/v1"}, "https only"),
    ({"api_key_env": "GROQ_API_KEY"}, "LLMHOST_"),
    ({"api_key_env": "OPENAI_API_KEY"}, "LLMHOST_"),
    ({"api_key_env": None}, "api_key_env"),
    ({"model": "llama-3.3-70b-versatile"}, "provider prefix"),
    ({"params": {"api_key": "x"}}, "params may not set"),
    ({"params": {"aws_secret_access_key": "x"}}, "params may not set"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"name": "Groq API"}, "upstream name"),
])
def test_upstream_refuses_unsafe_or_malformed_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        replace(groq(), **overrides)


def test_keyless_openai_prefix_is_refused_because_litellm_would_read_openai_api_key():
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Upstream("self-hosted", "self-hosted", f"openai/{MODEL_ID}", SELF_HOSTED_URL, None, 30, False)


# -- routes from the checked-in stacks ----------------------------------------------------------------------------------

def stack_config(stack: str):
    _, merged, _, _ = load_config(ROOT, stack)
    return load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")


@pytest.mark.parametrize("stack, pattern", [("tiered-sensitivity", "tiered-by-sensitivity"),
                                            ("burst-hybrid", "burst-overflow")])
def test_routes_from_the_hybrid_stacks(stack, pattern):
    cfg = stack_config(stack)
    r = stack_routes(cfg, self_hosted_url=SELF_HOSTED_URL, consumers=CONSUMERS)
    assert r.pattern == pattern and r.consumers == CONSUMERS
    assert [(u.name, u.kind, u.third_party) for u in r.upstreams] == [("self-hosted", "self-hosted", False),
                                                                        ("groq", "api", True)]
    assert r.upstream("self-hosted").model == f"hosted_vllm/{cfg.model.id}"
    api = r.upstream("groq")
    assert (api.model, api.api_base, api.api_key_env) == (f"openai/{cfg.api.model}", cfg.api.base_url, GROQ_ENV)
    config = render_config(r)
    if pattern == "tiered-by-sensitivity":
        assert_no_third_party_route(config, SENSITIVE_MODEL, ["groq"])
    else:
        assert fallbacks(config) == {PUBLIC_MODEL: ["tier-groq"]}


def test_stack_routes_needs_the_engine_url_for_a_self_hosted_stack():
    with pytest.raises(ValueError, match="Service URL"):
        stack_routes(stack_config("burst-hybrid"))


# -- the Gateway component ----------------------------------------------------------------------------------------------

def gateway_args(**overrides) -> GatewayArgs:
    base = dict(routes=routes("tiered-by-sensitivity", (self_hosted(), managed(), groq())), image=IMAGE,
                api_keys={GROQ_ENV: pulumi.Output.secret(FAKE_KEY)}, master_key=pulumi.Output.secret(FAKE_MASTER),
                consumer_keys={n: pulumi.Output.secret(k) for n, k in FAKE_CONSUMER_KEYS.items()})
    return GatewayArgs(**{**base, **overrides})


def _run(make_args):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}", opts=pulumi.ResourceOptions())
        gw = Gateway("gateway", make_args(), opts=pulumi.ResourceOptions(provider=provider))
        pulumi.export("service_url", gw.service_url)
        pulumi.export("config", gw.config)

    return run_program(program, PROJECT, STACK, {"aws:region": "us-east-1"})


@lru_cache(maxsize=None)
def gateway_run():
    return _run(gateway_args)


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def pod(result) -> dict:
    return one(result, DEPLOYMENT).inputs["spec"]["template"]["spec"]


def container(result) -> dict:
    [c] = pod(result)["containers"]
    return c


def test_component_registers_its_objects_through_the_given_provider():
    result = gateway_run()
    [component] = result.by_type("llmhost:index:Gateway")
    kinds = sorted(r.type for r in result.resources if r.parent == component.name)
    assert kinds == sorted([CONFIGMAP, SECRET, SECRET, SECRET, DEPLOYMENT, PDB, SERVICE])  # keys + one per consumer
    for r in result.resources:
        if r.parent == component.name:
            assert r.options["provider"] == one(result, K8S_PROVIDER).name == "k8s"
            assert r.inputs["metadata"]["namespace"] == "llm-serving"


def test_service_url_is_the_cluster_dns_name_on_port_4000():
    result = gateway_run()
    assert result.outputs["service_url"] == "http://llm-gateway.llm-serving.svc.cluster.local:4000/v1"
    service = one(result, SERVICE).inputs
    assert service["metadata"]["name"] == "llm-gateway"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 4000, "targetPort": "http", "protocol": "TCP"}]


def test_config_output_and_configmap_hold_exactly_the_rendered_config_and_the_guard():
    result = gateway_run()
    expected = render_config(gateway_args().routes, replicas=2)
    assert result.outputs["config"] == expected
    data = one(result, CONFIGMAP).inputs["data"]
    assert yaml.safe_load(data["config.yaml"]) == expected
    assert data[GUARD_FILE] == GUARD_SOURCE and data[AUTH_FILE] == AUTH_SOURCE and data[USAGE_FILE] == USAGE_SOURCE
    assert set(data) == {"config.yaml", GUARD_FILE, AUTH_FILE, USAGE_FILE}


def test_deployment_runs_two_pinned_replicas_spread_across_zones():
    result = gateway_run()
    spec = one(result, DEPLOYMENT).inputs["spec"]
    assert spec["replicas"] == 2
    zone = [c for c in pod(result)["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone and zone[0]["maxSkew"] == 1 and zone[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone[0]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert container(result)["image"] == IMAGE == "ghcr.io/berriai/litellm:main-v1.106.2"
    assert container(result)["args"] == ["--config", "/etc/litellm/config.yaml", "--port", "4000"]


def test_deployment_reads_every_key_from_the_secret_and_runs_offline():
    result = gateway_run()
    env = {e["name"]: e for e in container(result)["env"]}
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    secret_name = "llm-gateway-keys"
    assert secret_name in {s.inputs["metadata"]["name"] for s in result.by_type(SECRET)}
    for name in (MASTER_KEY_ENV, GROQ_ENV):
        assert "value" not in env[name]
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": secret_name, "key": name}}
    for consumer in FAKE_CONSUMER_KEYS:  # each consumer's key from its own Secret
        assert env[consumer_key_env(consumer)]["valueFrom"] == {
            "secretKeyRef": {"name": f"llm-gateway-consumer-{consumer}", "key": "api-key"}}
    keyed = sorted(e["name"] for e in container(result)["env"] if "valueFrom" in e)
    # and no other variable reads a secret
    assert keyed == sorted([MASTER_KEY_ENV, GROQ_ENV, "LLMHOST_CONSUMER_CHAT_APP_KEY", "LLMHOST_CONSUMER_BATCH_KEY"])


def test_no_key_appears_in_any_input_and_the_secret_data_is_secret():
    result = gateway_run()
    dump = json.dumps([r.as_dict() for r in result.resources]) + json.dumps(result.outputs)
    assert FAKE_KEY not in dump and FAKE_MASTER not in dump
    assert not any(k in dump for k in FAKE_CONSUMER_KEYS.values())
    for secret in result.by_type(SECRET):
        assert secret.inputs["stringData"] == MASK  # the whole map is a secret in state
        assert {"data", "stringData"} <= set(secret.options["additionalSecretOutputs"])


def test_plain_string_keys_are_still_stored_as_secrets():
    result = _run(lambda: gateway_args(api_keys={GROQ_ENV: FAKE_KEY}, master_key=FAKE_MASTER,
                                       consumer_keys=FAKE_CONSUMER_KEYS))
    dump = json.dumps([r.as_dict() for r in result.resources])
    assert FAKE_KEY not in dump and not any(k in dump for k in FAKE_CONSUMER_KEYS.values())
    assert [s.inputs["stringData"] for s in result.by_type(SECRET)] == [MASK] * 3


def test_probes_use_litellm_health_routes():
    c = container(gateway_run())
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert c["startupProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert c["ports"] == [{"name": "http", "containerPort": 4000, "protocol": "TCP"}]


def test_pod_is_non_root_read_only_with_a_tmp_volume_and_no_token():
    result = gateway_run()
    spec, c = pod(result), container(result)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/litellm"]]["configMap"]["name"] == one(result, CONFIGMAP).inputs["metadata"]["name"]


def test_resources_have_requests_and_limits():
    res = container(gateway_run())["resources"]
    assert set(res["requests"]) == {"cpu", "memory"} and set(res["limits"]) == {"cpu", "memory"}


def test_pdb_keeps_one_gateway_up_and_selects_its_pods():
    result = gateway_run()
    pdb = one(result, PDB).inputs["spec"]
    assert pdb["minAvailable"] == 1
    labels = one(result, DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert one(result, SERVICE).inputs["spec"]["selector"].items() <= labels.items()


def test_a_config_change_rolls_the_pods():
    before = one(gateway_run(), DEPLOYMENT).inputs["spec"]["template"]["metadata"]["annotations"]
    after = one(_run(lambda: gateway_args(routes=routes("tiered-by-sensitivity", (self_hosted(timeout=5), managed(),
                                                                                groq())))),
                DEPLOYMENT).inputs["spec"]["template"]["metadata"]["annotations"]
    assert before["llm-hosting/config-sha256"] != after["llm-hosting/config-sha256"]


def test_routes_known_only_at_deploy_time_are_rendered_when_they_resolve():
    r = routes("tiered-by-sensitivity", (self_hosted(), managed(), groq()))
    result = _run(lambda: gateway_args(routes=pulumi.Output.from_input("llm-hosting-test").apply(
        lambda endpoint: replace(r, upstreams=(self_hosted(), sagemaker_upstream(endpoint, "us-east-1", 45), groq())))))
    assert result.outputs["config"] == render_config(r, replicas=2)


@pytest.mark.parametrize("overrides, message", [
    ({"image": "ghcr.io/berriai/litellm:latest"}, "not pinned"),
    ({"image": "ghcr.io/berriai/litellm"}, "not pinned"),
    ({"replicas": 1}, "at least 2"),
    ({"api_keys": {}}, f"missing {GROQ_ENV}"),
    ({"api_keys": {GROQ_ENV: "k", "LLMHOST_OPENAI_API_KEY": "k"}}, "not read by any upstream"),
    ({"api_keys": {"OPENAI_API_KEY": "k"}}, "not a valid key variable"),
    ({"master_key": ""}, "master_key"),
    ({"name": "LLM_Gateway"}, "DNS label"),
    ({"consumer_keys": {}}, "at least one consumer"),
    ({"consumer_keys": {**FAKE_CONSUMER_KEYS, "batch": ""}}, "batch has no key"),
    ({"consumer_keys": {"chat-app": "k"}}, "missing batch"),
    ({"consumer_keys": {**FAKE_CONSUMER_KEYS, "old-app": "k"}}, "old-app is not a consumer"),
    ({"consumer_keys": {**FAKE_CONSUMER_KEYS, "Old_App": "k"}}, "not a consumer name"),
    ({"api_keys": {GROQ_ENV: "k", "LLMHOST_CONSUMER_X_KEY": "k"}}, "not a valid key variable"),
])
def test_gateway_args_refuse(overrides, message):
    with pytest.raises(ValueError, match=message):
        gateway_args(**overrides)


def test_refusals_overflow_without_cooldown_only_when_asked():
    from serving.gateway_config import REFUSALS_NEVER_COOL_DOWN

    plain = render_config(routes())["router_settings"]
    assert "allowed_fails_policy" not in plain  # every failure counts towards a cooldown
    shedding = render_config(routes(overflow_on_refusal=True))["router_settings"]
    assert shedding["allowed_fails_policy"] == {"ServiceUnavailableErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN,
                                                "RateLimitErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN}
    assert shedding["allowed_fails"] == plain["allowed_fails"]  # errors and timeouts still cool a tier down


# -- consumers ----------------------------------------------------------------------------------------------------------

def test_consumer_names_become_key_variables_and_bad_names_or_limits_are_refused():
    assert Consumer("chat-app", 1, 1).key_env == consumer_key_env("chat-app") == "LLMHOST_CONSUMER_CHAT_APP_KEY"
    assert consumer_key_envs(routes()) == {"chat-app": "LLMHOST_CONSUMER_CHAT_APP_KEY",
                                           "batch": "LLMHOST_CONSUMER_BATCH_KEY"}
    for name in ("Chat", "chat_app", "-app", "app-", "", "a" * 41, "9app"):
        with pytest.raises(ValueError, match="DNS label"):
            Consumer(name, 1, 1)
    for rpm, tpm in ((0, 1), (1, 0), (1.5, 1), (True, 1), (1, -5)):
        with pytest.raises(ValueError, match="at least 1"):
            Consumer("app", rpm, tpm)
    with pytest.raises(ValueError, match="consumer names repeat"):
        routes(consumers=(Consumer("app", 1, 1), Consumer("app", 2, 2)))


def test_a_gateway_without_consumers_is_refused_at_render():
    planned = routes(consumers=())  # routes may be planned before their consumers are known
    with pytest.raises(ValueError, match="at least one consumer"):
        render_config(planned)
    with pytest.raises(ValueError, match="at least one consumer"):
        render_config(stack_routes(stack_config("burst-hybrid"), self_hosted_url=SELF_HOSTED_URL))


@pytest.mark.parametrize("replicas, rpm, tpm", [(1, [120, 7], [200_000, 50_001]), (2, [60, 4], [100_000, 25_001]),
                                                (3, [40, 3], [66_667, 16_667])])
def test_limits_are_split_over_the_replicas_rounding_up(replicas, rpm, tpm):
    listed = render_config(routes(), replicas=replicas)["general_settings"][CONSUMERS_SETTING]
    assert [c["name"] for c in listed] == ["chat-app", "batch"]
    assert [c["key_env"] for c in listed] == ["LLMHOST_CONSUMER_CHAT_APP_KEY", "LLMHOST_CONSUMER_BATCH_KEY"]
    assert [c["rpm_limit"] for c in listed] == rpm and [c["tpm_limit"] for c in listed] == tpm
    assert per_replica_limit(7, 2) * 2 >= 7 and per_replica_limit(1, 5) == 1
    with pytest.raises(ValueError, match="replicas"):
        render_config(routes(), replicas=0)


def test_no_consumer_key_is_in_the_rendered_config_only_variable_names():
    config = render_config(routes())
    listed = config["general_settings"][CONSUMERS_SETTING]
    assert all(set(c) == {"name", "key_env", "rpm_limit", "tpm_limit"} for c in listed)
    text = render_yaml(config)
    assert not any(k in text for k in FAKE_CONSUMER_KEYS.values())
    assert "LLMHOST_CONSUMER_CHAT_APP_KEY" in text


def test_custom_auth_is_shipped_beside_the_config_and_named_by_it(tmp_path):
    config = render_config(routes())
    path = write_config_dir(config, tmp_path)
    module, function = config["general_settings"]["custom_auth"].split(".")
    shipped = (tmp_path / f"{module}.py").read_text()
    assert f"{module}.py" == AUTH_FILE and shipped == AUTH_SOURCE and path == tmp_path / "config.yaml"
    tree = ast.parse(shipped)
    [auth] = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef) and n.name == function]
    assert [a.arg for a in auth.args.args] == ["request", "api_key"]  # LiteLLM's custom_auth contract
    assert inspect.getsource(identify) in shipped  # the function tested here is the one the proxy runs
    assert repr(CONSUMER_ROUTES) in shipped and "/v1/chat/completions" in CONSUMER_ROUTES
    assert not any(r.startswith(("/key", "/config", "/model/", "/metrics")) for r in CONSUMER_ROUTES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.yaml", GUARD_FILE, AUTH_FILE, USAGE_FILE])


def test_identify_matches_exactly_one_key_and_never_an_empty_one():
    keys = [("operator", "sk-master"), ("chat-app", "k-chat"), ("batch", "k-batch"), ("unset", "")]
    assert identify("k-chat", keys) == "chat-app"
    assert identify("k-batch", keys) == "batch"
    assert identify("sk-master", keys) == "operator"
    for presented in ("", None, "k-cha", "k-chat ", "K-CHAT", "k-chatx"):
        assert identify(presented, keys) is None, presented


def test_rotating_a_consumer_key_keeps_the_config_and_rolls_the_pods_by_its_own_annotation():
    before = one(gateway_run(), DEPLOYMENT).inputs["spec"]["template"]["metadata"]["annotations"]
    assert set(before) == {"llm-hosting/config-sha256", "llm-hosting/consumer-keys-version"}
    result = _run(lambda: gateway_args(consumer_keys={**FAKE_CONSUMER_KEYS, "batch": "llmhost-batch-rotated"}))
    after = one(result, DEPLOYMENT).inputs["spec"]["template"]["metadata"]["annotations"]
    assert after["llm-hosting/config-sha256"] == before["llm-hosting/config-sha256"]
    assert result.outputs["config"] == gateway_run().outputs["config"]
    # A key lives in its consumer's own Secret, and only there. The annotation is a digest of those Secrets'
    # resourceVersions, which the API server assigns on every update (the mocks leave them unset, so it cannot
    # change here); it is derived from no key.
    consumer_secrets = {s.inputs["metadata"]["name"]: s for s in result.by_type(SECRET) if "-consumer-" in s.name}
    assert sorted(consumer_secrets) == ["llm-gateway-consumer-batch", "llm-gateway-consumer-chat-app"]
    assert all(s.inputs["stringData"] == MASK for s in consumer_secrets.values())
    version = after["llm-hosting/consumer-keys-version"]
    assert re.fullmatch(r"[0-9a-f]{64}", version)
    assert version not in {hashlib.sha256(k.encode()).hexdigest() for k in FAKE_CONSUMER_KEYS.values()}
