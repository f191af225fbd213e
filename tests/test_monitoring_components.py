"""MonitoringStack, Keda and DcgmExporter under the recording mocks: what they register, and the links between them.

The chart keys themselves are held to the charts' values.yaml in tests/test_charts.py; here the values are read for
what they do: where the pods run, who gets alerts, where the Grafana password lives, what the GPU exporter mounts.
"""

from __future__ import annotations

import json

import pulumi
import pytest

from components import monitoring_stack as ms
from components.dcgm_exporter import DcgmExporter, DcgmExporterArgs
from components.keda import Keda, KedaArgs
from components.monitoring_stack import MonitoringStack, MonitoringStackArgs, PrometheusStorage
from components.node_labels import gpu_node_selector, system_node_labels
from components.versions import VERSIONS
from preview.harness import MASK, run_program

SYSTEM = system_node_labels("system")
GPU = gpu_node_selector("L4")
PASSWORD = "correct-horse-battery-staple"
TOPIC = "arn:aws:sns:eu-central-1:123456789012:llm-hosting-alerts"
MIRROR = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-hosting"
DASHBOARD = json.dumps({"title": "vLLM", "panels": []})


def monitoring_args(cloud="aws", **overrides) -> MonitoringStackArgs:
    base = dict(stack="test", cloud=cloud, region="eu-central-1" if cloud == "aws" else "europe-west4", registry=None,
                versions=VERSIONS, node_selector=SYSTEM, grafana_admin_password=pulumi.Output.secret(PASSWORD),
                sns_topic_arn=TOPIC if cloud == "aws" else None)
    return MonitoringStackArgs(**{**base, **overrides})


def render(cloud="aws", registry=None, **overrides):
    built = {}

    def program():
        built["monitoring"] = MonitoringStack("monitoring", monitoring_args(cloud, registry=registry, **overrides))
        built["keda"] = Keda("keda", KedaArgs(registry=registry, versions=VERSIONS, node_selector=SYSTEM))
        built["dcgm"] = DcgmExporter("dcgm", DcgmExporterArgs(cloud=cloud, registry=registry, versions=VERSIONS,
                                                              gpu_node_selector=GPU,
                                                              service_monitor_crds=built["monitoring"].release))

    return run_program(program, "llm-hosting", "test", {"aws:region": "eu-central-1"}), built


@pytest.fixture(scope="module")
def aws():
    return render("aws", dashboards={"vllm": DASHBOARD, "gpu": DASHBOARD})


@pytest.fixture(scope="module")
def gcp():
    return render("gcp")


def kps(result):
    return result.named("monitoring-release").inputs["values"]


def dcgm(result):
    return result.named("dcgm-release").inputs["values"]


# -- namespaces ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("component,name,level", [("monitoring", "monitoring", "restricted"), ("keda", "keda", "restricted"),
                                                  ("dcgm", "gpu-monitoring", "privileged")])
def test_each_component_has_its_namespace_with_a_pod_security_level(aws, component, name, level):
    result, _ = aws
    ns = result.named(f"{component}-namespace").inputs["metadata"]
    assert ns["name"] == name
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == level
    release = result.named(f"{component}-release").inputs
    assert release["namespace"] == name


def test_monitoring_namespace_is_restricted_because_node_exporter_is_off(aws):
    """node-exporter needs host access; with it on, `restricted` would reject its DaemonSet."""
    result, _ = aws
    assert kps(result)["nodeExporter"] == {"enabled": False}
    assert result.named("monitoring-namespace").inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# -- placement -------------------------------------------------------------------------------------------------------------

def test_every_monitoring_pod_runs_on_the_system_pool(aws):
    result, _ = aws
    values = kps(result)
    selectors = {
        "prometheus": values["prometheus"]["prometheusSpec"]["nodeSelector"],
        "alertmanager": values["alertmanager"]["alertmanagerSpec"]["nodeSelector"],
        "operator": values["prometheusOperator"]["nodeSelector"],
        "webhook patch job": values["prometheusOperator"]["admissionWebhooks"]["patch"]["nodeSelector"],
        "grafana": values["grafana"]["nodeSelector"],
        "kube-state-metrics": values["kube-state-metrics"]["nodeSelector"],
        "keda": result.named("keda-release").inputs["values"]["nodeSelector"],
    }
    assert selectors == {k: SYSTEM for k in selectors}


def test_dcgm_exporter_runs_on_gpu_nodes_only_and_tolerates_their_taint(aws, gcp):
    for result, _ in (aws, gcp):
        values = dcgm(result)
        assert values["nodeSelector"] == GPU
        assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


# -- Prometheus ---------------------------------------------------------------------------------------------------------

