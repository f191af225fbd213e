"""From a decision to the three files a stack is made of.

- `stacks/Pulumi.<stack>.yaml`: the stack config `__main__.py` reads (under `llm-hosting:` plus the provider region).
- `stacks/<stack>.policy-config.json`: the facts the policy pack checks the stack against (residency, boundary and
  air-gap decisions from the stack config; node shapes, model sizes and serving figures from the catalog).
- `stacks/<stack>.decision.md`: the report: what was chosen, why, and what would change the answer.

Output is deterministic, so a re-plan of an unchanged profile rewrites identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import yaml

from .catalog import Catalog, load_catalog
from .costmodel import kv_cache_tokens, project_daily_requests
from .errors import InputError, read_yaml, refuse
from .profile import Profile, licence_refusal
from .sizing import (GKE_ACCELERATOR, VERTEX_ACCELERATOR, clamp_sagemaker, root_volume_gb, same_class_instance_types,
                     startup_budget, weights_gb)
from .report import render_report
from .rules import Candidate, Decision
from .spend import HorizonCosts, api_caps, api_headroom, cloud_monthly_usd, decision_band, horizon_costs, horizon_svg
from .stack_config import PROJECT, PROVIDER_REGION_KEY, StackConfig, load_stack_config

GENERATED_KEY = f"{PROJECT}:generatedBy"


def stack_config_from(decision: Decision, profile_path: str, catalog: Catalog, catalog_path: Optional[str] = None) -> StackConfig:
    """The chosen candidate's stack config, with the plan's cost and the guardrails sized from it (`spend`)."""
    p, c = decision.profile, decision.chosen
    plain = candidate_stack_config(p, c, decision.network, profile_path, catalog, catalog_path)
    return candidate_stack_config(p, c, decision.network, profile_path, catalog, catalog_path,
                                  spend=spend_section(decision, plain, catalog, profile_path, catalog_path))


def spend_section(decision: Decision, cfg: StackConfig, catalog: Catalog, source: str,
                  catalog_path: Optional[str] = None) -> dict[str, Any]:
    """The stack's `spend` key: the plan's cost by bill, the budget's amount, the API caps and the drift thresholds."""
    p, c = decision.profile, decision.chosen
    t = p.traffic
    per_request = t.avg_input_tokens + t.avg_output_tokens
    band = decision_band(decision, catalog, source, catalog_path)
    projected = project_daily_requests(t.daily_requests, t.growth_monthly_percent, t.horizon_months)
    spend: dict[str, Any] = {
        "plannedMonthlyUsd": round(c.monthly_cost_usd, 2),
        "cloudMonthlyUsd": round(cloud_monthly_usd(c, cfg, catalog.front_door), 2),
        "apiMonthlyUsd": round(c.cost.get("api_usd", 0.0), 2),
        "staffingMonthlyUsd": round(c.cost.get("staffing_usd", 0.0) + c.cost.get("gateway_staffing_usd", 0.0), 2),
        "billingAccount": p.gcp_billing_account,
        "revisit": decision.revisit or None,
        # Written only when the profile turns it off, so stacks that keep the default stay as they were.
        "activateCostAllocationTag": None if p.aws_activate_cost_allocation_tag else False,
        "drift": {"dailyTokensNow": t.daily_requests * per_request,
                  "dailyTokensProjected": int(round(projected * per_request)),
                  "growthMonthlyPercent": t.growth_monthly_percent,
                  "upperDailyTokens": band.upper.daily_tokens if band.upper else None,
                  "upperReason": band.upper.reason if band.upper else None,
                  "lowerDailyTokens": band.lower.daily_tokens if band.lower else None,
                  "lowerReason": band.lower.reason if band.lower else None},
    }
    if decision.crossover_threshold is not None:
        requests, direction, reason = decision.crossover_threshold
        # Watched only from the side today's traffic is on: a crossover already behind us is the plan's premise (the
        # data may not leave, the team cannot run GPUs), which an alert firing from day one would not change.
        if (direction == "above") == (requests > t.daily_requests):
            spend["drift"].update(crossoverDailyTokens=max(1, int(round(requests * per_request))),
                                  crossoverDirection=direction, crossoverReason=reason)
    caps = api_caps(p, c)
    if caps is not None:
        spend.update(apiRequestsPerMinute=caps[0], apiTokensPerMinute=caps[1], apiHeadroom=api_headroom(c))
    return spend


