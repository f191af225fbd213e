"""The alert rules under promtool: `check rules` on the rendered groups, and `test rules` showing every alert both
firing (after its `for`, with its labels and rendered annotations) and staying quiet (below its threshold, still
pending, or when only another workload's series are bad), for vLLM and TGI, with and without a gateway and overflow.

Then the Grafana dashboard built on the same contract: its panels, every query valid PromQL (promtool, through a
dummy recording-rule file), and every metric it reads pinned by the engine spec or part of the platform contract.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import yaml

from serving.alerts import ALERT_NAMES, POD, VALUE, AlertContext, prometheus_rule, rule_groups
from serving.autoscaling import SERVER_LABEL, hpa_name
from serving.dashboard import DATASOURCE, dashboard_uid, grafana_dashboard, panel_queries
from serving.engine import EngineInputs, EngineSpec
from serving.tgi import tgi_spec
from serving.vllm import vllm_spec

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`); CI installs it, so the alert "
                             "rules are unchecked here")

NS, DEP, OTHER = "llm-serving", "llm", "other"
POD_A, POD_B = "llm-5d8f7c9b4-abcde", "llm-5d8f7c9b4-fghij"
# Pods the rules must ignore: another Deployment in the namespace, and one whose name only starts like ours.
DECOY_POD, LOOKALIKE_POD = "other-7c9d8f6b5-zzzzz", "llm-gateway-6b7c8d9f5-yyyyy"
GATEWAY_POD = LOOKALIKE_POD  # the gateway's own pod
SLA_MS = 500
# Alerts with a `for` of hours: samples every 4 minutes (inside the 5-minute lookback, so the series never goes
# stale) and rules evaluated every 10 minutes keep promtool fast.
LONG_INTERVAL, LONG_EVALUATION = "4m", "10m"
TARGET = 5
MAX_REPLICAS = 4
GATEWAY = "llm-gateway"
INPUTS = dict(model_id="meta-llama/Llama-3.1-8B-Instruct", size_class="8b", gpu="H100", gpus_per_replica=1,
              max_context_tokens=8192)


def engine_spec(engine: str, catalog) -> EngineSpec:
    if engine == "vllm":
        return vllm_spec(EngineInputs(image="docker.io/vllm/vllm-openai:v0.30.0", **INPUTS), catalog)
    return tgi_spec(EngineInputs(image="ghcr.io/huggingface/text-generation-inference:3.3.5", **INPUTS), catalog)


def context(spec: EngineSpec, gateway: Optional[str], overflow: bool) -> AlertContext:
    return AlertContext(stack="dev", namespace=NS, deployment=DEP, spec=spec, ttft_p95_ms=SLA_MS,
                        queue_target_per_replica=TARGET, max_replicas=MAX_REPLICAS, hpa_name=hpa_name(DEP),
                        gateway=gateway, overflow=overflow)


def series(metric: str, values: str, deployment: str = DEP, pod: str = POD_A, **labels: str) -> dict:
    """An engine series as the PodMonitor labels it."""
    all_labels = {"namespace": NS, SERVER_LABEL: deployment, "pod": pod, **labels}
    inner = ",".join(f'{k}="{v}"' for k, v in all_labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def plain(metric: str, values: str, **labels: str) -> dict:
    """A series scraped elsewhere (DCGM, kube-state-metrics, the gateway): only the labels given."""
    inner = ",".join(f'{k}="{v}"' for k, v in {"namespace": NS, **labels}.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


@dataclass
class Case:
    """One alert, one scenario: the series, when to look, and the value (and pod) the firing alert reports."""
    alert: str
    input_series: list[dict]
    eval_time: str
    value: Optional[float] = None  # None: the alert must not be firing at eval_time
    pod: Optional[str] = None
    long: bool = False  # hours-long `for`: evaluated every LONG_EVALUATION, from samples every LONG_INTERVAL
    extra: list[dict] = field(default_factory=list)  # further (eval_time, value) checks


def histogram(metric: str, buckets: dict[str, str], deployment: str = DEP) -> list[dict]:
    return [series(f"{metric}_bucket", values, deployment=deployment, le=le) for le, values in buckets.items()]


SLOW = {"0.25": "0+0x40", "0.5": "0+0x40", "1": "0+60x40", "+Inf": "0+60x40"}  # every request in (0.5 s, 1 s]
FAST = {"0.25": "0+60x40", "0.5": "0+60x40", "1": "0+60x40", "+Inf": "0+60x40"}  # every request under 0.25 s


def cases(ctx: AlertContext) -> list[Case]:
    spec, em = ctx.spec, ctx.spec.metrics
    out: list[Case] = []

    ttft = em.ttft_histogram or em.queue_time_histogram
    # p95 in the (0.5, 1] bucket: 0.5 + 0.5 * 0.95 = 0.975 s.
    out += [Case("LLMTimeToFirstTokenHigh", histogram(ttft, SLOW), "20m", 975.0),
            Case("LLMTimeToFirstTokenHigh", histogram(ttft, FAST) + histogram(ttft, SLOW, deployment=OTHER), "20m"),
            Case("LLMTimeToFirstTokenHigh", histogram(ttft, SLOW), "9m")]  # still pending

    def requests(ok: int, errors: int, deployment: str = DEP, error_labels: Optional[dict] = None) -> list[dict]:
        if em.server_errors == em.requests_total:  # vLLM: one counter, status grouped
            return [series(em.requests_total, f"0+{ok}x30", deployment, status="2xx", method="POST", handler="/v1/chat/completions"),
                    series(em.server_errors, f"0+{errors}x30", deployment, status="5xx", method="POST", handler="/v1/chat/completions")]
        return [series(em.requests_total, f"0+{ok + errors}x30", deployment),
                series(em.server_errors, f"0+{errors}x30", deployment, **(error_labels or {"err": "generation"}))]

    out += [Case("LLMEngineServerErrors", requests(90, 10), "10m", 10.0),
            Case("LLMEngineServerErrors", requests(98, 2) + requests(50, 50, deployment=OTHER), "10m")]
    if em.admission_rejections:
        # Every 5xx was a full replica refusing on purpose: not a failure.
        out.append(Case("LLMEngineServerErrors", requests(90, 10) + [series(em.admission_rejections, "0+10x30")], "10m"))
    else:
        # TGI: a full replica answers 429 (`overloaded`), not a server error.
        out.append(Case("LLMEngineServerErrors", requests(50, 50, error_labels={"err": "overloaded"}), "10m"))

    if ctx.gateway:
        def gw(status: str, per_minute: int, pod: str = GATEWAY_POD) -> dict:
            return plain("litellm_proxy_total_requests_metric_total", f"0+{per_minute}x30", pod=pod, deployment="llm-gateway",
                         status_code=status, requested_model="llm")
        out += [Case("LLMGatewayServerErrors", [gw("200", 90), gw("500", 10)], "10m", 10.0),
                Case("LLMGatewayServerErrors", [gw("200", 90), gw("429", 10), gw("503", 50, pod=DECOY_POD)], "10m")]

    q = spec.queue_metric
    out += [Case("LLMQueueBacklog", [series(q, "8+0x20"), series(q, "6+0x20", pod=POD_B)], "15m", 7.0),
            Case("LLMQueueBacklog", [series(q, "4+0x20"), series(q, "4+0x20", pod=POD_B),
                                     series(q, "50+0x20", deployment=OTHER, pod=DECOY_POD)], "15m"),
            Case("LLMQueueBacklog", [series(q, "8+0x20"), series(q, "6+0x20", pod=POD_B)], "9m")]

    if em.kv_cache_usage:
        kv = em.kv_cache_usage
        out += [Case("LLMKVCacheNearlyFull", [series(kv, "0.95+0x20"), series(kv, "0.91+0x20", pod=POD_B)], "15m", 93.0),
                Case("LLMKVCacheNearlyFull", [series(kv, "0.8+0x20"), series(kv, "0.85+0x20", pod=POD_B),
                                              series(kv, "1+0x20", deployment=OTHER, pod=DECOY_POD)], "15m")]

    def gpu(pod: str, values: str) -> dict:
        return plain("DCGM_FI_DEV_GPU_UTIL", values, pod=pod, container="engine", gpu="0", Hostname="ip-10-0-1-2")

    def exported_gpu(pod: str, values: str) -> dict:
        """As scraped without honorLabels: the exporter's own pod and namespace, the GPU's pod pushed aside."""
        return {"series": f'DCGM_FI_DEV_GPU_UTIL{{namespace="gpu-operator",pod="dcgm-exporter-x7k2p",'
                          f'exported_namespace="{NS}",exported_pod="{pod}",gpu="0"}}', "values": values}

    out += [Case("LLMGPUIdle", [gpu(POD_A, "4+0x120"), gpu(POD_B, "6+0x120")], "7h", 5.0, long=True),
            Case("LLMGPUIdle", [exported_gpu(POD_A, "3+0x120"), exported_gpu(POD_B, "5+0x120"),
                                exported_gpu(DECOY_POD, "90+0x120")], "7h", 4.0, long=True),
            Case("LLMGPUIdle", [gpu(POD_A, "30+0x120"), gpu(POD_B, "30+0x120"), gpu(DECOY_POD, "0+0x120"),
                                gpu(LOOKALIKE_POD, "0+0x120")], "7h", long=True),
            Case("LLMGPUIdle", [gpu(POD_A, "4+0x120"), gpu(POD_B, "6+0x120")], "5h50m", long=True)]

    out += [Case("LLMGPUSaturated", [gpu(POD_A, "95+0x30"), gpu(POD_B, "95+0x30"),
                                     series(q, "8+0x30"), series(q, "6+0x30", pod=POD_B)], "20m", 95.0),
            Case("LLMGPUSaturated", [gpu(POD_A, "95+0x30"), gpu(POD_B, "95+0x30"),
                                     series(q, "2+0x30"), series(q, "1+0x30", pod=POD_B)], "20m")]

    def hpa(current: str, name: str = hpa_name(DEP)) -> list[dict]:
        return [plain("kube_horizontalpodautoscaler_status_current_replicas", current, horizontalpodautoscaler=name),
                plain("kube_horizontalpodautoscaler_spec_max_replicas", f"{MAX_REPLICAS}+0x50", horizontalpodautoscaler=name)]

    out += [Case("LLMReplicasAtMaximum", hpa(f"{MAX_REPLICAS}+0x50"), "40m", float(MAX_REPLICAS)),
            Case("LLMReplicasAtMaximum", hpa("3+0x50") + hpa(f"{MAX_REPLICAS}+0x50", name="keda-hpa-other"), "40m"),
            Case("LLMReplicasAtMaximum", hpa(f"{MAX_REPLICAS}+0x50"), "29m")]

    if ctx.overflow:
        def overflow(fallbacks: int) -> list[dict]:
            return [plain("litellm_proxy_total_requests_metric_total", "0+100x30", pod=GATEWAY_POD, status_code="200",
                          requested_model="llm"),
                    plain("litellm_deployment_successful_fallbacks_total", f"0+{fallbacks}x30", pod=GATEWAY_POD,
                          requested_model="llm", fallback_model="tier-openai", exception_status="503")]
        out += [Case("LLMOverflowToAPIHigh", overflow(30), "20m", 30.0),
                Case("LLMOverflowToAPIHigh", overflow(10), "20m")]

    def restarts(pod: str, values: str) -> dict:
        return plain("kube_pod_container_status_restarts_total", values, pod=pod, container="engine")

    out += [Case("LLMPodRestarting", [restarts(POD_A, "0 0 0 0 0 0 0 0 0 0 4 4 4 4 4 4 4 4 4 4 4")], "20m", 4.0, pod=POD_A),
            Case("LLMPodRestarting", [restarts(POD_A, "0 0 0 0 0 0 0 0 0 0 2 2 2 2 2 2 2 2 2 2 2"),
                                      restarts(DECOY_POD, "0 0 0 0 0 0 0 0 0 0 9 9 9 9 9 9 9 9 9 9 9")], "20m")]

    def pending(pod: str, values: str) -> dict:
        return plain("kube_pod_status_unschedulable", values, pod=pod, uid="u1")

    out += [Case("LLMPodUnschedulable", [pending(POD_B, "1+0x30")], "20m", 1.0, pod=POD_B),
            # A GPU node takes minutes to join: 14 minutes pending is still only pending.
            Case("LLMPodUnschedulable", [pending(POD_B, "1+0x30")], "14m"),
            Case("LLMPodUnschedulable", [pending(POD_B, "1+0x9 0+0x20"), pending(DECOY_POD, "1+0x30")], "20m")]
    return out


def expected(rule: dict, case: Case) -> list[dict]:
    if case.value is None:
        return []
    labels = dict(rule["labels"])
    if case.pod:
        labels["pod"] = case.pod

    def render(text: str) -> str:
        return text.replace(VALUE, f"{case.value:.2f}").replace(POD, case.pod or "")
    return [{"exp_labels": labels, "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


SCENARIOS = [pytest.param(e, g, o, id=f"{e}-{name}") for e in ("vllm", "tgi")
             for name, g, o in (("no-gateway", None, False), ("gateway", GATEWAY, False), ("overflow", GATEWAY, True))]


@needs_promtool
@pytest.mark.parametrize("engine, gateway, overflow", SCENARIOS)
def test_every_alert_fires_and_stays_quiet_under_promtool(catalog, tmp_path, engine, gateway, overflow):
    ctx = context(engine_spec(engine, catalog), gateway, overflow)
    groups = rule_groups(ctx)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    all_cases = cases(ctx)
    # Every rendered alert has a firing and a quiet case, and nothing is tested that was not rendered.
    assert {c.alert for c in all_cases if c.value is not None} == set(rules)
    assert {c.alert for c in all_cases if c.value is None} == set(rules)

    for long, interval, evaluation in ((False, "1m", "1m"), (True, LONG_INTERVAL, LONG_EVALUATION)):
        tests = [{"interval": interval, "input_series": c.input_series,
                  "alert_rule_test": [{"eval_time": c.eval_time, "alertname": c.alert,
                                       "exp_alerts": expected(rules[c.alert], c)}]}
                 for c in all_cases if c.long == long]
        (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": evaluation,
                                                           "tests": tests}, sort_keys=False))
        result = promtool("test", "rules", "test.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("engine, gateway, overflow", SCENARIOS)
def test_rules_follow_the_engine_and_the_gateway(catalog, engine, gateway, overflow):
    ctx = context(engine_spec(engine, catalog), gateway, overflow)
    rules = [r for g in rule_groups(ctx) for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)) and set(names) <= set(ALERT_NAMES)
    assert ("LLMKVCacheNearlyFull" in names) == (engine == "vllm")  # TGI exports no KV-cache gauge
    assert ("LLMGatewayServerErrors" in names) == (gateway is not None)
    assert ("LLMOverflowToAPIHigh" in names) == overflow
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert set(r["annotations"]) == {"summary", "description", "runbook"}
        assert "\n" not in r["annotations"]["runbook"]
        # Engine series are read through the PodMonitor's labels only, never another Deployment's.
        if ctx.spec.queue_metric in r["expr"]:
            assert f'{SERVER_LABEL}="{DEP}"' in r["expr"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["LLMGPUIdle"]["for"] == "6h" and by_name["LLMGPUIdle"]["labels"]["severity"] == "info"
    assert by_name["LLMReplicasAtMaximum"]["for"] == "30m"
    assert "keda-hpa-llm" in by_name["LLMReplicasAtMaximum"]["expr"]


def test_overflow_needs_a_gateway(catalog):
    with pytest.raises(ValueError, match="gateway"):
        context(engine_spec("vllm", catalog), None, True)


def test_prometheus_rule_is_a_valid_custom_resource(catalog):
    from crd_schemas import validate_custom_resource

    cr = prometheus_rule(context(engine_spec("vllm", catalog), GATEWAY, True), "llm-alerts", {"release": "kube-prometheus-stack"})
    assert cr["apiVersion"] == "monitoring.coreos.com/v1" and cr["metadata"]["namespace"] == NS
    assert validate_custom_resource(cr) == []
    broken = {**cr, "spec": {"groups": [{"rules": [{"alert": "A", "expr": "up == 0", "for": "ten minutes"}]}]}}
    assert validate_custom_resource(broken) != []


# ---------------------------------------------------------------------------------------------------------------
# The dashboard

# Series that are not the engine's: DCGM, kube-state-metrics and the LiteLLM gateway (serving.alerts docstring).
PLATFORM = {"DCGM_FI_DEV_GPU_UTIL", "kube_horizontalpodautoscaler_status_current_replicas",
            "kube_horizontalpodautoscaler_status_desired_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
            "kube_node_status_capacity", "litellm_deployment_total_requests_total", "litellm_deployment_successful_fallbacks_total"}
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{")


def pinned(spec: EngineSpec) -> set[str]:
    names = {spec.queue_metric}
    for f in dataclasses.fields(spec.metrics):
        value = getattr(spec.metrics, f.name)
        if f.name.endswith("histogram") and value:
            names |= {value + "_bucket", value + "_sum", value + "_count"}
        elif isinstance(value, str) and value and f.name != "server_error_matchers":
            names.add(value)
    return names


DASHBOARD_SCENARIOS = [pytest.param(e, g, o, id=f"{e}-{name}") for e in ("vllm", "tgi")
                       for name, g, o in (("no-gateway", None, False), ("overflow", GATEWAY, True))]


def dashboard(catalog, engine, gateway, overflow, usd=12.5) -> tuple[EngineSpec, dict]:
    spec = engine_spec(engine, catalog)
    ctx = dataclasses.replace(context(spec, gateway, overflow), ttft_p95_ms=800)
    return spec, grafana_dashboard(ctx, usd)


@pytest.mark.parametrize("engine, gateway, overflow", DASHBOARD_SCENARIOS)
def test_panels(catalog, engine, gateway, overflow):
    spec, d = dashboard(catalog, engine, gateway, overflow)
    assert d["uid"] == dashboard_uid("dev", "llm") and len(d["uid"]) <= 40
    titles = [p["title"] for p in d["panels"]]
    expected = ["Time to first token vs SLA", "Inter-token latency", "Tokens per second", "Queue", "GPU utilisation",
                "Replicas and GPU nodes", "Cost per million output tokens"]
    expected += ["KV-cache usage"] if engine == "vllm" else []  # TGI has no KV-cache gauge
    expected += ["Gateway routes and overflow"] if gateway else []
    assert sorted(titles) == sorted(expected)
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])
    for p in d["panels"]:
        assert p["datasource"] == DATASOURCE and all(t["datasource"] == DATASOURCE for t in p["targets"])
    ttft = next(p for p in d["panels"] if p["title"] == "Time to first token vs SLA")
    assert [t["expr"] for t in ttft["targets"]][2] == "vector(800)"
    cost = next(p for p in d["panels"] if p["title"] == "Cost per million output tokens")["targets"][0]["expr"]
    assert "* 12.5 /" in cost and spec.metrics.generation_tokens in cost and "3600 / 1e6" in cost


@pytest.mark.parametrize("engine, gateway, overflow", DASHBOARD_SCENARIOS)
def test_queries_read_only_pinned_and_platform_metrics(catalog, engine, gateway, overflow):
    spec, d = dashboard(catalog, engine, gateway, overflow)
    allowed = pinned(spec) | PLATFORM
    for expr in panel_queries(d):
        names = set(SELECTOR.findall(expr))
        assert names <= allowed, (expr, names - allowed)
        if names & pinned(spec):  # engine series: through the PodMonitor's label, this Deployment only
            assert f'{SERVER_LABEL}="llm"' in expr, expr


@needs_promtool
@pytest.mark.parametrize("engine, gateway, overflow", DASHBOARD_SCENARIOS)
def test_every_panel_query_is_valid_promql(catalog, tmp_path, engine, gateway, overflow):
    _, d = dashboard(catalog, engine, gateway, overflow)
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(panel_queries(d))]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", "queries.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # promtool does reject bad PromQL.
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "dashboard:bad", "expr": panel_queries(d)[0] + ")"}]}]}))
    bad = subprocess.run([PROMTOOL, "check", "rules", "bad.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def test_cost_must_be_positive(catalog):
    with pytest.raises(ValueError, match="usd_per_replica_hour"):
        dashboard(catalog, "vllm", None, False, usd=0)


def test_uid_is_bounded_and_stable():
    long = dashboard_uid("a-very-long-stack-name-for-some-team", "meta-llama-3-1-70b-instruct")
    assert len(long) <= 40 and long == dashboard_uid("a-very-long-stack-name-for-some-team", "meta-llama-3-1-70b-instruct")
    assert long != dashboard_uid("a-very-long-stack-name-for-some-team", "meta-llama-3-1-8b-instruct")
