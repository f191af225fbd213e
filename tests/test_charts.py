"""Every Helm release the kit creates, checked against the chart it names (ROOT.parent / "shared" / "schemas").

Helm accepts any value key and none of these charts ships a values.schema.json, so a misspelt or moved key (say
`prometheusSpec.serviceMonitorSelectorNilUsesHelmValue`) installs cleanly and silently does nothing. These tests
hold each release to the chart's own values.yaml at the pinned version:
- the release's chart version is the one the schemas were taken from (Chart.yaml);
- every value key path the kit sets exists in values.yaml, except below the few free-form maps listed here;
- public stacks pull from the chart's public repository; air-gapped stacks pull the chart from
  oci://<registry>/charts/<name> and every image reference in the merged values points at <registry>.

Two levels: the monitoring components alone, on both clouds, public and air-gapped (so each case exists even when
no checked-in stack has it); and the whole program for every checked-in stack that runs a cluster, which also covers
releases other components create (cluster-autoscaler on EKS).

What cannot be checked here: kube-prometheus-stack's subcharts (grafana, kube-state-metrics) are remote
dependencies whose values.yaml the schemas do not hold; only the parent's override sections are. The few subchart
keys the kit sets are listed in SUBCHART_KEYS, and their images are covered only through `global.imageRegistry`,
which both subcharts read (their own values.yaml documents it) and which is asserted below.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pulumi
import pytest
import yaml

from components.dcgm_exporter import DcgmExporter, DcgmExporterArgs
from components.keda import Keda, KedaArgs
from components.monitoring_stack import MonitoringStack, MonitoringStackArgs
from components.node_labels import gpu_node_selector, system_node_labels
from components.versions import CHART_REPOSITORIES, VERSIONS
from preview.harness import run_program

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"
RELEASE = "kubernetes:helm.sh/v3:Release"
MIRRORS = {"aws": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-hosting",
           "gcp": "europe-west4-docker.pkg.dev/proj/llm-hosting"}
REGIONS = {"aws": "eu-central-1", "gcp": "europe-west4"}
CHARTS = {"kube-prometheus-stack", "keda", "dcgm-exporter"}  # on every cluster; EKS adds cluster-autoscaler

# Keys whose value is a map the chart passes through whole, so any key beneath them is the user's (label keys, a
# Kubernetes object spec). Matched by key name anywhere: node selectors and label/annotation maps only.
FREE_FORM_KEYS = {
    "nodeSelector",  # label key -> value, copied into the pod spec
    "labels", "annotations", "additionalLabels", "commonLabels",  # label/annotation maps
}
# Matched by full path: the chart documents the slot with `{}` and renders it with toYaml into a Kubernetes type.
FREE_FORM_PATHS = {
    "kube-prometheus-stack": {
        ("prometheus", "prometheusSpec", "storageSpec"),  # the operator's StorageSpec (emptyDir / volumeClaimTemplate)
        ("prometheus", "prometheusSpec", "podMetadata"),  # EmbeddedObjectMetadata of the Prometheus pods
        ("prometheus", "prometheusSpec", "resources"),  # core/v1 ResourceRequirements
    },
    "keda": {
        ("podDisruptionBudget", "operator"),  # policy/v1 PodDisruptionBudget spec (minAvailable/maxUnavailable)
    },
    "dcgm-exporter": {
        ("securityContext",),  # core/v1 SecurityContext of the exporter container (privileged on GKE)
    },
    "aws-load-balancer-controller": {
        ("ingressClassParams", "spec"),  # the IngressClassParams CR's spec (scheme, ...), validated by its own CRD
        ("resources",),  # core/v1 ResourceRequirements of the controller
    },
    "cluster-autoscaler": {
        ("extraArgs",),  # flag name -> value: the cluster-autoscaler binary's flags (its FAQ lists them), not the chart's
        ("expanderPriorities",),  # priority -> node group name regexes, the priority expander's own ConfigMap format
        ("resources",),  # core/v1 ResourceRequirements
    },
}
# Keys of subcharts, documented in the subchart's own values.yaml (grafana 12.11.1, kube-state-metrics 8.4.0 per
# kube-prometheus-stack's Chart.yaml), which the schemas do not include: not verifiable offline.
SUBCHART_KEYS = {
    "kube-prometheus-stack": {
        ("grafana", "nodeSelector"),
        ("kube-state-metrics", "nodeSelector"),
    },
}


# -- the releases the kit creates -------------------------------------------------------------------------------------

def build(cloud: str, registry: str | None):
    system = system_node_labels("system")

    def program():
        monitoring = MonitoringStack("monitoring", MonitoringStackArgs(
            stack="test", cloud=cloud, region=REGIONS[cloud], registry=registry, versions=VERSIONS, node_selector=system,
            grafana_admin_password=pulumi.Output.secret("not-a-real-password"),
            sns_topic_arn=f"arn:aws:sns:{REGIONS[cloud]}:123456789012:llm-hosting-alerts" if cloud == "aws" else None))
        Keda("keda", KedaArgs(registry=registry, versions=VERSIONS, node_selector=system))
        DcgmExporter("dcgm", DcgmExporterArgs(cloud=cloud, registry=registry, versions=VERSIONS,
                                              gpu_node_selector=gpu_node_selector("L4"),
                                              service_monitor_crds=monitoring.release))

    return run_program(program, "llm-hosting", "test", {"aws:region": REGIONS["aws"]})


CASES = [(cloud, registry) for cloud in ("aws", "gcp") for registry in (None, MIRRORS[cloud])]
IDS = [f"{cloud}-{'airgapped' if registry else 'public'}" for cloud, registry in CASES]


@lru_cache(maxsize=None)
def releases(cloud: str, registry: str | None) -> dict[str, dict[str, Any]]:
    """Chart name -> the Release's inputs."""
    found = {}
    for row in build(cloud, registry).by_type(RELEASE):
        found[row.inputs["chart"].rsplit("/", 1)[-1]] = row.inputs
    return found


