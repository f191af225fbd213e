"""KEDA scaling for a model server, and the label contract every signal (scaler, alerts, dashboard) selects on.

Label contract. The engine pods carry `app.kubernetes.io/name: <Deployment name>` (serving/model_server.py), and the
PodMonitor of serving/monitoring.py copies it onto every scraped series as `deployment` (its relabelling is the one
source: `SERVER_LABEL` is read from it). prometheus-operator adds `namespace`, `pod`, `container` and `job`. Every
engine query selects `{namespace="<ns>", deployment="<deployment>"}` (`engine_matchers`): this Deployment's pods and
nothing else, whatever other models share the namespace. Series about the pods that are scraped elsewhere (DCGM's
`DCGM_FI_DEV_GPU_UTIL`, whose `namespace`/`pod` name the pod using the GPU; kube-state-metrics' pod series) carry no
copy of the pod's labels, so they select the pods by name: `pod=~"<deployment>-<replicaset hash>-<suffix>"`
(`pod_matchers`).

`scaler_queries()` returns the exact PromQL the ScaledObject carries, so a test can run it against a real
Prometheus. KEDA's prometheus trigger is an AverageValue target: the HPA asks for ceil(query value / threshold)
replicas. So each query is a fleet-wide SUM and each threshold is per replica:

* queue: sum of waiting requests / `queue_target_per_replica` waiting requests per replica;
* KV cache (engines that export it): sum over pods of the used fraction / `kv_cache_target`. The sum over N pods
  divided by 0.85 asks for N replicas while the average is at most 0.85 and one more as soon as it exceeds it: the
  threshold is the average usage the fleet is held at. (An average in the query would be wrong: avg / 0.85 never
  asks for more than 2 replicas.)

KEDA names the HPA it creates `keda-hpa-<ScaledObject name>` (`hpa_name`); kube-state-metrics reports it under
that name in `horizontalpodautoscaler`.
"""

from __future__ import annotations

import re
from typing import Optional

from .engine import EngineSpec
from .monitoring import RELABELINGS

API_VERSION = "keda.sh/v1alpha1"
PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"

