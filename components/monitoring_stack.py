"""The in-cluster Prometheus that the model server's autoscaler and alerts read: kube-prometheus-stack, on the system pool.

What it runs: the Prometheus operator, one Prometheus (the KEDA prometheus trigger's server, at `PROMETHEUS_URL`),
kube-state-metrics (the alerts read kube_pod_container_status_restarts_total, kube_pod_status_unschedulable and
kube_horizontalpodautoscaler_status_{current_replicas,spec_max_replicas}), Grafana with its dashboard sidecar, and on
EKS an Alertmanager that publishes every alert to an SNS topic. On GKE there is no Alertmanager: another component
forwards the alerts to Cloud Monitoring, which pages through its own notification channels.

Choices, and why:
- Prometheus selects ServiceMonitors, PodMonitors, Probes, ScrapeConfigs and PrometheusRules from every namespace
  without the Helm `release` label (`*SelectorNilUsesHelmValues: false`): the DCGM exporter, the model server and the
  alert rules are separate components and must not have to know this release's name.
- node-exporter is off. It needs hostNetwork, hostPID and host paths, which would force the `monitoring` namespace
  from `restricted` down to `privileged` for every pod in it; the alerts do not read node metrics, the clouds already
  report node CPU/memory/disk (CloudWatch, Cloud Monitoring), and GPU telemetry comes from the DCGM exporter, which
  runs in its own privileged namespace. Without it every pod here is restricted-compatible (the chart's defaults:
  non-root, RuntimeDefault seccomp, no capabilities), so the namespace enforces `restricted`.
- The managed control planes (EKS, GKE) do not expose the scheduler, controller manager, etcd or kube-proxy metrics
  endpoints to pods; their ServiceMonitors would only produce "<component> down" alerts for ever, so they are off.
- Grafana's admin password (given as a Pulumi secret, or generated once and kept) goes into a Secret the chart reads
  (`admin.existingSecret`): it is never in the Helm values, which Helm keeps unencrypted in its release record.
- Air-gapped stacks pull the chart from `oci://<registry>/charts/kube-prometheus-stack` and every image from
  `<registry>/<upstream repository>` (e.g. `<registry>/prometheus/prometheus:<tag>`): `global.imageRegistry` covers
  this chart and its subcharts (grafana, kube-state-metrics), and each image of the parent chart names it as well.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel, ConfigDict, Field

from .helm import ChartValues, chart_release
from .versions import ComponentVersions

NAMESPACE = "monitoring"
RELEASE_NAME = "kube-prometheus-stack"
# The chart names its objects `<fullnameOverride>-<part>`; fixing it fixes the Service name the scaler calls.
FULLNAME = "kube-prometheus-stack"
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"
PROMETHEUS_PORT = 9090
PROMETHEUS_PORT_NAME = "http-web"  # the chart's prometheus.prometheusSpec.portName default, also the Service port name
PROMETHEUS_URL = f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc:{PROMETHEUS_PORT}"
ALERTMANAGER_SERVICE_ACCOUNT = f"{FULLNAME}-alertmanager"
# Set on the Prometheus server pods through podMetadata: what a scraper of its /federate endpoint selects.
PROMETHEUS_POD_LABELS = {"llm-hosting/monitoring": "prometheus"}
# The Grafana sidecar loads every ConfigMap with this label (the chart's sidecar.dashboards label/labelValue).
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
RULE_API_VERSION = "monitoring.coreos.com/v1"
# Restricted: every pod of the chart as configured here runs non-root, RuntimeDefault seccomp, no capabilities.
POD_SECURITY_LEVEL = "restricted"

_DURATION = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# -- typed Helm values ----------------------------------------------------------------------------------------------
# Each model is one section of the chart's values.yaml; fields are dumped under the chart's camelCase key (or an
# explicit alias), fields left None stay at the chart's default. tests/test_charts.py checks every key against the
# chart's values.yaml.

_Values = ChartValues


class _AlertmanagerConfig(BaseModel):
    """Alertmanager's own configuration file format (snake_case keys), not the chart's."""
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Image(_Values):
    registry: str


class Global(_Values):
    image_registry: Optional[str] = None


class ContainerResources(_Values):
    requests: dict[str, str]
    limits: dict[str, str]


class PodMetadata(_Values):
    labels: dict[str, str]


class EmptyDir(_Values):
    size_limit: str


class PersistentVolumeClaimSpec(_Values):
    storage_class_name: str
    access_modes: list[str]
    resources: dict[str, dict[str, str]]


class VolumeClaimTemplate(_Values):
    spec: PersistentVolumeClaimSpec


class StorageSpec(_Values):
    empty_dir: Optional[EmptyDir] = None
    volume_claim_template: Optional[VolumeClaimTemplate] = None


class PrometheusSpec(_Values):
    retention: str
    retention_size: str
    storage_spec: StorageSpec
    node_selector: dict[str, str]
    pod_metadata: PodMetadata
    resources: ContainerResources
    # Select from every namespace, without the Helm release label (see the module docstring).
    service_monitor_selector_nil_uses_helm_values: bool = False
    pod_monitor_selector_nil_uses_helm_values: bool = False
    rule_selector_nil_uses_helm_values: bool = False
    probe_selector_nil_uses_helm_values: bool = False
    scrape_config_selector_nil_uses_helm_values: bool = False
    image: Optional[Image] = None


class Prometheus(_Values):
    prometheus_spec: PrometheusSpec


class SigV4(_AlertmanagerConfig):
    region: str


class SnsConfig(_AlertmanagerConfig):
    topic_arn: Any  # pulumi.Input[str]
    sigv4: SigV4  # no keys: the SDK's default chain finds the EKS Pod Identity credentials
    send_resolved: bool = True


class Receiver(_AlertmanagerConfig):
    name: str
    sns_configs: Optional[list[SnsConfig]] = None


class Route(_AlertmanagerConfig):
    receiver: str
    group_by: Optional[list[str]] = None
    matchers: Optional[list[str]] = None
    routes: Optional[list["Route"]] = None


class AlertmanagerConfigFile(_AlertmanagerConfig):
    route: Route
    receivers: list[Receiver]


class ServiceAccount(_Values):
    create: bool = True
    name: str


class AlertmanagerSpec(_Values):
    node_selector: dict[str, str]
    image: Optional[Image] = None


class Alertmanager(_Values):
    enabled: bool
    service_account: Optional[ServiceAccount] = None
    alertmanager_spec: Optional[AlertmanagerSpec] = None
    config: Optional[AlertmanagerConfigFile] = None  # no aliases: dumped in Alertmanager's own snake_case keys


class GrafanaAdmin(_Values):
    existing_secret: str
    user_key: str
    password_key: str


class DashboardSidecar(_Values):
    enabled: bool = True
    label: str = DASHBOARD_LABEL
    label_value: str = DASHBOARD_LABEL_VALUE
    search_namespace: str


class GrafanaSidecar(_Values):
    dashboards: DashboardSidecar


class Grafana(_Values):
    enabled: bool = True
    admin: GrafanaAdmin
    sidecar: GrafanaSidecar
    node_selector: dict[str, str]  # grafana subchart key (not in the parent's values.yaml)


class Enabled(_Values):
    enabled: bool


class KubeStateMetricsChart(_Values):
    node_selector: dict[str, str]  # kube-state-metrics subchart key (not in the parent's values.yaml)


class AdmissionWebhookPatch(_Values):
    node_selector: dict[str, str]
    image: Optional[Image] = None


class AdmissionWebhookDeployment(_Values):
    image: Image


class AdmissionWebhooks(_Values):
    patch: AdmissionWebhookPatch
    deployment: Optional[AdmissionWebhookDeployment] = None


class ConfigReloader(_Values):
    image: Image


class PrometheusOperator(_Values):
    node_selector: dict[str, str]
    admission_webhooks: AdmissionWebhooks
    image: Optional[Image] = None
    prometheus_config_reloader: Optional[ConfigReloader] = None
    thanos_image: Optional[Image] = None


class UpgradeJobImages(_Values):
    busybox: Image
    kubectl: Image


class UpgradeJob(_Values):
    image: UpgradeJobImages


class Crds(_Values):
    upgrade_job: UpgradeJob


class ThanosRulerSpec(_Values):
    image: Image


class ThanosRuler(_Values):
    thanos_ruler_spec: ThanosRulerSpec


class KubePrometheusStackValues(_Values):
    fullname_override: str = FULLNAME
    common_labels: dict[str, str]
    global_: Global = Field(alias="global")
    crds: Optional[Crds] = None  # only to point the (disabled) CRD upgrade job's images at the mirror
    prometheus_operator: PrometheusOperator
    prometheus: Prometheus
    alertmanager: Alertmanager
    grafana: Grafana
    kube_state_metrics: Enabled
    kube_state_metrics_chart: KubeStateMetricsChart = Field(alias="kube-state-metrics")
    node_exporter: Enabled = Enabled(enabled=False)
    kube_controller_manager: Enabled = Enabled(enabled=False)
    kube_scheduler: Enabled = Enabled(enabled=False)
    kube_etcd: Enabled = Enabled(enabled=False)
    kube_proxy: Enabled = Enabled(enabled=False)
    thanos_ruler: Optional[ThanosRuler] = None  # disabled by the chart; only its image is pointed at the mirror


# -- the component --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrometheusStorage:
    """Where Prometheus keeps its TSDB. `storage_class` None: an emptyDir on the node (lost when the pod moves; no
    CSI driver or StorageClass needed); else a PersistentVolumeClaim of that class (e.g. gp3 on EKS with the EBS CSI
    driver, standard-rwo on GKE). Either way Prometheus deletes old blocks at 85% of `size_gib`, before the kubelet
    would evict the pod for filling the emptyDir, or before the volume fills."""
    size_gib: int = 20
    storage_class: Optional[str] = None

    def __post_init__(self):
        if self.size_gib < 1:
            raise ValueError(f"size_gib: must be at least 1, got {self.size_gib}")


@dataclass(frozen=True)
class MonitoringStackArgs:
    stack: str
    cloud: Literal["aws", "gcp"]
    region: str
    registry: Optional[str]  # the stack's registry mirror (air-gapped), else None for the public chart and images
    versions: ComponentVersions
    node_selector: dict[str, str]  # the system pool's labels: components.node_labels.system_node_labels("system")
    # AWS: every alert goes to this SNS topic (required there). The Alertmanager's credentials come from an EKS Pod
    # Identity association for `MonitoringStack.alertmanager_service_account`, made by the caller.
    sns_topic_arn: Optional[pulumi.Input[str]] = None
    dashboards: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # name -> Grafana dashboard JSON
    # name -> a PrometheusRule custom resource (apiVersion/kind/metadata/spec), created once the operator's CRDs exist.
    # Any namespace: this Prometheus selects rules from all of them (a namespace other than `monitoring` must exist).
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Grafana's admin password, a Pulumi secret (e.g. config.require_secret(...)). None: a random one is made on the
    # first `pulumi up` and kept (read it from the `grafana-admin` Secret in the cluster).
    grafana_admin_password: Optional[pulumi.Input[str]] = None
    # Namespaces whose pods query Prometheus besides its own (Grafana): the scaler (KEDA) and, on GKE, the managed
    # collectors that forward the firing alerts. A NetworkPolicy admits them and nothing else to the Prometheus port.
    prometheus_readers: list[str] = field(default_factory=list)
    prometheus_retention: str = "15d"
    prometheus_storage: PrometheusStorage = PrometheusStorage()
    labels: dict[str, str] = field(default_factory=dict)  # added to every object the chart creates

    def __post_init__(self):
        if self.cloud not in ("aws", "gcp"):
            raise ValueError(f"cloud: {self.cloud!r} is not one of aws, gcp")
        if self.cloud == "aws" and self.sns_topic_arn is None:
            raise ValueError("sns_topic_arn: required on aws; Alertmanager publishes every alert to it")
        if self.cloud == "gcp" and self.sns_topic_arn is not None:
            raise ValueError("sns_topic_arn: only for aws; on gcp alerts go to Cloud Monitoring, there is no Alertmanager")
        if not self.node_selector:
            raise ValueError("node_selector: give the system pool's labels; an empty selector lets the pods land on GPU nodes")
        if not self.prometheus_retention or not _DURATION.match(self.prometheus_retention):
            raise ValueError(f"prometheus_retention: {self.prometheus_retention!r} is not a Prometheus duration such as 15d")
        for name in self.dashboards:
            if not _DNS_LABEL.match(name) or len(name) > 63:
                raise ValueError(f"dashboards: {name!r} must be a DNS label (lower-case letters, digits, '-'; at most 63 "
                                 "characters): it names a ConfigMap")
        for name, rule in self.rules.items():
            if (rule.get("apiVersion"), rule.get("kind")) != (RULE_API_VERSION, "PrometheusRule"):
                raise ValueError(f"rules: {name!r} is a {rule.get('apiVersion')}/{rule.get('kind')}, not a "
                                 f"{RULE_API_VERSION} PrometheusRule")
            if not (rule.get("metadata") or {}).get("name") or not (rule.get("spec") or {}).get("groups"):
                raise ValueError(f"rules: {name!r} needs metadata.name and spec.groups")


def alertmanager_config(topic_arn: pulumi.Input[str], region: str) -> AlertmanagerConfigFile:
    """Every alert to SNS, grouped by alert name, resolved notices included. Watchdog (always firing, to prove the
    pipeline works) and InfoInhibitor (a helper that only suppresses info alerts) go nowhere: sent to SNS they would
    page every repeat interval for ever."""
    return AlertmanagerConfigFile(
        route=Route(receiver="sns", group_by=["alertname"], routes=[
            Route(receiver="null", matchers=['alertname = "Watchdog"']),
            Route(receiver="null", matchers=['alertname = "InfoInhibitor"']),
        ]),
        # The chart's default config names a "null" receiver in its inhibit rules' routes; lists replace, so keep it.
        receivers=[Receiver(name="null"), Receiver(name="sns", sns_configs=[SnsConfig(topic_arn=topic_arn, sigv4=SigV4(region=region))])],
    )


def kube_prometheus_stack_values(args: MonitoringStackArgs) -> KubePrometheusStackValues:
    """The chart's values for this stack, as typed objects (`.dump()` gives the dict Helm takes)."""
    image = Image(registry=args.registry.rstrip("/")) if args.registry else None
    size = args.prometheus_storage.size_gib
    storage = (StorageSpec(empty_dir=EmptyDir(size_limit=f"{size}Gi")) if args.prometheus_storage.storage_class is None
               else StorageSpec(volume_claim_template=VolumeClaimTemplate(spec=PersistentVolumeClaimSpec(
                   storage_class_name=args.prometheus_storage.storage_class, access_modes=["ReadWriteOnce"],
                   resources={"requests": {"storage": f"{size}Gi"}}))))
    aws = args.cloud == "aws"
    return KubePrometheusStackValues(
        common_labels={"app.kubernetes.io/part-of": "llm-hosting", "llm-hosting/stack": args.stack, **args.labels},
        global_=Global(image_registry=image.registry if image else None),
        crds=Crds(upgrade_job=UpgradeJob(image=UpgradeJobImages(busybox=image, kubectl=image))) if image else None,
        prometheus_operator=PrometheusOperator(
            node_selector=args.node_selector,
            admission_webhooks=AdmissionWebhooks(
                patch=AdmissionWebhookPatch(node_selector=args.node_selector, image=image),
                deployment=AdmissionWebhookDeployment(image=image) if image else None),
            image=image,
            prometheus_config_reloader=ConfigReloader(image=image) if image else None,
            thanos_image=image),
        prometheus=Prometheus(prometheus_spec=PrometheusSpec(
            retention=args.prometheus_retention,
            retention_size=f"{int(size * 0.85 * 1024)}MiB",  # the operator's ByteSize: MiB/GiB are base 2
            storage_spec=storage,
            node_selector=args.node_selector,
            pod_metadata=PodMetadata(labels=PROMETHEUS_POD_LABELS),
            resources=ContainerResources(requests={"cpu": "250m", "memory": "1Gi"}, limits={"memory": "3Gi"}),
            image=image)),
        alertmanager=Alertmanager(
            enabled=True,
            service_account=ServiceAccount(name=ALERTMANAGER_SERVICE_ACCOUNT),
            alertmanager_spec=AlertmanagerSpec(node_selector=args.node_selector, image=image),
            config=alertmanager_config(args.sns_topic_arn, args.region),
        ) if aws else Alertmanager(  # off; its spec still names the mirror, so no value anywhere points upstream
            enabled=False, alertmanager_spec=AlertmanagerSpec(node_selector=args.node_selector, image=image)),
        grafana=Grafana(
            admin=GrafanaAdmin(existing_secret=GRAFANA_ADMIN_SECRET, user_key="admin-user", password_key="admin-password"),
            # Only this namespace (the chart's default is ALL): a labelled ConfigMap elsewhere cannot plant a dashboard.
            sidecar=GrafanaSidecar(dashboards=DashboardSidecar(search_namespace=NAMESPACE)),
            node_selector=args.node_selector),
        kube_state_metrics=Enabled(enabled=True),
        kube_state_metrics_chart=KubeStateMetricsChart(node_selector=args.node_selector),
        thanos_ruler=ThanosRuler(thanos_ruler_spec=ThanosRulerSpec(image=image)) if image else None,
    )