# -- the chart files ----------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def chart_file(chart: str, name: str) -> Any:
    return yaml.safe_load((SCHEMAS / chart / "chart" / name).read_text())


# -- checks -------------------------------------------------------------------------------------------------------------

def _dotted(path: tuple) -> str:
    return ".".join(path)


def unknown_keys(chart: str, values: dict, defaults: Any, path: tuple = ()) -> Iterator[str]:
    """Value key paths that the chart's values.yaml does not have (below free-form maps, anything goes)."""
    for key, value in values.items():
        here = path + (key,)
        if here in SUBCHART_KEYS.get(chart, set()):
            continue
        if not isinstance(defaults, dict) or key not in defaults:
            yield f"{chart}: {_dotted(here)} is not a key of the chart's values.yaml"
            continue
        if key in FREE_FORM_KEYS or here in FREE_FORM_PATHS.get(chart, set()):
            continue
        if isinstance(value, dict):
            if defaults[key] is not None and not isinstance(defaults[key], dict):
                yield f"{chart}: {_dotted(here)} is a map here but {type(defaults[key]).__name__} in the chart"
            else:
                yield from unknown_keys(chart, value, defaults[key] or {}, here)


def merged(defaults: Any, values: Any) -> Any:
    """Helm's merge: maps merge key by key, anything else (lists included) is replaced."""
    if isinstance(defaults, dict) and isinstance(values, dict):
        return {**defaults, **{k: merged(defaults.get(k), v) for k, v in values.items()}}
    return values


def image_references(values: Any, path: tuple = ()) -> Iterator[tuple[str, str]]:
    """(path, registry/repository) for every image block (a map with `repository`) in the values."""
    if isinstance(values, dict):
        if isinstance(values.get("repository"), str):
            registry = values.get("registry")
            yield _dotted(path), f"{registry}/{values['repository']}" if registry else values["repository"]
        for key, value in values.items():
            yield from image_references(value, path + (key,))


def release_problems(chart: str, release: dict, registry: str | None) -> list[str]:
    if not (SCHEMAS / chart / "chart" / "values.yaml").is_file():
        return [f"{chart}: no values.yaml for this chart under the shared schemas; add the chart's Chart.yaml and "
                "values.yaml at the pinned version"]
    problems = []
    pinned = str(chart_file(chart, "Chart.yaml")["version"])
    if release.get("version") != pinned:
        problems.append(f"{chart}: version {release.get('version')!r}, but the schemas are of chart {pinned}")
    repo = (release.get("repositoryOpts") or {}).get("repo")
    if registry:
        if release["chart"] != f"oci://{registry}/charts/{chart}" or repo:
            problems.append(f"{chart}: air-gapped, but pulls {release['chart']!r} (repo {repo!r}) instead of "
                            f"oci://{registry}/charts/{chart}")
    elif release["chart"] != chart or repo != CHART_REPOSITORIES[chart]:
        problems.append(f"{chart}: public, but pulls {release['chart']!r} from {repo!r}")
    defaults = chart_file(chart, "values.yaml")
    values = release.get("values") or {}
    problems += list(unknown_keys(chart, values, defaults))
    if registry:
        refs = list(image_references(merged(defaults, values)))
        if not refs:
            problems.append(f"{chart}: found no image in the values to check")
        problems += [f"{chart}: {where} pulls {ref}, not from {registry}" for where, ref in refs
                     if not ref.startswith(f"{registry}/")]
    return problems