def candidate_stack_config(p: Profile, c: Candidate, network: str, profile_path: str, catalog: Catalog,
                           catalog_path: Optional[str] = None, spend: Optional[dict[str, Any]] = None) -> StackConfig:
    """The stack config a candidate would be written as, held to the stack's own checks (`load_stack_config`).

    `decide` calls this for every feasible candidate before it chooses, so a plan never writes a stack that
    `llmhost preview` or `pulumi up` refuses. A refusal names the profile field behind the stack key.
    """
    data: dict[str, Any] = {
        "tier": c.tier,
        "cloud": p.cloud,
        "network": network,
        "region": c.region or p.home_region,
        "gcpProject": p.gcp_project,
        "pattern": c.pattern,
        "residency": {"allowedRegions": list(p.residency.allowed_regions), "classification": p.data_sensitivity,
                      "regulations": list(p.regulations)},
        "catalog": catalog_path,
        "protect": p.protect,
    }
    if p.private_registry and c.plan:  # only tiers that run images pull them from the registry (an API tier runs none)
        data["registry"] = p.private_registry
    if c.plan:  # the tiers that run a model are watched against the profile's SLA
        data["observability"] = {"ttftP95Ms": p.latency_sla_ms}
    if c.plan and p.model:
        vertex = p.cloud == "gcp" and c.plan.option.service == "vertex"
        # A licence is accepted by a person, in the profile; the planner carries the answer and never supplies it.
        problem = licence_refusal(p.model.id, "model.accept_eula") if vertex and not p.model.accept_eula else None
        if problem:
            raise refuse(profile_path, "model.accept_eula", problem)
        data["model"] = {"id": p.model.id, "sizeClass": p.model.size_class, "fineTuned": p.model.fine_tuned,
                         "maxContextTokens": p.model.max_context_tokens,
                         "kvCacheTokens": kv_cache_tokens(catalog, p.traffic.avg_input_tokens, p.traffic.avg_output_tokens,
                                                          p.model.max_context_tokens),
                         # Vertex serves the model id through Model Garden (it cannot read our bucket); see README.
                         "weightsUri": None if vertex else p.model.weights_uri,
                         "acceptEula": p.model.accept_eula or None,
                         "huggingFaceTokenConfig": p.model.hugging_face_token_config}
    # Every tier serves through the gateway: each consumer gets its key and its share of the peak as limits.
    data["consumers"] = consumer_limits(p, c)
    e = p.endpoint
    if e != type(e)():  # only what the profile says: a default endpoint leaves the stack file as it was
        data["endpoint"] = {"audience": e.audience, "domain": e.domain, "publicZone": e.public_zone,
                            "allowedCidrs": list(e.allowed_cidrs), "certificateAuthorityArn": e.certificate_authority_arn}
    if spend is not None:
        data["spend"] = spend
    if c.api:
        region = data["region"]
        data["api"] = {"provider": c.api.provider, "model": c.api.model, "baseUrl": c.api_endpoint,
                       "apiKeyConfig": f"{c.api.provider}ApiKey",
                       "replicaRegions": [r for r in p.residency.allowed_regions if r != region]}
    if c.plan:
        o, f = c.plan.option, c.plan.fleet
        fleet = {"instanceType": o.instance.instance_type, "gpu": o.fit.gpu, "gpusPerReplica": o.serving_gpus_per_replica,
                 "precision": o.fit.precision, "minReplicas": f.min_replicas, "maxReplicas": f.replicas,
                 "onDemandReplicas": f.on_demand_replicas}
        weights = weights_gb(catalog, p.model.size_class, o.fit.precision)
        budget = startup_budget(catalog, weights)
        boundary = c.tier if c.tier != "hybrid" else c.boundary_tier
        if boundary == "managed":
            # Target tracking on invocations: what one instance carries per minute at the planned utilisation.
            per_minute = o.tok_s_per_replica * 60 / p.traffic.avg_output_tokens
            data["managed"] = {"service": o.service, **fleet,
                               "startupTimeoutSeconds": clamp_sagemaker(budget.load_seconds),
                               "downloadTimeoutSeconds": clamp_sagemaker(budget.download_seconds),
                               "targetInvocationsPerInstance": round(per_minute, 1)}
            concurrency = o.planned_concurrency()
            if concurrency is not None:
                data["managed"]["targetConcurrentRequests"] = round(concurrency, 1)
        else:
            spot_types = same_class_instance_types(catalog, p.cloud, o.instance.instance_type) if f.spot_replicas else []
            data["selfHosted"] = {"cluster": c.provider, "engine": p.model.engine, **fleet, "spotReplicas": f.spot_replicas,
                                  "spotInstanceTypes": spot_types,
                                  "rootVolumeGb": root_volume_gb(catalog, weights),
                                  "startupTimeoutSeconds": budget.total_seconds}
    try:
        return load_stack_config(_flatten(data), f"stack generated from {profile_path}")
    except InputError as exc:
        raise InputError(profile_path, [(profile_field(f, p), m) for f, m in exc.problems]) from None


