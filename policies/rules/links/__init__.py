"""Links: checks over the whole stack that read both ends of a link between parts, the way the scheduler, the
autoscalers, the serving engine, `pulumi up` and the stack's clients will read them."""

from __future__ import annotations

from typing import Any, Optional

from ...placement import EKS_CLUSTER, GKE_CLUSTER, Pool, PodSpec, pod_of, pools_of


def workloads(ctx) -> list[PodSpec]:
    """The stack's pod templates (Deployments, StatefulSets, DaemonSets), their unknown fields recorded."""
    out = []
    for r in ctx.resources:
        pod = pod_of(r)
        if pod is None:
            continue
        for path in pod.unknown:
            ctx.cannot_verify(f"{r.name}.{path}", "a request, limit or memory volume size")
        out.append(pod)
    return out


def node_pools(ctx) -> list[Pool]:
    """The stack's node pools (EKS managed node groups, GKE node pools) with the labels and taints the cloud adds."""
    pools = pools_of(ctx.resources, ctx.config.get("nodeShapes") or {})
    for pool in pools:
        for path in pool.unknown:
            ctx.cannot_verify(f"{pool.name}.{path}", "the pool's nodes")
    return pools


def cluster_of(ctx, pool: Optional[Pool] = None) -> Optional[Any]:
    """The stack's EKS or GKE cluster resource (the one the pool belongs to when the stack has several)."""
    clusters = [r for r in ctx.resources if r.type in (EKS_CLUSTER, GKE_CLUSTER)]
    if pool is not None and len(clusters) > 1:
        for c in clusters:
            if c.urn in pool.resource.dependency_urns:
                return c
    return clusters[0] if clusters else None


def named(resource: Any) -> str:
    return resource.name if resource is not None else "(none)"
