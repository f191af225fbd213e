"""Where a stack's pods can run, read from its resources the way the scheduler and the cloud will see them.

Pure Python (no Pulumi import), shared by the link policies (rules/links/). A node pool is an EKS managed node group
or a GKE node pool as the program renders it, plus what the cloud adds on its own:

- EKS labels every node of a managed node group with `eks.amazonaws.com/nodegroup` and `eks.amazonaws.com/capacityType`
  (the cluster autoscaler builds its node templates from the same two, kubernetes/autoscaler
  cluster-autoscaler/cloudprovider/aws/aws_wrapper.go), the kubelet adds the well-known `kubernetes.io/os`,
  `kubernetes.io/arch`, `kubernetes.io/hostname` and `node.kubernetes.io/instance-type`, and the cloud controller
  the `topology.kubernetes.io/zone` and `.../region` of the subnet the node is in.
- GKE labels nodes with `cloud.google.com/gke-nodepool`, `cloud.google.com/machine-family`,
  `cloud.google.com/gke-accelerator` (the pool's GPU type), `cloud.google.com/gke-spot=true` on Spot pools and
  `cloud.google.com/gke-preemptible=true` on preemptible ones, and taints GPU nodes `nvidia.com/gpu=present:NoSchedule`
  (GKE "Run GPUs in Standard node pools").
- Both control planes run the ExtendedResourceToleration admission plugin (GKE; EKS since 1.19, "Amazon EKS platform
  versions"), so a pod that requests `nvidia.com/gpu` is given a toleration for the `nvidia.com/gpu` NoSchedule taint.

Sizes come from the policy config (`nodeShapes`, written by `llmhost plan` from the catalog); an instance type it does
not list has an unknown CPU and memory size, and the rules say what they could not check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import combinations, product
from typing import Any, Iterable, Mapping, Optional

from .props import UNKNOWN, get, is_unknown, pod_spec_path

EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
SUBNET = "aws:ec2/subnet:Subnet"
POOL_TYPES = (EKS_NODE_GROUP, GKE_NODE_POOL)
WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet")
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
HPA_TYPES = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
             "kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler")
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
GPU = "nvidia.com/gpu"
ZONE_KEY = "topology.kubernetes.io/zone"
HOST_KEY = "kubernetes.io/hostname"
ANY = "<any value>"  # a label every node of the pool has, with a value only the running node knows
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
GKE_ARM_FAMILIES = ("t2a", "c4a")
GKE_REGIONAL_DEFAULT_ZONES = 3  # a regional GKE cluster without node locations runs its pools in three zones


# --- quantities -------------------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40, "Pi": 2.0 ** 50, "Ei": 2.0 ** 60}
GIB = 2.0 ** 30


def quantity(value: Any) -> Optional[float]:
    """A Kubernetes quantity ("500m", "16Gi", "2", 4) as a number; None when absent or unreadable."""
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in _SUFFIX:
        return None
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def gib(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + " GiB"


def cores(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


# --- node pools -------------------------------------------------------------------------------------------------

@dataclass
class Pool:
    resource: Any  # rulekit.StackResource
    cloud: str  # aws | gcp
    instance_types: list[str]  # [] when unknown
    labels: dict[str, Any]  # label -> set of values, ANY, or UNKNOWN
    taints: list[tuple[str, str, str]]  # (key, value, effect)
    min_nodes: Any  # int or UNKNOWN
    max_nodes: Any
    zones: list[str]  # zone names; "?..." stands for a zone whose name only the cloud knows (a subnet's AZ, GKE's pick)
    gpus_per_node: dict[str, Any] = field(default_factory=dict)  # instance type -> GPUs (int) or UNKNOWN
    unknown: list[str] = field(default_factory=list)  # fields of the pool unknown at preview
    zones_from: str = ""  # how the zones were found, for messages

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def labels_known(self) -> bool:
        return not any(u.endswith("labels") for u in self.unknown)

    @property
    def taints_known(self) -> bool:
        return not any(u.endswith("taints") for u in self.unknown)

    @property
    def autoscaled(self) -> bool:
        return isinstance(self.min_nodes, int) and isinstance(self.max_nodes, int) and self.min_nodes < self.max_nodes


def _label_values(value: Any) -> Any:
    if is_unknown(value):
        return UNKNOWN
    return {str(value)}


def _subnet_zones(node_group: Any, by_urn: Mapping[str, Any]) -> tuple[list[str], str]:
    """The node group's zones: the AZ of each subnet it depends on, else one zone per subnet (one per AZ in this kit)."""
    subnets = [by_urn[u] for u in node_group.dependency_urns if u in by_urn and by_urn[u].type == SUBNET]
    ids = get(node_group.props, "subnetIds")
    zones = [get(s.props, "availabilityZone") for s in subnets]
    if subnets and all(isinstance(z, str) for z in zones) and (not isinstance(ids, list) or len(subnets) >= len(ids)):
        return sorted(set(zones)), "the availability zones of its subnets"
    if isinstance(ids, list) and ids:  # zone names unknown: the subnet stands for its zone (one subnet per AZ here)
        distinct = sorted(set(map(str, ids)))
        return [f"?{i}" for i in distinct], f"its {len(distinct)} subnets (one per availability zone)"
    return [], "its subnets (unknown at preview)"


