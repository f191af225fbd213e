"""LNK-004: every metric an autoscaler of the stack scales on has a source deployed in the same stack."""

from __future__ import annotations

import re

from ...placement import HPA_TYPES, SCALED_OBJECT, WORKLOADS
from ...props import get, host_of_url, is_unknown
from ...rulekit import Rule, StackContext, stack_policy
from . import named

API_SERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"
HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")
EKS_ADDON = "aws:eks/addon:Addon"
SERVICE = "kubernetes:core/v1:Service"
AMP_WORKSPACE = "aws:amp/workspace:Workspace"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
VERTEX = ("gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment",)
GKE_CLUSTER = "gcp:container/cluster:Cluster"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
# Metric API group an HPA metric type is read from, and the charts that serve it.
GROUPS = {"External": "external.metrics.k8s.io", "Object": "custom.metrics.k8s.io", "Pods": "custom.metrics.k8s.io",
          "Resource": "metrics.k8s.io", "ContainerResource": "metrics.k8s.io"}
SERVERS = {"external.metrics.k8s.io": ("prometheus-adapter", "keda"), "custom.metrics.k8s.io": ("prometheus-adapter",),
           "metrics.k8s.io": ("metrics-server",)}
PROMETHEUS_CHARTS = re.compile(r"(prometheus|victoria-metrics|thanos|mimir)", re.I)
VERTEX_OWN = "aiplatform.googleapis.com/prediction/online/"
SAGEMAKER_NAMESPACES = ("AWS/SageMaker", "/aws/sagemaker/Endpoints")

RULE = Rule(
    id="LNK-004-metric-sources",
    title="Every autoscaler metric has a source in the stack",
    area="links",
    kind="stack",
    description="Each metric an HPA, KEDA ScaledObject, SageMaker scaling policy or Vertex endpoint scales on is "
                "served by something the stack deploys (or by the cloud itself).",
    checks="Once per stack. HorizontalPodAutoscalers: External metrics need the external.metrics.k8s.io API "
           "(prometheus-adapter or KEDA: an APIService for that group, or their Helm release), Object and Pods "
           "metrics the custom.metrics.k8s.io API (prometheus-adapter), Resource metrics metrics.k8s.io (GKE serves "
           "it; on EKS metrics-server as a Deployment, Helm release or EKS add-on). KEDA ScaledObjects: KEDA itself "
           "is in the stack, and each prometheus trigger's serverAddress is a Prometheus the stack deploys (a Service "
           "of that name and namespace, a Prometheus Helm release, or an Amazon Managed Prometheus workspace). "
           "SageMaker target tracking on a predefined metric or the AWS/SageMaker namespace, and Vertex AI's "
           "aiplatform.googleapis.com/prediction/online/* metrics, come from the cloud.",
    why="An HPA whose metric API is missing reports FailedGetExternalMetric and never scales: the fleet stays at its "
        "minimum through the load the plan sized it for, with no error at deploy time.",
    severity="medium",
    controls=("FedRAMP SC-6", "FedRAMP CP-2(2)", "FedRAMP SI-4"),
    remediation="Deploy the adapter that serves the metric (prometheus-adapter with a rule for it, reading a "
                "Prometheus that scrapes the pods, or KEDA with a ScaledObject in place of the HPA), in the same stack "
                "so it is created and removed with the autoscaler that needs it.",
    applies_to=(*HPA_TYPES, SCALED_OBJECT, SCALING_POLICY, *VERTEX, API_SERVICE, *HELM),
    level="mandatory",
    limits="It checks that the metric API, the metric store and a scrape of the scaled pods exist, not that the "
           "adapter's rules or the scraped page expose this particular metric name (the promtool and live Prometheus "
           "tests check the kit's own names).",
)


def _chart(r) -> str:
    names = [get(r.props, k) for k in ("chart", "name")]
    return " ".join(n.rsplit("/", 1)[-1] for n in names if isinstance(n, str))


