"""Decision rules: a profile and a catalog in, a recommendation with its reasons out.

The order follows the seeds: hard constraints first (boundary, air-gap, fine-tuned weights, residency), then
cost at projected volume, then ops capacity, then latency. Each stage marks candidates infeasible with a
reason that names the rule; the cheapest feasible candidate wins, ties going to the simpler tier.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .catalog import QUALITY_RANK, ApiModel, Catalog, load_regions
from .costmodel import (
    CostCurve,
    Crossover,
    GpuOption,
    FLAT_DAY,
    GpuPlan,
    PeakShape,
    Volume,
    api_cost_per_request_usd,
    api_monthly_cost_usd,
    blended_price_per_mtok,
    cheapest_plan,
    crossover_on_curve,
    gpu_options,
    kv_cache_tokens,
    project_daily_requests,
    staffing_monthly_usd,
    tokens_label,
)
from .errors import InputError
from .placement import home_region_note, prefer_home, single_node_problem
from .profile import BOUNDARY_SENSITIVITIES, Profile, Workload
from .stack_config import unbuilt_refusal

TIER_ORDER = {"api": 0, "managed": 1, "hybrid": 2, "self-hosted": 3}
MANAGED_SERVICE = {"aws": "sagemaker", "gcp": "vertex"}
CLUSTER_SERVICE = {"aws": "eks", "gcp": "gke"}
BURST_PEAK_TO_AVERAGE = 2.0  # below this a fleet sized for peak idles little, so overflow saves little


@dataclass
class Candidate:
    tier: str
    label: str
    provider: Optional[str]
    pattern: Optional[str] = None
    feasible: bool = True
    reasons: list[str] = field(default_factory=list)  # why it lost or was ruled out
    notes: list[str] = field(default_factory=list)  # caveats that do not change the verdict
    cost: dict[str, float] = field(default_factory=dict)
    region: Optional[str] = None
    api: Optional[ApiModel] = None
    api_endpoint: Optional[str] = None
    plan: Optional[GpuPlan] = None
    boundary_tier: Optional[str] = None  # hybrids: the tier that serves the in-boundary share
    region_note: Optional[str] = None  # why the plan runs outside the home region (None: it runs at home)
    # Hybrids: what the hybrid costs against the option it is meant to improve on, added to `reasons` if it loses.
    if_it_loses: Optional[str] = None
    # Requests per second the plan sends to its third-party API at the projected peak (None: no API part): what the
    # gateway's caps on the API routes are sized from.
    api_peak_requests_s: Optional[float] = None

    @property
    def monthly_cost_usd(self) -> Optional[float]:
        return round(sum(self.cost.values()), 2) if self.cost else None

    def reject(self, reason: str) -> None:
        self.feasible = False
        self.reasons.append(reason)

    def as_dict(self) -> dict:
        out = {
            "tier": self.tier,
            "label": self.label,
            "pattern": self.pattern,
            "provider": self.provider,
            "region": self.region,
            "monthly_cost_usd": self.monthly_cost_usd,
            "cost_breakdown_usd": {k: round(v, 2) for k, v in self.cost.items()},
            "feasible": self.feasible,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }
        if self.plan:
            o, f = self.plan.option, self.plan.fleet
            out["capacity"] = {
                "instance_type": o.instance.instance_type,
                "gpu": o.fit.gpu,
                "gpus_per_replica": o.fit.gpus_per_replica,
                "precision": o.fit.precision,
                "replicas": f.replicas,
                "min_replicas": f.min_replicas,
                "floor_replicas": f.floor_replicas,
                "on_demand_instances": f.on_demand_instances,
                "spot_instances": f.spot_instances,
                "spot_share": round(f.spot_share, 3),
                "planned_tok_s_per_replica": round(o.tok_s_per_replica, 1),
                "load_output_tok_s": round(self.plan.load_tok_s, 1),
                **(self.plan.sizing.as_dict() if self.plan.sizing else {}),
                "throughput_source": o.throughput.source,
                "price_source": o.instance.source or o.instance.basis,
            }
        return out


@dataclass
class Decision:
    profile: Profile
    chosen: Candidate
    network: str
    candidates: list[Candidate]
    crossovers: list[Crossover]
    reasons: list[str]
    numbers: dict
    thresholds: list[str]
    revisit: str
    class_routes: dict[str, str]
    # The crossover against the best API as a daily volume the drift alerts watch: (requests/day, "above" or "below",
    # the report's words for it). Above: an API stack where a GPU tier would undercut the API; below: a GPU stack
    # where the API would cost less. None: no crossover.
    crossover_threshold: Optional[tuple[float, str, str]] = None

    @property
    def tier(self) -> str:
        return self.chosen.tier

    def as_dict(self) -> dict:
        c = self.chosen
        return {
            "profile": self.profile.name,
            "tier": c.tier,
            "pattern": c.pattern,
            "network": self.network,
            "cloud": self.profile.cloud,
            "region": c.region,
            "provider": c.provider,
            "api_provider": c.api.provider if c.api else None,
            "api_model": c.api.model if c.api else None,
            "open_model": self.profile.model.id if (self.profile.model and c.plan) else None,
            "monthly_cost_usd": c.monthly_cost_usd,
            "candidates": [x.as_dict() for x in self.candidates],
            "crossover": [x.as_dict() for x in self.crossovers],
            "reasons": list(self.reasons),
            "numbers": self.numbers,
            "thresholds": list(self.thresholds),
            "revisit": self.revisit,
            "routes": dict(self.class_routes),
        }


# ---------------------------------------------------------------------------------------------------------------


def _jurisdictions(profile: Profile) -> list[str]:
    regions = load_regions()
    seen: list[str] = []
    for r in profile.residency.allowed_regions:
        j = regions.jurisdiction(profile.cloud, r)
        if j not in seen:
            seen.append(j)
    return seen


def _api_blockers(profile: Profile, catalog: Catalog, cls: Workload) -> list[str]:
    """Why this traffic class may not go to any third-party API (empty: it may)."""
    out = []
    if profile.air_gapped:
        out.append("H1 air-gap: an air-gapped deployment has no route to a third-party API")
    if cls.data_sensitivity in BOUNDARY_SENSITIVITIES:
        out.append(f"H2 boundary: {cls.data_sensitivity} data never leaves the organisation's cloud boundary"
                   + (f" ({', '.join(profile.regulations)})" if profile.regulations else ""))
    if profile.model and profile.model.fine_tuned:
        out.append("H3 own weights: fine-tuned weights cannot go to a closed API, and no catalog hosted-open provider serves custom weights")
    if profile.latency_sla_ms < catalog.latency.api_min_reliable_ttft_ms:
        out.append(f"L1 latency: a p95 TTFT of {profile.latency_sla_ms} ms is below the "
                   f"{catalog.latency.api_min_reliable_ttft_ms} ms APIs reliably reach")
    return out


def _api_endpoint(profile: Profile, catalog: Catalog, model: ApiModel) -> tuple[Optional[str], Optional[str]]:
    """The provider endpoint that processes data in an allowed jurisdiction (home region's first)."""
    endpoints = catalog.api_providers[model.provider].endpoints
    for j in _jurisdictions(profile):
        if j in endpoints:
            return j, endpoints[j]
    return None, None


def _api_candidates(profile: Profile, catalog: Catalog, volume: Volume, quality: str, blockers: list[str]) -> list[Candidate]:
    """The cheapest model of each provider that meets the quality bar, priced at `volume`."""
    by_provider: dict[str, Candidate] = {}
    need = QUALITY_RANK[quality]
    for m in catalog.api_models:
        if m.status == "deprecated" or QUALITY_RANK[m.quality] < need:
            continue
        kind = "closed" if m.kind == "closed" else "hosted-open"
        cand = Candidate(tier="api", label=f"api: {m.provider} {m.model} ({kind})", provider=m.provider,
                         region=profile.home_region, api=m)
        cand.cost["api_usd"] = api_monthly_cost_usd(m, volume)
        cand.api_peak_requests_s = volume.peak_requests_s
        jurisdiction, endpoint = _api_endpoint(profile, catalog, m)
        cand.api_endpoint = endpoint
        for b in blockers:
            cand.reject(b)
        if endpoint is None:
            cand.reject(f"H4 residency: {m.provider} processes requests in "
                        f"{', '.join(catalog.api_providers[m.provider].endpoints)}, outside the allowed regions' "
                        f"jurisdictions ({', '.join(_jurisdictions(profile))})")
        elif jurisdiction != "us" and catalog.api_providers[m.provider].notes:
            cand.notes.append(f"uses the {jurisdiction} endpoint {endpoint}: {catalog.api_providers[m.provider].notes}")
        prev = by_provider.get(m.provider)
        if prev is None or (cand.feasible, -cand.monthly_cost_usd) > (prev.feasible, -prev.monthly_cost_usd):
            by_provider[m.provider] = cand
    return sorted(by_provider.values(), key=lambda c: (not c.feasible, c.monthly_cost_usd))


def _check_open_model(profile: Profile, catalog: Catalog, cand: Candidate, quality: str) -> None:
    """Quality and ops rules for a candidate that runs the open model itself."""
    if quality == "frontier":
        cand.reject("Q1 quality: frontier quality needs a closed API model; open-weight models reach strong-open at most")
    elif profile.model and profile.model.size_class in catalog.models:
        have = catalog.models[profile.model.size_class].quality
        if QUALITY_RANK[have] < QUALITY_RANK[quality]:
            cand.reject(f"Q2 quality: model.size_class {profile.model.size_class} is {have}-class; {quality} traffic needs a larger model")
    if cand.tier == "managed" and profile.latency_sla_ms < catalog.latency.managed_min_reliable_ttft_ms:
        cand.reject(f"L2 latency: a p95 TTFT of {profile.latency_sla_ms} ms is below the {catalog.latency.managed_min_reliable_ttft_ms} ms "
                    f"a managed endpoint's invocation hop allows; the model must run in the caller's cluster")
    if cand.tier == "managed" and profile.cloud == "gcp" and (profile.air_gapped or (profile.model and profile.model.fine_tuned)):
        why = "an air-gapped endpoint cannot pull the model from the hub" if profile.air_gapped else "fine-tuned weights live in our bucket"
        cand.reject(f"P1 provider gap: Vertex AI through pulumi-gcp cannot load weights from a GCS prefix (no model artifact or "
                    f"service-account field on the Model Garden deployment), and {why}")
    if cand.tier == "managed" and profile.model and profile.model.engine != "vllm":
        service = MANAGED_SERVICE[profile.cloud]
        cand.reject(f"E1 engine: model.engine {profile.model.engine} runs only on our own cluster; a {service} endpoint "
                    f"serves the model with its own vLLM-based container (set model.engine: vllm to allow it)")
    if cand.tier == "self-hosted" and profile.team.ml_ops_capacity != "dedicated":
        cand.reject(f"O1 ops: self-hosting needs a dedicated ML-ops team "
                    f"({catalog.staffing.fte('self-hosted', 'dedicated'):g} FTE); team.ml_ops_capacity is {profile.team.ml_ops_capacity}")


def _gpu_options_for(profile: Profile, catalog: Catalog, volume: Volume, service: str) -> tuple[list[GpuOption], list[str]]:
    """The instance types `service` can run the profile's model on at `volume`'s token mix (its level does not
    matter), and why the others were passed over: shared by the candidate and its cost curve."""
    kv = kv_cache_tokens(catalog, volume.avg_input_tokens, volume.avg_output_tokens, profile.model.max_context_tokens)
    # Capacity counts the prompt (prefill) and output (decode) work of the workload's own mix, and the replica must
    # prefill an average prompt within the TTFT SLA at the planned load.
    return gpu_options(catalog, profile.cloud, profile.residency.allowed_regions, service, profile.model.size_class,
                       kv, profile.availability_target, profile.allow_spot,
                       avg_input_tokens=volume.avg_input_tokens, avg_output_tokens=volume.avg_output_tokens,
                       ttft_sla_ms=profile.latency_sla_ms)


def _gpu_plan(profile: Profile, catalog: Catalog, options: list[GpuOption], load_tok_s: float,
              shape: PeakShape) -> Optional[GpuPlan]:
    """The plan a GPU candidate runs for a peak of `load_tok_s` moving over the day as `shape`: shared by the
    candidate and its cost curve."""
    return prefer_home(catalog, profile, options,
                       cheapest_plan(catalog, options, load_tok_s, profile.availability_target, shape))


def _gpu_costs(profile: Profile, catalog: Catalog, tier: str, plan: GpuPlan) -> dict[str, float]:
    """A GPU candidate's monthly cost items for `plan`: shared by the candidate and its cost curve."""
    return {"gpu_compute_usd": plan.monthly_compute_usd,
            "staffing_usd": staffing_monthly_usd(catalog, tier, profile.team.ml_ops_capacity)}


def _gpu_candidate(profile: Profile, catalog: Catalog, volume: Volume, tier: str, load_tok_s: float,
                   shape: Optional[PeakShape] = None) -> Candidate:
    """The `tier` candidate for a peak of `load_tok_s`, its load moving over the day as `shape` (default: as the
    profile's traffic does; a fleet that carries a flat base while an API takes the peak passes `FLAT_DAY`)."""
    cloud = profile.cloud
    service = "compute" if tier == "self-hosted" else MANAGED_SERVICE[cloud]
    provider = CLUSTER_SERVICE[cloud] if tier == "self-hosted" else MANAGED_SERVICE[cloud]
    cand = Candidate(tier=tier, label=f"{tier}: {provider}", provider=provider)
    if profile.model is None:
        cand.reject("needs an open-weight model: set `model` (id and size_class) in the profile")
        return cand
    options, passed_over = _gpu_options_for(profile, catalog, volume, service)
    plan = _gpu_plan(profile, catalog, options, load_tok_s, volume.shape if shape is None else shape)
    if plan is None:
        cand.reject(f"no {service} instance in {', '.join(profile.residency.allowed_regions)} can serve "
                    f"{profile.model.size_class} with a throughput figure in the catalog"
                    + (f" within a p95 TTFT of {profile.latency_sla_ms} ms" if any("TTFT" in r for r in passed_over) else "")
                    + (f" ({'; '.join(passed_over[:4])})" if passed_over else " (the catalog lists none there)"))
        return cand
    o = plan.option
    cand.plan = plan
    cand.region = o.region
    cand.region_note = home_region_note(catalog, profile, service, options, plan, passed_over)
    cand.label = f"{tier}: {provider} {o.instance.instance_type} x{plan.fleet.on_demand_instances + plan.fleet.spot_instances} ({o.fit.gpu})"
    cand.cost.update(_gpu_costs(profile, catalog, tier, plan))
    if service == "vertex" and profile.model.weights_uri:
        cand.notes.append(f"Vertex AI serves {profile.model.id} through Model Garden: pulumi-gcp cannot point it at "
                          f"{profile.model.weights_uri} (see the README's Vertex AI gaps)")
    if o.instance.estimate:
        cand.notes.append(f"the {o.instance.instance_type} price in {o.region} is an estimate (the catalog row's `basis` says how it was derived)")
    return cand


def _volume(profile: Profile, catalog: Catalog, months: float) -> Volume:
    t = profile.traffic
    return Volume(project_daily_requests(t.daily_requests, t.growth_monthly_percent, months), t.avg_input_tokens,
                  t.avg_output_tokens, t.peak_to_average, t.peak_hours_per_day, catalog.serving.hours_per_month / 24)


def decide(profile: Profile, catalog: Catalog, source: str = "profile", catalog_path: Optional[str] = None,
           relax: bool = True, explain: bool = True) -> Decision:
    """The decision for `profile`. `catalog_path` is the file `catalog` came from, if not the kit's own (the stack
    checks read it); `relax` names, when no tier can serve the profile, the single profile changes that would.
    `explain=False` chooses the same way but leaves out the crossovers, numbers and thresholds the report explains it
    with (what the searches over volume need: `planner.spend`)."""
    now = _volume(profile, catalog, 0)
    projected = _volume(profile, catalog, profile.traffic.horizon_months)
    classes = profile.classes
    blockers = {c.name: _api_blockers(profile, catalog, c) for c in classes}
    api_ok = {c.name: not blockers[c.name] for c in classes}
    top_quality = max((c.quality for c in classes), key=lambda q: QUALITY_RANK[q])
    reasons: list[str] = []
    if profile.model and profile.model.size_class not in catalog.models:
        raise InputError(source, [("model.size_class", f"{profile.model.size_class!r} is not a size class in the catalog; "
                                                       f"valid: {', '.join(catalog.models)}")])

    # Stage 1: hard constraints that make the profile impossible.
    for c in classes:
        if c.quality == "frontier" and not api_ok[c.name]:
            where = "quality" if not profile.workloads else f"workloads[{classes.index(c)}].quality"
            raise InputError(source, [(where, "frontier quality is only offered by closed APIs, which this traffic may not use ("
                                       + "; ".join(blockers[c.name]) + "); set quality: strong-open to accept an open-weight model")])
    if profile.air_gapped:
        reasons.append("H1 air-gap: no third-party API; network variant airgapped")
    for b in sorted({b for c in classes for b in blockers[c.name] if not b.startswith(("H1", "L1"))}):
        reasons.append(b)

    candidates: list[Candidate] = []
    # Whole-traffic API: every class must be allowed to leave, and the model must meet the highest quality asked.
    all_blockers = sorted({b for c in classes for b in blockers[c.name]})
    api_cands = _api_candidates(profile, catalog, projected, top_quality, all_blockers)
    candidates += api_cands

    managed = _placed_gpu_candidate(profile, catalog, projected, "managed", projected.peak_output_tok_s)
    selfhost = _placed_gpu_candidate(profile, catalog, projected, "self-hosted", projected.peak_output_tok_s)
    for cand in (managed, selfhost):
        _check_open_model(profile, catalog, cand, top_quality)
    candidates += [managed, selfhost]

    # Hybrids.
    hybrids = _hybrids(profile, catalog, projected, classes, api_ok)
    candidates += hybrids

    # B1: a candidate is feasible only if its stack passes the stack's own checks and the program builds it.
    for c in candidates:
        if c.feasible:
            problem = _unbuildable(profile, catalog, c, source, catalog_path)
            if problem:
                c.reject(problem)

    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        oversize = single_node_problem(catalog, profile)  # None unless no node of the allowed regions holds a replica
        problems = [("", "no tier can serve this profile:")] + ([("model.size_class", oversize)] if oversize else []) + [
            (c.label, "; ".join(c.reasons)) for c in candidates if c.tier != "api" or c is api_cands[0]] + \
            ([] if api_cands else [("api", f"no catalog API model reaches {top_quality} quality")])
        if relax:
            found = _relaxations(profile, catalog, source, catalog_path)
            problems += [(field, f"{change} would make a tier feasible: {label}") for field, change, label in found] or \
                [(field, f"rules out {', '.join(labels[:3])}" + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
                         + "; no single profile change makes a tier feasible, so change "
                         f"this field together with another one named here")
                 for field, labels in _blocking_fields(profile, candidates).items()]
        raise InputError(source, problems)
    chosen = min(feasible, key=lambda c: (round(c.monthly_cost_usd, 2), TIER_ORDER[c.tier]))
    reasons.append(f"C1 cost: {chosen.label} is the cheapest feasible option all-in at projected volume "
                   f"(${chosen.monthly_cost_usd:,.0f}/month)")
    for c in candidates:
        if c.feasible and c is not chosen:
            c.reasons.append(f"C1 cost: ${c.monthly_cost_usd:,.0f}/month all-in, ${c.monthly_cost_usd - chosen.monthly_cost_usd:,.0f} "
                             f"more than {chosen.label}")
            if c.if_it_loses:
                c.reasons.append(c.if_it_loses)
    # Stages 3 and 4 (ops capacity, latency): name the rules that ruled tiers out.
    for rule, source_reasons in (("O1", selfhost.reasons), ("L1", all_blockers), ("L2", managed.reasons)):
        fired = next((r for r in source_reasons if r.startswith(rule)), None)
        if fired:
            reasons.append(fired)
    if chosen.plan:
        f = chosen.plan.fleet
        reasons.append(f"A1 availability: {profile.availability_target}% needs at least {f.floor_replicas} replica(s) on on-demand "
                       f"capacity in separate zones" + (f"; {f.spot_replicas} more on spot" if f.spot_replicas else ""))

    network = _network(profile, chosen)
    if explain:
        crossovers = _crossovers(profile, catalog, projected, chosen, managed, selfhost, api_cands)
        numbers = _numbers(profile, catalog, now, projected, chosen)
        thresholds, revisit, crossover_threshold = _thresholds(profile, catalog, now, projected, chosen, candidates,
                                                               crossovers)
    else:
        crossovers, numbers, thresholds, revisit, crossover_threshold = [], {}, [], "", None
    routes = _routes(profile, chosen, classes, api_ok)
    # Candidates listed: the chosen one first, then by cost.
    ordered = [chosen] + sorted([c for c in candidates if c is not chosen],
                                key=lambda c: (not c.feasible, c.monthly_cost_usd if c.monthly_cost_usd is not None else math.inf))
    return Decision(profile, chosen, network, ordered, crossovers, reasons, numbers, thresholds, revisit, routes,
                    crossover_threshold)


_REGISTRY_REGION = {"aws": r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(/|$)", "gcp": r"^([a-z0-9-]+)-docker\.pkg\.dev/"}


def _placed_gpu_candidate(profile: Profile, catalog: Catalog, volume: Volume, tier: str, load_tok_s: float,
                          shape: Optional[PeakShape] = None) -> Candidate:
    """A GPU candidate placed where it can be built: the stack pulls its images from `private_registry`, which must be
    in the stack's region, so with a registry in one of the allowed regions the fleet is planned there. (A registry
    elsewhere is left to the stack check, which drops the candidate naming private_registry.)"""
    found = re.match(_REGISTRY_REGION[profile.cloud], profile.private_registry or "")
    region = found.group(1) if found else None
    if region not in profile.residency.allowed_regions or len(profile.residency.allowed_regions) == 1:
        return _gpu_candidate(profile, catalog, volume, tier, load_tok_s, shape)
    placed = profile.model_copy(update={"residency": profile.residency.model_copy(update={"allowed_regions": [region]})})
    cand = _gpu_candidate(placed, catalog, volume, tier, load_tok_s, shape)
    if cand.plan and region != profile.home_region:
        cand.region_note = (f"runs in {region}, not the home region {profile.home_region} (the first of "
                            f"residency.allowed_regions): its images come from private_registry, which is in {region}")
    return cand


def _unbuildable(profile: Profile, catalog: Catalog, cand: Candidate, source: str,
                 catalog_path: Optional[str]) -> Optional[str]:
    """Why the candidate's stack would be refused by the stack checks or by the program (None: it builds), naming
    the profile field to change. A gated model's licence is not a reason to pick another tier: it is asked for when
    the chosen stack is written."""
    from .stackgen import candidate_stack_config  # stackgen imports this module

    if profile.model and not profile.model.accept_eula:
        profile = profile.model_copy(update={"model": profile.model.model_copy(update={"accept_eula": True})})
    try:
        cfg = candidate_stack_config(profile, cand, _network(profile, cand), source, catalog, catalog_path)
    except InputError as exc:
        return "B1 build: the stack would be refused: " + "; ".join(f"{f}: {m}" if f else m for f, m in exc.problems)
    unbuilt = cfg.unbuilt()
    if unbuilt:
        return f"B1 build: {unbuilt[1]}"
    return None


# The profile field behind each rule that rules a candidate out (B1 reasons name theirs).
_RULE_FIELD = {"H1": "air_gapped", "H2": "data_sensitivity", "H3": "model.fine_tuned", "H4": "residency.allowed_regions",
               "L1": "latency_sla_ms", "L2": "latency_sla_ms", "E1": "model.engine", "O1": "team.ml_ops_capacity", "Q1": "quality",
               "Q2": "model.size_class"}


def _reason_field(profile: Profile, reason: str) -> Optional[str]:
    """The profile field a candidate's reason is about, so a refusal can name what to change."""
    reason = reason.split(" part: ", 1)[-1]  # a hybrid's in-boundary part
    rule = reason.split(" ", 1)[0]
    if rule in _RULE_FIELD:
        return _RULE_FIELD[rule]
    if rule == "P1":
        return "model.fine_tuned" if profile.model and profile.model.fine_tuned else "air_gapped"
    if rule == "B1":
        named = re.search(r"refused: ([a-z_]+(?:\.[a-z_]+)*(?:\[\d+\])?): ", reason)
        return named.group(1) if named else "team.ml_ops_capacity"  # a hybrid needs the cluster self-hosting runs
    if reason.startswith("needs an open-weight model"):
        return "model"
    if reason.startswith("no ") and " instance in " in reason:
        return "residency.allowed_regions"
    if reason.startswith("no API model"):
        return "quality"
    return None


def _blocking_fields(profile: Profile, candidates: list[Candidate]) -> dict[str, list[str]]:
    """Each profile field that rules a candidate out, with the candidates it rules out."""
    out: dict[str, list[str]] = {}
    for c in candidates:
        for r in c.reasons:
            field = _reason_field(profile, r)
            if field and c.label not in out.setdefault(field, []):
                out[field].append(c.label)
    return out


def _relaxations(profile: Profile, catalog: Catalog, source: str,
                 catalog_path: Optional[str]) -> list[tuple[str, str, str]]:
    """Single-field changes of the profile under which a tier is feasible: (field, change, the tier it would choose).

    Only changes a team can make without changing what the data is: a model size, a looser latency SLA, spot,
    another region of the same jurisdiction, a private registry, more ML-ops capacity, a lower quality bar, a
    shorter context.
    """
    from pydantic import ValidationError

    base = profile.model_dump(exclude_none=True)
    trials: list[tuple[str, str, dict]] = []

    def trial(field: str, change: str, **update) -> None:
        data = {**base, **update}
        trials.append((field, change, data))

    if profile.model:
        for size in catalog.models:
            if size != profile.model.size_class:
                trial("model.size_class", f"{size} instead of {profile.model.size_class}", model={**base["model"], "size_class": size})
        uri = profile.model.weights_uri
        if uri is None or not uri.endswith("/"):  # SageMaker and an air-gapped cluster read the weights from a prefix
            prefix = f"{uri}/" if uri else f"{'s3' if profile.cloud == 'aws' else 'gs'}://my-model-weights/{profile.model.size_class}/"
            trial("model.weights_uri", f"{prefix} (the key prefix holding the weights)" if uri else
                  f"set it to the in-region prefix the weights were copied to, e.g. {prefix}",
                  model={**base["model"], "weights_uri": prefix})
        if profile.model.engine != "vllm":
            trial("model.engine", f"vllm instead of {profile.model.engine}", model={**base["model"], "engine": "vllm"})
        if profile.model.max_context_tokens > 4096:
            trial("model.max_context_tokens", f"4096 instead of {profile.model.max_context_tokens}", model={**base["model"], "max_context_tokens": 4096})
    else:
        for size in catalog.models:
            trial("model", f"add an open-weight model of size_class {size}", model={"id": f"open-weight-{size}", "size_class": size})
    for sla in sorted({catalog.latency.managed_min_reliable_ttft_ms, catalog.latency.api_min_reliable_ttft_ms}):
        if sla > profile.latency_sla_ms:
            trial("latency_sla_ms", f"{sla} ms instead of {profile.latency_sla_ms} ms", latency_sla_ms=sla)
    if not profile.allow_spot:
        trial("allow_spot", "true instead of false", allow_spot=True)
    regions = load_regions()
    home = regions.jurisdiction(profile.cloud, profile.home_region)
    for r in regions.for_cloud(profile.cloud).regions:
        if r not in profile.residency.allowed_regions and regions.jurisdiction(profile.cloud, r) == home:
            trial("residency.allowed_regions", f"add {r}",
                  residency={"allowed_regions": [*profile.residency.allowed_regions, r]})
    for r in profile.residency.allowed_regions:  # a registry must be in the region the stack deploys to
        example = (f"123456789012.dkr.ecr.{r}.amazonaws.com/llm-mirror" if profile.cloud == "aws" else
                   f"{r}-docker.pkg.dev/{profile.gcp_project or 'my-project'}/llm-images")
        if example != profile.private_registry:
            trial("private_registry", f"your mirror in {r}, e.g. {example}", private_registry=example)
    for capacity in ("limited", "dedicated"):
        if ("none", "limited", "dedicated").index(capacity) > ("none", "limited", "dedicated").index(profile.team.ml_ops_capacity):
            trial("team.ml_ops_capacity", f"{capacity} instead of {profile.team.ml_ops_capacity}", team={"ml_ops_capacity": capacity})
    for q in sorted(QUALITY_RANK, key=QUALITY_RANK.get):
        if QUALITY_RANK[q] < QUALITY_RANK[profile.quality]:
            trial("quality", f"{q} instead of {profile.quality}", quality=q)

    found: list[tuple[str, str, str]] = []
    for field, change, data in trials:
        try:
            relaxed = Profile.model_validate(data)
            d = decide(relaxed, catalog, source, catalog_path, relax=False)
        except (ValidationError, InputError):
            continue
        found.append((field, change, d.chosen.label))
    return found


def _fleet_capacity_tok_s(plan: GpuPlan) -> float:
    """The most output tok/s `plan`'s fleet carries by the planner's own sizing (prefill, decode, latency, memory,
    spare replica): a burst-overflow gateway sends requests to the API only above it, so a fleet rounded up past its
    base load (or held up by the redundancy floor) takes part of the peak itself."""
    o, floor, replicas = plan.option, plan.fleet.floor_replicas, plan.fleet.replicas
    lo, hi = 0.0, max(plan.load_tok_s, 1.0)
    for _ in range(64):  # sizing grows with load, so double until the fleet no longer suffices
        if o.sizing(hi, floor).replicas > replicas:
            break
        lo, hi = hi, hi * 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if o.sizing(mid, floor).replicas <= replicas else (lo, mid)
    return lo


def _hybrid_sum(cand: Candidate) -> str:
    """A hybrid's cost in its parts, for the line that says why it lost."""
    c, f = cand.cost, cand.plan.fleet
    return (f"${c['gpu_compute_usd'] + c['staffing_usd']:,.0f} ({cand.boundary_tier} part: {f.replicas} replica(s), "
            f"${c['gpu_compute_usd']:,.0f} GPUs + ${c['staffing_usd']:,.0f} staffing) + ${c.get('api_usd', 0.0):,.0f} (API part) "
            f"+ ${c['gateway_staffing_usd']:,.0f} (gateway staffing) = ${cand.monthly_cost_usd:,.0f}/month")


def _floor_note(cand: Candidate) -> str:
    """Where the hybrid's own fleet is the redundancy floor, its share of traffic saves no GPU below that floor."""
    f = cand.plan.fleet
    return (f"; its {cand.plan.load_tok_s:,.0f} tok/s alone needs the redundancy floor of {f.floor_replicas} replicas"
            if cand.plan.sizing is not None and cand.plan.sizing.limited_by == "redundancy floor" else "")


def _hybrids(profile: Profile, catalog: Catalog, projected: Volume, classes: list[Workload],
             api_ok: dict[str, bool]) -> list[Candidate]:
    out: list[Candidate] = []
    gateway_usd = staffing_monthly_usd(catalog, "gateway", profile.team.ml_ops_capacity)
    top_quality = max((c.quality for c in classes), key=lambda q: QUALITY_RANK[q])

    def combine(pattern: str, boundary_classes: list[Workload], boundary_load: float,
                api_volume: Callable[[Optional[GpuPlan]], Volume], api_quality: str,
                why: str | Callable[[Optional[GpuPlan]], str], shape: Optional[PeakShape] = None) -> Candidate:
        # `api_volume` and `why` take the in-boundary plan: what overflows depends on what the fleet carries.
        # The in-boundary part runs on the cheapest allowed tier that the program builds a hybrid on.
        quality = max((c.quality for c in boundary_classes), key=lambda q: QUALITY_RANK[q])
        parts, unbuilt = [], []
        for tier in ("managed", "self-hosted"):
            p = _placed_gpu_candidate(profile, catalog, projected, tier, boundary_load, shape)
            _check_open_model(profile, catalog, p, quality)
            # Only a boundary tier the program builds a hybrid on (the gateway needs a cluster): the shared predicate.
            refusal = unbuilt_refusal("hybrid", tier)
            (unbuilt if refusal else parts).append((p, refusal))
        part = min((p for p, _ in parts),
                   key=lambda p: (not p.feasible, p.monthly_cost_usd if p.monthly_cost_usd is not None else math.inf))
        boundary_tier = part.tier
        # The cheapest API per request at the workload's mix: the same order as by monthly cost, and still a real order
        # when nothing overflows (every API then costs $0).
        api = sorted((a for a in _api_candidates(profile, catalog, api_volume(part.plan), api_quality, []) if a.feasible),
                     key=lambda a: api_cost_per_request_usd(a.api, projected.avg_input_tokens, projected.avg_output_tokens))
        cand = Candidate(tier="hybrid", label=f"hybrid ({pattern}): {part.label.split(': ', 1)[-1]} + API", provider=part.provider,
                         pattern=pattern, region=part.region, plan=part.plan, boundary_tier=boundary_tier,
                         region_note=part.region_note)
        cand.notes.append(why if isinstance(why, str) else why(part.plan))
        cand.notes.extend(part.notes)
        if not part.feasible:
            for r in part.reasons:
                cand.reject(f"{boundary_tier} part: {r}")
        for p, refusal in unbuilt:
            if p.feasible and (not part.feasible or p.monthly_cost_usd < part.monthly_cost_usd):
                # Say why the feasible (or cheaper) in-boundary option was passed over.
                passed_over = f"B1 build: {p.label} would serve the in-boundary share, but {refusal[1]}"
                (cand.notes if cand.feasible else cand.reasons).append(passed_over)
        if not api:
            cand.reject(f"no API model of {api_quality} quality is allowed for the overflow/API share")
        else:
            cand.api, cand.api_endpoint = api[0].api, api[0].api_endpoint
            cand.api_peak_requests_s = api_volume(part.plan).peak_requests_s
            cand.label = f"hybrid ({pattern}): {part.label.split(': ', 1)[-1]} + {api[0].api.provider} {api[0].api.model}"
            cand.cost["api_usd"] = api[0].cost["api_usd"]
        cand.cost.update(part.cost)
        cand.cost["gateway_staffing_usd"] = gateway_usd
        return cand

    def alone(tier: str) -> Candidate:
        """The hybrid's in-boundary tier carrying all the traffic at its peak: what the hybrid is meant to beat."""
        c = _placed_gpu_candidate(profile, catalog, projected, tier, projected.peak_output_tok_s)
        _check_open_model(profile, catalog, c, top_quality)
        return c

    in_boundary = [c for c in classes if not api_ok[c.name]]
    may_leave = [c for c in classes if api_ok[c.name]]
    if in_boundary and may_leave:
        share = sum(c.share_percent for c in in_boundary) / 100.0
        api_quality = max((c.quality for c in may_leave), key=lambda q: QUALITY_RANK[q])
        cand = combine("tiered-by-sensitivity", in_boundary, projected.peak_output_tok_s * share,
                       lambda plan: projected.scaled(1 - share), api_quality,
                       f"classes {', '.join(c.name for c in in_boundary)} stay in the boundary; "
                       f"{', '.join(c.name for c in may_leave)} may use an API")
        whole = alone(cand.boundary_tier)
        if cand.feasible and whole.plan is not None:
            saved = whole.cost["gpu_compute_usd"] - cand.cost["gpu_compute_usd"]
            cand.if_it_loses = (
                f"tiered-by-sensitivity costs {_hybrid_sum(cand)} against ${whole.monthly_cost_usd:,.0f}/month for the "
                f"{whole.tier} tier alone ({whole.plan.fleet.replicas} replica(s) for the whole {projected.peak_output_tok_s:,.0f} "
                f"tok/s peak): sending {1 - share:.0%} of requests to the API saves ${saved:,.0f} of GPUs and adds "
                f"${cand.cost.get('api_usd', 0.0) + gateway_usd:,.0f} of API and gateway" + _floor_note(cand)
                + ("" if whole.feasible else f" (the {whole.tier} tier alone is ruled out: {'; '.join(whole.reasons)})"))
        out.append(cand)
    frontier = [c for c in classes if c.quality == "frontier"]
    routine = [c for c in classes if c.quality != "frontier"]
    if frontier and routine and all(api_ok[c.name] for c in frontier):
        share = sum(c.share_percent for c in routine) / 100.0
        cand = combine("tiered-by-complexity", routine, projected.peak_output_tok_s * share,
                       lambda plan: projected.scaled(1 - share), "frontier",
                       f"classes {', '.join(c.name for c in frontier)} need frontier quality (closed API); "
                       f"{', '.join(c.name for c in routine)} run on an open model")
        # Without the hybrid, the frontier classes take every request to a frontier API (the routine ones with them).
        whole = [a for a in _api_candidates(profile, catalog, projected, "frontier", []) if a.feasible]
        if cand.feasible and whole:
            w = whole[0]
            kept_off = w.monthly_cost_usd - cand.cost.get("api_usd", 0.0)
            own = cand.monthly_cost_usd - cand.cost.get("api_usd", 0.0)
            cand.if_it_loses = (
                f"tiered-by-complexity costs {_hybrid_sum(cand)} against ${w.monthly_cost_usd:,.0f}/month for "
                f"{w.api.provider} {w.api.model} carrying all traffic: the {share:.0%} of requests it keeps off the frontier "
                f"API would cost ${kept_off:,.0f} there, against ${own:,.0f} for the {cand.boundary_tier} part and gateway"
                + _floor_note(cand))
        out.append(cand)
    if not in_boundary and profile.model and profile.traffic.peak_to_average >= BURST_PEAK_TO_AVERAGE:
        base = projected.offpeak_output_tok_s
        peak = projected.peak_output_tok_s
        api_quality = max((c.quality for c in classes), key=lambda q: QUALITY_RANK[q])

        def overflow_tok_s(plan: Optional[GpuPlan]) -> float:
            # The gateway overflows only what the fleet cannot take: the peak above the fleet's capacity, which is
            # above the off-peak base wherever replicas round up or the redundancy floor holds more than the base needs.
            return max(0.0, peak - (_fleet_capacity_tok_s(plan) if plan is not None else base))

        def overflow_share(plan: Optional[GpuPlan]) -> float:
            # Overflow runs only during the daily peak: overflow tok/s x peak hours of output per day.
            return overflow_tok_s(plan) * projected.peak_hours_per_day * 3600 / (projected.avg_output_tok_s * 86400)

        def burst(plan: Optional[GpuPlan]) -> Volume:
            return Volume(projected.daily_requests * overflow_share(plan), projected.avg_input_tokens,
                          projected.avg_output_tokens, 1.0, 24, projected.days_per_month)

        def why(plan: Optional[GpuPlan]) -> str:
            cap = f" (capacity {_fleet_capacity_tok_s(plan):,.0f})" if plan is not None else ""
            return (f"the fleet carries the off-peak {base:,.0f} output tok/s{cap}; the {projected.peak_hours_per_day:g} h daily "
                    f"peak ({peak:,.0f} tok/s) overflows to an API ({overflow_share(plan):.1%} of requests)")

        # The fleet carries the off-peak base all day (the API takes the peak above it): a flat day for the fleet.
        cand = combine("burst-overflow", classes, base, burst, api_quality, why, FLAT_DAY)
        if cand.api is not None:
            # Overflow runs only in the daily peak, at the peak above what the fleet carries (the `burst` volume
            # spreads it over the day, which is right for its cost, not for its rate).
            cand.api_peak_requests_s = overflow_tok_s(cand.plan) / projected.avg_output_tokens
        whole = alone(cand.boundary_tier)
        if cand.feasible:
            cap = _fleet_capacity_tok_s(cand.plan)
            f = cand.plan.fleet
            if cap >= peak:
                held = (f"redundancy floor of {f.floor_replicas} replicas" if cand.plan.sizing is not None
                        and cand.plan.sizing.limited_by == "redundancy floor" else f"{f.replicas} replicas for the off-peak {base:,.0f} tok/s")
                cand.if_it_loses = (
                    f"burst-overflow loses: the {held} already carries the peak of {peak:,.0f} tok/s (capacity {cap:,.0f} tok/s), "
                    f"so nothing overflows and the hybrid is the {cand.boundary_tier} fleet plus ${gateway_usd:,.0f}/month of "
                    f"gateway staffing")
            elif whole.plan is not None:
                cand.if_it_loses = (
                    f"burst-overflow costs {_hybrid_sum(cand)} against ${whole.monthly_cost_usd:,.0f}/month for the {whole.tier} "
                    f"tier alone ({whole.plan.fleet.replicas} replica(s) for the {peak:,.0f} tok/s peak): the fleet for the off-peak "
                    f"{base:,.0f} tok/s carries {cap:,.0f} tok/s and sends {peak - cap:,.0f} tok/s of the "
                    f"{projected.peak_hours_per_day:g} h daily peak ({overflow_share(cand.plan):.1%} of requests) to the API, "
                    f"saving ${whole.cost['gpu_compute_usd'] - cand.cost['gpu_compute_usd']:,.0f} of GPUs for "
                    f"${cand.cost.get('api_usd', 0.0) + gateway_usd:,.0f} of API and gateway")
        out.append(cand)
    return out


def _network(profile: Profile, chosen: Candidate) -> str:
    if profile.air_gapped:
        return "airgapped"
    if profile.data_sensitivity in BOUNDARY_SENSITIVITIES:
        return "private"
    if chosen.tier == "api" or profile.data_sensitivity == "public":
        return "public"
    return "private"  # secure default for anything we run ourselves


def _routes(profile: Profile, chosen: Candidate, classes: list[Workload], api_ok: dict[str, bool]) -> dict[str, str]:
    routes = {}
    for c in classes:
        if chosen.tier == "api":
            routes[c.name] = "api"
        elif chosen.tier in ("managed", "self-hosted"):
            routes[c.name] = chosen.tier
        elif chosen.pattern == "tiered-by-sensitivity":
            routes[c.name] = "api" if api_ok[c.name] else chosen.boundary_tier
        elif chosen.pattern == "tiered-by-complexity":
            routes[c.name] = "api" if c.quality == "frontier" else chosen.boundary_tier
        else:
            routes[c.name] = f"{chosen.boundary_tier}, overflow to api"
    return routes


def _crossovers(profile: Profile, catalog: Catalog, projected: Volume, chosen: Candidate, managed: Candidate,
                selfhost: Candidate, api_cands: list[Candidate]) -> list[Crossover]:
    out = []
    for gpu_cand in (selfhost, managed):
        if gpu_cand.plan is None:
            continue
        curve = gpu_cost_curve(profile, catalog, projected, gpu_cand.tier)
        for a in api_cands:
            if a.api is None:
                continue
            out.append(crossover_on_curve(gpu_cand.tier, curve, a.api, projected))
    return out


def gpu_cost_curve(profile: Profile, catalog: Catalog, volume: Volume, tier: str) -> CostCurve:
    """`tier`'s all-in monthly cost by monthly requests at `volume`'s token mix and peak, priced as its candidate is
    (`_gpu_candidate`: the same options, plan and cost items at the peak load), so the crossover moves with whatever
    the planner counts: the instance type and region it would pick at each volume, capacity, the floor."""
    service = "compute" if tier == "self-hosted" else MANAGED_SERVICE[profile.cloud]
    options, _ = _gpu_options_for(profile, catalog, volume, service)

    def gpu_monthly_cost_at(monthly_requests: float) -> float:
        load = volume.with_monthly_requests(monthly_requests).peak_output_tok_s
        return sum(_gpu_costs(profile, catalog, tier, _gpu_plan(profile, catalog, options, load, volume.shape)).values())

    return CostCurve(gpu_monthly_cost_at, scale=volume.monthly_requests)


def _numbers(profile: Profile, catalog: Catalog, now: Volume, projected: Volume, chosen: Candidate) -> dict:
    n = {
        "daily_requests_now": round(now.daily_requests),
        "daily_requests_projected": round(projected.daily_requests),
        "horizon_months": profile.traffic.horizon_months,
        "growth_monthly_percent": profile.traffic.growth_monthly_percent,
        "monthly_tokens_now": round(now.monthly_tokens),
        "monthly_tokens_projected": round(projected.monthly_tokens),
        "monthly_input_tokens_projected": round(projected.monthly_input_tokens),
        "monthly_output_tokens_projected": round(projected.monthly_output_tokens),
        "avg_output_tok_s_projected": round(projected.avg_output_tok_s, 2),
        "peak_output_tok_s_projected": round(projected.peak_output_tok_s, 2),
        "target_utilization": catalog.serving.target_utilization,
        "fte_monthly_usd": round(catalog.staffing.fte_monthly_usd, 2),
        "hours_per_month": catalog.serving.hours_per_month,
    }
    if chosen.api:
        n["api_usd_per_request"] = round(api_cost_per_request_usd(chosen.api, now.avg_input_tokens, now.avg_output_tokens), 6)
        n["api_blended_usd_per_mtok"] = round(blended_price_per_mtok(chosen.api, now.avg_input_tokens, now.avg_output_tokens), 4)
    if chosen.plan:
        o, f = chosen.plan.option, chosen.plan.fleet
        saturated = f.replicas * o.tok_s_per_replica / catalog.serving.target_utilization
        if chosen.pattern == "burst-overflow":
            avg_load = chosen.plan.load_tok_s  # the fleet runs at its base level all day, overflow goes out
        else:
            avg_load = chosen.plan.load_tok_s / profile.traffic.peak_to_average
        n["fleet_planned_tok_s"] = round(f.replicas * o.tok_s_per_replica, 1)
        if o.scales_per_instance and f.scales:
            # A managed endpoint scales between the off-peak level's replicas and the peak's (charged at the peak's).
            share = chosen.plan.shape.offpeak_share
            n["offpeak_output_tok_s_projected"] = round(chosen.plan.load_tok_s * share, 2)
            n["fleet_min_replicas"] = f.min_replicas
            n["fleet_max_replicas"] = f.replicas
            n["fleet_following_the_day_monthly_usd"] = round(f.scaled_monthly_compute_usd, 2)
        n["fleet_average_load_tok_s"] = round(avg_load, 1)
        # Idle capacity is paid for: the share of saturated throughput the fleet uses on average.
        n["fleet_average_utilisation"] = round(avg_load / saturated, 3) if saturated else None
        n["weights_gb"] = o.fit.weights_gb
        n["kv_cache_gb"] = o.fit.kv_cache_gb
        n["usable_gpu_memory_gb_per_replica"] = o.fit.usable_gb
        n["measured_output_tok_s_per_gpu"] = o.throughput.output_tok_s_per_gpu
        n["peak_input_tok_s_projected"] = round(projected.peak_input_tok_s, 2)
        if o.capacity is not None:
            cap = o.capacity
            n["prompt_tok_s_per_replica"] = round(cap.prompt_tok_s, 1)
            n["decode_tok_s_per_replica"] = round(cap.decode_tok_s, 1)
            n["prompt_share_of_replica_time"] = round(cap.avg_input_tokens / cap.prompt_tok_s / cap.seconds_per_request, 3)
            n["planned_utilization"] = round(cap.utilization_cap, 3)
            n["kv_sequences_per_replica"] = round(cap.max_sequences, 1)
        if chosen.plan.sizing is not None:
            sz = chosen.plan.sizing
            # What sets the fleet's size: prefill, decode, latency (TTFT), memory (KV cache) or the redundancy floor.
            n["fleet_limited_by"] = sz.limited_by
            n.update({f"replicas_for_{k.replace(' ', '_')}": v for k, v in sz.bounds.items()})
            if sz.ttft_ms is not None:
                n["ttft_ms_at_peak"] = round(sz.ttft_ms, 1)
    return n


def _thresholds(profile: Profile, catalog: Catalog, now: Volume, projected: Volume, chosen: Candidate,
                candidates: list[Candidate], crossovers: list[Crossover]) -> tuple[list[str], str, Optional[tuple]]:
    out: list[str] = []
    watched: Optional[tuple[float, str, str]] = None
    revisit = f"re-plan at the {profile.traffic.horizon_months}-month horizon, or when traffic departs from the profile"
    g = profile.traffic.growth_monthly_percent
    if chosen.tier == "api" and chosen.api:
        label = f"{chosen.api.provider}/{chosen.api.model}"
        relevant = [x for x in crossovers if x.against == label]
        for x in relevant:
            if x.monthly_tokens is None:
                out.append(f"{x.tier} never undercuts {label}: {x.note}")
                continue
            out.append(f"{x.tier} costs no more than {label} at every volume from {tokens_label(x.monthly_tokens)} tokens/month "
                       f"({x.daily_requests:,.0f} requests/day); projected volume is {tokens_label(projected.monthly_tokens)}")
        reachable = [x for x in relevant if x.daily_requests is not None and x.tier == "self-hosted"] or \
                    [x for x in relevant if x.daily_requests is not None]
        if reachable:
            x = min(reachable, key=lambda x: x.daily_requests)
            if g > 0 and x.daily_requests > now.daily_requests:
                months = math.ceil(math.log(x.daily_requests / now.daily_requests) / math.log(1 + g / 100))
                where = f"{x.daily_requests:,.0f} requests/day, where {x.tier} undercuts {label}"
                if months <= 2 * profile.traffic.horizon_months:
                    revisit = f"revisit in about {months} months: at {g:g}%/month growth traffic reaches {where}"
                else:
                    revisit = (f"re-plan at the {profile.traffic.horizon_months}-month horizon; at {g:g}%/month growth "
                               f"traffic would take about {months} months to reach {where}")
            elif x.daily_requests <= now.daily_requests:
                revisit = f"revisit now: {x.tier} would already undercut {label} at today's volume, if the team can run it"
            watched = (x.daily_requests, "above", f"{x.tier} costs no more than {label} at every volume from "
                       f"{tokens_label(x.monthly_tokens)} tokens/month ({x.daily_requests:,.0f} requests/day): {revisit}")
        out.append(f"confidential or regulated data, an air gap, or a p95 TTFT below {catalog.latency.api_min_reliable_ttft_ms} ms "
                   f"would rule the API tier out")
    else:
        for x in crossovers:
            if chosen.tier in (x.tier, "hybrid") and x.monthly_tokens is not None and x.against == _best_api_label(candidates):
                # Below the crossover the API is cheaper, except where a step's capacity is nearly full.
                line = (f"below {tokens_label(x.monthly_tokens)} tokens/month ({x.daily_requests:,.0f} requests/day) "
                        f"{x.against} would cost less than {x.tier}"
                        + ("" if x.api_cheaper_below else " at most volumes")
                        + ", if the data were allowed to leave")
                out.append(line)
                if x.tier == (chosen.boundary_tier if chosen.tier == "hybrid" else chosen.tier) and (
                        watched is None or x.daily_requests > watched[0]):
                    watched = (x.daily_requests, "below", line)
    if profile.team.ml_ops_capacity != "dedicated":
        sh = next((c for c in candidates if c.tier == "self-hosted"), None)
        if sh and sh.monthly_cost_usd is not None:
            out.append(f"with team.ml_ops_capacity: dedicated, self-hosting would be allowed at "
                       f"${sh.monthly_cost_usd:,.0f}/month all-in")
    alternatives = [c for c in candidates if c.feasible and c is not chosen]
    if alternatives:
        nxt = min(alternatives, key=lambda c: c.monthly_cost_usd)
        gap = nxt.monthly_cost_usd - chosen.monthly_cost_usd
        out.append(f"next best is {nxt.label} at ${nxt.monthly_cost_usd:,.0f}/month; the answer flips if "
                   f"{chosen.label}'s cost rises by more than ${gap:,.0f}/month")
    return out, revisit, watched


def _best_api_label(candidates: list[Candidate]) -> Optional[str]:
    apis = [c for c in candidates if c.tier == "api" and c.api]
    if not apis:
        return None
    best = min(apis, key=lambda c: c.monthly_cost_usd)
    return f"{best.api.provider}/{best.api.model}"