def test_prometheus_selects_monitors_and_rules_from_every_namespace(aws):
    spec = kps(aws[0])["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False, kind


def test_prometheus_url_and_pod_labels_come_from_the_fixed_names(aws):
    result, built = aws
    values = kps(result)
    stack = built["monitoring"]
    assert values["fullnameOverride"] == "kube-prometheus-stack"
    assert stack.prometheus_url == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert values["prometheus"]["prometheusSpec"]["podMetadata"]["labels"] == stack.prometheus_pod_labels
    assert values["prometheus"]["prometheusSpec"]["retention"] == "15d"


def test_kube_state_metrics_is_on_for_the_alerts(aws):
    assert kps(aws[0])["kubeStateMetrics"] == {"enabled": True}


def test_prometheus_keeps_its_data_within_the_volume():
    result, _ = render("aws", prometheus_storage=PrometheusStorage(size_gib=100, storage_class="gp3"))
    spec = kps(result)["prometheus"]["prometheusSpec"]
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3" and claim["resources"] == {"requests": {"storage": "100Gi"}}
    assert spec["retentionSize"] == f"{int(100 * 0.85 * 1024)}MiB"


# -- Alertmanager ------------------------------------------------------------------------------------------------------------

def test_alertmanager_on_aws_sends_every_alert_to_sns(aws):
    result, built = aws
    am = kps(result)["alertmanager"]
    assert am["enabled"] is True
    route = am["config"]["route"]
    assert route["receiver"] == "sns" and route["group_by"] == ["alertname"]
    (sns,) = [r for r in am["config"]["receivers"] if r["name"] == "sns"]
    assert sns["sns_configs"] == [{"topic_arn": TOPIC, "sigv4": {"region": "eu-central-1"}, "send_resolved": True}]
    # Every route leads to a receiver that exists.
    names = {r["name"] for r in am["config"]["receivers"]}
    assert {route["receiver"], *(r["receiver"] for r in route["routes"])} <= names


def test_alertmanager_service_account_is_the_one_the_pod_identity_must_name(aws, gcp):
    _, built = aws
    assert built["monitoring"].alertmanager_service_account == "kube-prometheus-stack-alertmanager"
    assert kps(aws[0])["alertmanager"]["serviceAccount"] == {"create": True, "name": "kube-prometheus-stack-alertmanager"}
    assert gcp[1]["monitoring"].alertmanager_service_account is None


def test_alertmanager_is_off_on_gcp(gcp):
    am = kps(gcp[0])["alertmanager"]
    assert am["enabled"] is False and "config" not in am


def test_sns_topic_is_required_on_aws_and_refused_on_gcp():
    with pytest.raises(ValueError, match="sns_topic_arn: required on aws"):
        monitoring_args("aws", sns_topic_arn=None)
    with pytest.raises(ValueError, match="sns_topic_arn: only for aws"):
        monitoring_args("gcp", sns_topic_arn=TOPIC)


@pytest.mark.parametrize("field,value,message", [
    ("prometheus_retention", "two weeks", "prometheus_retention"),
    ("node_selector", {}, "node_selector"),
    ("dashboards", {"Bad_Name": "{}"}, "dashboards"),
])
def test_bad_arguments_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        monitoring_args("aws", **{field: value})


# -- Grafana -------------------------------------------------------------------------------------------------------------------

def test_grafana_admin_password_is_a_secret_and_never_in_the_values(aws):
    result, _ = aws
    secret = result.named("monitoring-grafana-admin").inputs
    assert secret["stringData"] == MASK  # marked secret: masked in the preview, encrypted in the state
    admin = kps(result)["grafana"]["admin"]
    assert admin["existingSecret"] == secret["metadata"]["name"]
    assert {admin["userKey"], admin["passwordKey"]} == {"admin-user", "admin-password"}
    assert PASSWORD not in json.dumps([r.inputs for r in result.resources])
    release = result.named("monitoring-release")
    assert result.named("monitoring-grafana-admin").urn in release.dependencies


def test_dashboards_are_config_maps_the_grafana_sidecar_loads(aws):
    result, built = aws
    sidecar = kps(result)["grafana"]["sidecar"]["dashboards"]
    release = result.named("monitoring-release")
    maps = {r.name: r for r in result.by_type("kubernetes:core/v1:ConfigMap")}
    assert set(maps) == {"monitoring-dashboard-gpu", "monitoring-dashboard-vllm"}
    for name, cm in maps.items():
        meta = cm.inputs["metadata"]
        assert meta["namespace"] == "monitoring"
        assert meta["labels"] == {sidecar["label"]: sidecar["labelValue"]} == {"grafana_dashboard": "1"}
        dashboard = name.rsplit("-", 1)[1]
        assert cm.inputs["data"] == {f"{dashboard}.json": DASHBOARD}
        assert release.urn in cm.dependencies
    assert sidecar["enabled"] is True


# -- KEDA ------------------------------------------------------------------------------------------------------------------------

def test_keda_runs_two_operators_with_a_disruption_budget(aws):
    release = aws[0].named("keda-release").inputs
    assert "keda" in release["name"]
    assert release["values"]["operator"] == {"replicaCount": 2}
    assert release["values"]["podDisruptionBudget"] == {"operator": {"minAvailable": 1}}


def test_airgapped_keda_and_dcgm_images_come_from_the_mirror():
    result, _ = render("aws", registry=MIRROR)
    keda = result.named("keda-release").inputs["values"]
    assert {k: v["registry"] for k, v in keda["image"].items()} == {"keda": MIRROR, "metricsApiServer": MIRROR,
                                                                     "webhooks": MIRROR}
    assert dcgm(result)["image"] == {"repository": f"{MIRROR}/nvidia/k8s/dcgm-exporter"}
    assert kps(result)["global"] == {"imageRegistry": MIRROR}


# -- DCGM exporter --------------------------------------------------------------------------------------------------------------

def test_dcgm_on_gke_mounts_the_cos_driver_and_maps_gpus_by_device_name(gcp):
    values = dcgm(gcp[0])
    assert values["extraHostVolumes"] == [{"name": "nvidia-install-dir-host", "hostPath": "/home/kubernetes/bin/nvidia"}]
    mounts = {m["name"]: m for m in values["extraVolumeMounts"]}
    assert mounts["nvidia-install-dir-host"] == {"name": "nvidia-install-dir-host", "mountPath": "/usr/local/nvidia",
                                                 "readOnly": True}
    assert "exporter-metrics-volume" in mounts  # the chart's own counters mount survives the list replacement
    assert {e["name"]: e["value"] for e in values["extraEnv"]} == {
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64", "DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE": "device-name"}
    assert values["securityContext"] == {"privileged": True, "allowPrivilegeEscalation": True}
    quota = gcp[0].named("dcgm-critical-pods").inputs["spec"]
    assert quota["scopeSelector"]["matchExpressions"][0]["values"] == ["system-node-critical"]


def test_dcgm_on_eks_keeps_the_chart_defaults_for_the_driver(aws):
    values = dcgm(aws[0])
    for key in ("extraHostVolumes", "extraVolumeMounts", "extraEnv", "securityContext"):
        assert key not in values, key
    assert not aws[0].by_type("kubernetes:core/v1:ResourceQuota")


def test_dcgm_service_monitor_is_on_and_waits_for_its_crd(aws):
    result, _ = aws
    # honorLabels keeps the GPU's pod and namespace as the exporter reports them (not exported_pod/exported_namespace)
    assert dcgm(result)["serviceMonitor"] == {"enabled": True, "honorLabels": True}
    assert result.named("monitoring-release").urn in result.named("dcgm-release").dependencies


def test_component_outputs_are_registered(aws):
    result, _ = aws
    types = {r.type for r in result.resources if not r.custom}
    assert {"llmhost:index:MonitoringStack", "llmhost:index:Keda", "llmhost:index:DcgmExporter"} <= types
    children = {r.name: r.parent for r in result.resources if r.custom}
    assert children["monitoring-release"] == "monitoring" and children["keda-release"] == "keda"
    assert children["dcgm-release"] == "dcgm"
    assert ms.PROMETHEUS_URL == aws[1]["monitoring"].prometheus_url


def test_without_a_given_password_one_is_generated_kept_and_secret(aws):
    result, _ = render("aws", grafana_admin_password=None)
    secret = result.named("monitoring-grafana-admin")
    assert secret.inputs["stringData"] == MASK
    # Generated anew on every run, so the first one is kept: no rotation (and no Grafana lock-out) on each `up`.
    assert secret.options["ignoreChanges"] == ["stringData"]
    # A given password is applied as it changes.
    assert "ignoreChanges" not in aws[0].named("monitoring-grafana-admin").options


# -- alert rules ---------------------------------------------------------------------------------------------------------

RULE = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "llm-hosting-test", "namespace": "llm", "labels": {"llm-hosting/stack": "test"}},
        "spec": {"groups": [{"name": "llm", "rules": [{"alert": "LLMPodRestarting", "for": "10m",
                                                       "expr": "increase(kube_pod_container_status_restarts_total[15m]) > 2",
                                                       "labels": {"severity": "warning"}}]}]}}


def test_rules_become_prometheus_rules_after_the_operator_is_installed():
    from crd_schemas import validate_custom_resource

    result, _ = render("aws", rules={"llm": RULE})
    (cr,) = result.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert cr.inputs["metadata"] == RULE["metadata"] and cr.inputs["spec"] == RULE["spec"]
    assert result.named("monitoring-release").urn in cr.dependencies
    assert validate_custom_resource({k: cr.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}) == []


def test_a_rule_without_a_namespace_goes_to_monitoring():
    rule = {**RULE, "metadata": {"name": "r"}}
    result, _ = render("gcp", rules={"r": rule})
    (cr,) = result.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert cr.inputs["metadata"] == {"name": "r", "namespace": "monitoring"}


def test_a_rule_that_is_not_a_prometheus_rule_is_refused():
    with pytest.raises(ValueError, match="rules: 'x' is a v1/ConfigMap, not a monitoring.coreos.com/v1 PrometheusRule"):
        monitoring_args("aws", rules={"x": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}})