def _gke_zones(pool: Any, clusters: list[Any]) -> tuple[list[str], str]:
    locations = get(pool.props, "nodeLocations")
    if isinstance(locations, list) and locations and all(isinstance(z, str) for z in locations):
        return sorted(set(locations)), "its nodeLocations"
    for c in clusters:
        cl = get(c.props, "nodeLocations")
        if isinstance(cl, list) and cl and all(isinstance(z, str) for z in cl):
            return sorted(set(cl)), f"the node locations of {c.name}"
    location = get(pool.props, "location")
    if isinstance(location, str) and re.match(r"^[a-z]+-[a-z]+\d+-[a-z]$", location):
        return [location], "its zone"
    region = location if isinstance(location, str) else "region"
    return [f"?{region}-{i}" for i in range(GKE_REGIONAL_DEFAULT_ZONES)], "the three zones GKE picks for a regional cluster"


def _taints(values: Any, unknown: list[str], where: str) -> list[tuple[str, str, str]]:
    out = []
    if is_unknown(values):
        unknown.append(where)
        return out
    for t in values or []:
        if not isinstance(t, Mapping):
            continue
        effect = t.get("effect")
        effect = EFFECTS.get(effect, effect) if isinstance(effect, str) else effect
        if any(is_unknown(x) for x in (t.get("key"), t.get("value"), effect)):
            unknown.append(where)
            continue
        out.append((str(t.get("key") or ""), str(t.get("value") or ""), str(effect or "")))
    return out


