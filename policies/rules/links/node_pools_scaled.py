"""LNK-003: a node pool whose minimum is below its maximum has something in the stack that scales it."""

from __future__ import annotations

import re

from ...placement import EKS_NODE_GROUP, GKE_NODE_POOL, WORKLOADS
from ...props import get
from ...rulekit import Rule, StackContext, stack_policy
from . import cluster_of, named, node_pools

HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")
EKS_ADDON = "aws:eks/addon:Addon"
SCALERS = re.compile(r"(^|[/_-])(cluster-autoscaler|karpenter)([:@/_-]|$)")

RULE = Rule(
    id="LNK-003-node-pools-scaled",
    title="Every node pool that may grow has an autoscaler that grows it",
    area="links",
    kind="stack",
    description="A node pool with minimum below maximum is scaled by something: GKE's cluster autoscaler for pools "
                "with autoscaling, a cluster-autoscaler or Karpenter in the stack for EKS.",
    checks="Once per stack, for each EKS managed node group and GKE node pool whose minimum nodes are below its "
           "maximum: a GKE pool's `autoscaling` block is acted on by GKE's own cluster autoscaler; an EKS managed node "
           "group is not scaled by EKS, so the stack must run cluster-autoscaler or Karpenter: a Deployment or "
           "StatefulSet whose image is one of them, or a Helm release or chart of either.",
    why="Without an autoscaler the group stays at its desired size: the capacity between minimum and maximum that the "
        "plan paid for in headroom (spot burst, scale-out) never comes, and pods beyond the floor stay Pending.",
    severity="medium",
    controls=("FedRAMP CP-2(2)", "FedRAMP SC-6"),
    remediation="Install cluster-autoscaler (auto-discovery of the cluster's node groups, IAM through Pod Identity) "
                "or Karpenter in the cluster, or set the group's minimum equal to its maximum.",
    applies_to=(EKS_NODE_GROUP, GKE_NODE_POOL, *WORKLOADS[:2], *HELM),
    level="mandatory",
    limits="It does not check the autoscaler's own configuration (which node groups it discovers, its IAM "
           "permissions); Karpenter provisions its own nodes rather than scaling managed node groups, and is "
           "accepted as the stack's autoscaler.",
)


def _scaler(ctx: StackContext):
    for r in ctx.resources:
        if r.type in WORKLOADS[:2]:
            spec = get(r.props, "spec.template.spec.containers") or []
            if any(isinstance(c, dict) and isinstance(c.get("image"), str) and SCALERS.search(c["image"].rsplit("/", 1)[-1])
                   for c in spec):
                return r
        elif r.type in HELM:
            names = [get(r.props, k) for k in ("chart", "name")]
            if any(isinstance(n, str) and SCALERS.search(n.rsplit("/", 1)[-1]) for n in names):
                return r
        elif r.type == EKS_ADDON and isinstance(get(r.props, "addonName"), str) and \
                SCALERS.search(get(r.props, "addonName")):
            return r
    return None


def check(ctx: StackContext) -> None:
    pools = node_pools(ctx)
    if not pools:
        ctx.not_applicable("the stack creates no node pool")
    for pool in pools:
        if not isinstance(pool.min_nodes, int) or not isinstance(pool.max_nodes, int):
            ctx.cannot_verify(f"{pool.name} minimum and maximum nodes", "whether the pool may grow")
    growing = [p for p in pools if p.autoscaled]
    if not growing:
        ctx.not_applicable("no node pool has a minimum below its maximum")
    scaler = _scaler(ctx)
    for pool in growing:
        if pool.resource.type == GKE_NODE_POOL or scaler is not None:
            continue
        cluster = cluster_of(ctx, pool)
        desired = get(pool.resource.props, "scalingConfig.desiredSize")
        ctx.violation(f"minSize {pool.min_nodes} is below maxSize {pool.max_nodes}, but nothing in the stack scales it: "
                      f"EKS does not resize managed node groups itself and {named(cluster)} runs no cluster-autoscaler "
                      f"or Karpenter, so the group stays at its desired size ({desired}) and the other nodes up to "
                      f"{pool.max_nodes} never come. Fix: deploy cluster-autoscaler (or Karpenter) in "
                      f"{named(cluster)}, or set minSize = maxSize.", pool.resource.urn)


POLICY = stack_policy(RULE, check)
