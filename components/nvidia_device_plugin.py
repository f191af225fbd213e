"""The NVIDIA device plugin as a DaemonSet on the GPU nodes, from a pinned image the variant can reach."""

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


class NvidiaDevicePlugin(pulumi.ComponentResource):
    daemonset_name: pulumi.Output[str]

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:NvidiaDevicePlugin", name, None, opts)
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/managed-by": "pulumi"}
        ds = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="nvidia-device-plugin", namespace=args.namespace, labels=labels),
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
                        containers=[k8s.core.v1.ContainerArgs(
                            name="nvidia-device-plugin",
                            image=args.image,
                            env=[k8s.core.v1.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="false")],
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False,
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}),
                            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="device-plugin", mount_path="/var/lib/kubelet/device-plugins")],
                        )],
                        volumes=[k8s.core.v1.VolumeArgs(
                            name="device-plugin",
                            host_path=k8s.core.v1.HostPathVolumeSourceArgs(path="/var/lib/kubelet/device-plugins"))],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.daemonset_name = ds.metadata.name
        self.register_outputs({"daemonset_name": self.daemonset_name})
