"""NVIDIA's DCGM exporter on every GPU node: GPU utilisation, memory and tensor-core activity for Prometheus.

It runs as a DaemonSet on the GPU pools only (their node selector, tolerating the `nvidia.com/gpu` NoSchedule taint
both clouds put on them), and the chart's ServiceMonitor lets the kube-prometheus-stack Prometheus scrape it: that
Prometheus selects ServiceMonitors from every namespace without a release label (components/monitoring_stack.py).

Its namespace enforces the `privileged` Pod Security level, because the exporter cannot run under `baseline`: it runs
as root with CAP_SYS_ADMIN (the chart's default, needed for the DCGM_FI_PROF_* profiling counters), mounts the
kubelet's pod-resources socket directory from the host (to label each GPU's metrics with the pod using it) and, on
GKE, the host's driver directory. Nothing else runs in that namespace.

GKE installs the NVIDIA driver on COS under /home/kubernetes/bin/nvidia and, unlike the EKS GPU AMIs' NVIDIA container
runtime, exposes the driver and devices only to containers that request a GPU. As in Google's documented DCGM
exporter DaemonSet (Managed Service for Prometheus, "NVIDIA Data Center GPU Manager"), the exporter there mounts that
directory at /usr/local/nvidia, loads the libraries from /usr/local/nvidia/lib64, runs privileged to open the
devices, and maps GPUs to pods by device name (GKE's device plugin reports names like nvidia0, not UUIDs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_kubernetes as k8s
from .helm import ChartValues, chart_release, pod_security_namespace
from .versions import ComponentVersions

RELEASE_NAME = "dcgm-exporter"
POD_SECURITY_LEVEL = "privileged"
UPSTREAM_REPOSITORY = "nvidia/k8s/dcgm-exporter"  # the chart's nvcr.io/nvidia/k8s/dcgm-exporter without the host
GKE_DRIVER_DIR = "/home/kubernetes/bin/nvidia"
GKE_DRIVER_MOUNT = "/usr/local/nvidia"
# The chart runs the exporter with system-node-critical, so it is not the pod evicted first on a full GPU node.
# GKE admits pods of the two system-*-critical classes outside kube-system only against a ResourceQuota that names
# the class; this caps them at one per node for a generous number of nodes.
CRITICAL_PRIORITY_CLASS = "system-node-critical"
GKE_CRITICAL_PODS = 200


_Values = ChartValues  # a section of the dcgm-exporter chart's values.yaml


class Image(_Values):
    repository: str


class Toleration(_Values):
    key: str
    operator: str
    effect: str


class ServiceMonitor(_Values):
    enabled: bool
    # The exporter labels each GPU's series with the pod using it (namespace, pod); honouring them keeps those names
    # instead of exported_namespace/exported_pod, so the GPU alerts select the serving pods like every other series.
    honor_labels: bool = True


class HostVolume(_Values):
    name: str
    host_path: str


class VolumeMount(_Values):
    name: str
    mount_path: str
    sub_path: Optional[str] = None
    read_only: Optional[bool] = None


class EnvVar(_Values):
    name: str
    value: str


class SecurityContext(_Values):
    privileged: bool
    allow_privilege_escalation: bool  # must be true with privileged, or the API server rejects the pod


class DcgmExporterValues(_Values):
    image: Optional[Image] = None
    node_selector: dict[str, str]
    tolerations: list[Toleration]
    service_monitor: ServiceMonitor
    extra_host_volumes: Optional[list[HostVolume]] = None
    extra_volume_mounts: Optional[list[VolumeMount]] = None
    extra_env: Optional[list[EnvVar]] = None
    security_context: Optional[SecurityContext] = None


# The chart's default extraVolumeMounts entry (its counters file from the chart's ConfigMap). Helm replaces lists
# instead of merging them, so setting extraVolumeMounts must repeat it.
DEFAULT_COUNTERS_MOUNT = VolumeMount(name="exporter-metrics-volume", mount_path="/etc/dcgm-exporter/default-counters.csv",
                                     sub_path="default-counters.csv")
GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


@dataclass(frozen=True)
class DcgmExporterArgs:
    cloud: Literal["aws", "gcp"]
    registry: Optional[str]  # the stack's registry mirror (air-gapped), else None for the public chart and image
    versions: ComponentVersions
    gpu_node_selector: dict[str, str]  # the GPU pools' selector: components.node_labels.gpu_node_selector(gpu)
    namespace: str = "gpu-monitoring"
    # The Release that installs the ServiceMonitor CRD (MonitoringStack.release): the chart's ServiceMonitor cannot be
    # created before it. None only where the caller orders the two itself.
    service_monitor_crds: Optional[pulumi.Resource] = None

    def __post_init__(self):
        if self.cloud not in ("aws", "gcp"):
            raise ValueError(f"cloud: {self.cloud!r} is not one of aws, gcp")
        if not self.gpu_node_selector:
            raise ValueError("gpu_node_selector: give the GPU pools' selector; an empty one would put the exporter on "
                             "every node, where it crash-loops without a GPU")


def dcgm_exporter_values(args: DcgmExporterArgs) -> DcgmExporterValues:
    gke = args.cloud == "gcp"
    driver = "nvidia-install-dir-host"
    return DcgmExporterValues(
        image=Image(repository=f"{args.registry.rstrip('/')}/{UPSTREAM_REPOSITORY}") if args.registry else None,
        node_selector=args.gpu_node_selector,
        # EKS taints its GPU nodes nvidia.com/gpu=true, GKE nvidia.com/gpu=present: tolerate the key, any value.
        tolerations=[GPU_TOLERATION],
        service_monitor=ServiceMonitor(enabled=True),
        extra_host_volumes=[HostVolume(name=driver, host_path=GKE_DRIVER_DIR)] if gke else None,
        extra_volume_mounts=[DEFAULT_COUNTERS_MOUNT, VolumeMount(name=driver, mount_path=GKE_DRIVER_MOUNT, read_only=True)]
        if gke else None,
        extra_env=[EnvVar(name="LD_LIBRARY_PATH", value=f"{GKE_DRIVER_MOUNT}/lib64"),
                   EnvVar(name="DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE", value="device-name")] if gke else None,
        security_context=SecurityContext(privileged=True, allow_privilege_escalation=True) if gke else None,
    )


class DcgmExporter(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: DcgmExporterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:DcgmExporter", name, None, opts)
        ns = pod_security_namespace(f"{name}-namespace", args.namespace, POD_SECURITY_LEVEL, parent=self)
        after: list[pulumi.Resource] = [args.service_monitor_crds] if args.service_monitor_crds else []
        if args.cloud == "gcp":
            after.append(k8s.core.v1.ResourceQuota(
                f"{name}-critical-pods",
                metadata=k8s.meta.v1.ObjectMetaArgs(name="critical-pods", namespace=ns.metadata.name),
                spec=k8s.core.v1.ResourceQuotaSpecArgs(
                    hard={"pods": str(GKE_CRITICAL_PODS)},
                    scope_selector=k8s.core.v1.ScopeSelectorArgs(match_expressions=[
                        k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                            scope_name="PriorityClass", operator="In", values=[CRITICAL_PRIORITY_CLASS])])),
                opts=pulumi.ResourceOptions(parent=self)))
        self.release = chart_release(
            f"{name}-release", release=RELEASE_NAME, chart="dcgm-exporter", version=args.versions.dcgm_exporter_chart,
            registry=args.registry, namespace=ns.metadata.name, values=dcgm_exporter_values(args).dump(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