# Headroom of each consumer's limits over its share of the projected peak: bursts within the peak, and growth before
# the next re-plan, must not be refused by the gateway.
CONSUMER_HEADROOM = 1.5


def consumer_limits(p: Profile, c: Candidate) -> list[dict[str, Any]]:
    """Each consumer's gateway limits: its share of the projected peak request rate, with headroom, per minute, and
    the tokens those requests carry (prompt + completion at the profile's averages)."""
    t = p.traffic
    daily = t.daily_requests * (1 + t.growth_monthly_percent / 100.0) ** t.horizon_months
    peak_per_minute = daily * t.peak_to_average / 1440.0
    out = []
    for consumer in p.consumers:
        rpm = max(1, math.ceil(peak_per_minute * consumer.share_percent / 100.0 * CONSUMER_HEADROOM))
        entry: dict[str, Any] = {"name": consumer.name, "requestsPerMinute": rpm,
                                 "tokensPerMinute": rpm * (t.avg_input_tokens + t.avg_output_tokens),
                                 "rotation": consumer.rotation}
        if consumer.aws_role_name:
            entry["roleName"] = consumer.aws_role_name
        if consumer.gcp_member:
            entry["member"] = consumer.gcp_member
        out.append(entry)
    return out


# The profile field each stack key is written from, so a refusal of a generated stack names what the user wrote.
# Keys are matched on their leading path; the fleet sections are the planner's choice for the model and regions.
_PROFILE_FIELD = {
    "registry": "private_registry",
    "consumers": "consumers",
    "endpoint.audience": "endpoint.audience",
    "endpoint.domain": "endpoint.domain",
    "endpoint.publicZone": "endpoint.public_zone",
    "endpoint.allowedCidrs": "endpoint.allowed_cidrs",
    "endpoint.certificateAuthorityArn": "endpoint.certificate_authority_arn",
    "observability.ttftP95Ms": "latency_sla_ms",
    "model.acceptEula": "model.accept_eula",
    "model.weightsUri": "model.weights_uri",
    "selfHosted.engine": "model.engine",
    "model.huggingFaceTokenConfig": "model.hugging_face_token_config",
    "model.maxContextTokens": "model.max_context_tokens",
    "model.kvCacheTokens": "model.max_context_tokens",
    "model.sizeClass": "model.size_class",
    "model.fineTuned": "model.fine_tuned",
    "model.id": "model.id",
    "spend.billingAccount": "gcp_billing_account",
    "spend.activateCostAllocationTag": "aws_activate_cost_allocation_tag",
    "spend.drift.dailyTokensNow": "traffic.daily_requests",
    "spend.drift.growthMonthlyPercent": "traffic.growth_monthly_percent",
    "spend": "traffic",
    "protect": "protect",
    "model": "model",
    "residency.allowedRegions": "residency.allowed_regions",
    "residency.classification": "data_sensitivity",
    "residency.regulations": "regulations",
    "region": "residency.allowed_regions",
    "aws:region": "residency.allowed_regions",
    "gcp:region": "residency.allowed_regions",
    "gcp:project": "gcp_project",
    "cloud": "cloud",
    "api.replicaRegions": "residency.allowed_regions",
    "managed.instanceType": "residency.allowed_regions",
    "selfHosted.instanceType": "residency.allowed_regions",
    # The replica floor follows the availability target; the peak fleet and its on-demand share, the traffic; the
    # spot share, allow_spot. The rest of a fleet section is the planner's choice for the model.
    "managed.minReplicas": "availability_target",
    "managed.allowSingleInstance": "availability_target",
    "managed.maxReplicas": "traffic",
    "managed.onDemandReplicas": "traffic",
    "selfHosted.minReplicas": "availability_target",
    "selfHosted.maxReplicas": "traffic",
    "selfHosted.onDemandReplicas": "traffic",
    "selfHosted.spotReplicas": "allow_spot",
    "selfHosted.spotInstanceTypes": "allow_spot",
    "managed": "model.size_class",
    "selfHosted": "model.size_class",
    "tier": "workloads",
    "pattern": "workloads",
}


