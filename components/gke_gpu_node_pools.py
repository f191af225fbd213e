"""GKE node pools for GPU serving: an on-demand floor, spot above it, and a system pool, on a least-privilege identity."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .node_labels import ON_DEMAND, PREFERRED_ON_DEMAND, SPOT, gpu_node_labels, gpu_node_selector, system_node_labels

GPU_TAINT = gcp.container.NodePoolNodeConfigTaintArgs(key="nvidia.com/gpu", value="present", effect="NO_SCHEDULE")
# What a node needs to ship logs and metrics and pull images; never roles/editor or roles/owner, which the
# Compute Engine default service account would otherwise bring.
NODE_ROLES = {
    "log-writer": "roles/logging.logWriter",
    "metric-writer": "roles/monitoring.metricWriter",
    "monitoring-viewer": "roles/monitoring.viewer",
    "registry-reader": "roles/artifactregistry.reader",
}
# Access is governed by the service account's IAM roles; the scope only stops being a second, coarser filter.
OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
GPU_DRIVER_VERSIONS = ("LATEST", "DEFAULT")
SYSTEM_NODES = (2, 4)  # total across the zones, like the EKS system group
SYSTEM_DISK_GB = 50


@dataclass(frozen=True)
class GkeGpuNodePoolsArgs:
    stack: str
    region: str
    project: Optional[str]  # None = the provider's gcp:project
    cluster: pulumi.Input[str]  # the cluster's id (or name, with `region`)
    zones: list[str]  # node locations: at least two zones of `region`, so one zone's outage leaves capacity
    machine_type: str  # the GPU machine type, e.g. g2-standard-24
    gpu: str  # the catalog's GPU class (L4, H100, ...): the value of the pools' GPU label the model server selects
    accelerator_type: str  # GKE's name, e.g. nvidia-l4, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb
    accelerator_count: int  # GPUs per node
    on_demand_min_nodes: int  # the failover floor, total across the zones
    on_demand_max_nodes: int
    kms_key_id: pulumi.Input[str]  # CMEK for the boot disks, in `region` (GkeCluster.kms_key_id)
    spot_max_nodes: int = 0  # 0 = no spot pool
    boot_disk_gb: int = 200  # images plus two copies of the weights
    system_machine_type: str = "e2-standard-4"
    gpu_driver_version: str = "LATEST"  # GKE installs the driver; LATEST or DEFAULT for the node version
    protect: bool = True  # protects the node service account (running nodes cannot change identity)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if len(set(self.zones)) < 2:
            raise ValueError(f"zones: need at least two distinct zones of {self.region}, got {self.zones}")
        outside = [z for z in self.zones if not z.startswith(f"{self.region}-")]
        if outside:
            raise ValueError(f"zones: {outside} are not zones of {self.region}")
        if not self.accelerator_type.startswith("nvidia-"):
            raise ValueError(f"accelerator_type: {self.accelerator_type!r} is not a GKE accelerator name such as nvidia-l4")
        if self.accelerator_count < 1:
            raise ValueError(f"accelerator_count: need at least 1 GPU per node, got {self.accelerator_count}")
        if self.on_demand_min_nodes < 1 or self.on_demand_max_nodes < self.on_demand_min_nodes:
            raise ValueError(f"on_demand_min_nodes/on_demand_max_nodes: need 1 <= min <= max, got "
                             f"{self.on_demand_min_nodes}/{self.on_demand_max_nodes}")
        if self.spot_max_nodes < 0:
            raise ValueError(f"spot_max_nodes: cannot be negative, got {self.spot_max_nodes}")
        if self.boot_disk_gb < SYSTEM_DISK_GB:
            raise ValueError(f"boot_disk_gb: need at least {SYSTEM_DISK_GB} GB for images and weights, got {self.boot_disk_gb}")
        if self.gpu_driver_version not in GPU_DRIVER_VERSIONS:
            raise ValueError(f"gpu_driver_version: {self.gpu_driver_version!r} is not one of {', '.join(GPU_DRIVER_VERSIONS)}")


class GkeGpuNodePools(pulumi.ComponentResource):
    node_service_account_email: pulumi.Output[str]
    node_pool_names: pulumi.Output[list]
    gpu_node_selector: dict[str, str]  # what GPU workloads select: matches both GPU pools' labels
    preferred_node_labels: dict[str, str]  # the on-demand pool's labels, preferred by serving replicas
    node_pools: list  # the NodePool resources (dependants wait for nodes that can run them)

    def __init__(self, name: str, args: GkeGpuNodePoolsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GkeGpuNodePools", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = gcp.organizations.get_project_output(project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        project_id = pulumi.Output.from_input(args.project) if args.project else project.project_id
        account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=f"llm-{args.stack.lower()}-gke-nodes"[:30].rstrip("-"),
            display_name=f"GKE nodes of llm-hosting stack {args.stack}",
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(f"{name}-{k}", project=project_id, role=role, member=account.member, opts=child)
            for k, role in NODE_ROLES.items()]
        # Compute Engine creates the CMEK boot disks through its service agent, which must hold the key first.
        grants.append(gcp.kms.CryptoKeyIAMMember(
            f"{name}-disk-key-grant", crypto_key_id=args.kms_key_id, role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=project.number.apply(lambda n: f"serviceAccount:service-{n}@compute-system.iam.gserviceaccount.com"),
            opts=child))

        def pool(pool_name: str, machine_type: str, disk_gb: int, min_nodes: int, max_nodes: int,
                 capacity: str, gpu: bool) -> gcp.container.NodePool:
            labels = gpu_node_labels(pool_name, args.gpu, capacity) if gpu else system_node_labels(pool_name)
            return gcp.container.NodePool(
                f"{name}-{pool_name}",
                name=pool_name,
                cluster=args.cluster,
                location=args.region,
                project=args.project,
                node_locations=list(args.zones),
                # Per zone at creation; the autoscaler owns the count afterwards within the totals below.
                initial_node_count=math.ceil(min_nodes / len(args.zones)),
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    total_min_node_count=min_nodes, total_max_node_count=max_nodes,
                    # Spot capacity comes wherever a zone has it; on-demand spreads over the zones.
                    location_policy="ANY" if capacity == "spot" else "BALANCED"),
                management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
                node_config=gcp.container.NodePoolNodeConfigArgs(
                    machine_type=machine_type,
                    spot=capacity == "spot" or None,
                    image_type="COS_CONTAINERD",
                    disk_size_gb=disk_gb,
                    disk_type="pd-balanced",
                    boot_disk_kms_key=args.kms_key_id,
                    guest_accelerators=[gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=args.accelerator_type, count=args.accelerator_count,
                        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version=args.gpu_driver_version))] if gpu else None,
                    taints=[GPU_TAINT] if gpu else None,
                    labels=labels,
                    resource_labels=args.labels,
                    service_account=account.email,
                    oauth_scopes=OAUTH_SCOPES,
                    shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                        enable_secure_boot=True, enable_integrity_monitoring=True),
                    # Pods see the GKE metadata server (Workload Identity), never the node's credentials.
                    workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
                ),
                # The cluster autoscaler owns the node count after creation.
                opts=pulumi.ResourceOptions(parent=self, depends_on=grants,
                                            ignore_changes=["initialNodeCount", "nodeCount"]),
            )

        pools = [
            pool("system", args.system_machine_type, SYSTEM_DISK_GB, *SYSTEM_NODES, ON_DEMAND, gpu=False),
            pool("gpu-on-demand", args.machine_type, args.boot_disk_gb, args.on_demand_min_nodes, args.on_demand_max_nodes,
                 ON_DEMAND, gpu=True),
        ]
        if args.spot_max_nodes:
            pools.append(pool("gpu-spot", args.machine_type, args.boot_disk_gb, 0, args.spot_max_nodes, SPOT, gpu=True))
        self.gpu_node_selector = gpu_node_selector(args.gpu)
        self.preferred_node_labels = dict(PREFERRED_ON_DEMAND)
        self.node_pools = pools
        self.node_service_account_email = account.email
        self.node_pool_names = pulumi.Output.all(*[p.name for p in pools])
        self.register_outputs({"node_service_account_email": self.node_service_account_email,
                               "node_pool_names": self.node_pool_names})
