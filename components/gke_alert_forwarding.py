"""The in-cluster Prometheus's firing alerts, delivered through Cloud Monitoring on GKE.

kube-prometheus-stack's Prometheus evaluates the alert rules (PrometheusRule CRs); its Alertmanager is not deployed
on GCP. Instead, Google Managed Service for Prometheus (managed collection, on in GkeCluster) scrapes that
Prometheus's `/federate` endpoint for `ALERTS{alertstate="firing"}` only, so the firing alerts reach Cloud
Monitoring as `ALERTS` series, and one Cloud Monitoring alert policy (a PromQL condition) turns each firing alert into
an incident on the stack's notification channels. Only alert state leaves the cluster, through the same Google API
(monitoring.googleapis.com) that GKE's system metrics already use: air-gapped stacks reach it on the restricted VIP.

Labels. GMP sets its own target labels (project_id, location, cluster, namespace, job, instance) and does not honour
a scraped series' labels of the same name: an alert's own `namespace` (or `job`, `instance`, `cluster`) arrives as
`exported_namespace` (...). The pod metadata labels GMP would add by default are turned off (`targetLabels.metadata:
[]`) so an alert's own `pod` and `container` labels arrive unchanged. `alertname` and `severity` never collide.

Heartbeat. A firing alert that stops arriving closes its incident, so a dead Prometheus or a broken scrape would look
like all-clear. kube-prometheus-stack's `Watchdog` alert always fires; the same condition also fires when Watchdog
has not arrived for HEARTBEAT_WINDOW, so a broken alert path pages as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

PODMONITORING_API_VERSION = "monitoring.googleapis.com/v1"
FEDERATE_PATH = "/federate"
FIRING = 'ALERTS{alertstate="firing"}'  # what Prometheus hands over: nothing but the firing alerts
SCRAPE_INTERVAL = "30s"
HEARTBEAT_ALERT = "Watchdog"  # kube-prometheus-stack's always-firing alert (defaultRules.rules.general)
HEARTBEAT_WINDOW = "10m"
EVALUATION_INTERVAL = "60s"
# The chart's prometheusSpec.portName: the name prometheus-operator gives the Prometheus container's 9090 port.
DEFAULT_PROMETHEUS_PORT_NAME = "http-web"
GMP_NAMESPACE = "gmp-system"  # where GKE runs the managed collectors
# Cloud Monitoring's limits on an alert policy's documentation.
MAX_DOC_CHARS, MAX_DOC_BYTES, MAX_SUBJECT_CHARS = 8192, 10240, 255


def firing_query(cluster_name: str, job: str, heartbeat_alert: Optional[str] = HEARTBEAT_ALERT) -> str:
    """PromQL over what GMP stored: every firing alert of this cluster's federation, plus a missing heartbeat.

    `cluster` and `job` are GMP's target labels (the cluster's name, the PodMonitoring's name). Each Prometheus
    replica is its own scrape target, so `max without (instance, prometheus_replica)` folds the replicas' copies of
    one alert into one series: one incident per alert, not per replica.
    """
    scope = f'cluster="{cluster_name}",job="{job}",alertstate="firing"'
    if not heartbeat_alert:
        return f"max without (instance, prometheus_replica) (ALERTS{{{scope}}})"
    return (f'max without (instance, prometheus_replica) (ALERTS{{{scope},alertname!="{heartbeat_alert}"}}) '
            f'or absent_over_time(ALERTS{{{scope},alertname="{heartbeat_alert}"}}[{HEARTBEAT_WINDOW}])')


def documentation(stack: str, cluster_name: str, runbooks: dict[str, str], heartbeat_alert: Optional[str]) -> str:
    """Markdown for the notification: which alert fired (Cloud Monitoring fills in `${metric.label.*}`) and the
    runbook line of every alert the stack defines, so the on-call finds the one that fired."""
    lines = [f"Prometheus alert **${{metric.label.alertname}}** is firing in GKE cluster `{cluster_name}` "
             f"(llm-hosting stack `{stack}`), severity `${{metric.label.severity}}`, "
             "namespace `${metric.label.exported_namespace}`.", ""]
    if runbooks:
        lines += ["Runbooks:", *[f"- **{alert}**: {line}" for alert, line in sorted(runbooks.items())], ""]
    if heartbeat_alert:
        lines.append(f"If the alert is **{heartbeat_alert}**, it has not arrived for {HEARTBEAT_WINDOW}: the alert "
                     f"path is broken (the cluster's Prometheus, or Managed Service for Prometheus scraping it in "
                     f"{GMP_NAMESPACE}). Other alerts cannot reach you until it is fixed.")
    return "\n".join(lines)


@dataclass(frozen=True)
class GkeAlertForwardingArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    cluster_name: pulumi.Input[str]  # GkeCluster.cluster_name: GMP's `cluster` label
    notification_channels: list[pulumi.Input[str]]  # channel resource names (GcpAlertChannel.channel_name)
    prometheus_pod_labels: dict[str, str]  # what the Prometheus server pods carry (MonitoringStack.prometheus_pod_labels)
    prometheus_namespace: str = "monitoring"
    prometheus_port_name: str = DEFAULT_PROMETHEUS_PORT_NAME
    runbooks: dict[str, str] = field(default_factory=dict)  # alert name -> runbook line, quoted in the notification
    # The always-firing alert whose absence means the path is broken; None when the rules have no such alert.
    heartbeat_alert: Optional[str] = HEARTBEAT_ALERT
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the monitoring stack's release (its namespace)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.notification_channels:
            raise ValueError("notification_channels: name at least one channel (GcpAlertChannel.channel_name); "
                             "an alert policy without one notifies nobody")
        if not self.prometheus_pod_labels:
            raise ValueError("prometheus_pod_labels: an empty selector would scrape every pod in "
                             f"{self.prometheus_namespace}; give the Prometheus pods' labels")
        if not self.prometheus_port_name:
            raise ValueError("prometheus_port_name: the Prometheus container's port name is required, e.g. http-web")
        doc = documentation(self.stack, "<cluster>", self.runbooks, self.heartbeat_alert)
        if len(doc) > MAX_DOC_CHARS - 100 or len(doc.encode()) > MAX_DOC_BYTES - 400:
            raise ValueError(f"runbooks: the notification's documentation would be {len(doc)} characters; Cloud "
                             f"Monitoring takes at most {MAX_DOC_CHARS}: shorten the runbook lines")


class GkeAlertForwarding(pulumi.ComponentResource):
    pod_monitoring_name: str
    alert_policy_name: pulumi.Output[str]  # projects/<project>/alertPolicies/<id>
    query: pulumi.Output[str]  # the policy's PromQL

    def __init__(self, name: str, args: GkeAlertForwardingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        """`opts` must carry the cluster's kubernetes provider (the CR and policy go through it and gcp's default)."""
        super().__init__("llmhost:index:GkeAlertForwarding", name, None, opts)
        # The CRs need the monitoring namespace (the release): children wait for args.depends_on and for whatever
        # the component itself was told to depend on, which Pulumi does not pass down to children.
        waits = list(args.depends_on)
        if opts is not None and opts.depends_on is not None:
            waits += list(opts.depends_on) if isinstance(opts.depends_on, (list, tuple)) else [opts.depends_on]
        child = pulumi.ResourceOptions(parent=self, depends_on=waits or None)
        job = f"{name}-alerts-federation"
        meta = {"name": job, "namespace": args.prometheus_namespace,
                "labels": {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "llm-hosting"}}
        pod_monitoring = k8s.apiextensions.CustomResource(
            f"{name}-pod-monitoring",
            api_version=PODMONITORING_API_VERSION,
            kind="PodMonitoring",
            metadata=meta,
            spec={
                "selector": {"matchLabels": dict(args.prometheus_pod_labels)},
                "endpoints": [{
                    "port": args.prometheus_port_name,
                    "path": FEDERATE_PATH,
                    "params": {"match[]": [FIRING]},
                    "interval": SCRAPE_INTERVAL,
                }],
                # No pod/container metadata labels: an alert's own `pod` and `container` labels arrive unchanged.
                "targetLabels": {"metadata": []},
            },
            opts=child,
        )
        # GKE's collectors scrape the Prometheus pods from gmp-system: MonitoringStack's NetworkPolicy must admit that
        # namespace (its `prometheus_readers`), next to the scaler's.
        cluster = pulumi.Output.from_input(args.cluster_name)
        query = cluster.apply(lambda c: firing_query(c, job, args.heartbeat_alert))
        content = cluster.apply(lambda c: documentation(args.stack, c, args.runbooks, args.heartbeat_alert))
        policy = gcp.monitoring.AlertPolicy(
            f"{name}-policy",
            project=args.project,
            display_name=cluster.apply(lambda c: f"llm-hosting {args.stack}: Prometheus alerts of {c}"),
            combiner="OR",
            conditions=[gcp.monitoring.AlertPolicyConditionArgs(
                display_name="A Prometheus alert is firing in the cluster",
                condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                    query=query,
                    # The rule's own `for` already ran in the cluster: an arriving firing alert is notified at once.
                    duration="0s",
                    evaluation_interval=EVALUATION_INTERVAL,
                    # ALERTS exists in Cloud Monitoring only after the first federated scrape; without this the API
                    # refuses a policy on a metric it has not seen yet.
                    disable_metric_validation=True,
                    # Shown on the incident and in every notification, whatever the channel renders.
                    labels={"alertname": "{{ $labels.alertname }}", "severity": "{{ $labels.severity }}"},
                    rule_group=f"llm-hosting-{args.stack}",
                    alert_rule="PrometheusAlertFiring",
                ),
            )],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                subject=f"llm-hosting {args.stack}: ${{metric.label.alertname}} firing"[:MAX_SUBJECT_CHARS],
                content=content, mime_type="text/markdown"),
            # Incidents close when the alert stops firing; the channel hears both ends.
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(notification_prompts=["OPENED", "CLOSED"]),
            notification_channels=list(args.notification_channels),
            user_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pod_monitoring]),
        )

        self.pod_monitoring_name = job
        self.alert_policy_name = policy.name
        self.query = query
        self.register_outputs({"alert_policy_name": self.alert_policy_name, "query": self.query})