_CONSUMER_FIELD = {"name": "name", "roleName": "aws_role_name", "member": "gcp_member", "rotation": "rotation"}

# Stack names as Pulumi takes them: ASCII letters, digits, '-', '_' and '.' (str.isalnum would let in any script's
# letters, which the clouds' resource names then refuse).
# The stack's name is part of its resources' names: a DNS label (<stack>.llm.internal), GCP resource names that start
# with a letter, and names AWS limits to 32 characters (target groups, ECS services): lower-case, at most 32.
STACK_NAME = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?")
STACK_NAME_RULE = "lower-case letters, digits and inner '-', starting with a letter, at most 32 characters"


def valid_stack_name(name: str) -> bool:
    """Whether `name` can name a stack (the stack file `stacks/Pulumi.<name>.yaml` and the names built from it)."""
    return bool(name) and STACK_NAME.fullmatch(name) is not None


def profile_field(stack_key: str, profile: Profile) -> str:
    """The profile field that produced `stack_key` (as a stack refusal names it): what to change, then re-plan."""
    key = stack_key.split(":", 1)[1] if stack_key.startswith(f"{PROJECT}:") else stack_key
    if key in ("network", "api"):
        # The network variant and the API section follow from the air gap and the data's sensitivity.
        return "air_gapped" if profile.air_gapped else "data_sensitivity"
    consumer = re.match(r"^consumers\[(\d+)\]\.(\w+)", key)
    if consumer:  # one consumer's entry, at the same index: its name, its reader, or its share of the traffic
        field = _CONSUMER_FIELD.get(consumer.group(2), "share_percent")
        return f"consumers[{consumer.group(1)}].{field}"
    for prefix in sorted(_PROFILE_FIELD, key=len, reverse=True):
        if key == prefix or key.startswith((prefix + ".", prefix + "[")):
            field = _PROFILE_FIELD[prefix]
            if prefix == "residency.allowedRegions" and key != prefix:
                return field + key[len(prefix):]  # the same index: residency.allowed_regions[1]
            return field
    return key  # a key no profile field writes (vpc, versions, observability.logRetentionDays): only a hand edit has it


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {PROVIDER_REGION_KEY[data["cloud"]]: data.pop("region")}
    project = data.pop("gcpProject", None)
    if project:
        out["gcp:project"] = project
    for k, v in data.items():
        if v is not None:
            out[f"{PROJECT}:{k}"] = _drop_none(v)
    return out


def _drop_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    return v


def digest(flat: dict[str, Any]) -> str:
    body = {k: v for k, v in flat.items() if k != GENERATED_KEY}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Kubernetes' recommended pod ceiling per node; EKS reserves kubelet memory per pod the node may run.
EKS_MAX_PODS = 110
EVICTION_MIB = 100  # the kubelet's hard eviction threshold (memory.available<100Mi) on EKS and GKE


def system_reserve(cloud: str, vcpus: int, memory_gib: float) -> tuple[float, float]:
    """(vCPUs, GiB) a node keeps from pods: the kubelet/system reservation plus the eviction threshold.

    CPU, both clouds: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of the rest. Memory: GKE
    reserves 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112 and 2% above 128 GiB
    ("Plan GKE Standard node sizes"); the EKS AMIs reserve 255 MiB + 11 MiB per pod the node may run (taken at 110,
    Kubernetes' recommended ceiling). Both add the kubelet's 100 MiB hard eviction threshold.
    """
    cpu = sum(rate * max(0.0, min(vcpus, hi) - lo) for lo, hi, rate in ((0, 1, 0.06), (1, 2, 0.01), (2, 4, 0.005),
                                                                         (4, float("inf"), 0.0025)))
    if cloud == "gcp":
        mem = 255 / 1024 if memory_gib < 1 else sum(rate * max(0.0, min(memory_gib, hi) - lo) for lo, hi, rate in (
            (0, 4, 0.25), (4, 8, 0.20), (8, 16, 0.10), (16, 128, 0.06), (128, float("inf"), 0.02)))
    else:
        mem = (255 + 11 * EKS_MAX_PODS) / 1024
    return cpu, mem + EVICTION_MIB / 1024


