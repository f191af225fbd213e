"""LNK-001: every pod template of the stack can be placed on at least one of its node pools."""

from __future__ import annotations

from ...placement import DAEMONSET, EKS_NODE_GROUP, GPU, POOL_TYPES, WORKLOADS, Placement, cores, gib, place
from ...props import get
from ...rulekit import Rule, StackContext, stack_policy
from . import node_pools, workloads

DEVICE_PLUGIN_IMAGES = ("k8s-device-plugin", "nvidia-device-plugin", "gpu-operator")

RULE = Rule(
    id="LNK-001-pods-schedulable",
    title="Every pod can be placed on a node pool of the stack",
    area="links",
    kind="stack",
    description="Each Deployment, StatefulSet and DaemonSet has a node pool whose labels its selectors match, whose "
                "taints it tolerates and whose nodes hold its requests.",
    checks="Once per stack, like the scheduler: each pod template's `nodeSelector` and required node affinity against "
           "the labels of every EKS managed node group and GKE node pool as rendered plus those the cloud adds "
           "(EKS: `eks.amazonaws.com/nodegroup`, `eks.amazonaws.com/capacityType`; GKE: "
           "`cloud.google.com/gke-nodepool`, `cloud.google.com/gke-accelerator`, `cloud.google.com/gke-spot`, "
           "`cloud.google.com/machine-family`; both: `node.kubernetes.io/instance-type`, `kubernetes.io/os`, "
           "`kubernetes.io/arch`, `topology.kubernetes.io/zone`); its tolerations against the pool's taints (EKS "
           "`NO_SCHEDULE` is `NoSchedule`; GKE adds `nvidia.com/gpu=present:NoSchedule` to GPU pools; a pod that "
           "requests `nvidia.com/gpu` tolerates that taint through the ExtendedResourceToleration admission plugin "
           "both clouds run); and its requests (`nvidia.com/gpu`, CPU, memory plus memory-medium emptyDirs such as "
           "/dev/shm, which are charged to the pod's memory) against one node of every instance type the pool may "
           "launch, less the stack's DaemonSets on that pool. Allocatable CPU and memory are the catalog's instance "
           "shape less the cloud's system reserve, as `llmhost plan` writes them to `nodeShapes`: CPU 6% of the first "
           "core, 1% of the second, 0.5% of the next two and 0.25% of the rest (GKE and the EKS AMIs use the same "
           "table); memory on GKE 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112 and "
           "2% above 128 GiB, on EKS 255 MiB + 11 MiB per pod at 110 pods; plus the kubelet's 100 MiB eviction "
           "threshold. GPU pods on an EKS pool also need an NVIDIA device plugin DaemonSet that runs on that pool "
           "(the EKS GPU AMIs do not advertise GPUs without one; Bottlerocket's NVIDIA variants do).",
    why="A pod that no pool can take stays Pending for ever: `pulumi up` waits out its timeout, the endpoint never "
        "comes up, and nothing failed at plan time to say why.",
    severity="high",
    controls=("FedRAMP SC-6", "FedRAMP CP-2(2)", "GDPR art. 32"),
    remediation="Take the pod's node selector from the component that labels the pool (never retype a label), add "
                "a toleration for each taint of the pool meant to run it, and size requests to the node's allocatable "
                "CPU and memory (or choose a larger instance type). The finding names the pods and each pool with the "
                "reason it refuses them.",
    applies_to=(*WORKLOADS, *POOL_TYPES),
    limits="Pools of an instance type the policy config's `nodeShapes` does not list (the catalog lists GPU machines "
           "only, so the system pools) are checked for labels, taints and GPUs, not CPU and memory. DaemonSets the "
           "cloud installs itself (kube-proxy, CNI, CSI and logging agents) are not in the program; their requests "
           "come out of the headroom above the pods' requests. Karpenter NodePools, Fargate profiles and GKE "
           "Autopilot are not modelled. A stack with several clusters is checked as if every pool could run every "
           "pod.",
)