def _served(ctx: StackContext, group: str):
    """The resource that serves a metric API group, or None."""
    for r in ctx.resources:
        if r.type == API_SERVICE and get(r.props, "spec.group") == group:
            return r
        if r.type in HELM and any(s in _chart(r) for s in SERVERS[group]):
            return r
        if group == "metrics.k8s.io":
            if r.type == EKS_ADDON and get(r.props, "addonName") == "metrics-server":
                return r
            if r.type == GKE_CLUSTER:  # GKE runs metrics-server on every cluster
                return r
    return None


def _keda(ctx: StackContext):
    for r in ctx.resources:
        if r.type in HELM and "keda" in _chart(r):
            return r
        if r.type in WORKLOADS[:1]:
            images = [c.get("image") for c in get(r.props, "spec.template.spec.containers") or [] if isinstance(c, dict)]
            if any(isinstance(i, str) and "keda" in i.rsplit("/", 1)[-1] for i in images):
                return r
    return None


def _prometheus_at(ctx: StackContext, address: str):
    host = host_of_url(address) or ""
    if host.startswith("aps-workspaces.") or host.endswith(".amazonaws.com"):
        return next((r for r in ctx.resources if r.type == AMP_WORKSPACE), None)
    parts = host.split(".")
    for r in ctx.resources:
        if r.type == SERVICE:
            name, ns = get(r.props, "metadata.name"), get(r.props, "metadata.namespace") or "default"
            if parts and parts[0] == name and (len(parts) == 1 or parts[1] == ns):
                return r
        elif r.type in HELM and PROMETHEUS_CHARTS.search(_chart(r)):
            release = get(r.props, "name")
            if isinstance(release, str) and release in host:
                return r
    return None


def _target(ctx: StackContext, scaler):
    ref = get(scaler.props, "spec.scaleTargetRef") or {}
    ns = get(scaler.props, "metadata.namespace") or "default"
    for r in ctx.resources:
        if r.type in WORKLOADS and get(r.props, "metadata.name") == ref.get("name") and \
                (get(r.props, "metadata.namespace") or "default") == ns:
            return r
    return None


def _selects(selector, labels: dict) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _scraped(ctx: StackContext, workload) -> bool:
    """Whether a PodMonitor (or a ServiceMonitor, through a Service selecting the pods) in the stack scrapes the
    workload's pods."""
    ns = get(workload.props, "metadata.namespace") or "default"
    pod_labels = get(workload.props, "spec.template.metadata.labels") or {}
    for r in ctx.resources:
        if r.type not in (POD_MONITOR, SERVICE_MONITOR):
            continue
        names = get(r.props, "spec.namespaceSelector.matchNames") or [get(r.props, "metadata.namespace") or "default"]
        if ns not in names and not get(r.props, "spec.namespaceSelector.any"):
            continue
        selector = get(r.props, "spec.selector")
        if r.type == POD_MONITOR and _selects(selector, pod_labels):
            return True
        if r.type == SERVICE_MONITOR:
            for svc in ctx.resources:
                if svc.type == SERVICE and (get(svc.props, "metadata.namespace") or "default") == ns and \
                        _selects(selector, get(svc.props, "metadata.labels") or {}) and \
                        _selects({"matchLabels": get(svc.props, "spec.selector") or {}}, pod_labels):
                    return True
    return False