# -- tests ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cloud,registry", CASES, ids=IDS)
def test_every_release_matches_its_chart(cloud, registry):
    found = releases(cloud, registry)
    assert set(found) == CHARTS, f"expected releases of {sorted(CHARTS)}, got {sorted(found)}"
    problems = [p for chart, release in sorted(found.items()) for p in release_problems(chart, release, registry)]
    assert not problems, "\n".join(problems)


def self_hosted_stacks() -> list[tuple[str, str | None]]:
    """(stack, registry) of every checked-in stack that runs a cluster."""
    from planner.stack_config import load_stack_config
    from preview.harness import load_config

    found = []
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        try:
            _, config, _, _ = load_config(ROOT, stack)
            cfg = load_stack_config(config, f"stacks/{path.name}")
        except Exception:  # a stack file the loader refuses: kept, so the test names it instead of vanishing
            found.append((stack, None))
            continue
        if cfg.self_hosted is not None:
            found.append((stack, cfg.registry))
    return found


CLUSTER_STACKS = self_hosted_stacks()


@pytest.mark.parametrize("stack,registry", CLUSTER_STACKS, ids=[stack for stack, _ in CLUSTER_STACKS])
def test_every_release_of_every_cluster_stack_matches_its_chart(stack, registry):
    """The whole program, as `pulumi preview` would run it: every Helm release on the stack's cluster."""
    from preview.harness import run_preview

    found = {}
    for row in run_preview(ROOT, stack).by_type(RELEASE):
        found.setdefault(row.inputs["chart"].rsplit("/", 1)[-1], []).append(row.inputs)
    assert CHARTS <= set(found), f"{stack}: no release of {sorted(CHARTS - set(found))}"
    problems = [p for chart, rows in sorted(found.items()) for release in rows
                for p in release_problems(chart, release, registry)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_airgapped_subcharts_read_the_global_registry(cloud):
    """grafana and kube-state-metrics take their images from `global.imageRegistry`; nothing else reaches them."""
    values = releases(cloud, MIRRORS[cloud])["kube-prometheus-stack"]["values"]
    assert values["global"]["imageRegistry"] == MIRRORS[cloud]
    assert values["grafana"]["enabled"] and values["kubeStateMetrics"]["enabled"]


def test_pinned_versions_are_the_schema_versions():
    """components/versions.py and the schemas move together: a bump without new schemas fails here."""
    assert VERSIONS.kube_prometheus_stack_chart == str(chart_file("kube-prometheus-stack", "Chart.yaml")["version"])
    assert VERSIONS.keda_chart == str(chart_file("keda", "Chart.yaml")["version"])
    assert VERSIONS.dcgm_exporter_chart == str(chart_file("dcgm-exporter", "Chart.yaml")["version"])


# The checks themselves, on values that must fail them.

def test_a_misspelt_key_is_reported():
    values = {"prometheus": {"prometheusSpec": {"serviceMonitorSelectorNilUsesHelmValue": False, "retention": "1d"}},
              "grafana": {"nodeSelector": {"a": "b"}, "adminPasword": "x"}}
    problems = list(unknown_keys("kube-prometheus-stack", values, chart_file("kube-prometheus-stack", "values.yaml")))
    assert problems == [
        "kube-prometheus-stack: prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValue is not a key of the "
        "chart's values.yaml",
        "kube-prometheus-stack: grafana.adminPasword is not a key of the chart's values.yaml",
    ]


def test_keys_below_free_form_maps_are_accepted_and_others_are_not():
    defaults = chart_file("keda", "values.yaml")
    assert not list(unknown_keys("keda", {"nodeSelector": {"any/label": "x"},
                                          "podDisruptionBudget": {"operator": {"minAvailable": 1}}}, defaults))
    assert list(unknown_keys("keda", {"podDisruptionBudget": {"operatr": {"minAvailable": 1}}}, defaults)) == [
        "keda: podDisruptionBudget.operatr is not a key of the chart's values.yaml"]


def test_an_image_left_upstream_is_reported():
    mirror = MIRRORS["aws"]
    release = {"chart": f"oci://{mirror}/charts/keda", "version": VERSIONS.keda_chart,
               "values": {"image": {"keda": {"registry": mirror}, "metricsApiServer": {"registry": mirror}}}}
    assert release_problems("keda", release, mirror) == [
        f"keda: image.webhooks pulls ghcr.io/kedacore/keda-admission-webhooks, not from {mirror}"]


def test_a_public_chart_in_an_airgapped_stack_is_reported():
    mirror = MIRRORS["gcp"]
    release = {"chart": "dcgm-exporter", "version": VERSIONS.dcgm_exporter_chart,
               "repositoryOpts": {"repo": CHART_REPOSITORIES["dcgm-exporter"]},
               "values": {"image": {"repository": f"{mirror}/nvidia/k8s/dcgm-exporter"}}}
    (problem,) = release_problems("dcgm-exporter", release, mirror)
    assert problem.startswith("dcgm-exporter: air-gapped, but pulls 'dcgm-exporter'")


# -- custom resources against the CRDs these charts install (tests/crd_schemas.py) ------------------------------------

def scaled_object(**spec) -> dict:
    from components.monitoring_stack import PROMETHEUS_URL

    base = {"scaleTargetRef": {"name": "vllm"}, "minReplicaCount": 2, "maxReplicaCount": 6,
            "triggers": [{"type": "prometheus", "metricType": "AverageValue",
                          "metadata": {"serverAddress": PROMETHEUS_URL, "query": "sum(vllm:num_requests_waiting)",
                                       "threshold": "5"}}]}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "vllm", "namespace": "llm"},
            "spec": {**base, **spec}}


