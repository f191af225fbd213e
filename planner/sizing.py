"""Sizing a stack's serving fleet from the catalog: start-up budgets, spot instance types, disks, memory fit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .catalog import Catalog
from .costmodel import BYTES_PER_PARAM, fit_on, fit_replica, planned_precision, replica_memory_gb, usable_gb

# Accelerator names per cloud service, for the GPU classes the catalog knows.
GKE_ACCELERATOR = {"T4": "nvidia-tesla-t4", "L4": "nvidia-l4", "A100-40GB": "nvidia-tesla-a100", "A100-80GB": "nvidia-a100-80gb",
                   "H100": "nvidia-h100-80gb", "H200": "nvidia-h200-141gb"}
VERTEX_ACCELERATOR = {"T4": "NVIDIA_TESLA_T4", "L4": "NVIDIA_L4", "A100-40GB": "NVIDIA_TESLA_A100", "A100-80GB": "NVIDIA_A100_80GB",
                      "H100": "NVIDIA_H100_80GB", "H200": "NVIDIA_H200_141GB"}

# SageMaker's own limits for the container health check and the model download.
SAGEMAKER_TIMEOUT_RANGE = (60, 3600)


def weights_gb(catalog: Catalog, size_class: str, precision: str) -> float:
    return catalog.models[size_class].params_billion * BYTES_PER_PARAM[precision]


@dataclass(frozen=True)
class StartupBudget:
    download_seconds: int
    load_seconds: int

    @property
    def total_seconds(self) -> int:
        return self.download_seconds + self.load_seconds


def startup_budget(catalog: Catalog, weights: float) -> StartupBudget:
    """Doubled estimates of pulling the weights and of loading and warming the engine: derived from model size."""
    s = catalog.serving
    download = math.ceil(weights * 1000 / s.weights_download_mb_s)
    load = math.ceil(weights * 1000 / s.weights_load_mb_s) + s.engine_warmup_seconds
    return StartupBudget(2 * download, 2 * load)


def clamp_sagemaker(seconds: int) -> int:
    lo, hi = SAGEMAKER_TIMEOUT_RANGE
    return max(lo, min(hi, seconds))


def same_class_instance_types(catalog: Catalog, cloud: str, instance_type: str, limit: int = 4) -> list[str]:
    """Instance types with the same GPU and GPU count, the chosen one first: spot pools across several types."""
    shapes = catalog.instance_shapes.for_cloud(cloud)
    want = shapes[instance_type]
    alike = [t for t, s in shapes.items() if s.gpu == want.gpu and s.gpu_count == want.gpu_count and t != instance_type]
    return [instance_type, *alike][:limit]


def root_volume_gb(catalog: Catalog, weights: float) -> int:
    """Room for the images and two copies of the weights (the download and the engine's cache), in 10 GB steps."""
    return int(math.ceil((catalog.serving.image_cache_gb + 2 * weights) / 10.0) * 10)


def fit_problem(catalog: Catalog, cloud: str, size_class: str, gpu: str, gpus_per_replica: int, kv_tokens: int,
                precision: Optional[str] = None, service: str = "compute") -> Optional[str]:
    """None when the model fits; otherwise what is wrong and what does fit.

    `precision` is the one the stack runs (its `precision` key); without it, the planner's choice for the GPU. `service`
    is where the replica runs: on a managed endpoint ("sagemaker", "vertex") a replica is a whole instance, so the
    suggestion names an instance type of that service rather than a replica size.
    """
    p = precision or planned_precision(catalog, gpu)
    if p == "fp8" and not catalog.gpus[gpu].supports_fp8:
        return f"{gpu} has no FP8 support, so {size_class} cannot run in fp8 there; use precision: fp16"
    if fit_replica(catalog, size_class, gpu, kv_tokens, max_gpus=gpus_per_replica, precision=p) is not None:
        return None
    weights, kv = replica_memory_gb(catalog, size_class, kv_tokens, p)
    head = (f"{size_class} in {p} needs {weights + kv:.1f} GB (weights + KV cache for {kv_tokens} tokens) but "
            f"{gpus_per_replica} x {gpu} offer {usable_gb(catalog, gpu, gpus_per_replica):.1f} GB")
    fixes = []
    if p == "fp16" and catalog.gpus[gpu].supports_fp8 and fit_on(catalog, size_class, gpu, kv_tokens, gpus_per_replica, "fp8"):
        fixes.append(f"precision: fp8 (fits on {gpus_per_replica} x {gpu})")
    fit = fit_replica(catalog, size_class, gpu, kv_tokens, precision=p)
    if fit is not None and service != "compute":
        hosts = sorted({(i.gpu_count, i.instance_type) for i in catalog.instances
                        if i.cloud == cloud and i.service == service and i.gpu == gpu and i.gpu_count >= fit.gpus_per_replica})
        if hosts:
            fixes.append(f"instanceType: {hosts[0][1]} with gpusPerReplica: {hosts[0][0]}")
    elif fit is not None:
        shapes = catalog.instance_shapes.for_cloud(cloud)
        hosts = [t for t, s in shapes.items() if s.gpu == gpu and s.gpu_count >= fit.gpus_per_replica]
        fixes.append(f"gpusPerReplica: {fit.gpus_per_replica}" + (f" on e.g. {hosts[0]}" if hosts else ""))
    if fixes:
        return f"{head}; use " + " or ".join(fixes)
    if fit is not None:
        return f"{head}; no {service} instance of {cloud} has {fit.gpus_per_replica} or more {gpu} GPUs"
    # At an explicit precision only the GPUs that run it count; otherwise each GPU at the planner's choice for it.
    fits_on = [g for g in catalog.gpus if (precision != "fp8" or catalog.gpus[g].supports_fp8)
               and fit_replica(catalog, size_class, g, kv_tokens, precision=precision) is not None]
    return f"{head} and does not fit on 8 of them; GPUs that fit: {', '.join(fits_on)}"


@dataclass(frozen=True)
class NodeCounts:
    replicas_per_node: int
    on_demand_min: int
    on_demand_max: int
    spot_max: int


def zone_spread_capacity(pool_nodes: list[int], zones: int, per_node: int) -> int:
    """The most replicas a zone spread with maxSkew 1 (DoNotSchedule) can place on these pools' maximum nodes.

    Each pool's nodes are balanced over the zones (GKE's BALANCED policy, EC2 Auto Scaling's AZ rebalancing); a
    pool's odd nodes go to the zones with the fewest so far, the best case the clouds allow. The spread then holds
    at most one replica more in any zone than in the emptiest.
    """
    per_zone = [0] * zones
    for nodes in pool_nodes:
        base, extra = divmod(nodes, zones)
        per_zone = [n + base for n in per_zone]
        for z in sorted(range(zones), key=lambda z: per_zone[z])[:extra]:
            per_zone[z] += 1
    capacity = [n * per_node for n in per_zone]
    lowest = min(capacity)
    return sum(min(c, lowest + 1) for c in capacity)


def node_counts(catalog: Catalog, cloud: str, instance_type: str, gpus_per_replica: int, min_replicas: int,
                on_demand_replicas: int, spot_replicas: int, zones: int = 1) -> NodeCounts:
    """Nodes for the replicas the decision asked for, with the floor on separate on-demand nodes.

    With `zones` > 1 the pools' maximum nodes are raised until the model server's zone spread can place every
    replica the decision allows: 16 replicas two to a node on 8 nodes over 3 zones (3, 3, 2 nodes) fit only 14,
    since a zone with 2 nodes holds 4 and the spread keeps the others within one of it. The extra node is on the
    elastic pool (spot, else on-demand); the autoscaler only starts it when a pending replica needs it.
    """
    shape = catalog.instance_shapes.for_cloud(cloud)[instance_type]
    per_node = shape.gpu_count // gpus_per_replica
    floor_nodes = max(math.ceil(min_replicas / per_node), min(min_replicas, 2))
    on_demand_max = max(floor_nodes, math.ceil(on_demand_replicas / per_node))
    spot_max = math.ceil(spot_replicas / per_node)
    max_replicas = on_demand_replicas + spot_replicas
    while zones > 1 and zone_spread_capacity([on_demand_max, spot_max], zones, per_node) < max_replicas:
        if spot_max:
            spot_max += 1
        else:
            on_demand_max += 1
    return NodeCounts(per_node, floor_nodes, on_demand_max, spot_max)


@dataclass(frozen=True)
class PodSize:
    cpu: int
    memory_gib: int
    cache_gib: int


# Share of a node's CPU and memory the serving pods may take; the rest is for the kubelet, system daemons and
# the node's page cache while weights stream in.
NODE_ALLOCATABLE_SHARE = 0.75


def pod_size(catalog: Catalog, cloud: str, instance_type: str, gpus_per_replica: int, weights: float) -> PodSize:
    """CPU and memory for one replica: its share of the node, so that every GPU on the node can be used."""
    shape = catalog.instance_shapes.for_cloud(cloud)[instance_type]
    per_node = shape.gpu_count // gpus_per_replica
    return PodSize(cpu=max(1, int(shape.vcpus * NODE_ALLOCATABLE_SHARE) // per_node),
                   memory_gib=max(8, int(shape.memory_gib * NODE_ALLOCATABLE_SHARE) // per_node),
                   cache_gib=int(math.ceil(weights * 1.1)))