def check(ctx: StackContext) -> None:
    hpas = [r for r in ctx.resources if r.type in HPA_TYPES]
    scaled = [r for r in ctx.resources if r.type == SCALED_OBJECT]
    policies = [r for r in ctx.resources if r.type == SCALING_POLICY]
    vertex = [r for r in ctx.resources if r.type in VERTEX]
    if not (hpas or scaled or policies or vertex):
        ctx.not_applicable("the stack has no autoscaler that reads a metric")
    for hpa in hpas:
        target = _target(ctx, hpa)
        metrics = get(hpa.props, "spec.metrics")
        if is_unknown(metrics):
            ctx.cannot_verify(f"{hpa.name}.spec.metrics", "the metrics it scales on")
            continue
        for i, m in enumerate(metrics or []):
            kind = m.get("type") if isinstance(m, dict) else None
            group = GROUPS.get(kind)
            if group is None:
                continue
            if _served(ctx, group) is not None:
                continue
            name = get(m, f"{kind[0].lower()}{kind[1:]}.metric.name") or get(m, "resource.name") or \
                get(m, "containerResource.name")
            servers = " or ".join(SERVERS[group])
            ctx.violation(f"scales {named(target)} on the {kind} metric {name} (spec.metrics[{i}]), read from the "
                          f"{group} API, but nothing in the stack serves that API: no APIService for {group} and no "
                          f"{servers} release, so the HPA reports FailedGet{kind.replace('Container', '')}Metric and "
                          f"never scales. Fix: deploy "
                          f"{servers} in the same stack with a rule that exposes {name}.", hpa.urn)
    keda = _keda(ctx) if scaled else None
    for so in scaled:
        target = _target(ctx, so)
        if keda is None:
            ctx.violation(f"is a KEDA ScaledObject for {named(target)} but KEDA is not in the stack: nothing turns it "
                          "into an HPA or serves its metrics. Fix: install KEDA (Helm chart kedacore/keda) in the same "
                          "stack.", so.urn)
        for i, t in enumerate(get(so.props, "spec.triggers") or []):
            if not isinstance(t, dict) or t.get("type") != "prometheus":
                continue
            address = get(t, "metadata.serverAddress")
            if is_unknown(address):
                ctx.cannot_verify(f"{so.name}.spec.triggers[{i}].metadata.serverAddress", "where Prometheus is")
                continue
            if not isinstance(address, str) or _prometheus_at(ctx, address) is None:
                ctx.violation(f"scales {named(target)} on a Prometheus query (spec.triggers[{i}]) at {address}, but no "
                              "Prometheus the stack deploys answers there (no Service of that name and namespace, no "
                              "Prometheus release, no managed workspace). Fix: deploy Prometheus in the stack and point "
                              "serverAddress at its Service.", so.urn)
            elif target is not None and not _scraped(ctx, target):
                ctx.violation(f"scales {named(target)} on a Prometheus query (spec.triggers[{i}]), but no PodMonitor or "
                              f"ServiceMonitor in the stack selects {named(target)}'s pods, so Prometheus never holds "
                              "the series and the trigger reads nothing (KEDA then holds its fallback replicas). Fix: add "
                              "a PodMonitor selecting the pods' labels on their metrics port.", so.urn)
    for p in policies:
        if get(p.props, "serviceNamespace") != "sagemaker":
            continue
        tt = get(p.props, "targetTrackingScalingPolicyConfiguration") or {}
        if tt.get("predefinedMetricSpecification"):
            continue
        custom = tt.get("customizedMetricSpecification") or {}
        namespace = custom.get("namespace")
        if custom and namespace not in SAGEMAKER_NAMESPACES:
            ctx.violation(f"scales the SageMaker endpoint on the CloudWatch metric {custom.get('metricName')} in "
                          f"namespace {namespace}, which neither SageMaker nor anything in the stack publishes. Fix: use "
                          "a predefined SageMaker metric or an AWS/SageMaker one.", p.urn)
    for v in vertex:
        for i, spec in enumerate(get(v.props, "deployConfig.dedicatedResources.autoscalingMetricSpecs") or []):
            name = spec.get("metricName") if isinstance(spec, dict) else None
            if isinstance(name, str) and not name.startswith(VERTEX_OWN):
                ctx.violation(f"autoscales on {name} (autoscalingMetricSpecs[{i}]), not one of Vertex AI's own "
                              f"{VERTEX_OWN}* metrics, so the endpoint cannot read it. Fix: use "
                              f"{VERTEX_OWN}accelerator/duty_cycle or cpu/utilization.", v.urn)


POLICY = stack_policy(RULE, check)