def _int(value: Any) -> Any:
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def eks_pool(r: Any, by_urn: Mapping[str, Any], shapes: Mapping[str, Any]) -> Pool:
    p, unknown = r.props, []
    types = get(p, "instanceTypes")
    if is_unknown(types):
        unknown.append("instanceTypes")
    types = [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
    labels: dict[str, Any] = {}
    name = get(p, "nodeGroupName")
    labels["eks.amazonaws.com/nodegroup"] = _label_values(name) if name is not None else UNKNOWN
    capacity = get(p, "capacityType")
    labels["eks.amazonaws.com/capacityType"] = _label_values(capacity if capacity is not None else "ON_DEMAND")
    labels["node.kubernetes.io/instance-type"] = set(types) if types else UNKNOWN
    labels["beta.kubernetes.io/instance-type"] = labels["node.kubernetes.io/instance-type"]
    ami = get(p, "amiType")
    ami = "AL2_x86_64" if ami is None else ami
    if is_unknown(ami) or ami == "CUSTOM":
        arch: Any = UNKNOWN
        os: Any = UNKNOWN
    else:
        arch = {"arm64" if "ARM" in ami else "amd64"}
        os = {"windows" if ami.startswith("WINDOWS") else "linux"}
    labels["kubernetes.io/arch"] = labels["beta.kubernetes.io/arch"] = arch
    labels["kubernetes.io/os"] = labels["beta.kubernetes.io/os"] = os
    labels["eks.amazonaws.com/nodegroup-image"] = {ANY}
    if get(p, "launchTemplate") is not None:
        labels["eks.amazonaws.com/sourceLaunchTemplateId"] = {ANY}
        labels["eks.amazonaws.com/sourceLaunchTemplateVersion"] = {ANY}
    zones, zones_from = _subnet_zones(r, by_urn)
    labels[ZONE_KEY] = labels["topology.kubernetes.io/region"] = {ANY}
    if zones and not any(z.startswith("?") for z in zones):
        labels[ZONE_KEY] = set(zones)
    labels[HOST_KEY] = {ANY}
    own = get(p, "labels")
    if is_unknown(own):
        unknown.append("labels")
    for k, v in (own or {}).items() if isinstance(own, Mapping) else ():
        labels[k] = _label_values(v)
    taints = _taints(get(p, "taints"), unknown, "taints")
    gpu_ami = isinstance(ami, str) and ("GPU" in ami or "NVIDIA" in ami or "NEURON" in ami)
    gpus: dict[str, Any] = {}
    for t in types:
        shape = shapes.get(t)
        gpus[t] = int(shape["gpuCount"]) if shape else (UNKNOWN if gpu_ami or is_unknown(ami) or ami == "CUSTOM" else 0)
    scaling = get(p, "scalingConfig") or {}
    return Pool(r, "aws", types, labels, taints, _int(get(scaling, "minSize")) if scaling else None,
                _int(get(scaling, "maxSize")) if scaling else None, zones, gpus, unknown, zones_from)


def gke_pool(r: Any, clusters: list[Any], shapes: Mapping[str, Any]) -> Pool:
    p, unknown = r.props, []
    nc = get(p, "nodeConfig") or {}
    machine = get(nc, "machineType") if isinstance(nc, Mapping) else None
    machine = "e2-medium" if machine is None else machine  # GKE's default machine type
    types = [machine] if isinstance(machine, str) else []
    if not types:
        unknown.append("nodeConfig.machineType")
    labels: dict[str, Any] = {}
    name = get(p, "name")
    labels["cloud.google.com/gke-nodepool"] = _label_values(name) if name is not None else UNKNOWN
    labels["node.kubernetes.io/instance-type"] = labels["beta.kubernetes.io/instance-type"] = set(types) or UNKNOWN
    family = machine.split("-", 1)[0] if isinstance(machine, str) else None
    labels["cloud.google.com/machine-family"] = {family} if family else UNKNOWN
    image = get(nc, "imageType") if isinstance(nc, Mapping) else None
    windows = isinstance(image, str) and image.upper().startswith("WINDOWS")
    labels["kubernetes.io/os"] = labels["beta.kubernetes.io/os"] = {"windows" if windows else "linux"}
    labels["kubernetes.io/arch"] = labels["beta.kubernetes.io/arch"] = {"arm64" if family in GKE_ARM_FAMILIES else "amd64"}
    if isinstance(image, str):
        labels["cloud.google.com/gke-os-distribution"] = {"ubuntu" if "UBUNTU" in image.upper() else "cos"}
    accelerators = get(nc, "guestAccelerators") if isinstance(nc, Mapping) else None
    if is_unknown(accelerators):
        unknown.append("nodeConfig.guestAccelerators")
        accelerators = None
    gpu_count = 0
    for a in accelerators or []:
        if isinstance(a, Mapping):
            if isinstance(a.get("type"), str):
                labels["cloud.google.com/gke-accelerator"] = {a["type"]}
            count = _int(a.get("count"))
            gpu_count = UNKNOWN if count is UNKNOWN or gpu_count is UNKNOWN else gpu_count + (count or 0)
    for flag, label in (("spot", "cloud.google.com/gke-spot"), ("preemptible", "cloud.google.com/gke-preemptible")):
        value = get(nc, flag) if isinstance(nc, Mapping) else None
        if value is True or value == "true":
            labels[label] = {"true"}
    zones, zones_from = _gke_zones(r, clusters)
    labels[ZONE_KEY] = set(zones) if zones and not any(z.startswith("?") for z in zones) else {ANY}
    labels["topology.kubernetes.io/region"] = {ANY}
    labels[HOST_KEY] = {ANY}
    own = get(nc, "labels") if isinstance(nc, Mapping) else None
    if is_unknown(own):
        unknown.append("nodeConfig.labels")
    for k, v in (own or {}).items() if isinstance(own, Mapping) else ():
        labels[k] = _label_values(v)
    taints = _taints(get(nc, "taints") if isinstance(nc, Mapping) else None, unknown, "nodeConfig.taints")
    shape = shapes.get(machine) if isinstance(machine, str) else None
    if not gpu_count and shape:  # accelerator-optimized machine types come with their GPUs attached
        gpu_count = int(shape["gpuCount"])
    if gpu_count:
        taints.append((GPU, "present", "NoSchedule"))
    gpus = {t: gpu_count for t in types}
    auto = get(p, "autoscaling")
    n_zones = len(zones) or 1
    if isinstance(auto, Mapping):
        lo, hi = _int(auto.get("totalMinNodeCount")), _int(auto.get("totalMaxNodeCount"))
        if lo is None and hi is None:  # per-zone limits
            lo, hi = _int(auto.get("minNodeCount")), _int(auto.get("maxNodeCount"))
            lo = lo * n_zones if isinstance(lo, int) else lo
            hi = hi * n_zones if isinstance(hi, int) else hi
        lo = 0 if lo is None else lo
    else:
        count = _int(get(p, "nodeCount"))
        count = _int(get(p, "initialNodeCount")) if count is None else count
        lo = hi = count * n_zones if isinstance(count, int) else count
    return Pool(r, "gcp", types, labels, taints, lo, hi, zones, gpus, unknown, zones_from)


def pools_of(resources: Iterable[Any], shapes: Mapping[str, Any]) -> list[Pool]:
    resources = list(resources)
    by_urn = {r.urn: r for r in resources}
    clusters = [r for r in resources if r.type == GKE_CLUSTER]
    out = []
    for r in sorted(resources, key=lambda r: r.name):  # by name: resources register in no fixed order
        if r.type == EKS_NODE_GROUP:
            out.append(eks_pool(r, by_urn, shapes))
        elif r.type == GKE_NODE_POOL:
            out.append(gke_pool(r, clusters, shapes))
    return out


# --- pods -------------------------------------------------------------------------------------------------------

@dataclass
class PodSpec:
    resource: Any
    kind: str
    name: str  # metadata.name
    namespace: str
    spec: dict
    labels: dict
    requests: dict[str, float]  # cpu (cores), memory (bytes), nvidia.com/gpu ...
    memory_volumes: float  # bytes of memory-medium emptyDirs (sizeLimit), which count against the pod's memory
    memory_volume_names: list[str]
    unknown: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> float:
        return self.requests.get(GPU, 0.0)

    @property
    def memory_need(self) -> float:
        return self.requests.get("memory", 0.0) + self.memory_volumes


def _container_requests(c: Mapping, unknown: list[str], where: str) -> dict[str, float]:
    res = c.get("resources") if isinstance(c, Mapping) else None
    if is_unknown(res):
        unknown.append(f"{where}.resources")
        return {}
    res = res or {}
    requests = res.get("requests") if isinstance(res, Mapping) else None
    limits = res.get("limits") if isinstance(res, Mapping) else None
    out: dict[str, float] = {}
    for source, what in ((limits, "limits"), (requests, "requests")):  # a limit without a request is the request
        if is_unknown(source):
            unknown.append(f"{where}.resources.{what}")
            continue
        for k, v in (source or {}).items():
            q = quantity(v)
            if q is None and v is not None:
                unknown.append(f"{where}.resources.{what}.{k}")
                continue
            if q is not None and (what == "requests" or k not in (requests or {})):
                out[k] = q
    return out


def pod_of(r: Any) -> Optional[PodSpec]:
    base = pod_spec_path(r.type)
    if base is None or r.type not in WORKLOADS:
        return None
    spec = get(r.props, base)
    if not isinstance(spec, Mapping):
        return None
    unknown: list[str] = []
    total: dict[str, float] = {}
    for i, c in enumerate(spec.get("containers") or []):
        for k, v in _container_requests(c, unknown, f"{base}.containers[{i}]").items():
            total[k] = total.get(k, 0.0) + v
    for i, c in enumerate(spec.get("initContainers") or []):  # init containers run one at a time, before the rest
        for k, v in _container_requests(c, unknown, f"{base}.initContainers[{i}]").items():
            total[k] = max(total.get(k, 0.0), v)
    mem_volumes, names = 0.0, []
    for v in spec.get("volumes") or []:
        empty = v.get("emptyDir") if isinstance(v, Mapping) else None
        if isinstance(empty, Mapping) and empty.get("medium") == "Memory":
            size = quantity(empty.get("sizeLimit"))
            if size is None:
                unknown.append(f"{base}.volumes[{v.get('name')}].emptyDir.sizeLimit")
            else:
                mem_volumes += size
                names.append(f"{v.get('name')} ({gib(size / GIB)})")
    meta_path = base.rsplit(".spec", 1)[0] + ".metadata"
    labels = get(r.props, meta_path + ".labels") or {}
    name = get(r.props, "metadata.name")
    ns = get(r.props, "metadata.namespace")
    return PodSpec(r, r.type.rsplit(":", 1)[-1], name if isinstance(name, str) else r.name,
                   ns if isinstance(ns, str) else "default", dict(spec), dict(labels) if isinstance(labels, Mapping) else {},
                   total, mem_volumes, names, unknown)


def tolerations(pod: PodSpec) -> list[Mapping]:
    out = [t for t in pod.spec.get("tolerations") or [] if isinstance(t, Mapping)]
    for resource, amount in pod.requests.items():
        if amount and "/" in resource and not resource.startswith(("kubernetes.io/", "hugepages-")):
            # ExtendedResourceToleration (GKE, EKS): a pod that requests an extended resource tolerates its taint.
            out.append({"key": resource, "operator": "Exists", "effect": "NoSchedule"})
    return out


def _tolerates(toleration: Mapping, taint: tuple[str, str, str]) -> bool:
    key, value, effect = taint
    if toleration.get("effect") not in (None, "", effect):
        return False
    op = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return op == "Exists"
    if toleration.get("key") != key:
        return False
    return op == "Exists" or str(toleration.get("value") or "") == value


def untolerated(pool: Pool, pod: PodSpec) -> list[tuple[str, str, str]]:
    tols = tolerations(pod)
    return [t for t in pool.taints if t[2] in BLOCKING_EFFECTS and not any(_tolerates(x, t) for x in tols)]


def taint_text(t: tuple[str, str, str]) -> str:
    return f"{t[0]}={t[1]}:{t[2]}" if t[1] else f"{t[0]}:{t[2]}"


def _match_requirement(labels: Mapping[str, Any], req: Mapping, complete: bool = True) -> tuple[Optional[bool], str]:
    """(matches, why not) for one node selector requirement; matches None when a value is unknown (or, when the pool's
    own labels are unknown at preview, a label it might carry)."""
    key, op, values = req.get("key"), req.get("operator"), [str(v) for v in (req.get("values") or [])]
    have = labels.get(key)
    if have is None and not complete:
        have = UNKNOWN
    if have is UNKNOWN:
        return None, f"{key} (unknown at preview)"
    present = have is not None
    shown = "no " + str(key) if not present else f"{key}=" + ("|".join(sorted(have)) if ANY not in have else "<per node>")
    if op == "Exists":
        return present, f"has {shown}"
    if op == "DoesNotExist":
        return not present, f"has {shown}"
    if not present:
        return (op == "NotIn"), f"has {shown}"
    if ANY in have:  # per-node value (hostname, an unnamed zone): some node may match
        return (None if op in ("In", "NotIn") else None), f"has {shown}"
    if op == "In":
        return bool(have & set(values)), f"has {shown}"
    if op == "NotIn":
        return not (have <= set(values)), f"has {shown}"
    if op in ("Gt", "Lt"):
        try:
            nums = [int(v) for v in have]
            bound = int(values[0])
        except (ValueError, IndexError):
            return False, f"has {shown}"
        return any(n > bound if op == "Gt" else n < bound for n in nums), f"has {shown}"
    return None, f"operator {op}"


def selector_match(pool: Pool, pod: PodSpec) -> tuple[Optional[bool], str]:
    """(admitted by labels, reason): nodeSelector and required node affinity against the pool's node labels."""
    selector = pod.spec.get("nodeSelector") or {}
    for key, value in selector.items() if isinstance(selector, Mapping) else ():
        ok, why = _match_requirement(pool.labels, {"key": key, "operator": "In", "values": [value]}, pool.labels_known)
        if ok is None:
            return None, f"nodeSelector {key}={value}: the pool's {why}"
        if not ok:
            return False, f"nodeSelector {key}={value}, but the pool {why}"
    required = get(pod.spec, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms")
    if isinstance(required, list) and required:
        reasons, undecided = [], False
        for term in required:  # terms are ORed, requirements inside a term ANDed
            exprs = (term or {}).get("matchExpressions") or []
            term_ok: Optional[bool] = True
            for req in exprs:
                ok, why = _match_requirement(pool.labels, req, pool.labels_known)
                if ok is False:
                    term_ok = False
                    reasons.append(f"{req.get('key')} {req.get('operator')} {req.get('values') or ''}: the pool {why}".rstrip())
                    break
                if ok is None:
                    term_ok = None
            if (term or {}).get("matchFields"):
                term_ok = None if term_ok else term_ok
            if term_ok is True:
                return True, ""
            undecided = undecided or term_ok is None
        if undecided:
            return None, "required node affinity (a label value only known per node)"
        return False, "required node affinity " + "; ".join(reasons)
    return True, ""


# --- shapes and fit ---------------------------------------------------------------------------------------------

@dataclass
class Fit:
    per_node: Any  # int pods per node, UNKNOWN, or 0 when it does not fit
    reason: str = ""  # why it does not fit (per_node 0), or what could not be checked
    checked_cpu_memory: bool = True
    missing_fact: bool = False  # undecided because the policy config has no shape for the instance type
    fix: str = ""  # what would make it fit, when it is not the requests or the instance type


def daemon_overhead(pool: Pool, daemons: list[PodSpec]) -> tuple[float, float]:
    """CPU and memory that the stack's DaemonSets take on each node of `pool`."""
    cpu = mem = 0.0
    for d in daemons:
        if selector_match(pool, d)[0] is not False and not untolerated(pool, d):
            cpu += d.requests.get("cpu", 0.0)
            mem += d.memory_need
    return cpu, mem


def fit(pool: Pool, pod: PodSpec, shapes: Mapping[str, Any], daemons: list[PodSpec]) -> Fit:
    """How many of the pod fit on one node of the pool: the fewest over the instance types the pool may launch.

    GPUs are checked whenever the pool's GPU count is known. CPU and memory (requests plus memory-medium emptyDirs,
    less the stack's DaemonSets on the pool) are checked against the allocatable sizes in the policy config; for an
    instance type it does not list (the catalog lists GPU machines only) a pod that fits by GPUs counts as one per
    node, and `checked_cpu_memory` is False.
    """
    if not pool.instance_types:
        return Fit(UNKNOWN, "its instance types are unknown at preview")
    d_cpu, d_mem = daemon_overhead(pool, [d for d in daemons if d.resource is not pod.resource])
    per_nodes: list[Any] = []
    checked = True
    for t in pool.instance_types:
        gpus = pool.gpus_per_node.get(t, UNKNOWN)
        counts: list[int] = []
        if pod.gpus:
            if gpus is UNKNOWN:
                per_nodes.append(UNKNOWN)
                continue
            if pod.gpus > gpus:
                return Fit(0, f"requests {cores(pod.gpus)} {GPU} but {t} has {gpus}")
            counts.append(int(gpus // pod.gpus))
        shape = shapes.get(t) or {}
        cpu, mem = shape.get("allocatableCpu"), shape.get("allocatableMemoryGib")
        if cpu is None or mem is None:
            checked = False
            per_nodes.append(min(counts) if counts else 1)
            continue
        cpu_free, mem_free = cpu - d_cpu, mem * GIB - d_mem
        want_cpu, want_mem = pod.requests.get("cpu", 0.0), pod.memory_need
        if want_cpu > cpu_free or want_mem > mem_free:
            parts = []
            if want_cpu > cpu_free:
                parts.append(f"{cores(want_cpu)} CPU of the {cores(cpu_free)} allocatable")
            if want_mem > mem_free:
                extra = (f" ({gib(pod.requests.get('memory', 0.0) / GIB)} requested + "
                         f"{', '.join(pod.memory_volume_names)} in memory)") if pod.memory_volumes else ""
                parts.append(f"{gib(want_mem / GIB)} of memory{extra} of the {gib(mem_free / GIB)} allocatable")
            return Fit(0, f"needs {' and '.join(parts)} on {t}")
        if want_cpu:
            counts.append(int(cpu_free // want_cpu))
        if want_mem:
            counts.append(int(mem_free // want_mem))
        per_nodes.append(max(1, min(counts)) if counts else 1)
    if any(n is UNKNOWN for n in per_nodes):
        return Fit(UNKNOWN, "the GPUs of its instance type", missing_fact=True)
    return Fit(min(per_nodes), "", checked)


@dataclass
class Placement:
    pool: Pool
    labels_ok: Optional[bool]
    labels_why: str
    taints: list[tuple[str, str, str]]
    fit: Optional[Fit]

    @property
    def admitted(self) -> Optional[bool]:
        if self.labels_ok is False or self.taints:
            return False
        if self.fit is not None and self.fit.per_node == 0:
            return False
        if self.labels_ok is None or not self.pool.taints_known or \
                (self.fit is not None and self.fit.per_node is UNKNOWN):
            return None
        return True

    def why_not(self) -> str:
        if self.labels_ok is False:
            return self.labels_why
        if self.taints:
            return "taint " + ", ".join(taint_text(t) for t in self.taints) + " is not tolerated"
        if self.fit is not None and self.fit.per_node == 0:
            return self.fit.reason
        return ""


def place(pod: PodSpec, pools: list[Pool], shapes: Mapping[str, Any], daemons: list[PodSpec]) -> list[Placement]:
    out = []
    for pool in pools:
        ok, why = selector_match(pool, pod)
        bad_taints = untolerated(pool, pod)
        f = fit(pool, pod, shapes, daemons) if ok is not False and not bad_taints else None
        out.append(Placement(pool, ok, why, bad_taints, f))
    return out


# --- replicas ---------------------------------------------------------------------------------------------------

def max_replicas(pod: PodSpec, resources: Iterable[Any]) -> tuple[Any, Optional[Any], str]:
    """(maximum replicas, the resource that sets it, how) : an HPA's or KEDA ScaledObject's maximum, else spec.replicas."""
    for r in resources:
        if r.type in HPA_TYPES or r.type == SCALED_OBJECT:
            ref = get(r.props, "spec.scaleTargetRef") or {}
            ns = get(r.props, "metadata.namespace") or "default"
            kind = ref.get("kind") or ("Deployment" if r.type == SCALED_OBJECT else None)
            if ref.get("name") == pod.name and kind == pod.kind and ns == pod.namespace:
                if r.type == SCALED_OBJECT:
                    value = get(r.props, "spec.maxReplicaCount")
                    return (100 if value is None else _int(value)), r, "maxReplicaCount"
                return _int(get(r.props, "spec.maxReplicas")), r, "maxReplicas"
    replicas = get(pod.resource.props, "spec.replicas")
    return (1 if replicas is None else _int(replicas)), None, "spec.replicas"


def spread_capacity(placements: list[Placement], domain_pools: list[Pool], constraint: Mapping,
                    per_node: Mapping[str, int]) -> tuple[int, list[str]]:
    """(the most replicas a zone spread constraint lets the scheduler place, the zones that are its domains).

    Each admitting pool's maximum nodes sit in its zones the way its cloud balances them (GKE's BALANCED location
    policy, EC2 Auto Scaling's AZ rebalancing): floor or ceil of nodes / zones in each, `per_node` pods per node. Which
    zones get the extra node is the cloud's choice, so every choice is tried and the best counts: a finding means no
    arrangement fits. The domains are the zones with nodes; a zone that has standing nodes of a pool the pod selects
    but cannot use (`domain_pools`: the scheduler ignores taints here unless nodeTaintsPolicy is Honor) holds the
    minimum at 0, so each zone then holds at most maxSkew. minDomains above the domains does the same.
    """
    skew = _int(constraint.get("maxSkew")) or 1
    min_domains = _int(constraint.get("minDomains"))
    pools = [pl.pool for pl in placements]
    choices = []
    for pool in pools:
        zones = pool.zones or [f"?{pool.name}"]
        nodes = pool.max_nodes if isinstance(pool.max_nodes, int) else 0
        choices.append([(zones, nodes // len(zones), extra) for extra in combinations(zones, nodes % len(zones))])
    best: tuple[int, list[str]] = (0, [])
    for arrangement in product(*choices):
        capacity: dict[str, float] = {}
        for pool, (zones, base, extra) in zip(pools, arrangement):
            for z in zones:
                capacity[z] = capacity.get(z, 0) + (base + (1 if z in extra else 0)) * per_node[pool.name]
        domains = {z for z, c in capacity.items() if c > 0}
        if not domains:
            continue
        standing_empty = False
        for pool in domain_pools:
            if any(pool is p for p in pools) or not isinstance(pool.min_nodes, int) or pool.min_nodes <= 0:
                continue
            zones = pool.zones or [f"?{pool.name}"]
            # Its standing nodes sit in min(min, zones) of its zones; at best in zones that are domains already.
            if min(pool.min_nodes, len(zones)) > len([z for z in zones if z in domains]):
                standing_empty = True
        low = 0 if standing_empty else min(capacity[z] for z in domains)
        total = sum(min(capacity[z], low + skew) for z in domains)
        if isinstance(min_domains, int) and min_domains > len(domains):
            total = min(total, skew * len(domains))  # fewer domains than minDomains: the global minimum counts as 0
        if total > best[0]:
            best = (int(total), sorted(domains))
    return best


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b)) if b else 0
