"""The KEDA ScaledObject and the PodMonitor: valid against the pinned CRDs, and the queries, thresholds, fallback and
scaling behaviour the serving design needs, per engine."""

from __future__ import annotations

import copy

import pytest

from serving.autoscaling import (
    SERVER_LABEL,
    hpa_name,
    pod_matchers,
    pod_regex,
    scaled_object,
    scaler_queries,
)
from serving.engine import EngineInputs
from serving.tgi import tgi_spec
from serving.vllm import vllm_spec

INPUTS = dict(model_id="meta-llama/Llama-3.1-8B-Instruct", size_class="8b", gpu="H100", gpus_per_replica=1,
              max_context_tokens=8192)
PROM = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"


@pytest.fixture(params=["vllm", "tgi"])
def spec(request, catalog):
    if request.param == "vllm":
        return vllm_spec(EngineInputs(image="docker.io/vllm/vllm-openai:v0.30.0", **INPUTS), catalog)
    return tgi_spec(EngineInputs(image="ghcr.io/huggingface/text-generation-inference:3.3.5", **INPUTS), catalog)


def make(spec, **kw):
    args = dict(name="llm", namespace="llm-serving", deployment="llm", spec=spec, min_replicas=2, max_replicas=6,
                prometheus_url=PROM, queue_target_per_replica=5, fallback_replicas=3, labels={"app.kubernetes.io/part-of": "llm-hosting"})
    return scaled_object(**{**args, **kw})


def validate(cr: dict) -> list[str]:
    try:
        from crd_schemas import validate_custom_resource
    except ImportError:  # the shared validator is absent: validate against the served version's schema directly
        import jsonschema
        import yaml

        from conftest import ROOT

        crd = yaml.safe_load((ROOT.parent / "shared" / "schemas" / "keda" / "crds" / "keda.sh_scaledobjects.yaml").read_text())
        version = next(v for v in crd["spec"]["versions"] if v["served"] and v["name"] == cr["apiVersion"].split("/")[1])
        validator = jsonschema.Draft202012Validator(version["schema"]["openAPIV3Schema"])
        return [e.message for e in validator.iter_errors(cr)]
    return validate_custom_resource(cr)


def test_scaled_object_is_valid_against_the_keda_crd(spec):
    so = make(spec)
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    assert validate(so) == []
    # The validator can fail: KEDA's trigger metadata is a string map, and replica counts are integers.
    broken = copy.deepcopy(so)
    broken["spec"]["triggers"][0]["metadata"]["threshold"] = 5
    broken["spec"]["maxReplicaCount"] = "6"
    assert len(validate(broken)) >= 2


def test_queue_trigger_sums_this_deployments_waiting_requests_per_replica(spec):
    so = make(spec)
    queue = next(t for t in so["spec"]["triggers"] if t["name"] == "queue")
    assert queue["type"] == "prometheus" and queue["metricType"] == "AverageValue"
    assert queue["metadata"] == {
        "serverAddress": PROM,
        "query": f'sum({spec.queue_metric}{{namespace="llm-serving",{SERVER_LABEL}="llm"}})',
        "threshold": "5",
        "ignoreNullValues": "false",  # a missing series must not read as an idle fleet
    }
    assert queue["metadata"]["query"] == scaler_queries(namespace="llm-serving", deployment="llm", spec=spec)["queue"]


def test_kv_cache_trigger_only_where_the_engine_exports_the_gauge(spec):
    triggers = {t["name"]: t for t in make(spec, kv_cache_target=0.8)["spec"]["triggers"]}
    if spec.engine == "vllm":
        assert set(triggers) == {"queue", "kv-cache"}
        kv = triggers["kv-cache"]["metadata"]
        # A sum over pods against a per-replica threshold: N pods at an average above 0.8 ask for N+1.
        assert kv["query"] == f'sum(vllm:kv_cache_usage_perc{{namespace="llm-serving",{SERVER_LABEL}="llm"}})'
        assert kv["threshold"] == "0.8"
    else:
        assert set(triggers) == {"queue"}  # TGI has no KV-cache usage gauge