def test_a_valid_scaled_object_has_no_problems():
    from crd_schemas import validate_custom_resource

    assert validate_custom_resource(scaled_object()) == []


def test_scaled_object_typos_types_and_the_installed_patch_limits_are_reported():
    from crd_schemas import validate_custom_resource

    cr = scaled_object(maxReplicaCont=6, minReplicaCount="2",
                       advanced={"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}}})
    problems = validate_custom_resource(cr)
    assert len(problems) == 3, problems
    assert any("spec.minReplicaCount: '2' is not of type 'integer'" in p for p in problems)
    # The 3600 s maximum exists only in KEDA's CRD patch, as installed by the chart.
    assert any("stabilizationWindowSeconds: 4000 is greater than the maximum of 3600" in p for p in problems)
    assert any("spec.maxReplicaCont: unknown field 'maxReplicaCont'" in p for p in problems)


def test_scaled_job_triggers_have_no_metric_type_once_patched():
    from crd_schemas import validate_custom_resource

    job = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "j"},
           "spec": {"jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
                    "triggers": [{"type": "cron", "metricType": "Value", "metadata": {"timezone": "UTC"}}]}}
    assert [p for p in validate_custom_resource(job) if "metricType" in p] == [
        "ScaledJob j: spec.triggers[0].metricType: unknown field 'metricType' (the schema has authenticationRef, "
        "metadata, name, type, useCachedMetrics)"]


@pytest.mark.parametrize("strategy,valid", [("warn", True), ("ABORT", True), ("bogus", False)])
def test_prometheus_rule_go_regex_flags_work(strategy, valid):
    """The CRD's `^(?i)(abort|warn)?$` is Go syntax Python's re rejects as written; it is still enforced."""
    from crd_schemas import validate_custom_resource

    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r"},
            "spec": {"groups": [{"name": "g", "partial_response_strategy": strategy,
                                 "rules": [{"alert": "A", "expr": "up == 0", "for": "5m"}]}]}}
    assert (validate_custom_resource(rule) == []) is valid


def test_a_pod_monitoring_of_the_prometheus_federate_endpoint_is_valid():
    """The link GKE's alert forwarding uses: the Prometheus pods' labels and port name, as MonitoringStack gives them."""
    from components.monitoring_stack import PROMETHEUS_POD_LABELS, PROMETHEUS_PORT_NAME
    from crd_schemas import validate_custom_resource

    cr = {"apiVersion": "monitoring.googleapis.com/v1", "kind": "PodMonitoring",
          "metadata": {"name": "federate", "namespace": "monitoring"},
          "spec": {"selector": {"matchLabels": PROMETHEUS_POD_LABELS},
                   "endpoints": [{"port": PROMETHEUS_PORT_NAME, "path": "/federate", "interval": "30s",
                                  "params": {"match[]": ['ALERTS{alertstate="firing"}']}}]}}
    assert validate_custom_resource(cr) == []
    cr["spec"]["endpoints"][0]["intervall"] = "30s"
    assert validate_custom_resource(cr) == [
        "PodMonitoring federate: spec.endpoints[0].intervall: unknown field 'intervall' (the schema has authorization, "
        "basicAuth, interval, metricRelabeling, oauth2, params, path, port, proxyUrl, scheme, timeout, tls)"]


def test_an_unknown_kind_or_version_is_a_clear_error():
    from crd_schemas import UnknownCustomResource, crd_for

    with pytest.raises(UnknownCustomResource, match="no CRD for Deployment in 'apps/v1'"):
        crd_for("apps/v1", "Deployment")
    with pytest.raises(UnknownCustomResource, match="keda.sh/ScaledObject has no version 'v1' .*serves v1alpha1"):
        crd_for("keda.sh/v1", "ScaledObject")
    assert crd_for("keda.sh/v1alpha1", "ScaledObject")["spec"]["names"]["plural"] == "scaledobjects"