# The series label that names the Deployment: where the PodMonitor's relabelling writes the pods' app.kubernetes.io/name.
SERVER_LABEL = next(r["targetLabel"] for r in RELABELINGS
                    if r.get("sourceLabels") == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"])

# How often KEDA asks Prometheus. The engines' gauges move per scheduler step, the scrape interval is 15-30 s, so
# polling faster would only re-read the same sample.
POLLING_INTERVAL_SECONDS = 15
# Only used when scaling to zero, which the kit never does (a cold model load takes minutes); KEDA requires a value.
COOLDOWN_SECONDS = 300
# Consecutive failed polls (45 s) before the fallback replica count applies.
FALLBACK_FAILURE_THRESHOLD = 3
# Scale-up: no stabilisation, and up to double the fleet (at least 2 pods) per minute: a burst queues now, and a
# new replica still needs a node and a model load before it helps.
SCALE_UP_PODS_PER_MINUTE = 2
SCALE_UP_PERCENT_PER_MINUTE = 100
# Scale-down: the load must have been low for 10 minutes, then one pod per 5 minutes. A replica removed too early
# costs a full model load (minutes of GPU time and of queueing) to bring back.
SCALE_DOWN_STABILIZATION_SECONDS = 600
SCALE_DOWN_PODS = 1
SCALE_DOWN_PERIOD_SECONDS = 300


def hpa_name(scaled_object_name: str) -> str:
    """The HorizontalPodAutoscaler KEDA creates for a ScaledObject (and kube-state-metrics reports)."""
    return f"keda-hpa-{scaled_object_name}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def engine_matchers(namespace: str, deployment: str) -> str:
    """Label matchers (without braces) for the series the PodMonitor scrapes from this Deployment's pods."""
    return f'namespace="{_quote(namespace)}",{SERVER_LABEL}="{_quote(deployment)}"'


def pod_regex(deployment: str) -> str:
    """The names of a Deployment's pods: <deployment>-<pod-template-hash>-<5 characters>."""
    return re.escape(deployment).replace("\\-", "-") + "-[a-z0-9]+-[a-z0-9]+"


def pod_matchers(namespace: str, deployment: str, prefix: str = "") -> str:
    """Matchers for series about the pods scraped from elsewhere (DCGM, kube-state-metrics), by pod name; `prefix`
    "exported_" reads the labels an exporter's own `namespace`/`pod` pushed aside (a scrape without honorLabels)."""
    return f'{prefix}namespace="{_quote(namespace)}",{prefix}pod=~"{_quote(pod_regex(deployment))}"'


def selector(metric: str, matchers: str, extra: str = "") -> str:
    """`metric{matchers,extra}`."""
    inner = ",".join(m for m in (matchers, extra) if m)
    return f"{metric}{{{inner}}}"


def scaler_queries(*, namespace: str, deployment: str, spec: EngineSpec) -> dict[str, str]:
    """The PromQL of each scaler trigger, keyed by trigger name: "queue", and "kv-cache" when the engine has the gauge."""
    m = engine_matchers(namespace, deployment)
    queries = {"queue": f"sum({selector(spec.queue_metric, m)})"}
    # TGI exports no KV-cache gauge (spec.metrics.kv_cache_usage is None): it scales on its queue alone.
    if spec.metrics.kv_cache_usage:
        queries["kv-cache"] = f"sum({selector(spec.metrics.kv_cache_usage, m)})"
    return queries


def _number(x: float) -> str:
    """A trigger threshold as KEDA parses it (a string holding a decimal)."""
    return f"{x:g}"


def scaled_object(*, name: str, namespace: str, deployment: str, spec: EngineSpec, min_replicas: int,
                  max_replicas: int, prometheus_url: str = PROMETHEUS_URL, queue_target_per_replica: int,
                  kv_cache_target: float = 0.85, fallback_replicas: int, labels: Optional[dict[str, str]] = None) -> dict:
    """The KEDA ScaledObject (keda.sh/v1alpha1) that scales `deployment` on queue depth and KV-cache usage."""
    if min_replicas < 1:
        raise ValueError(f"min_replicas: {min_replicas}; the kit never scales a model to zero (a cold load takes minutes)")
    if max_replicas < min_replicas:
        raise ValueError(f"max_replicas: {max_replicas} is below min_replicas {min_replicas}")
    if not min_replicas <= fallback_replicas <= max_replicas:
        raise ValueError(f"fallback_replicas: {fallback_replicas} must be within {min_replicas}..{max_replicas}")
    if queue_target_per_replica < 1:
        raise ValueError(f"queue_target_per_replica: {queue_target_per_replica} must be at least 1")
    if not 0 < kv_cache_target <= 1:
        raise ValueError(f"kv_cache_target: {kv_cache_target} is a fraction of the KV cache, in (0, 1]")
    thresholds = {"queue": _number(queue_target_per_replica), "kv-cache": _number(kv_cache_target)}
    triggers = [{
        "type": "prometheus",
        "name": trigger,
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": prometheus_url,
            "query": query,
            "threshold": thresholds[trigger],
            # An empty result is an error, not zero: a renamed metric or a broken scrape must not read as "no load"
            # and shrink the fleet to its floor; after FALLBACK_FAILURE_THRESHOLD polls the fallback applies.
            "ignoreNullValues": "false",
        },
    } for trigger, query in scaler_queries(namespace=namespace, deployment=deployment, spec=spec).items()]
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "pollingInterval": POLLING_INTERVAL_SECONDS,
            "cooldownPeriod": COOLDOWN_SECONDS,
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            # Prometheus unreachable (or the series gone): hold at least fallback_replicas, never fewer than are
            # running, since without a signal the safe error is too much capacity.
            "fallback": {"failureThreshold": FALLBACK_FAILURE_THRESHOLD, "replicas": fallback_replicas,
                         "behavior": "currentReplicasIfHigher"},
            "advanced": {"horizontalPodAutoscalerConfig": {"name": hpa_name(name), "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": SCALE_UP_PODS_PER_MINUTE, "periodSeconds": 60},
                    {"type": "Percent", "value": SCALE_UP_PERCENT_PER_MINUTE, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_SECONDS, "selectPolicy": "Min",
                              "policies": [{"type": "Pods", "value": SCALE_DOWN_PODS,
                                            "periodSeconds": SCALE_DOWN_PERIOD_SECONDS}]},
            }}},
            "triggers": triggers,
        },
    }