def _shape_fact(catalog: Catalog, cloud: str, instance_type: str, service: str) -> Optional[dict[str, Any]]:
    """What the link policies need to know about one instance type, from the catalog (None if it has none)."""
    shape = catalog.instance_shapes.for_cloud(cloud).get(instance_type)
    priced = next((i for i in catalog.instances if i.cloud == cloud and i.instance_type == instance_type), None)
    gpu, count = (shape.gpu, shape.gpu_count) if shape else ((priced.gpu, priced.gpu_count) if priced else (None, 0))
    if gpu is None or gpu not in catalog.gpus:
        return None
    fact: dict[str, Any] = {"gpu": gpu, "gpuCount": count, "gpuMemoryGb": catalog.gpus[gpu].memory_gb,
                            "fp8": catalog.gpus[gpu].supports_fp8}
    accelerator = {"gke": GKE_ACCELERATOR, "vertex": VERTEX_ACCELERATOR}.get(service, {}).get(gpu)
    if accelerator:
        fact["accelerator"] = accelerator
    if shape and service in ("eks", "gke"):  # cluster nodes: what is left for pods
        cpu, mem = system_reserve(cloud, shape.vcpus, shape.memory_gib)
        fact.update(vcpus=shape.vcpus, memoryGib=shape.memory_gib, allocatableCpu=round(shape.vcpus - cpu, 3),
                    allocatableMemoryGib=round(shape.memory_gib - mem, 3))
    return fact


def link_facts(cfg: StackConfig, catalog: Catalog) -> dict[str, Any]:
    """The catalog facts the link policies check the stack against (the pack has no planner or catalog of its own):
    the GPU machines the stack runs (GPU, count, memory, FP8; allocatable CPU and memory for cluster nodes), its model
    (parameters, KV bytes per token, planned KV budget and context) and the serving figures for memory and start-up."""
    fleet = cfg.self_hosted or cfg.managed
    if fleet is None:
        return {}
    service = cfg.self_hosted.cluster if cfg.self_hosted else cfg.managed.service
    types = [fleet.instance_type, *(cfg.self_hosted.spot_instance_types if cfg.self_hosted else [])]
    shapes = {t: f for t in dict.fromkeys(types) if (f := _shape_fact(catalog, cfg.cloud, t, service)) is not None}
    s = catalog.serving
    facts: dict[str, Any] = {"nodeShapes": shapes, "gpuMemoryUtilization": s.gpu_memory_utilization,
                             "activationReserveGbPerGpu": s.activation_reserve_gb_per_gpu,
                             "nodeProvisioningSeconds": s.gpu_node_provisioning_seconds,
                             "imagePullSeconds": s.image_pull_seconds}
    if cfg.model is not None and cfg.model.size_class in catalog.models:
        spec = catalog.models[cfg.model.size_class]
        facts["models"] = [{"id": cfg.model.id, "sizeClass": cfg.model.size_class, "paramsBillion": spec.params_billion,
                            "kvBytesPerTokenFp16": spec.kv_bytes_per_token_fp16, "kvCacheTokens": cfg.model.kv_tokens,
                            "contextTokens": cfg.model.max_context_tokens, "modelMaxTokens": spec.max_context_tokens}]
    return facts


def policy_facts(cfg: StackConfig, catalog: Optional[Catalog] = None) -> dict[str, Any]:
    """The stack's facts for the policy pack: those of its stack config plus the catalog's link facts."""
    from policies.config import facts_from_stack_config  # pure data, no Pulumi import

    if catalog is None:
        catalog = load_catalog(Path(cfg.catalog)) if cfg.catalog else load_catalog()
    facts = facts_from_stack_config(cfg)
    links = link_facts(cfg, catalog)
    if links:
        facts["links"] = links
    return facts


def policy_config(cfg: StackConfig, catalog: Optional[Catalog] = None) -> dict[str, Any]:
    """The stack's facts, keyed per policy the way `pulumi preview --policy-pack-config` expects."""
    from policies.config import policy_config as pack_config  # pure data, no Pulumi import

    return pack_config(policy_facts(cfg, catalog))


@dataclass
class PlanFiles:
    stack_file: Path
    policy_file: Path
    report_file: Path
    config: StackConfig
    chart_file: Optional[Path] = None  # the options' costs along the horizon, next to the report
    horizon: Optional[HorizonCosts] = None


