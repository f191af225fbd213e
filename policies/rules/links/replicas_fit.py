"""LNK-002: the most replicas a workload may scale to fit in the node pools that can run it, spread as it asks."""

from __future__ import annotations

from ...placement import (DAEMONSET, HOST_KEY, HPA_TYPES, POOL_TYPES, SCALED_OBJECT, WORKLOADS, ZONE_KEY, Placement,
                          max_replicas, place, spread_capacity, untolerated)
from ...props import UNKNOWN, get
from ...rulekit import Rule, StackContext, stack_policy
from . import node_pools, workloads

RULE = Rule(
    id="LNK-002-replicas-fit",
    title="The most replicas a workload may reach fit in its node pools, spread across zones as it asks",
    area="links",
    kind="stack",
    description="A workload's maximum replicas (its HPA's or ScaledObject's maxReplicas, else spec.replicas) fit in "
                "the pools that can run it, and its DoNotSchedule topology spread is satisfiable by their zones.",
    checks="Once per stack, for each Deployment and StatefulSet that some pool can run (LNK-001): the maximum "
           "replicas, from the HorizontalPodAutoscaler or KEDA ScaledObject that targets it (else `spec.replicas`), "
           "against the sum over those pools of their maximum nodes (EKS `scalingConfig.maxSize`; GKE "
           "`autoscaling.totalMaxNodeCount`, or the per-zone maximum times the zones) times the pods one node holds "
           "(GPUs, and CPU and memory where the node's size is known; one per node under a required hostname "
           "anti-affinity). Each `whenUnsatisfiable: DoNotSchedule` spread: its topologyKey is a label those nodes "
           "carry, and for zones and hostnames the replicas fit with no domain more than maxSkew above the emptiest, in "
           "the best arrangement the clouds allow: each pool's nodes balanced over its zones (GKE node locations; an "
           "EKS node group's subnets, one per AZ here), the zones that get the odd nodes chosen freely. Zones where "
           "pods could be but nothing can hold them (standing nodes of a pool the pods select but do not fit or "
           "tolerate) count as empty domains, as the scheduler counts them by default (nodeTaintsPolicy Ignore), and "
           "minDomains above the zones caps every zone at maxSkew. A finding means no arrangement fits.",
    why="Replicas beyond what the pools can hold stay Pending exactly when the load that asked for them arrives; a "
        "spread the zones cannot satisfy does the same, silently, while the autoscaler reports the target it wanted.",
    severity="medium",
    controls=("FedRAMP CP-2(2)", "FedRAMP SC-6", "GDPR art. 32"),
    remediation="Raise the pools' maximum nodes (or pods per node) to the workload's maximum replicas, or lower "
                "maxReplicas to what the pools hold; span the pools over as many zones as the spread needs, or relax "
                "the constraint (maxSkew, minDomains, ScheduleAnyway). The finding gives the numbers on both ends.",
    applies_to=(*WORKLOADS[:2], *HPA_TYPES, SCALED_OBJECT, *POOL_TYPES),
    limits="Each workload is checked against the pools' whole capacity; workloads that share a pool are not added up. "
           "Spread constraints on other topology keys are checked for the label only.",
)


def _per_node(pl: Placement, pod) -> int:
    per = pl.fit.per_node
    anti = get(pod.spec, "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")
    for term in anti if isinstance(anti, list) else []:
        term = term if isinstance(term, dict) else {}
        match = (term.get("labelSelector") or {}).get("matchLabels") or {}
        if term.get("topologyKey") == HOST_KEY and match and all(pod.labels.get(k) == v for k, v in match.items()):
            per = min(per, 1)  # its own replicas repel each other per node
    return per