class MonitoringStack(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    prometheus_url: str
    prometheus_pod_labels: dict[str, str]
    prometheus_port_name: str
    alertmanager_service_account: Optional[str]  # None on gcp (no Alertmanager)
    release: k8s.helm.v3.Release
    dashboard_config_maps: dict[str, k8s.core.v1.ConfigMap]
    rules: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:MonitoringStack", name, None, opts)
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAMESPACE, labels={
                "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
                "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
                "pod-security.kubernetes.io/audit": POD_SECURITY_LEVEL}),
            opts=pulumi.ResourceOptions(parent=self))
        password = args.grafana_admin_password
        if password is None:
            password = secrets.token_urlsafe(24)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_ADMIN_SECRET, namespace=ns.metadata.name),
            type="Opaque",
            string_data={"admin-user": GRAFANA_ADMIN_USER, "admin-password": pulumi.Output.secret(password)},
            # A generated password is new on every run: keep the first one instead of rotating it on each `up`.
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stringData", "data"],
                                        ignore_changes=[] if args.grafana_admin_password is not None else ["stringData"]))
        self.release = chart_release(
            f"{name}-release", release=RELEASE_NAME, chart="kube-prometheus-stack",
            version=args.versions.kube_prometheus_stack_chart, registry=args.registry, namespace=ns.metadata.name,
            values=kube_prometheus_stack_values(args).dump(),
            # The operator's CRDs come with the chart; the first install also waits for the admission webhook job.
            timeout=900, opts=pulumi.ResourceOptions(parent=self, depends_on=[admin]))
        self.dashboard_config_maps = {
            dash: k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{dash}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"grafana-dashboard-{dash}", namespace=ns.metadata.name,
                                                    labels={DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}),
                data={f"{dash}.json": body},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]))
            for dash, body in sorted(args.dashboards.items())}
        # Custom resources of the operator's CRDs: after the release that installs them.
        self.rules = {
            rule: k8s.apiextensions.CustomResource(
                f"{name}-rule-{rule}",
                api_version=cr["apiVersion"], kind=cr["kind"],
                metadata={**cr["metadata"], "namespace": cr["metadata"].get("namespace") or NAMESPACE},
                spec=cr["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]))
            for rule, cr in sorted(args.rules.items())}
        # Who may query Prometheus: this namespace (Grafana, the operator) and the readers named by the caller. The
        # scaler's queries and the alert forwarding both fail silently if this leaves them out (tests/test_links.py).
        k8s.networking.v1.NetworkPolicy(
            f"{name}-prometheus-netpol",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{PROMETHEUS_SERVICE}-readers", namespace=ns.metadata.name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(PROMETHEUS_POD_LABELS)),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())] + [
                        k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": reader}))
                        for reader in sorted(set(args.prometheus_readers))],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PROMETHEUS_PORT_NAME, protocol="TCP")])]),
            opts=pulumi.ResourceOptions(parent=self))
        self.namespace = ns.metadata.name
        self.prometheus_url = PROMETHEUS_URL
        self.prometheus_pod_labels = dict(PROMETHEUS_POD_LABELS)
        self.prometheus_port_name = PROMETHEUS_PORT_NAME
        self.alertmanager_service_account = ALERTMANAGER_SERVICE_ACCOUNT if args.cloud == "aws" else None
        self.register_outputs({"namespace": self.namespace, "prometheus_url": self.prometheus_url,
                               "alertmanager_service_account": self.alertmanager_service_account})
