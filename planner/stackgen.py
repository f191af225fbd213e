"""From a decision to the three files a stack is made of.

- `stacks/Pulumi.<stack>.yaml`: the stack config `__main__.py` reads (under `llm-hosting:` plus the provider region).
- `stacks/<stack>.policy-config.json`: the residency facts the policy pack checks the stack against.
- `stacks/<stack>.decision.md`: the report: what was chosen, why, and what would change the answer.

Output is deterministic, so a re-plan of an unchanged profile rewrites identical files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from .catalog import Catalog
from .costmodel import kv_cache_tokens
from .errors import refuse
from .sizing import clamp_sagemaker, root_volume_gb, same_class_instance_types, startup_budget, weights_gb
from .report import render_report
from .rules import Decision
from .stack_config import PROJECT, PROVIDER_REGION_KEY, StackConfig, load_stack_config

GENERATED_KEY = f"{PROJECT}:generatedBy"


def stack_config_from(decision: Decision, profile_path: str, catalog: Catalog, catalog_path: Optional[str] = None) -> StackConfig:
    p, c = decision.profile, decision.chosen
    data: dict[str, Any] = {
        "tier": c.tier,
        "cloud": p.cloud,
        "network": decision.network,
        "region": c.region or p.home_region,
        "gcpProject": p.gcp_project,
        "pattern": c.pattern,
        "residency": {"allowedRegions": list(p.residency.allowed_regions), "classification": p.data_sensitivity,
                      "regulations": list(p.regulations)},
        "catalog": catalog_path,
    }
    if p.private_registry:
        data["registry"] = p.private_registry
    if c.plan and p.model:
        data["model"] = {"id": p.model.id, "sizeClass": p.model.size_class, "fineTuned": p.model.fine_tuned,
                         "maxContextTokens": p.model.max_context_tokens,
                         "kvCacheTokens": kv_cache_tokens(catalog, p.traffic.avg_input_tokens, p.traffic.avg_output_tokens,
                                                          p.model.max_context_tokens),
                         # Vertex serves the model id through Model Garden (it cannot read our bucket); see README.
                         "weightsUri": None if (p.cloud == "gcp" and c.plan.option.service == "vertex") else p.model.weights_uri}
    if c.api:
        region = data["region"]
        data["api"] = {"provider": c.api.provider, "model": c.api.model, "baseUrl": c.api_endpoint,
                       "apiKeyConfig": f"{c.api.provider}ApiKey",
                       "replicaRegions": [r for r in p.residency.allowed_regions if r != region]}
    if c.plan:
        o, f = c.plan.option, c.plan.fleet
        fleet = {"instanceType": o.instance.instance_type, "gpu": o.fit.gpu, "gpusPerReplica": o.fit.gpus_per_replica,
                 "precision": o.fit.precision, "minReplicas": f.floor_replicas, "maxReplicas": f.replicas,
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
        else:
            spot_types = same_class_instance_types(catalog, p.cloud, o.instance.instance_type) if f.spot_replicas else []
            data["selfHosted"] = {"cluster": c.provider, "engine": "vllm", **fleet, "spotReplicas": f.spot_replicas,
                                  "spotInstanceTypes": spot_types,
                                  "rootVolumeGb": root_volume_gb(catalog, weights),
                                  "startupTimeoutSeconds": budget.total_seconds}
    return load_stack_config(_flatten(data), f"stack generated from {profile_path}")


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


def policy_config(cfg: StackConfig) -> dict[str, Any]:
    """The stack's facts, keyed per policy the way `pulumi preview --policy-pack-config` expects."""
    from policies.config import facts_from_stack_config, policy_config as pack_config  # pure data, no Pulumi import

    return pack_config(facts_from_stack_config(cfg))


@dataclass
class PlanFiles:
    stack_file: Path
    policy_file: Path
    report_file: Path
    config: StackConfig


def write_stack(decision: Decision, stack: str, stacks_dir: Path, profile_path: str, catalog: Catalog, force: bool = False,
                catalog_path: Optional[str] = None) -> PlanFiles:
    cfg = stack_config_from(decision, profile_path, catalog, catalog_path)
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
    policy_file.write_text(json.dumps(policy_config(cfg), indent=2) + "\n")
    report_file = stacks_dir / f"{stack}.decision.md"
    report_file.write_text(render_report(decision, cfg, stack, profile_path))
    return PlanFiles(stack_file, policy_file, report_file, cfg)


def _existing(stack_file: Path, force: bool) -> tuple[dict, dict]:
    """Refuse to overwrite a hand-edited stack file; keep what Pulumi itself added (secrets, secrets provider)."""
    if not stack_file.exists():
        return {}, {}
    try:
        doc = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError:
        doc = None
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
    if not path.exists():
        raise refuse(path, "", "no such stack file; create it with `llmhost plan PROFILE --stack NAME`")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise refuse(path, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise refuse(path, "config", "a stack file is a mapping with a `config:` mapping")
    return dict(doc.get("config") or {})

