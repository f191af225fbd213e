"""Reading resource properties the way the rules need them: plain data, unknowns kept visible, regions parsed.

Pure Python (no Pulumi import). The engine hands a policy its props wrapped in pulumi_policy's proxies, which raise
on the first unknown value; `plain` unwraps them and keeps each unknown as the `UNKNOWN` marker, so a rule can
check every known field and still say exactly which field it could not verify.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Iterator, Optional

# pulumi_policy.proxy's sentinels for values not known during preview (the same strings the engine sends).
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})
SECRET_MASK = "[secret]"  # how the offline preview shows a secret value


class _Unknown:
    """A value Pulumi cannot know before `pulumi up` (an output of a resource not yet created).

    Truthy on purpose: a check that forgets to test for it passes the field, and `ResourceContext.get` has
    already recorded it as "cannot verify", so it is reported, never silently passed nor falsely failed.
    """

    _instance: Optional["_Unknown"] = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in UNKNOWN_SENTINELS)


def plain(value: Any) -> Any:
    """Plain dicts/lists from pulumi_policy proxies (and Secret wrappers), with unknown sentinels as `UNKNOWN`."""
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if type(value).__name__ == "Secret" and hasattr(value, "value"):  # pulumi_policy.Secret
        return plain(value.value)
    if isinstance(value, Mapping):  # _DictProxy / _DictSecretsProxy: their "__target" is the wrapped dict
        try:
            return plain(value["__target"])
        except (KeyError, TypeError):
            return {k: plain(value[k]) for k in value}
    if isinstance(value, Sequence):  # _ListProxy / _ListSecretsProxy
        try:
            return plain(value["__target"])  # type: ignore[index]
        except (KeyError, TypeError, IndexError):
            return [plain(v) for v in value]
    return value


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def get(data: Any, path: str) -> Any:
    """The value at `path` ("a.b[0].c"): None when absent, UNKNOWN when it (or a parent) is unknown."""
    current = data
    for key, index in _STEP.findall(path):
        if is_unknown(current):
            return UNKNOWN
        if index:
            if not isinstance(current, list) or int(index) >= len(current):
                return None
            current = current[int(index)]
        else:
            if not isinstance(current, Mapping):
                return None
            current = current.get(key)
        if current is None:
            return None
    return UNKNOWN if is_unknown(current) else current


def items(data: Any, path: str) -> list[tuple[str, Any]]:
    """(path, element) for each element of the list at `path` (none if absent or unknown)."""
    value = get(data, path)
    if not isinstance(value, list):
        return []
    return [(f"{path}[{i}]", v) for i, v in enumerate(value)]


def leaves(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar in `data` with its path, depth first, in order."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, data


def truthy(value: Any) -> Optional[bool]:
    """True/False for booleans and the strings providers accept for them ("true", "false"); None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


# --- regions ----------------------------------------------------------------------------------------------------

AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
AWS_ZONE = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d+)(?:[a-z]|-[a-z]+-\d+[a-z])$")  # AZ or Local Zone
GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
GCP_ZONE = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")
ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]*):")
GCP_PATH = re.compile(r"/(?:locations|regions|zones)/([a-z0-9-]+)(?:/|$)")
AWS_SERVICE_NAME = re.compile(r"^(?:com\.amazonaws|aws\.sagemaker)\.([a-z]{2}(?:-gov)?-[a-z]+-\d+)\.")
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:/|$)")
ARTIFACT_REGISTRY_HOST = re.compile(r"^([a-z0-9-]+)-docker\.pkg\.dev(?:/|$)")


def region_of_location(value: str) -> tuple[str, str]:
    """(region, kind) for a region, zone or multi-region name; kind is region, zone or location."""
    for zone in (AWS_ZONE, GCP_ZONE):
        m = zone.match(value)
        if m:
            return m.group(1), "zone"
    if AWS_REGION.match(value) or GCP_REGION.match(value):
        return value, "region"
    return value, "location"  # a multi-region ("eu", "us", "europe", "global") or something else entirely


def region_of_reference(value: str) -> Optional[str]:
    """The region an ARN, a GCP resource path or an AWS service name points into (None if it names none)."""
    m = ARN.match(value)
    if m:
        return m.group(1) or None
    if value.startswith(("projects/", "https://www.googleapis.com/", "//")):
        found = GCP_PATH.findall(value)
        if found:
            return region_of_location(found[-1])[0] if found[-1] != "global" else "global"
        return None
    m = AWS_SERVICE_NAME.match(value)
    return m.group(1) if m else None


# --- Kubernetes workloads ---------------------------------------------------------------------------------------

POD_SPEC_PATH = {
    "Deployment": "spec.template.spec", "StatefulSet": "spec.template.spec", "DaemonSet": "spec.template.spec",
    "ReplicaSet": "spec.template.spec", "ReplicationController": "spec.template.spec", "Job": "spec.template.spec",
    "CronJob": "spec.jobTemplate.spec.template.spec", "Pod": "spec", "PodTemplate": "template.spec",
}
WORKLOAD_META_PATH = {kind: path.rsplit(".spec", 1)[0] + ".metadata" if path != "spec" else "metadata"
                      for kind, path in POD_SPEC_PATH.items()}


def k8s_kind(resource_type: str) -> Optional[str]:
    """`Deployment` for kubernetes:apps/v1:Deployment; None for non-Kubernetes types."""
    if not resource_type.startswith("kubernetes:"):
        return None
    return resource_type.rsplit(":", 1)[-1]


def pod_spec_path(resource_type: str) -> Optional[str]:
    kind = k8s_kind(resource_type)
    return POD_SPEC_PATH.get(kind) if kind else None


def containers(resource_type: str, props: Any) -> list[tuple[str, Any]]:
    """(path, container) for every container, init container and ephemeral container of a workload."""
    base = pod_spec_path(resource_type)
    if base is None:
        return []
    out = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        out += items(props, f"{base}.{field}")
    return out


def pod_labels(resource_type: str, props: Any) -> dict[str, Any]:
    """The workload's own labels and its pod template's labels, merged."""
    kind = k8s_kind(resource_type)
    labels: dict[str, Any] = {}
    own = get(props, "metadata.labels")
    if isinstance(own, Mapping):
        labels.update(own)
    if kind in WORKLOAD_META_PATH and WORKLOAD_META_PATH[kind] != "metadata":
        tmpl = get(props, WORKLOAD_META_PATH[kind] + ".labels")
        if isinstance(tmpl, Mapping):
            labels.update(tmpl)
    return labels


def env_pairs(env: Any) -> list[tuple[int, Any, Any, Any]]:
    """(index, name, value, valueFrom) for a Kubernetes/Vertex style env list ([{name, value}, ...])."""
    if not isinstance(env, list):
        return []
    out = []
    for i, e in enumerate(env):
        if isinstance(e, Mapping):
            out.append((i, e.get("name"), e.get("value"), e.get("valueFrom")))
    return out


def image_name(image: str) -> str:
    """The repository's last path segment without tag or digest: `vllm-openai` for docker.io/vllm/vllm-openai:v1."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def host_of_url(url: str) -> Optional[str]:
    m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#\s]+)", url.strip(), re.I)
    return m.group(1).lower() if m else None


def host_matches(host: str, suffixes: Sequence[str]) -> Optional[str]:
    for s in suffixes:
        if host == s or host.endswith("." + s):
            return s
    return None
