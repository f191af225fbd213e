"""The node labels that GPU node pools carry and the model server selects on: one definition for both ends.

A pod's node selector that names a label no pool carries leaves the pod Pending for ever, and nothing fails at
`pulumi up`. So the EKS node groups and the GKE node pools label their nodes with `gpu_node_labels`, hand the
matching selector out (`gpu_node_selector`), and the model server takes the selector from them instead of
rebuilding it. The value is the catalog's GPU class (`L4`, `L40S`, `H100`), the same on both clouds.
"""

from __future__ import annotations

GPU_LABEL = "llm-hosting/gpu"  # the catalog's GPU class of the node
CAPACITY_LABEL = "llm-hosting/capacity"  # on-demand | spot
POOL_LABEL = "llm-hosting/pool"  # the pool's name: system, gpu-on-demand, gpu-spot
ON_DEMAND = "on-demand"
SPOT = "spot"
CAPACITIES = (ON_DEMAND, SPOT)
# Kubernetes label values: at most 63 characters, alphanumerics with - _ . inside.
_VALUE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _check_value(field: str, value: str) -> str:
    if not value or len(value) > 63 or not set(value) <= _VALUE_CHARS or not value[0].isalnum() or not value[-1].isalnum():
        raise ValueError(f"{field}: {value!r} is not a valid Kubernetes label value (1-63 letters, digits, '-', '_', "
                         "'.', starting and ending with a letter or digit)")
    return value


def gpu_node_selector(gpu: str) -> dict[str, str]:
    """What a GPU workload selects: any node of this GPU class, on-demand or spot."""
    return {GPU_LABEL: _check_value("gpu", gpu)}


def gpu_node_labels(pool: str, gpu: str, capacity: str) -> dict[str, str]:
    """The labels of a GPU pool's nodes: a superset of `gpu_node_selector(gpu)`."""
    if capacity not in CAPACITIES:
        raise ValueError(f"capacity: {capacity!r} is not one of {', '.join(CAPACITIES)}")
    return {POOL_LABEL: _check_value("pool", pool), **gpu_node_selector(gpu), CAPACITY_LABEL: capacity}


def system_node_labels(pool: str) -> dict[str, str]:
    return {POOL_LABEL: _check_value("pool", pool)}


# Where GPU replicas should go first: the on-demand floor survives a spot reclaim.
PREFERRED_ON_DEMAND = {CAPACITY_LABEL: ON_DEMAND}