def check(ctx: StackContext) -> None:
    pods = [p for p in workloads(ctx) if p.resource.type != DAEMONSET]
    if not pods:
        ctx.not_applicable("the stack defines no Deployment or StatefulSet")
    pools = node_pools(ctx)
    if not pools:
        ctx.not_applicable("the stack creates no node pool; its pods run on nodes it does not describe")
    shapes = ctx.config.get("nodeShapes") or {}
    daemons = [p for p in workloads(ctx) if p.resource.type == DAEMONSET]
    for pod in pods:
        placements = place(pod, pools, shapes, daemons)
        admitted = [pl for pl in placements if pl.admitted is True]
        if not admitted:
            continue  # LNK-001 reports it (or could not decide)
        who = f"{pod.kind} {pod.namespace}/{pod.name}"
        most, source, how = max_replicas(pod, ctx.resources)
        src = f"{how} of {source.name}" if source is not None else how
        if most is UNKNOWN or most is None:
            ctx.cannot_verify(f"{pod.resource.name} {how}", "the most replicas it may reach")
            continue
        per_node = {pl.pool.name: _per_node(pl, pod) for pl in admitted}
        unknown_max = [pl.pool.name for pl in admitted if not isinstance(pl.pool.max_nodes, int)]
        for name in unknown_max:
            ctx.cannot_verify(f"{name} maximum nodes", "how many nodes the pool may have")
        if unknown_max:
            continue
        total = sum(pl.pool.max_nodes * per_node[pl.pool.name] for pl in admitted)
        parts = ", ".join(f"{pl.pool.name} {pl.pool.max_nodes} node(s) x {per_node[pl.pool.name]}" for pl in admitted)
        urn = pod.resource.urn
        if most > total:
            ctx.violation(f"{who} may scale to {most} replicas ({src}) but the pools that can run it hold {total} "
                          f"({parts} per node): {most - total} replica(s) would stay Pending. Fix: raise the pools' "
                          f"maximum nodes, or lower {src} to {total}.", urn)
            continue
        for i, c in enumerate(pod.spec.get("topologySpreadConstraints") or []):
            if not isinstance(c, dict) or c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
                continue
            key = c.get("topologyKey")
            missing = [pl.pool.name for pl in admitted if key not in pl.pool.labels]
            if len(missing) == len(admitted):
                ctx.violation(f"{who} spreads over {key} (topologySpreadConstraints[{i}], DoNotSchedule) but no node of "
                              f"{', '.join(missing)} carries that label, so the scheduler filters every node out. Fix: "
                              f"spread over {ZONE_KEY} or {HOST_KEY}, or label the pools' nodes with {key}.", urn)
                continue
            if key not in (ZONE_KEY, HOST_KEY):
                continue
            honor = c.get("nodeTaintsPolicy") == "Honor"
            domain_pools = [pl.pool for pl in placements if pl.labels_ok is not False
                            and not (honor and untolerated(pl.pool, pod))]
            if key == ZONE_KEY:
                cap, zones = spread_capacity(admitted, domain_pools, c, per_node)
                where = f"{len(zones)} zone(s)"
            else:
                cap, where = _host_capacity(admitted, domain_pools, c, per_node), "one domain per node"
            if most > cap:
                ctx.violation(f"{who} may scale to {most} replicas ({src}) but its spread over {key} "
                              f"(topologySpreadConstraints[{i}]: maxSkew {c.get('maxSkew', 1)}, DoNotSchedule"
                              + (f", minDomains {c['minDomains']}" if c.get("minDomains") else "")
                              + f") lets the scheduler place only {cap} on {parts} per node over {where}. Fix: span "
                              f"the pools over more zones or add nodes where the spread needs them, or relax the "
                              f"constraint (maxSkew, minDomains or ScheduleAnyway).", urn)


def _host_capacity(admitted: list[Placement], domain_pools, c, per_node) -> int:
    skew = int(c.get("maxSkew") or 1)
    standing_empty = any(isinstance(p.min_nodes, int) and p.min_nodes > 0 for p in domain_pools
                         if not any(pl.pool is p for pl in admitted))
    low = 0 if standing_empty else min(per_node.values())
    return sum(pl.pool.max_nodes * min(per_node[pl.pool.name], low + skew) for pl in admitted)


POLICY = stack_policy(RULE, check)
