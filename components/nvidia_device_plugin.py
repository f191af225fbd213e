"""The NVIDIA device plugin as a DaemonSet on the GPU nodes, from a pinned image the variant can reach.

Hardened as far as the plugin allows: no service-account token, no capabilities, no privilege escalation, read-only
root filesystem, RuntimeDefault seccomp, CPU and memory limits, and a NetworkPolicy that denies all pod traffic (it
talks to the kubelet over unix sockets only). What it cannot do is waived on the DaemonSet for checkov
(tests/test_manifests.py): it runs as root, because it creates its socket in and dials the kubelet's socket in the
root-owned host directory /var/lib/kubelet/device-plugins; and it serves no health endpoint for probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class NvidiaDevicePluginArgs:
    image: str  # pinned tag or digest; an in-region mirror for air-gapped stacks
    node_selector: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    namespace: str = "kube-system"

    def __post_init__(self):
        name = self.image.rsplit("/", 1)[-1]
        if "@sha256:" not in self.image and (":" not in name or name.endswith(":latest")):
            raise ValueError(f"image: {self.image!r} is not pinned; give an exact release tag or an @sha256 digest")


SOCKET_DIR = "/var/lib/kubelet/device-plugins"

# checkov waivers (`checkov.io/skipN: CHECK=reason`; a reason must not contain "=").
WAIVE_ROOT = "must run as UID 0 to create its socket in and dial kubelet.sock in the root-owned host directory " + SOCKET_DIR
WAIVE_PROBES = ("serves no HTTP or TCP health endpoint (only gRPC on a unix socket the kubelet dials); the kubelet "
                "drops the node's nvidia.com/gpu capacity when the plugin stops")
WAIVE_TAG_PINNED = ("the image is pinned by exact release tag in components/versions.py; a stack pins digests through "
                    "llm-hosting:versions")


def _waivers(image: str) -> dict[str, str]:
    waivers = [("CKV_K8S_23", WAIVE_ROOT), ("CKV_K8S_40", WAIVE_ROOT), ("CKV_K8S_8", WAIVE_PROBES),
               ("CKV_K8S_9", WAIVE_PROBES)]
    if "@sha256:" not in image:
        waivers.append(("CKV_K8S_43", WAIVE_TAG_PINNED))
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(waivers, 1)}


class NvidiaDevicePlugin(pulumi.ComponentResource):
    daemonset_name: pulumi.Output[str]

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:NvidiaDevicePlugin", name, None, opts)
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/managed-by": "pulumi"}
        pinned_by_digest = "@sha256:" in args.image
        ds = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="nvidia-device-plugin", namespace=args.namespace, labels=labels,
                                                annotations=_waivers(args.image)),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        priority_class_name="system-node-critical",
                        node_selector=args.node_selector,
                        # GPU nodes carry nvidia.com/gpu=true:NoSchedule; the plugin must run there.
                        tolerations=[k8s.core.v1.TolerationArgs(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
                                     k8s.core.v1.TolerationArgs(key="CriticalAddonsOnly", operator="Exists")],
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="nvidia-device-plugin",
                            image=args.image,
                            # A tag can be re-pushed: resolve it at the registry on each start; a digest cannot.
                            image_pull_policy="IfNotPresent" if pinned_by_digest else "Always",
                            env=[k8s.core.v1.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="false")],
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False,
                                read_only_root_filesystem=True,  # it writes only its socket, on the host mount
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "50m", "memory": "64Mi"}, limits={"cpu": "200m", "memory": "128Mi"}),
                            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="device-plugin", mount_path=SOCKET_DIR)],
                        )],
                        volumes=[k8s.core.v1.VolumeArgs(
                            name="device-plugin",
                            host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=SOCKET_DIR))],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # No pod traffic at all, either way: the plugin and the kubelet talk over unix sockets on the host mount.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="nvidia-device-plugin", namespace=args.namespace, labels=labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels), policy_types=["Ingress", "Egress"]),
            opts=pulumi.ResourceOptions(parent=self))
        self.daemonset_name = ds.metadata.name
        self.register_outputs({"daemonset_name": self.daemonset_name})
