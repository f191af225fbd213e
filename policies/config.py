"""The pack's configuration: one JSON-schema-like entry per policy, the facts -> config mapping, and its check.

Pure Python (no Pulumi import), so `llmhost plan` can write `stacks/<stack>.policy-config.json` and reject a bad
one without the SDK, and the pack itself can declare the same schemas through `PolicyConfigSchema`.

The file the CLI takes with `pulumi preview --policy-pack policies --policy-pack-config FILE` looks like:

    {"all": "mandatory",
     "RES-001-region-allowlist": {"allowedRegions": ["eu-central-1"]},
     "AIR-003-private-registry-images": {"network": "airgapped", "registry": "1234...amazonaws.com/llm-mirror"},
     ...}

The Pulumi engine validates each policy's entry against its schema (type, enum, items, required), but it lets an
unknown key or an unknown policy name through silently. `validate_config` is stricter: it is what `llmhost` runs
before using a file, and every rule of the pack runs it on its own entry, so a typo fails the run instead of
switching a check off.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable, Mapping, Optional

CLASSIFICATIONS = ("public", "internal", "confidential", "regulated")
BOUNDARY_CLASSIFICATIONS = ("confidential", "regulated")  # the data a "boundary" is drawn around
NETWORKS = ("public", "private", "airgapped")
ENFORCEMENT_LEVELS = ("advisory", "mandatory", "remediate", "disabled")
LEVEL_KEY = "enforcementLevel"  # reserved by the engine in every policy's entry

# Third-party LLM APIs (host suffixes). The first six are the providers of planner/catalog.yaml; the rest are the
# other common OpenAI-compatible APIs a hand-written program may route to.
DEFAULT_API_HOSTS = (
    "openai.com", "anthropic.com", "generativelanguage.googleapis.com", "together.xyz", "together.ai",
    "fireworks.ai", "groq.com", "mistral.ai", "cohere.com", "cohere.ai", "deepinfra.com", "openrouter.ai",
    "perplexity.ai", "deepseek.com", "x.ai",
)
# The host suffix each provider name of the kit (StackConfig.api.provider) is reached at.
PROVIDER_HOSTS = {
    "openai": ("openai.com",), "anthropic": ("anthropic.com",), "google": ("generativelanguage.googleapis.com",),
    "together": ("together.xyz", "together.ai"), "fireworks": ("fireworks.ai",), "groq": ("groq.com",),
    "mistral": ("mistral.ai",), "cohere": ("cohere.com", "cohere.ai"), "deepinfra": ("deepinfra.com",),
    "openrouter": ("openrouter.ai",), "perplexity": ("perplexity.ai",), "deepseek": ("deepseek.com",), "xai": ("x.ai",),
}

_REGION = {"type": "string", "pattern": r"^[a-z][a-z0-9-]*[a-z0-9]$"}
_HOST = {"type": "string", "pattern": r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"}

ALLOWED_REGIONS = {
    "type": "array", "items": _REGION, "minItems": 1,
    "description": "Regions where resources, replicas, keys and providers may be (the stack's residency.allowedRegions).",
}
CLASSIFICATION = {
    "type": "string", "enum": list(CLASSIFICATIONS),
    "description": "Data classification of the stack; boundary policies apply to confidential and regulated.",
}
NETWORK = {
    "type": "string", "enum": list(NETWORKS),
    "description": "Network variant of the stack; air-gap policies apply to airgapped.",
}
ENDPOINT_AUDIENCE = {
    "type": "string", "enum": ["vpc", "internet"], "default": "vpc",
    "description": "Where the stack's consumers call its endpoint from: `vpc` (applications in the stack's network, "
                   "whatever its variant) or `internet` (an internet-facing endpoint under the team's own domain).",
}
REGISTRY = {
    "type": "string", "pattern": r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9][a-z0-9._/-]*)?$",
    "description": "In-region private registry (and path prefix) every image must come from; required when airgapped.",
}
API_HOSTS = {
    "type": "array", "items": _HOST, "default": list(DEFAULT_API_HOSTS),
    "description": "Host suffixes of third-party LLM APIs.",
}
SANCTIONED_API_HOSTS = {
    "type": "array", "items": _HOST, "default": [],
    "description": "API hosts the stack's plan sanctions for non-boundary traffic (only a tiered-by-sensitivity hybrid has one).",
}
MAX_ROTATION_DAYS = {
    "type": "integer", "minimum": 1, "maximum": 365, "default": 365,
    "description": "Longest automatic key-rotation period allowed, in days.",
}
MIN_DELETION_WINDOW_DAYS = {
    "type": "integer", "minimum": 7, "maximum": 120, "default": 30,
    "description": "Shortest key deletion window (AWS) or destroy-scheduled duration (GCP) allowed, in days "
                   "(AWS allows at most 30, so an AWS key is held to min(this, 30)).",
}


# --- facts the link policies read (written by `llmhost plan` from the catalog; the pack has no planner) --------------

_COUNT = {"type": "integer", "minimum": 1}
_POSITIVE = {"type": "number", "minimum": 0}
NODE_SHAPE = {
    "type": "object", "additionalProperties": False, "required": ["gpu", "gpuCount", "gpuMemoryGb"],
    "properties": {
        "gpu": {"type": "string", "description": "the catalog's GPU class"},
        "gpuCount": _COUNT,
        "gpuMemoryGb": {"type": "number", "minimum": 1, "description": "memory of one GPU, GB (10^9 bytes)"},
        "fp8": {"type": "boolean", "description": "the GPU has FP8 tensor cores (runs 8-bit weights and KV cache)"},
        "accelerator": {"type": "string", "description": "the GPU's name on this service (GKE/Vertex accelerator type)"},
        "vcpus": _COUNT,
        "memoryGib": _POSITIVE,
        "allocatableCpu": {**_POSITIVE, "description": "vCPUs left for pods after the system reserve"},
        "allocatableMemoryGib": {**_POSITIVE, "description": "GiB left for pods after the system reserve and the "
                                                            "kubelet's eviction threshold"},
    },
}
NODE_SHAPES = {
    "type": "object", "additionalProperties": NODE_SHAPE,
    "description": "Per instance or machine type the stack runs (llmhost plan, from the catalog's instance shapes and "
                   "GPUs): GPU class, count and memory, and for cluster nodes the CPU and memory left for pods.",
}
MODEL_FACT = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "paramsBillion", "kvBytesPerTokenFp16"],
    "properties": {
        "id": {"type": "string"},
        "sizeClass": {"type": "string"},
        "paramsBillion": {"type": "number", "minimum": 0.001},
        "kvBytesPerTokenFp16": {"type": "integer", "minimum": 1},
        "kvCacheTokens": {**_COUNT, "description": "the KV-cache budget a replica was planned to hold"},
        "contextTokens": {**_COUNT, "description": "the context length the stack was planned for"},
        "modelMaxTokens": {**_COUNT, "description": "the model's own context limit (the engines' default length)"},
    },
}
MODELS = {
    "type": "array", "items": MODEL_FACT,
    "description": "The stack's model(s) from the catalog: parameters (billions), KV-cache bytes per token in 16 bits, "
                   "the model's own context limit, and the KV budget and context the stack was planned for.",
}
GPU_MEMORY_UTILIZATION = {
    "type": "number", "minimum": 0.05, "maximum": 1,
    "description": "Share of GPU memory the engine takes when its arguments do not say (catalog serving."
                   "gpu_memory_utilization, vLLM's default 0.9).",
}
ACTIVATION_RESERVE = {
    "type": "number", "minimum": 0,
    "description": "GB per GPU kept for activations and CUDA graphs before the KV cache (catalog serving."
                   "activation_reserve_gb_per_gpu).",
}
NODE_PROVISIONING_SECONDS = {
    "type": "integer", "minimum": 0,
    "description": "Seconds for a GPU node to be launched, join and report its GPUs before a new replica can start "
                   "(catalog serving.gpu_node_provisioning_seconds).",
}
IMAGE_PULL_SECONDS = {
    "type": "integer", "minimum": 0,
    "description": "Seconds to pull the serving image onto a new node (catalog serving: image size / pull rate, "
                   "doubled).",
}
LINK_FACT_KEYS = ("nodeShapes", "models", "gpuMemoryUtilization", "activationReserveGbPerGpu",
                  "nodeProvisioningSeconds", "imagePullSeconds")
_LINK_FACTS = {"nodeShapes": NODE_SHAPES, "models": MODELS, "gpuMemoryUtilization": GPU_MEMORY_UTILIZATION,
               "activationReserveGbPerGpu": ACTIVATION_RESERVE, "nodeProvisioningSeconds": NODE_PROVISIONING_SECONDS,
               "imagePullSeconds": IMAGE_PULL_SECONDS}
# Link checks whose findings are known gaps of the kit: the generated config keeps them advisory, visible in every
# preview without blocking it. None today: LNK-007 (endpoint reachability) became mandatory once every tier served
# through the gateway on a load balancer its consumers reach.
ADVISORY_LINKS: tuple[str, ...] = ()


def _schema(required: Iterable[str] = (), **properties: dict) -> dict[str, Any]:
    return {"properties": properties, "required": list(required)}


# One entry per policy of the pack, by policy name. `properties` and `required` go to PolicyConfigSchema.
SCHEMAS: dict[str, dict[str, Any]] = {
    "RES-001-region-allowlist": _schema(["allowedRegions"], allowedRegions=ALLOWED_REGIONS),
    "RES-002-provider-region": _schema(["allowedRegions"], allowedRegions=ALLOWED_REGIONS),
    "BND-001-no-third-party-api": _schema(["classification"], classification=CLASSIFICATION, apiHosts=API_HOSTS,
                                          sanctionedApiHosts=SANCTIONED_API_HOSTS),
    "BND-002-private-cluster-endpoint": _schema(["classification"], classification=CLASSIFICATION),
    "BND-003-no-public-load-balancer": _schema(["classification"], classification=CLASSIFICATION),
    "BND-004-sagemaker-network-isolation": _schema(["classification"], classification=CLASSIFICATION),
    "BND-005-vertex-private-service-connect": _schema(["classification"], classification=CLASSIFICATION),
    "BND-006-no-nodeport-services": _schema(["classification"], classification=CLASSIFICATION),
    "AIR-001-no-internet-gateways": _schema(["network"], network=NETWORK),
    "AIR-002-no-internet-routes": _schema(["network"], network=NETWORK),
    "AIR-003-private-registry-images": _schema(["network"], network=NETWORK, registry=REGISTRY),
    "AIR-004-hub-offline-serving": _schema(["network"], network=NETWORK),
    "ENC-001-cmk-secrets": _schema(),
    "ENC-002-cmk-volumes": _schema(),
    "ENC-003-cmk-buckets": _schema(classification=CLASSIFICATION),
    "ENC-004-cmk-log-groups": _schema(),
    "ENC-005-cmk-endpoints": _schema(),
    "ENC-006-cmk-cluster-secrets": _schema(),
    "ENC-007-key-rotation": _schema(maxRotationDays=MAX_ROTATION_DAYS),
    "ENC-008-key-deletion-window": _schema(minDeletionWindowDays=MIN_DELETION_WINDOW_DAYS),
    "ENC-009-tls-listeners": _schema(),
    "ENC-010-cmk-registries": _schema(),
    "BAS-001-no-full-access-policies": _schema(),
    "BAS-002-imdsv2-nodes": _schema(),
    "BAS-003-no-plaintext-secret-env": _schema(),
    "BAS-004-protect-stateful": _schema(),
    "BAS-005-no-open-ingress": _schema(),
    "BAS-006-no-public-bucket-policy": _schema(["classification"], classification=CLASSIFICATION),
    "BAS-007-no-public-ips": _schema(["network"], network=NETWORK),
    "BAS-008-control-plane-audit-logs": _schema(),
    "LNK-001-pods-schedulable": _schema(nodeShapes=NODE_SHAPES),
    "LNK-002-replicas-fit": _schema(nodeShapes=NODE_SHAPES),
    "LNK-003-node-pools-scaled": _schema(),
    "LNK-004-metric-sources": _schema(),
    "LNK-005-model-fits-gpu": _schema(nodeShapes=NODE_SHAPES, models=MODELS, gpuMemoryUtilization=GPU_MEMORY_UTILIZATION,
                                      activationReserveGbPerGpu=ACTIVATION_RESERVE),
    "LNK-006-rollout-wait": _schema(nodeProvisioningSeconds=NODE_PROVISIONING_SECONDS, imagePullSeconds=IMAGE_PULL_SECONDS),
    "LNK-007-endpoint-reachable": _schema(["network"], network=NETWORK, endpointAudience=ENDPOINT_AUDIENCE),
}

# Where each config key comes from in the kit's stack facts (see `policy_config`).
_FROM_FACTS = {"allowedRegions": "allowedRegions", "classification": "classification", "network": "network",
               "registry": "registry", "endpointAudience": "endpointAudience"}
FACT_KEYS = ("cloud", "allowedRegions", "classification", "regulations", "network", "tier", "thirdPartyApi",
             "thirdPartyApiBaseUrl", "registry", "protect", "endpointAudience", "links")
REQUIRED_FACTS = ("allowedRegions", "classification", "network")
WHOLESALE_OFF = ("all: 'disabled' would switch off every policy of the pack, and a stack's policy config cannot do "
                 "that; set \"all\": \"mandatory\", and to waive one policy on one resource add an entry to "
                 "policies/exceptions.yaml (policy, stack, resource, reason, approvedBy, approved, expires; "
                 "`llmhost policies` describes how to request one)")


class PolicyConfigError(ValueError):
    """A policy config (or the facts it is made from) that the pack would misread; `problems` name policy and key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def policy_config(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The per-policy config file content for a stack, from the kit's stack facts.

    `facts` holds cloud, allowedRegions, classification, regulations, network, tier, thirdPartyApi and registry
    (optionally thirdPartyApiBaseUrl and protect), as `facts_from_stack_config` builds them, and optionally `links`:
    the catalog facts the link policies need (node shapes, models, memory and start-up figures; see
    `planner.stackgen.link_facts`). Every policy gets the facts it checks against and nothing else;
    `"all": "mandatory"` is the level of every policy, with two exceptions. A stack that opted out of `protect`
    (llm-hosting:protect false) gets BAS-004-protect-stateful as advisory, so the opt-out stays visible without
    blocking. The link checks of known gaps (`ADVISORY_LINKS`, empty today) are advisory until the kit
    closes those gaps.
    """
    unknown = sorted(set(facts) - set(FACT_KEYS))
    problems = [f"{k}: unknown fact; valid: {', '.join(FACT_KEYS)}" for k in unknown]
    problems += [f"{k}: is required" for k in REQUIRED_FACTS if facts.get(k) in (None, "", [])]
    links = facts.get("links") or {}
    if not isinstance(links, Mapping):
        problems.append("links: expected an object of link facts")
        links = {}
    problems += [f"links.{k}: unknown fact; valid: {', '.join(LINK_FACT_KEYS)}" for k in sorted(set(links) - set(LINK_FACT_KEYS))]
    problems += [p for k, v in links.items() if k in _LINK_FACTS for p in _check(v, _LINK_FACTS[k], f"links.{k}")]
    if problems:
        raise PolicyConfigError("stack facts", problems)
    out: dict[str, Any] = {"all": "mandatory"}
    for name, schema in SCHEMAS.items():
        entry: dict[str, Any] = {}
        for key in schema["properties"]:
            fact = _FROM_FACTS.get(key)
            if fact and facts.get(fact) not in (None, ""):
                value = facts[fact]
                entry[key] = list(value) if isinstance(value, (list, tuple)) else value
            elif key in _LINK_FACTS and links.get(key) is not None:
                entry[key] = copy.deepcopy(links[key])
        if name in ADVISORY_LINKS:
            entry[LEVEL_KEY] = "advisory"
        if "sanctionedApiHosts" in schema["properties"]:
            entry["sanctionedApiHosts"] = sanctioned_api_hosts(facts)
        if name == "BAS-004-protect-stateful" and facts.get("protect") is False:
            entry[LEVEL_KEY] = "advisory"
        out[name] = entry
    problems = validate_config(out)
    if problems:
        raise PolicyConfigError("policy config made from the stack facts", problems)
    return out


def sanctioned_api_hosts(facts: Mapping[str, Any]) -> list[str]:
    """The API host a boundary stack may name: only a hybrid (the tiered-by-sensitivity gateway keeps boundary
    traffic inside; the stack loader refuses an api section on any other confidential/regulated stack)."""
    provider = facts.get("thirdPartyApi")
    if not provider or facts.get("tier") != "hybrid":
        return []
    url = facts.get("thirdPartyApiBaseUrl") or ""
    host = re.sub(r"^https?://", "", url).split("/", 1)[0].split(":", 1)[0].lower()
    hosts = [host] if host else []
    for suffix in PROVIDER_HOSTS.get(str(provider).lower(), ()):
        if suffix not in hosts:
            hosts.append(suffix)
    return hosts


def facts_from_stack_config(cfg: Any) -> dict[str, Any]:
    """The facts of a planner.stack_config.StackConfig (read by attribute, so this module needs no planner import)."""
    api = getattr(cfg, "api", None)
    return {
        "cloud": cfg.cloud,
        "allowedRegions": list(cfg.residency.allowed_regions),
        "classification": cfg.residency.classification,
        "regulations": list(cfg.residency.regulations),
        "network": cfg.network,
        "tier": cfg.tier,
        "thirdPartyApi": api.provider if api else None,
        "thirdPartyApiBaseUrl": api.base_url if api else None,
        "registry": cfg.registry,
        "protect": cfg.protect,
        "endpointAudience": cfg.endpoint.audience,
    }


def with_defaults(policy: str, entry: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """A policy's properties with the schema defaults filled in (what the engine hands the policy)."""
    out = {k: v for k, v in (entry or {}).items() if k != LEVEL_KEY}
    for key, prop in SCHEMAS[policy]["properties"].items():
        if key not in out and "default" in prop:
            default = prop["default"]
            out[key] = list(default) if isinstance(default, list) else default
    return out


def level_of(policy: str, config: Mapping[str, Any], default: str = "mandatory") -> str:
    """The enforcement level the engine would apply: the policy's own, then `all`, then the policy's entry."""
    level = default
    if isinstance(config.get("all"), str):
        level = config["all"]
    entry = config.get(policy)
    if isinstance(entry, str):
        level = entry
    elif isinstance(entry, Mapping) and isinstance(entry.get(LEVEL_KEY), str):
        level = entry[LEVEL_KEY]
    return level


def validate_config(cfg: Any) -> list[str]:
    """Problems with a whole policy-config document, each naming the policy and the key ("" when valid)."""
    if not isinstance(cfg, Mapping):
        return [f"the policy config is a JSON object keyed by policy name, not {type(cfg).__name__}"]
    problems: list[str] = []
    names = ", ".join(SCHEMAS)
    for policy, entry in cfg.items():
        if policy == "all":
            if entry == "disabled":
                problems.append(WHOLESALE_OFF)
            elif not isinstance(entry, str) or entry not in ENFORCEMENT_LEVELS:
                problems.append(f"all: {_short(entry)} is not an enforcement level ({', '.join(ENFORCEMENT_LEVELS)})")
            continue
        if policy not in SCHEMAS:
            problems.append(f"{policy}: not a policy of this pack; its policies are {names}")
            continue
        if isinstance(entry, str):
            if entry not in ENFORCEMENT_LEVELS:
                problems.append(f"{policy}: {entry!r} is not an enforcement level ({', '.join(ENFORCEMENT_LEVELS)})")
            entry = {}
        problems += validate_policy_config(policy, entry)
    for policy in SCHEMAS:
        if policy not in cfg:
            problems += [f"{policy}.{key}: is required" for key in SCHEMAS[policy]["required"]]
    return problems


def validate_for_stack(cfg: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """Problems of a (schema-valid) policy config that is weaker than the stack it checks: allowed regions beyond the
    stack's residency.allowedRegions, a lower classification or a less closed network than the stack's own.

    A config may narrow what the stack allows, never widen it; `policy_config(facts)` of the same facts always passes.
    `facts` as `facts_from_stack_config` builds them."""
    problems: list[str] = []
    allowed = list(facts.get("allowedRegions") or [])
    rank_class = {c: i for i, c in enumerate(CLASSIFICATIONS)}
    rank_net = {n: i for i, n in enumerate(NETWORKS)}
    for policy, entry in cfg.items():
        if policy not in SCHEMAS or not isinstance(entry, Mapping):
            continue
        regions = entry.get("allowedRegions")
        if isinstance(regions, (list, tuple)) and allowed:
            wider = [r for r in regions if r not in allowed]
            if wider:
                problems.append(f"{policy}.allowedRegions: {', '.join(map(_short, wider[:5]))} "
                                f"{'is' if len(wider) == 1 else 'are'} outside the stack's residency "
                                f"(llm-hosting:residency.allowedRegions: {', '.join(allowed)}); the policy config may "
                                "narrow the stack's regions, never widen them")
        stack_class, stack_net = facts.get("classification"), facts.get("network")
        cls = entry.get("classification")
        if cls in rank_class and stack_class in rank_class and rank_class[cls] < rank_class[stack_class]:
            problems.append(f"{policy}.classification: {cls!r} is below the stack's classification "
                            f"{stack_class!r} (llm-hosting:residency.classification); the boundary policies would "
                            "check less than the data needs")
        net = entry.get("network")
        if net in rank_net and stack_net in rank_net and rank_net[net] < rank_net[stack_net]:
            problems.append(f"{policy}.network: {net!r} is more open than the stack's network {stack_net!r} "
                            "(llm-hosting:network); the air-gap policies would check less than the stack promises")
    # A stack file switched to protect: false by hand, with the config still planned for protection: say how to do it.
    entry = cfg.get("BAS-004-protect-stateful")
    level = entry.get(LEVEL_KEY) if isinstance(entry, Mapping) else entry if isinstance(entry, str) else None
    if facts.get("protect") is False and level not in ("advisory", "disabled") and cfg.get("all") not in ("advisory", "disabled"):
        problems.append("BAS-004-protect-stateful: the stack file sets llm-hosting:protect: false but this config was "
                        "planned with protect on; set protect: false in the profile and re-plan")
    return problems


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def validate_policy_config(policy: str, entry: Any) -> list[str]:
    """Problems with one policy's entry: its schema (additionalProperties false) plus the cross-key rules."""
    schema = SCHEMAS[policy]
    if not isinstance(entry, Mapping):
        return [f"{policy}: expected an object or an enforcement level, got {_kind(entry)}"]
    problems: list[str] = []
    props = schema["properties"]
    for key, value in entry.items():
        if key == LEVEL_KEY:
            if value not in ENFORCEMENT_LEVELS:
                problems.append(f"{policy}.{key}: {value!r} is not one of {', '.join(ENFORCEMENT_LEVELS)}")
            continue
        if key not in props:
            valid = ", ".join([*props, LEVEL_KEY])
            problems.append(f"{policy}.{key}: unknown key; valid keys: {valid}")
            continue
        problems += _check(value, props[key], f"{policy}.{key}")
    for key in schema["required"]:
        if key not in entry:
            problems.append(f"{policy}.{key}: is required")
    if "registry" in props and entry.get("network") == "airgapped" and not entry.get("registry"):
        problems.append(f"{policy}.registry: is required when network is airgapped (images come only from it)")
    return problems


_TYPES = {"string": str, "array": (list, tuple), "object": Mapping, "boolean": bool, "null": type(None)}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _is(value: Any, typ: str) -> bool:
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[typ]) and not (typ == "string" and isinstance(value, bool))


def _check(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    """The subset of JSON Schema the pack uses: type, enum, items, minItems, minimum, maximum, pattern,
    properties, required, additionalProperties (false, or a schema every other key's value must meet)."""
    typ = schema.get("type")
    if typ is not None:
        types = typ if isinstance(typ, list) else [typ]
        if not any(_is(value, t) for t in types):
            return [f"{where}: expected {' or '.join(types)}, got {_kind(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, (list, tuple)):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: needs at least {schema['minItems']} item(s)")
        if "items" in schema:
            for i, item in enumerate(value):
                problems += _check(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                problems += _check(item, props[key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), Mapping):
                problems += _check(item, schema["additionalProperties"], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}.{key}: unknown key; valid keys: {', '.join(props)}")
        problems += [f"{where}.{k}: is required" for k in schema.get("required", []) if k not in value]
    return problems