def write_stack(decision: Decision, stack: str, stacks_dir: Path, profile_path: str, catalog: Catalog, force: bool = False,
                catalog_path: Optional[str] = None) -> PlanFiles:
    cfg = stack_config_from(decision, profile_path, catalog, catalog_path)
    unbuilt = cfg.unbuilt()
    if unbuilt:  # `decide` drops such candidates; this keeps a decision made elsewhere from writing one
        raise refuse(profile_path, profile_field(unbuilt[0], decision.profile), unbuilt[1])
    flat = cfg.flat()
    flat[GENERATED_KEY] = {"tool": "llmhost", "profile": profile_path, "digest": digest(flat)}
    stacks_dir.mkdir(parents=True, exist_ok=True)
    stack_file = stacks_dir / f"Pulumi.{stack}.yaml"
    kept_top, kept_config = _existing(stack_file, force)
    config = {**flat, **kept_config}
    doc = {"config": config, **kept_top}
    key_hint = ""
    if cfg.required_secrets():
        key_hint = "# Before `pulumi up`, store these as secrets:\n" + "".join(
            f"#   pulumi config set --secret {PROJECT}:{k} <value> --stack {stack}\n" for k in cfg.required_secrets())
    header = (f"# Generated by `llmhost plan {profile_path} --stack {stack}`"
              + (f" --catalog {catalog_path}" if catalog_path else "") + ".\n"
              "# Change the profile and re-plan rather than editing here: a hand edit is detected and re-planning\n"
              "# then needs --force. The report behind these values is " + f"{stack}.decision.md.\n" + key_hint)
    stack_file.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
    policy_file = stacks_dir / f"{stack}.policy-config.json"
    policy_file.write_text(json.dumps(policy_config(cfg, catalog), indent=2) + "\n")
    horizon = horizon_costs(decision.profile, catalog, profile_path, catalog_path)
    chart_file = stacks_dir / f"{stack}.costs.svg"
    chart_file.write_text(horizon_svg(horizon, f"{stack}: all-in monthly cost along the {decision.profile.traffic.horizon_months}-month horizon"))
    report_file = stacks_dir / f"{stack}.decision.md"
    report_file.write_text(render_report(_with_serving_note(decision), cfg, stack, profile_path, catalog.front_door,
                                         horizon))
    return PlanFiles(stack_file, policy_file, report_file, cfg, chart_file, horizon)


def _with_serving_note(decision: Decision) -> Decision:
    """The decision as the report shows it: where the replica runs on more GPUs than its memory fit needs (a managed
    endpoint's one copy per instance), a note says so, since the capacity figures are planned on the fitted size."""
    c = decision.chosen
    o = c.plan.option if c.plan else None
    if o is None or o.serving_gpus_per_replica == o.fit.gpus_per_replica:
        return decision
    note = (f"the endpoint shards its one model copy per instance over all {o.serving_gpus_per_replica} {o.fit.gpu} GPUs of "
            f"{o.instance.instance_type} (gpusPerReplica: {o.serving_gpus_per_replica}); capacity below is planned on the "
            f"{o.fit.gpus_per_replica} GPU(s) the model needs, the rest add KV-cache room")
    chosen = replace(c, notes=[*c.notes, note])
    return replace(decision, chosen=chosen, candidates=[chosen if x is c else x for x in decision.candidates])


def _existing(stack_file: Path, force: bool) -> tuple[dict, dict]:
    """Refuse to overwrite a hand-edited stack file; keep what Pulumi itself added (secrets, secrets provider)."""
    if not stack_file.exists():
        return {}, {}
    try:
        doc = read_yaml(stack_file, "stack") or {}
    except InputError:
        doc = None  # unreadable as a stack file: refused below unless --force
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        if force:
            return {}, {}
        raise refuse(stack_file, "", "exists and is not a stack file llmhost can read; pass --force to overwrite it")
    config = doc.get("config") or {}
    kept_top = {k: v for k, v in doc.items() if k != "config"}
    secrets = {k: v for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"}}
    if force:
        return kept_top, secrets
    generated = config.get(GENERATED_KEY)
    if not isinstance(generated, dict) or generated.get("tool") != "llmhost":
        raise refuse(stack_file, GENERATED_KEY, "is missing, so the file was written by hand; pass --force to replace it")
    body = {k: v for k, v in config.items() if k not in secrets}
    if digest(body) != generated.get("digest"):
        raise refuse(stack_file, "config", "was edited by hand since llmhost generated it (its digest no longer matches); "
                                           "move the change into the profile, or pass --force to overwrite it")
    return kept_top, secrets


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file, with `secure:` values left as they are."""
    doc = read_yaml(path, "stack", missing="no such stack file; create it with `llmhost plan PROFILE --stack NAME`")
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise refuse(path, "config", "a stack file is a mapping with a `config:` mapping")
    return dict(doc.get("config") or {})