def test_replicas_fallback_and_behaviour(spec):
    s = make(spec)["spec"]
    assert s["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"}
    assert (s["minReplicaCount"], s["maxReplicaCount"]) == (2, 6)
    assert s["fallback"] == {"failureThreshold": 3, "replicas": 3, "behavior": "currentReplicasIfHigher"}
    hpa = s["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa["name"] == hpa_name("llm") == "keda-hpa-llm"
    down = hpa["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == 600
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    up = hpa["behavior"]["scaleUp"]
    assert up["stabilizationWindowSeconds"] == 0 and all(p["periodSeconds"] <= 60 for p in up["policies"])
    assert s["pollingInterval"] > 0 and s["cooldownPeriod"] > 0


@pytest.mark.parametrize("kw, message", [
    (dict(min_replicas=0), "scales a model to zero"),
    (dict(max_replicas=1), "below min_replicas"),
    (dict(fallback_replicas=7), "fallback_replicas"),
    (dict(fallback_replicas=1), "fallback_replicas"),
    (dict(queue_target_per_replica=0), "queue_target_per_replica"),
    (dict(kv_cache_target=1.5), "kv_cache_target"),
])
def test_refusals(spec, kw, message):
    with pytest.raises(ValueError, match=message):
        make(spec, **kw)


def test_the_pod_monitor_writes_the_label_the_queries_select_on(spec):
    from serving.monitoring import pod_monitor

    pm = pod_monitor("llm", "llm-serving", {"app.kubernetes.io/name": "llm"}, spec.metrics_path, {"release": "kps"})
    assert validate(pm) == []
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", spec.metrics_path)
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "targetLabel": SERVER_LABEL,
            "action": "replace"} in endpoint["relabelings"]
    assert SERVER_LABEL == "deployment"


def test_pod_names_select_only_this_deployment():
    import re

    rx = re.compile(pod_regex("llm"))
    assert rx.fullmatch("llm-5d8f7c9b4-abcde")
    for other in ("llm-gateway-6b7c8d9f5-yyyyy", "other-5d8f7c9b4-abcde", "llm-0", "xllm-5d8f7c9b4-abcde"):
        assert not rx.fullmatch(other), other
    assert pod_matchers("ns", "a.b") == 'namespace="ns",pod=~"a\\\\.b-[a-z0-9]+-[a-z0-9]+"'


def test_metric_names_are_pinned_per_release(catalog):
    v30 = vllm_spec(EngineInputs(image="docker.io/vllm/vllm-openai:v0.30.0", **INPUTS), catalog)
    assert v30.queue_metric == "vllm:num_requests_waiting"
    m = v30.metrics
    # vLLM V1 names (vllm/v1/metrics/loggers.py), not the V0 ones older dashboards use.
    assert (m.kv_cache_usage, m.inter_token_latency_histogram) == ("vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds")
    assert (m.running, m.ttft_histogram) == ("vllm:num_requests_running", "vllm:time_to_first_token_seconds")
    assert (m.prompt_tokens, m.generation_tokens) == ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    assert m.request_success == "vllm:request_success_total"
    assert (m.server_errors, m.server_error_matchers) == ("http_requests_total", 'status="5xx"')
    assert m.admission_rejections == "vllm:admission_rejections_total"  # --max-num-queued-reqs, since v0.29
    v28 = vllm_spec(EngineInputs(image="docker.io/vllm/vllm-openai:v0.28.1", **INPUTS), catalog)
    assert v28.metrics.admission_rejections is None and v28.metrics.kv_cache_usage == m.kv_cache_usage

    tgi = tgi_spec(EngineInputs(image="ghcr.io/huggingface/text-generation-inference:3.3.5", **INPUTS), catalog)
    t = tgi.metrics
    assert tgi.queue_metric == "tgi_queue_size" and t.running == "tgi_batch_current_size"
    assert t.kv_cache_usage is None and t.ttft_histogram is None  # TGI exports neither
    assert t.queue_time_histogram == "tgi_request_queue_duration"
    assert t.inter_token_latency_histogram == "tgi_request_mean_time_per_token_duration"
    assert (t.requests_total, t.server_errors) == ("tgi_request_count", "tgi_request_failure")
