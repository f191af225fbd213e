"""Alert rules for a self-hosted model: latency against the profile's SLA, errors, saturation, waste and scheduling.

`rule_groups(ctx)` returns the PrometheusRule `spec.groups`; `prometheus_rule(ctx, name, labels)` the whole CR. With
`usage`, a group of recording rules counts the gateway's requests and tokens per route and day; with `drift`, the same
group alerts when the daily tokens leave the band the plan's decision holds for (both in serving/usage.py). Every alert
carries `severity` (critical / warning / info), `stack`, `namespace` and `deployment` labels, and
`summary`, `description` and `runbook` (what to check and do, one line) annotations.

Labels the expressions rely on (the integrator's scrape configuration must produce exactly these):

* engine series (vLLM / TGI), from the PodMonitor of serving/monitoring.py: `namespace`, `pod`, and `deployment` =
  the Deployment name (relabelled from the pods' `app.kubernetes.io/name`; `serving.autoscaling.SERVER_LABEL`);
* `DCGM_FI_DEV_GPU_UTIL` (dcgm-exporter in Kubernetes mode): the pod using the GPU in `namespace`/`pod` (ServiceMonitor
  with honorLabels: true, preferred) or in `exported_namespace`/`exported_pod` (the chart's default); both are read;
* kube-state-metrics (kube-prometheus-stack scrapes it with honorLabels): `namespace`, `pod` on
  `kube_pod_container_status_restarts_total` and `kube_pod_status_unschedulable`; `namespace`,
  `horizontalpodautoscaler` on `kube_horizontalpodautoscaler_*` (KEDA's HPA is `keda-hpa-<ScaledObject name>`);
  `resource="nvidia_com_gpu"` on `kube_node_status_capacity` (dashboard only);
* LiteLLM gateway series (`litellm_settings.callbacks: ["prometheus"]`, /metrics on the proxy port), from any
  PodMonitor or ServiceMonitor that keeps `namespace` and `pod`: they are selected by the gateway Deployment's pod
  names, `pod=~"<gateway>-<hash>-<suffix>"`, so they do not depend on how the gateway pods are labelled. LiteLLM
  1.106.2 answers an unauthenticated /metrics with 401 unless `litellm_settings.require_auth_for_metrics_endpoint`
  is false (or the scrape sends the master key), and redirects /metrics to /metrics/ (Prometheus follows it). The usage
  records also read the gateway pods' `up` (same `namespace` and `pod`), so an idle but scraped gateway counts zero.

Where a series carries no copy of the pod's labels (DCGM, kube-state-metrics, the gateway), pods are told apart by
name: `<deployment>-<replicaset hash>-<suffix>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from planner.stack_config import DriftConfig

from .autoscaling import engine_matchers, pod_matchers, selector
from .engine import EngineSpec
from .gateway_config import FALLBACK_PREFIX
from .usage import DRIFT_ALERTS, LITELLM_FALLBACKS, LITELLM_REQUESTS, drift_rules, recorded_daily_tokens, usage_group

API_VERSION = "monitoring.coreos.com/v1"

# LiteLLM 1.106.2's counters (litellm/integrations/prometheus.py) as scraped: prometheus_client appends `_total`.
# Requests with their HTTP `status_code` (LITELLM_REQUESTS); fallbacks with the group fallen back to
# (`fallback_model`, tier-<upstream>; LITELLM_FALLBACKS), both from serving/usage.py; requests per upstream group
# (`model_group`).
LITELLM_GROUP_REQUESTS = "litellm_deployment_total_requests_total"

# Annotation templates. Kept to these two forms so a test can render the annotations it expects.
VALUE = '{{ printf "%.2f" $value }}'
POD = "{{ $labels.pod }}"

TTFT_QUANTILE = 0.95
ERROR_PERCENT = 5  # 5xx share of requests over 5 minutes
KV_CACHE_PERCENT = 90  # above the scaler's 85 % target: scaling is not keeping up (or the fleet is at its maximum)
GPU_IDLE_PERCENT = 10
GPU_BUSY_PERCENT = 90
RESTARTS_PER_HOUR = 2
# A pending GPU pod is normal for a while: the node autoscaler provisions a GPU node (commonly 3-10 minutes, longer
# when capacity is short) before the scheduler can place it; alert only past that.
UNSCHEDULABLE_FOR = "15m"

ALERT_NAMES = (
    "LLMTimeToFirstTokenHigh",
    "LLMEngineServerErrors",
    "LLMGatewayServerErrors",
    "LLMQueueBacklog",
    "LLMKVCacheNearlyFull",
    "LLMGPUIdle",
    "LLMGPUSaturated",
    "LLMReplicasAtMaximum",
    "LLMOverflowToAPIHigh",
    "LLMPodRestarting",
    "LLMPodUnschedulable",
    *DRIFT_ALERTS,
)


@dataclass(frozen=True)
class AlertContext:
    stack: str
    namespace: str
    deployment: str
    spec: EngineSpec
    ttft_p95_ms: float  # the profile's latency SLA
    queue_target_per_replica: int  # the scaler's target (serving.engine.QUEUE_TARGET_PER_REPLICA)
    max_replicas: int
    hpa_name: str  # serving.autoscaling.hpa_name(<ScaledObject name>)
    gateway: Optional[str] = None  # the LiteLLM gateway's Deployment/Service name in the same namespace, if any
    overflow: bool = False  # burst overflow: requests the fleet refuses go to a third-party API
    # LiteLLM reports a fallback with the group it fell back to (`fallback_model`); the API tier's group is
    # tier-<upstream name> (serving.gateway). The default counts every fallback group.
    overflow_fallback_models: str = FALLBACK_PREFIX + ".*"
    overflow_percent_max: float = 20  # share of requests served by the API before the fleet is called too small
    # Record the gateway's per-route daily usage (serving/usage.py), what `llmhost replan` reads.
    usage: bool = False
    # The plan's drift thresholds (the stack's spend.drift): alerts when the daily tokens leave the band the decision
    # holds for. None: no drift alerts. They read the usage recording rules.
    drift: Optional[DriftConfig] = None

    def __post_init__(self):
        if self.ttft_p95_ms <= 0:
            raise ValueError(f"ttft_p95_ms: {self.ttft_p95_ms} must be positive")
        if self.queue_target_per_replica < 1 or self.max_replicas < 1:
            raise ValueError("queue_target_per_replica and max_replicas must be at least 1")
        if self.overflow and not self.gateway:
            raise ValueError("overflow: burst overflow goes through the gateway; name it in `gateway`")
        if self.usage and not self.gateway:
            raise ValueError("usage: the usage is counted by the gateway; name it in `gateway`")
        if self.drift is not None and not self.usage:
            raise ValueError("drift: the drift alerts read the usage recording rules; set `usage`")


def _rule(ctx: AlertContext, alert: str, expr: str, for_: Optional[str], severity: str, summary: str,
          description: str, runbook: str) -> dict:
    rule = {"alert": alert, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, "stack": ctx.stack, "namespace": ctx.namespace, "deployment": ctx.deployment}
    rule["annotations"] = {"summary": summary, "description": description, "runbook": runbook}
    return rule


def queue_per_replica_expr(ctx: AlertContext) -> str:
    """Waiting requests per replica (averaged over the pods that report)."""
    return f"avg(sum by (pod) ({selector(ctx.spec.queue_metric, engine_matchers(ctx.namespace, ctx.deployment))}))"


def gpu_util_expr(ctx: AlertContext) -> str:
    """Average utilisation of the serving pods' GPUs. dcgm-exporter names the GPU's pod in `namespace`/`pod` when
    its ServiceMonitor honours labels, and in `exported_namespace`/`exported_pod` when it does not (the chart's
    default): either is read, and only one can match, since the exporter's own pod is not one of ours."""
    dcgm = "DCGM_FI_DEV_GPU_UTIL"
    return (f"avg({selector(dcgm, pod_matchers(ctx.namespace, ctx.deployment))} "
            f"or {selector(dcgm, pod_matchers(ctx.namespace, ctx.deployment, prefix='exported_'))})")