def _device_plugin_on(pool, daemons) -> bool:
    ami = get(pool.resource.props, "amiType")
    if isinstance(ami, str) and ami.startswith("BOTTLEROCKET") and "NVIDIA" in ami:
        return True
    for d in daemons:
        images = [c.get("image") for c in d.spec.get("containers") or [] if isinstance(c, dict)]
        if any(isinstance(i, str) and any(n in i for n in DEVICE_PLUGIN_IMAGES) for i in images):
            if not place(d, [pool], {}, [])[0].why_not():
                return True
    return False


def _fix(placements: list[Placement]) -> str:
    fixes = []
    if any(pl.labels_ok is False for pl in placements):
        fixes.append("make the selector and the pool's node labels the same value, taken from the one place that "
                     "defines it")
    if any(pl.taints for pl in placements):
        fixes.append("add a toleration for the pool's taint")
    for pl in placements:
        if pl.fit is not None and pl.fit.per_node == 0:
            fix = pl.fit.fix or "lower the requests to fit the node's allocatable size or use a larger instance type"
            if fix not in fixes:
                fixes.append(fix)
    return "; ".join(fixes) or "add a node pool that can run it"


def check(ctx: StackContext) -> None:
    pods = workloads(ctx)
    if not pods:
        ctx.not_applicable("the stack defines no Deployment, StatefulSet or DaemonSet")
    pools = node_pools(ctx)
    if not pools:
        ctx.not_applicable("the stack creates no node pool; its pods run on nodes it does not describe")
    shapes = ctx.config.get("nodeShapes") or {}
    daemons = [p for p in pods if p.resource.type == DAEMONSET]
    for pod in pods:
        placements = place(pod, pools, shapes, daemons)
        if pod.gpus:
            for pl in placements:
                if pl.pool.resource.type == EKS_NODE_GROUP and pl.admitted and not _device_plugin_on(pl.pool, daemons):
                    pl.fit.per_node = 0
                    pl.fit.reason = f"no NVIDIA device plugin DaemonSet runs on it, so its nodes advertise no {GPU}"
                    pl.fit.fix = ("deploy the NVIDIA device plugin as a DaemonSet that selects the GPU pools' nodes and "
                                  "tolerates their taints")
        who = f"{pod.kind} {pod.namespace}/{pod.name}"
        if pod.resource.type == DAEMONSET:
            targeted = [pl for pl in placements if pl.labels_ok is not False and not pl.taints]
            if not targeted and not any(pl.labels_ok is None for pl in placements):
                reasons = "; ".join(f"{pl.pool.name}: {pl.why_not()}" for pl in placements)
                ctx.violation(f"{who} runs on no node: {reasons}. Fix: {_fix(placements)}.", pod.resource.urn)
            for pl in targeted:
                if pl.fit is not None and pl.fit.per_node == 0:
                    ctx.violation(f"{who} cannot run on the nodes of {pl.pool.name} it targets: {pl.fit.reason}. "
                                  f"Fix: {_fix([pl])}.", pod.resource.urn)
            continue
        if any(pl.admitted is True for pl in placements):
            continue
        undecided = [pl for pl in placements if pl.admitted is None]
        if undecided:
            for pl in undecided:
                if pl.fit is not None and pl.fit.missing_fact:
                    ctx.unplanned(f"{pod.resource.name} on {pl.pool.name}", pl.fit.reason)
                else:
                    what = pl.labels_why if pl.labels_ok is None else (pl.fit.reason if pl.fit else "the pool's nodes")
                    ctx.cannot_verify(f"{pod.resource.name} on {pl.pool.name}", what)
            continue
        need = [f"{cores(pod.gpus)} {GPU}"] if pod.gpus else []
        need += [f"{cores(pod.requests['cpu'])} CPU"] if pod.requests.get("cpu") else []
        need += [f"{gib(pod.memory_need / 2 ** 30)} memory"] if pod.memory_need else []
        selector = pod.spec.get("nodeSelector") or {}
        asks = ", ".join(f"{k}={v}" for k, v in selector.items()) if isinstance(selector, dict) else ""
        head = f"{who} (selects {asks or 'any node'}; needs {', '.join(need) or 'no resources'}) fits no node pool"
        reasons = "; ".join(f"{pl.pool.name}: {pl.why_not()}" for pl in placements)
        ctx.violation(f"{head}: {reasons}. Its pods stay Pending. Fix: {_fix(placements)}.", pod.resource.urn)


POLICY = stack_policy(RULE, check)