def gateway_matchers(ctx: AlertContext) -> str:
    """The gateway Deployment's pods, by name (see the module docstring)."""
    return pod_matchers(ctx.namespace, ctx.gateway)


def engine_error_percent_expr(ctx: AlertContext) -> str:
    m, em = engine_matchers(ctx.namespace, ctx.deployment), ctx.spec.metrics
    errors = f"sum(rate({selector(em.server_errors, m, em.server_error_matchers)}[5m]))"
    if em.admission_rejections:
        # A full replica refusing on purpose (503) is the overflow working, not a failure.
        errors = f"({errors} - (sum(rate({selector(em.admission_rejections, m)}[5m])) or vector(0)))"
    return f"100 * {errors} / sum(rate({selector(em.requests_total, m)}[5m]))"


def rule_groups(ctx: AlertContext) -> list[dict]:
    spec, em = ctx.spec, ctx.spec.metrics
    m = engine_matchers(ctx.namespace, ctx.deployment)
    p = pod_matchers(ctx.namespace, ctx.deployment)
    where = f"{ctx.namespace}/{ctx.deployment}"
    rules: list[dict] = []

    # TTFT. TGI has no TTFT histogram: its queue-time histogram is a lower bound (a request waits, then prefills),
    # so on TGI the alert fires later than the true TTFT crosses the SLA, never falsely.
    ttft = em.ttft_histogram or em.queue_time_histogram
    if ttft:
        what = "time to first token" if em.ttft_histogram else "queue time (a lower bound of TTFT; TGI has no TTFT histogram)"
        rules.append(_rule(
            ctx, "LLMTimeToFirstTokenHigh",
            f"histogram_quantile({TTFT_QUANTILE}, sum by (le) (rate({selector(ttft + '_bucket', m)}[5m]))) * 1000 > {ctx.ttft_p95_ms:g}",
            "10m", "warning",
            f"{where}: p95 time to first token above the {ctx.ttft_p95_ms:g} ms SLA",
            f"p95 {what} over 5 minutes is {VALUE} ms (SLA {ctx.ttft_p95_ms:g} ms).",
            "Check queue depth and KV-cache usage: if replicas are at the maximum raise max_replicas or the GPU quota; "
            "if the queue is empty look for long prompts (prefill) or a slow node."))

    rules.append(_rule(
        ctx, "LLMEngineServerErrors", f"{engine_error_percent_expr(ctx)} > {ERROR_PERCENT}", "5m", "critical",
        f"{where}: more than {ERROR_PERCENT} % of engine requests fail",
        f"{VALUE} % of requests to the {spec.engine} engine ended in a server error over 5 minutes.",
        "Read the engine pods' logs (CUDA OOM, engine core died, NCCL); restart or roll back the image; check the "
        "pods are Ready."))

    if ctx.gateway:
        g = gateway_matchers(ctx)
        total, server_error = f"sum(rate({selector(LITELLM_REQUESTS, g)}[5m]))", 'status_code=~"5.."'
        rules.append(_rule(
            ctx, "LLMGatewayServerErrors",
            f"100 * sum(rate({selector(LITELLM_REQUESTS, g, server_error)}[5m])) / {total} > {ERROR_PERCENT}",
            "5m", "critical",
            f"{where}: more than {ERROR_PERCENT} % of gateway requests fail",
            f"{VALUE} % of requests to the gateway {ctx.gateway} ended in a 5xx over 5 minutes.",
            "Read the gateway logs for the failing upstream (litellm_deployment_failure_responses_total); check every tier "
            "it falls back to and the provider keys."))

    rules.append(_rule(
        ctx, "LLMQueueBacklog", f"{queue_per_replica_expr(ctx)} > {ctx.queue_target_per_replica}", "10m", "warning",
        f"{where}: requests queue above the scaling target",
        f"{VALUE} requests wait per replica (target {ctx.queue_target_per_replica}) for 10 minutes.",
        f"Check the ScaledObject and HPA {ctx.hpa_name} (events, KEDA operator logs) and whether new pods are Pending "
        f"on GPU capacity; raise max_replicas ({ctx.max_replicas}) if it is reached."))

    # TGI exports no KV-cache usage gauge: no KV alert for it.
    if em.kv_cache_usage:
        rules.append(_rule(
            ctx, "LLMKVCacheNearlyFull",
            f"100 * avg(avg by (pod) ({selector(em.kv_cache_usage, m)})) > {KV_CACHE_PERCENT}", "10m", "warning",
            f"{where}: KV cache over {KV_CACHE_PERCENT} % full",
            f"Average KV-cache usage is {VALUE} % for 10 minutes; requests are being preempted or queued.",
            "Check the kv-cache trigger of the ScaledObject and the replica count; if at the maximum add replicas or "
            "lower max_num_seqs / max_context_tokens."))

    rules.append(_rule(
        ctx, "LLMGPUIdle", f"{gpu_util_expr(ctx)} < {GPU_IDLE_PERCENT}", "6h", "info",
        f"{where}: GPUs nearly idle for 6 hours",
        f"Average GPU utilisation of the serving pods is {VALUE} % for 6 hours.",
        "The fleet is oversized for its traffic: lower min_replicas or move to a smaller GPU class; check the "
        "gateway still routes to this model."))

    rules.append(_rule(
        ctx, "LLMGPUSaturated",
        f"{gpu_util_expr(ctx)} > {GPU_BUSY_PERCENT} and on() {queue_per_replica_expr(ctx)} > {ctx.queue_target_per_replica}",
        "15m", "warning",
        f"{where}: GPUs saturated with requests queueing",
        f"Average GPU utilisation is {VALUE} % while more than {ctx.queue_target_per_replica} requests wait per replica.",
        "The replicas are compute-bound: confirm the autoscaler is adding pods and nodes; otherwise raise "
        "max_replicas or use a larger GPU class."))

    hpa = f'namespace="{ctx.namespace}",horizontalpodautoscaler="{ctx.hpa_name}"'
    rules.append(_rule(
        ctx, "LLMReplicasAtMaximum",
        f"max(kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}) >= max(kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}})",
        "30m", "warning",
        f"{where}: pinned at its maximum replica count",
        f"{VALUE} replicas (the maximum, {ctx.max_replicas} as deployed) for 30 minutes; demand beyond them queues "
        f"or overflows.",
        "Compare queue depth and TTFT with the SLA; raise max_replicas (and the GPU quota / node pool maximum) or "
        "accept the overflow cost."))

    if ctx.overflow:
        g = gateway_matchers(ctx)
        to_api = f'fallback_model=~"{ctx.overflow_fallback_models}"'
        rules.append(_rule(
            ctx, "LLMOverflowToAPIHigh",
            f"100 * sum(rate({selector(LITELLM_FALLBACKS, g, to_api)}[5m])) "
            f"/ sum(rate({selector(LITELLM_REQUESTS, g)}[5m])) > {ctx.overflow_percent_max:g}",
            "15m", "warning",
            f"{where}: many requests overflow to the third-party API",
            f"{VALUE} % of gateway requests were served by the API instead of the fleet for 15 minutes.",
            "The fleet is too small for sustained load: check replicas against max_replicas and Pending pods; raise "
            "capacity if this persists, or confirm the API cost is accepted."))

    rules.append(_rule(
        ctx, "LLMPodRestarting",
        f"sum by (pod) (increase({selector('kube_pod_container_status_restarts_total', p)}[1h])) > {RESTARTS_PER_HOUR}",
        None, "warning",
        f"{where}: pod {POD} restarts repeatedly",
        f"Pod {POD} restarted {VALUE} times in the last hour.",
        "kubectl describe the pod and read the previous container's log: OOMKilled (raise memory), startup probe "
        "(raise the startup budget), CUDA/NCCL errors (node or shm)."))

    rules.append(_rule(
        ctx, "LLMPodUnschedulable",
        f"max by (pod) ({selector('kube_pod_status_unschedulable', p)}) > 0", UNSCHEDULABLE_FOR, "warning",
        f"{where}: pod {POD} cannot be scheduled",
        f"Pod {POD} has been unschedulable for {UNSCHEDULABLE_FOR}, longer than a GPU node takes to provision.",
        "Read the pod's events and the node autoscaler (Karpenter / cluster-autoscaler) logs: GPU quota, instance "
        "capacity in the zones, node selector and taints."))

    groups = [{"name": f"llm-serving-{ctx.stack}-{ctx.deployment}", "rules": rules}]
    if ctx.usage:
        usage = usage_group(f"llm-usage-{ctx.stack}", gateway_matchers(ctx), usage_labels(ctx))
        if ctx.drift is not None:
            # In the group that records the daily tokens, after the records: rules of a group run in order, so each
            # evaluation compares the count it has just recorded (another group could run first and read a stale one).
            labels = {"stack": ctx.stack, "namespace": ctx.namespace, "deployment": ctx.gateway}
            usage["rules"] += drift_rules(ctx.drift, recorded_daily_tokens(usage_labels(ctx)), labels)
        groups.append(usage)
    return groups


def usage_labels(ctx: AlertContext) -> dict[str, str]:
    """The labels on the recorded usage series: the stack, so two stacks' series in one Prometheus never collide."""
    return {"stack": ctx.stack}


def runbooks(ctx: AlertContext) -> dict[str, str]:
    """Alert name -> its runbook line, for notification channels that cannot show annotations."""
    return {r["alert"]: r["annotations"]["runbook"] for g in rule_groups(ctx) for r in g["rules"] if "alert" in r}


def prometheus_rule(ctx: AlertContext, name: str, labels: Optional[dict[str, str]] = None) -> dict:
    """The PrometheusRule CR. `labels` must match the Prometheus' ruleSelector (kube-prometheus-stack: `release`)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": dict(labels or {})},
        "spec": {"groups": rule_groups(ctx)},
    }
