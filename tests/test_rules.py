"""Decision rules: the seeds' scenarios, the hard constraints (H1-H4), latency (L1/L2), refusals, the example
profiles, and the shape of the decision JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.catalog import QUALITY_RANK
from planner.errors import InputError
from planner.profile import Profile, load_profile
from planner.rules import decide

ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILES = sorted((ROOT / "stacks" / "profiles").glob("*.yaml"))


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def profile(*, daily_requests: int = 10_000, avg_input_tokens: int = 1500, avg_output_tokens: int = 500,
            peak_to_average: float = 2.0, peak_hours_per_day: float = 2.0, growth: float = 0.0, horizon: int = 12,
            latency_sla_ms: int = 500, sensitivity: str = "internal", regulations: list[str] | None = None,
            cloud: str = "aws", regions: list[str] | None = None, team: str = "limited", model: str | None = None,
            fine_tuned: bool = False, quality: str = "strong-open", air_gapped: bool = False,
            availability: float = 99.9, workloads: list[dict] | None = None, name: str = "test") -> dict:
    """A valid profile dict; `model` is a catalog size class (8b, 70b) or None."""
    d = {
        "name": name,
        "cloud": cloud,
        "traffic": {"daily_requests": daily_requests, "avg_input_tokens": avg_input_tokens,
                    "avg_output_tokens": avg_output_tokens, "peak_to_average": peak_to_average,
                    "peak_hours_per_day": peak_hours_per_day, "growth_monthly_percent": growth, "horizon_months": horizon},
        "latency_sla_ms": latency_sla_ms,
        "data_sensitivity": sensitivity,
        "regulations": regulations or [],
        "residency": {"allowed_regions": regions or (["us-east-1"] if cloud == "aws" else ["us-central1"])},
        "team": {"ml_ops_capacity": team},
        "quality": quality,
        "air_gapped": air_gapped,
        "availability_target": availability,
    }
    if air_gapped:  # an air-gapped profile names the in-region registry its images are mirrored to
        region = d["residency"]["allowed_regions"][0]
        d["private_registry"] = (f"123456789012.dkr.ecr.{region}.amazonaws.com/llm-mirror" if cloud == "aws"
                                 else f"{region}-docker.pkg.dev/acme-llm/llm-mirror")
    if model:
        ids = {"8b": "meta-llama/Llama-3.1-8B-Instruct", "70b": "meta-llama/Llama-3.1-70B-Instruct"}
        # Weights in our bucket: SageMaker and an air-gapped cluster load them only from there (the stack check B1).
        d["model"] = {"id": ids[model], "size_class": model, "fine_tuned": fine_tuned,
                      "weights_uri": f"{'s3' if cloud == 'aws' else 'gs'}://acme-llm-weights/{model}/"}
    if workloads:
        d["workloads"] = workloads
    return d


def run(catalog, d: dict):
    return decide(Profile.model_validate(d), catalog)


def rule_ids(reasons: list[str]) -> set[str]:
    """'H2 boundary: ...' -> 'H2'; also finds ids behind a hybrid's 'managed part: ' prefix."""
    out = set()
    for r in reasons:
        head = r.split(": ", 1)[1] if r.startswith(("managed part: ", "self-hosted part: ")) else r
        out.add(head.split(" ", 1)[0])
    return out


def by_tier(decision, tier: str):
    return [c for c in decision.candidates if c.tier == tier]


def monthly_tokens(d: dict) -> float:
    t = d["traffic"]
    return t["daily_requests"] * (t["avg_input_tokens"] + t["avg_output_tokens"]) * 30


# ---------------------------------------------------------------------------------------------------------------
# The seeds' scenarios

# Seed "Layer 1: Surface": startup_profile = WorkloadProfile(daily_requests=10_000, avg_tokens_per_request=2_000,
# latency_sla_ms=500, data_sensitivity="internal", team_ml_ops_capacity="limited")  # "api-inference"
LAYER1_STARTUP = profile(daily_requests=10_000, avg_input_tokens=1500, avg_output_tokens=500, latency_sla_ms=500,
                         sensitivity="internal", team="limited")
# Seed "Layer 1: Surface": enterprise_profile = WorkloadProfile(daily_requests=500_000, avg_tokens_per_request=3_000,
# latency_sla_ms=200, data_sensitivity="regulated", team_ml_ops_capacity="dedicated")  # "self-hosted"
LAYER1_ENTERPRISE = profile(daily_requests=500_000, avg_input_tokens=2000, avg_output_tokens=1000, latency_sla_ms=200,
                            sensitivity="regulated", team="dedicated", model="70b")
# Seed "When to Self-Host", Scenario 1 SaaS startup: "50M tokens/month", "Small engineering team" (1,333 x 1,250 x 30).
SAAS_STARTUP = profile(daily_requests=1_333, avg_input_tokens=1000, avg_output_tokens=250, latency_sla_ms=1000,
                       sensitivity="internal", team="limited")
# Scenario 2 Healthcare: "200M tokens/month", "Strict HIPAA requirements" (4,500 x 1,500 x 30 = 202.5M).
HEALTHCARE = profile(daily_requests=4_500, avg_input_tokens=1200, avg_output_tokens=300, peak_to_average=3.0,
                     latency_sla_ms=1000, sensitivity="regulated", regulations=["hipaa"], team="limited", model="70b")
# Scenario 4 Trading firm: "500M tokens/month", "Sub-100ms latency", "Proprietary trading strategies in prompts",
# a dedicated team (13,333 x 1,250 x 30 = 500M).
TRADING = profile(daily_requests=13_333, avg_input_tokens=1000, avg_output_tokens=250, latency_sla_ms=80,
                  sensitivity="confidential", team="dedicated", model="70b")


SCENARIOS = [
    # id, profile, tier, rule ids that must appear in decision.reasons
    pytest.param(LAYER1_STARTUP, "api", {"C1"}, id="layer1-startup-api"),
    pytest.param(LAYER1_ENTERPRISE, "self-hosted", {"H2", "C1", "A1"}, id="layer1-enterprise-boundary"),
    pytest.param(SAAS_STARTUP, "api", {"C1", "O1"}, id="scenario1-saas-api"),
    pytest.param(HEALTHCARE, "managed", {"H2", "C1", "O1", "A1"}, id="scenario2-healthcare-managed"),
    pytest.param(TRADING, "self-hosted", {"H2", "L1", "C1", "A1"}, id="scenario4-trading-self-hosted"),
]


@pytest.mark.parametrize("d, tier, rules", SCENARIOS)
def test_seed_scenarios(catalog, d, tier, rules):
    decision = run(catalog, d)
    assert decision.tier == tier
    assert rules <= rule_ids(decision.reasons), decision.reasons
    assert decision.chosen.feasible
    expected_network = "public" if tier == "api" else "private"
    assert decision.network == expected_network


def test_seed_volumes_are_the_seeds():
    assert monthly_tokens(LAYER1_STARTUP) == 600e6  # 10,000 x 2,000 x 30
    assert monthly_tokens(LAYER1_ENTERPRISE) == 45e9  # 500,000 x 3,000 x 30
    assert monthly_tokens(SAAS_STARTUP) == pytest.approx(50e6, rel=0.001)
    assert monthly_tokens(HEALTHCARE) == pytest.approx(200e6, rel=0.02)
    assert monthly_tokens(TRADING) == pytest.approx(500e6, rel=0.001)


def test_layer1_startup_goes_to_the_cheapest_api(catalog):
    decision = run(catalog, LAYER1_STARTUP)
    apis = by_tier(decision, "api")
    assert decision.chosen is apis[0]
    assert all(c.feasible for c in apis)
    assert decision.chosen.monthly_cost_usd == min(c.monthly_cost_usd for c in apis)
    assert decision.class_routes == {"all": "api"}
    # One candidate per provider: its cheapest live model at or above strong-open quality.
    assert len({c.provider for c in apis}) == len(apis)
    for c in apis:
        eligible = [m for m in catalog.api_models if m.provider == c.provider and m.status != "deprecated"
                    and QUALITY_RANK[m.quality] >= QUALITY_RANK["strong-open"]]
        assert c.api == min(eligible, key=lambda m: 1500 * m.input_per_mtok + 500 * m.output_per_mtok)
    assert {c.provider: c.api.model for c in apis}["openai"] == "gpt-4.1"  # $2/$8 beats gpt-4o's $2.5/$10
    assert {c.provider for c in apis} == {"openai", "anthropic", "google", "together", "fireworks", "groq"}


def test_layer1_enterprise_self_hosts_because_spot_and_packing_beat_the_managed_endpoint(catalog):
    # 500k requests/day x (2,000 prompt + 1,000 output) tokens, 2x peak, p95 TTFT 200 ms. Counting output tokens
    # only, the seed's arithmetic gave 24 replicas on 2 x L40S (~$107k self-hosted against ~$239k on SageMaker).
    # Counting prefill too, 2 x L40S need about 385 ms to prefill one 2,000-token prompt even when idle, so the
    # 200 ms SLA rules them out (knowingly corrected here): the fleet moves to H200, sized by the latency SLA, and
    # SageMaker (one copy per instance, no spot) still costs several times more. The conclusion is the seed's.
    decision = run(catalog, LAYER1_ENTERPRISE)
    assert decision.tier == "self-hosted"
    assert decision.chosen.provider == "eks"
    (managed,) = by_tier(decision, "managed")
    (selfhost,) = by_tier(decision, "self-hosted")
    assert managed.feasible and selfhost.feasible
    assert selfhost.plan.option.fit.gpu == "H200"
    assert selfhost.plan.sizing.limited_by == "latency" and selfhost.plan.sizing.ttft_ms <= 200
    assert selfhost.plan.fleet.spot_replicas > 0 and managed.plan.fleet.spot_replicas == 0
    assert selfhost.cost["staffing_usd"] == pytest.approx(62_500)
    assert managed.cost["staffing_usd"] == pytest.approx(12_500)
    assert managed.monthly_cost_usd > 3 * selfhost.monthly_cost_usd
    assert decision.numbers["fleet_limited_by"] == "latency"
    # Every API candidate is out because regulated data stays in the boundary.
    for c in by_tier(decision, "api"):
        assert not c.feasible
        assert "H2" in rule_ids(c.reasons)
    # 200 ms is not below the 200 ms APIs reach, so L1 does not fire.
    assert "L1" not in rule_ids(decision.reasons)


def test_scenario2_healthcare_goes_managed_not_self_hosted(catalog):
    # The seed says "Choose Self-Host" for HIPAA at 200M tokens/month. All-in, a managed endpoint keeps the PHI in
    # the AWS account for less: 2 x ml.g6e.12xlarge (~$18.9k) + 0.5 FTE ($12.5k) = ~$31.4k against self-hosting's
    # ~$15.1k of GPUs + 2.5 FTE ($62.5k) = ~$77.6k, which a limited team may not run anyway (O1).
    decision = run(catalog, HEALTHCARE)
    assert (decision.tier, decision.chosen.provider, decision.network) == ("managed", "sagemaker", "private")
    (selfhost,) = by_tier(decision, "self-hosted")
    assert not selfhost.feasible and "O1" in rule_ids(selfhost.reasons)
    assert decision.chosen.monthly_cost_usd < selfhost.monthly_cost_usd - 40_000
    # Even with the seed's "budget for ML engineering hire" (a dedicated team) managed still wins on cost.
    dedicated = run(catalog, {**HEALTHCARE, "team": {"ml_ops_capacity": "dedicated"}})
    assert dedicated.tier == "managed"
    (selfhost_d,) = by_tier(dedicated, "self-hosted")
    assert selfhost_d.feasible and "C1" in rule_ids(selfhost_d.reasons)


def test_scenario2_endpoint_serves_its_one_copy_on_every_gpu_of_the_instance(catalog):
    # 70b in fp8 needs 2 of the 4 L40S of an ml.g6e.12xlarge, but SageMaker bills the instance and places one copy
    # on it: the stack shards that copy over all 4 (at the precision the fit assumed), and the capacity and cost
    # stay planned on the 2 the model needs.
    from planner.stackgen import stack_config_from

    decision = run(catalog, HEALTHCARE)
    o = decision.chosen.plan.option
    managed = stack_config_from(decision, "healthcare.yaml", catalog).managed
    assert (managed.instance_type, managed.gpus_per_replica, managed.precision) == ("ml.g6e.12xlarge", 4, "fp8")
    assert managed.gpus_per_replica == o.instance.gpu_count
    assert (o.fit.gpus_per_replica, o.fit.precision, o.replicas_per_instance) == (2, "fp8", 1)


def test_scenario4_trading_latency_rules_out_api_and_managed(catalog):
    decision = run(catalog, TRADING)
    assert (decision.tier, decision.chosen.provider) == ("self-hosted", "eks")
    for c in by_tier(decision, "api"):
        assert not c.feasible
        assert {"H2", "L1"} <= rule_ids(c.reasons)
    (managed,) = by_tier(decision, "managed")
    assert not managed.feasible
    assert "L2" in rule_ids(managed.reasons)
    assert "80 ms" in next(r for r in managed.reasons if r.startswith("L2"))


def test_air_gapped_profile(catalog):
    decision = run(catalog, profile(air_gapped=True, sensitivity="regulated", team="dedicated", model="70b"))
    assert decision.network == "airgapped"
    assert decision.tier in ("managed", "self-hosted")
    assert "H1" in rule_ids(decision.reasons)
    apis = by_tier(decision, "api")
    assert apis
    for c in apis:
        assert not c.feasible
        assert "H1" in rule_ids(c.reasons)
    assert not by_tier(decision, "hybrid")  # nothing may leave, so no hybrid is offered


def test_air_gap_alone_rules_out_apis_even_for_internal_data(catalog):
    decision = run(catalog, profile(air_gapped=True, sensitivity="internal", team="dedicated", model="70b"))
    assert decision.network == "airgapped"
    assert decision.tier != "api"
    assert all(not c.feasible and rule_ids(c.reasons) == {"H1"} for c in by_tier(decision, "api"))


def test_fine_tuned_weights_stay_off_apis(catalog):
    decision = run(catalog, profile(team="dedicated", model="70b", fine_tuned=True))
    assert decision.tier in ("managed", "self-hosted")
    assert "H3" in rule_ids(decision.reasons)
    for c in by_tier(decision, "api"):
        assert not c.feasible
        assert "H3" in rule_ids(c.reasons)


def test_eu_residency_uses_openai_eu_endpoint(catalog):
    decision = run(catalog, profile(cloud="gcp", regions=["europe-west4"], sensitivity="internal", quality="frontier",
                           team="none", regulations=["gdpr"]))
    assert decision.tier == "api"
    assert decision.chosen.provider == "openai"
    assert decision.chosen.api_endpoint == "https://eu.api.openai.com/v1"
    assert any("eu endpoint" in n for n in decision.chosen.notes)
    rejected = {c.provider: c for c in by_tier(decision, "api") if c.provider in ("google", "anthropic")}
    assert set(rejected) == {"google", "anthropic"}
    for c in rejected.values():
        assert not c.feasible
        assert "H4" in rule_ids(c.reasons)
    # Frontier only: no hosted-open provider is offered.
    assert {c.provider for c in by_tier(decision, "api")} == {"openai", "google", "anthropic"}


def test_us_region_uses_the_default_endpoints(catalog):
    decision = run(catalog, profile(quality="frontier", team="none"))
    assert decision.tier == "api"
    for c in by_tier(decision, "api"):
        assert c.feasible and "H4" not in rule_ids(c.reasons)
    openai = next(c for c in by_tier(decision, "api") if c.provider == "openai")
    assert openai.api_endpoint == "https://api.openai.com/v1"


# Mixed workloads like stacks/profiles/tiered-sensitivity.yaml: public product copy, confidential customer service.
MIXED_WORKLOADS = [{"name": "product-copy", "share_percent": 70, "data_sensitivity": "public"},
                   {"name": "customer-service", "share_percent": 30, "data_sensitivity": "confidential"}]


def mixed(daily_requests: int = 800_000, team: str = "dedicated") -> dict:
    return profile(daily_requests=daily_requests, avg_input_tokens=1000, avg_output_tokens=300, peak_to_average=3.0,
                   growth=3, latency_sla_ms=800, sensitivity="confidential", regulations=["pci-dss"],
                   regions=["us-east-1", "us-west-2"], team=team, model="70b", workloads=MIXED_WORKLOADS)


def test_mixed_workloads_offer_a_tiered_by_sensitivity_hybrid(catalog):
    decision = run(catalog, mixed())
    hybrids = [c for c in by_tier(decision, "hybrid") if c.pattern == "tiered-by-sensitivity"]
    assert len(hybrids) == 1
    assert hybrids[0].feasible
    assert (decision.tier, decision.chosen.pattern) == ("hybrid", "tiered-by-sensitivity")
    assert decision.class_routes == {"product-copy": "api", "customer-service": "self-hosted"}
    # Whole-traffic APIs are out: the confidential class may not leave.
    assert all(not c.feasible and "H2" in rule_ids(c.reasons) for c in by_tier(decision, "api"))


@pytest.mark.parametrize("daily_requests", [2_000, 50_000, 800_000, 5_000_000])
@pytest.mark.parametrize("team", ["limited", "dedicated"])
def test_confidential_class_never_routed_to_api(catalog, daily_requests, team):
    decision = run(catalog, mixed(daily_requests, team))
    assert any(c.pattern == "tiered-by-sensitivity" for c in by_tier(decision, "hybrid"))
    route = decision.class_routes["customer-service"]
    assert route in ("managed", "self-hosted")
    assert "api" not in route
    assert decision.tier != "api"


# ---------------------------------------------------------------------------------------------------------------
# Refusals


def test_frontier_quality_with_regulated_data_is_refused(catalog):
    with pytest.raises(InputError) as err:
        run(catalog, profile(sensitivity="regulated", quality="frontier", team="dedicated", model="70b"))
    (problem,) = err.value.problems
    field, message = problem
    assert field == "quality"
    assert "closed APIs" in message
    assert "H2 boundary" in message
    assert "strong-open" in message  # says what would be valid


def test_frontier_workload_class_is_refused_by_its_index(catalog):
    workloads = [{"name": "open", "share_percent": 50, "data_sensitivity": "public"},
                 {"name": "secret", "share_percent": 50, "data_sensitivity": "confidential", "quality": "frontier"}]
    with pytest.raises(InputError) as err:
        run(catalog, profile(sensitivity="confidential", team="dedicated", model="70b", workloads=workloads))
    assert [f for f, _ in err.value.problems] == ["workloads[1].quality"]


def test_no_feasible_tier_lists_why(catalog):
    with pytest.raises(InputError) as err:
        run(catalog, profile(sensitivity="regulated", team="limited"))  # regulated data, but no open model to run
    problems = err.value.problems
    assert problems[0] == ("", "no tier can serve this profile:")
    text = err.value.render()
    assert "H2 boundary" in text
    assert "needs an open-weight model" in text
    assert "O1 ops" in text
    labels = [f for f, _ in problems[1:]]
    assert "managed: sagemaker" in labels and "self-hosted: eks" in labels
    assert sum(1 for f in labels if f.startswith("api: ")) == 1  # one API line stands for all


def test_low_latency_without_a_dedicated_team_is_refused(catalog):
    # 80 ms: APIs (L1) and managed endpoints (L2) are out, and a limited team may not self-host (O1).
    with pytest.raises(InputError) as err:
        run(catalog, profile(latency_sla_ms=80, team="limited", model="8b", quality="small"))
    text = err.value.render()
    assert "L1 latency" in text and "L2 latency" in text and "O1 ops" in text


# ---------------------------------------------------------------------------------------------------------------
# The example profiles


EXPECTED_TIERS = {
    "startup-api": ("api", None),
    "eu-residency-api": ("api", None),
    "healthcare-hipaa": ("managed", None),
    "eu-confidential-vertex": ("managed", None),
    "eu-sovereign-airgapped": ("self-hosted", None),
    "fine-tuned": ("self-hosted", None),
    "tiered-sensitivity": ("hybrid", "tiered-by-sensitivity"),
    "burst-hybrid": ("hybrid", "burst-overflow"),
    "realtime-npc": ("self-hosted", None),
    "eu-airgapped-gke": ("self-hosted", None),
    "us-vertex-support": ("managed", None),
    "realtime-captions": ("self-hosted", None),
    "tgi-fine-tuned-eks": ("self-hosted", None),
    "tiered-managed-hybrid": ("hybrid", "tiered-by-sensitivity"),
}


def test_every_example_profile_has_an_expected_tier():
    assert {f.stem for f in PROFILE_FILES} == set(EXPECTED_TIERS)


@pytest.mark.parametrize("path", PROFILE_FILES, ids=[f.stem for f in PROFILE_FILES])
def test_example_profiles(catalog, path):
    decision = decide(load_profile(path), catalog)
    assert (decision.tier, decision.chosen.pattern) == EXPECTED_TIERS[path.stem]
    assert decision.profile.name == path.stem


# ---------------------------------------------------------------------------------------------------------------
# The decision JSON


@pytest.mark.parametrize("d", [LAYER1_STARTUP, LAYER1_ENTERPRISE, mixed()], ids=["api", "self-hosted", "hybrid"])
def test_decision_json_shape(catalog, d):
    decision = run(catalog, d)
    out = decision.as_dict()
    assert out["tier"] == decision.tier and out["tier"] in ("api", "managed", "self-hosted", "hybrid")
    assert out["pattern"] is None or out["pattern"] in ("tiered-by-sensitivity", "tiered-by-complexity", "burst-overflow")
    assert out["network"] in ("public", "private", "airgapped")
    assert out["cloud"] == "aws"
    assert out["region"] in d["residency"]["allowed_regions"]
    assert isinstance(out["provider"], str) and out["provider"]
    assert isinstance(out["monthly_cost_usd"], float) and out["monthly_cost_usd"] > 0
    assert isinstance(out["reasons"], list) and out["reasons"] and all(isinstance(r, str) for r in out["reasons"])
    assert any(r.startswith("C1 cost") for r in out["reasons"])

    cands = out["candidates"]
    assert isinstance(cands, list) and len(cands) == len(decision.candidates)
    assert cands[0]["tier"] == out["tier"] and cands[0]["monthly_cost_usd"] == out["monthly_cost_usd"]
    for c in cands:
        assert c["tier"] in ("api", "managed", "self-hosted", "hybrid")
        assert isinstance(c["feasible"], bool)
        assert isinstance(c["reasons"], list) and all(isinstance(r, str) for r in c["reasons"])
        assert c["monthly_cost_usd"] is None or isinstance(c["monthly_cost_usd"], float)
        if c["monthly_cost_usd"] is not None:
            assert c["monthly_cost_usd"] == pytest.approx(sum(c["cost_breakdown_usd"].values()), abs=0.05)
        if not c["feasible"]:
            assert c["reasons"]

    assert isinstance(out["crossover"], list)
    for x in out["crossover"]:
        assert set(x) == {"against", "tier", "api_usd_per_mtok", "marginal_usd_per_mtok", "monthly_tokens",
                          "daily_requests", "note"}
        assert x["tier"] in ("managed", "self-hosted")
        assert isinstance(x["api_usd_per_mtok"], float) and isinstance(x["marginal_usd_per_mtok"], float)
        assert (x["monthly_tokens"] is None) == (x["daily_requests"] is None)
        assert x["monthly_tokens"] is None or isinstance(x["monthly_tokens"], int)
        assert x["note"].startswith("none") == (x["monthly_tokens"] is None)
    if decision.tier != "api":
        assert out["crossover"]  # a GPU tier is always compared with the APIs
        assert out["routes"] == decision.class_routes


def test_decision_json_for_api_tier_names_the_model(catalog):
    out = run(catalog, LAYER1_STARTUP).as_dict()
    assert (out["tier"], out["api_provider"]) == ("api", out["provider"])
    assert isinstance(out["api_model"], str)
    assert out["open_model"] is None
    assert "capacity" not in out["candidates"][0]


def test_decision_json_for_gpu_tier_has_capacity(catalog):
    out = run(catalog, LAYER1_ENTERPRISE).as_dict()
    cap = out["candidates"][0]["capacity"]
    chosen = run(catalog, LAYER1_ENTERPRISE).chosen.plan
    assert (cap["gpu"], cap["gpus_per_replica"], cap["replicas"], cap["floor_replicas"]) == (
        "H200", chosen.option.fit.gpus_per_replica, chosen.fleet.replicas, 2)
    assert cap["on_demand_instances"] >= 2
    assert out["open_model"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert out["api_provider"] is None


# ---------------------------------------------------------------------------------------------------------------
# Hybrids: where the seeds say they win, and the numbers when they lose

# Spiky traffic (three times the average for four hours a day), a dedicated ML-ops team, a 70B open model.
SPIKY = dict(avg_input_tokens=1000, avg_output_tokens=300, peak_to_average=3.0, peak_hours_per_day=4.0,
             latency_sla_ms=800, team="dedicated", model="70b")
# Public product copy and confidential customer service (the seeds' scenario 3 split).
BY_SENSITIVITY = [{"name": "product-copy", "share_percent": 70, "data_sensitivity": "public"},
                  {"name": "customer-service", "share_percent": 30, "data_sensitivity": "confidential"}]
# Routine traffic an open model serves, and hard cases that need a frontier model.
BY_COMPLEXITY = [{"name": "routine", "share_percent": 80, "data_sensitivity": "internal", "quality": "strong-open"},
                 {"name": "reasoning", "share_percent": 20, "data_sensitivity": "internal", "quality": "frontier"}]


def spiky_mixed_sensitivity(daily_requests: int) -> dict:
    return profile(daily_requests=daily_requests, sensitivity="confidential", workloads=BY_SENSITIVITY, **SPIKY)


def spiky_mixed_quality(daily_requests: int) -> dict:
    return profile(daily_requests=daily_requests, sensitivity="internal", quality="frontier", workloads=BY_COMPLEXITY, **SPIKY)


def spiky_internal(daily_requests: int) -> dict:
    return profile(daily_requests=daily_requests, sensitivity="internal", **SPIKY)


HYBRID_CLAIMS = [
    # 001_8f0cd243f239240c.txt, "Consider Hybrid If: You have varying sensitivity levels in your data; Traffic is spiky"
    # and Scenario 3 ("Choose Hybrid"): the public class goes to the API, spikes and all, and the confidential class
    # stays on our GPUs. Burst-overflow is not offered: the confidential class may not overflow to an API (H2).
    pytest.param(spiky_mixed_sensitivity(800_000), ("hybrid", "tiered-by-sensitivity"), id="sensitivity-at-scale-hybrid"),
    # The same seed claim at 20,000 requests/day: the cost model disagrees. The whole 208 tok/s peak fits the
    # managed endpoint's redundancy floor of 2 replicas (0.5 FTE), while a hybrid needs the cluster self-hosting
    # runs (2.5 FTE) plus the gateway: about $31k against $84k a month. The planner rightly goes managed.
    pytest.param(spiky_mixed_sensitivity(20_000), ("managed", None), id="sensitivity-small-managed"),
    # 001_8f0cd243f239240c.txt, Pattern 1 "Tiered by Complexity" ("One client runs 80% of their inference on
    # self-hosted Llama 70B but routes complex edge cases to GPT-4. Their costs dropped 60%") and
    # 000_c310b67bee948d8f.txt "Mature teams often end up with: Frontier closed for the hard, low-volume, varied
    # tasks": at 3M requests/day the open model's 80% costs less on our fleet than on a frontier API.
    pytest.param(spiky_mixed_quality(3_000_000), ("hybrid", "tiered-by-complexity"), id="complexity-at-scale-hybrid"),
    # The same claim at 800,000 requests/day: the cost model disagrees. The routine 80% would cost about $53k on
    # the cheapest frontier API, less than the $104k its fleet and 2.5 FTE cost, so the whole traffic goes to the
    # frontier API.
    pytest.param(spiky_mixed_quality(800_000), ("api", None), id="complexity-mid-volume-api"),
    # 001_8f0cd243f239240c.txt, Pattern 4 "Burst Handling: Baseline load -> Self-hosted; Traffic spikes -> API
    # overflow", and 002_b7f341cbb3083e58.txt "Fallback / overflow capacity | API inference (no minimum
    # commitment)": at 12M requests/day the fleet for the base load plus overflow beats a hosted-open API.
    pytest.param(spiky_internal(12_000_000), ("hybrid", "burst-overflow"), id="burst-at-hyperscale-hybrid"),
    # Below that the hosted-open API serving the same model family costs less than any fleet with its staff.
    pytest.param(spiky_internal(800_000), ("api", None), id="burst-mid-volume-api"),
]


@pytest.mark.parametrize("d, expected", HYBRID_CLAIMS)
def test_hybrids_win_where_the_seeds_say_unless_the_cost_model_disagrees(catalog, d, expected):
    decision = run(catalog, d)
    assert (decision.tier, decision.chosen.pattern) == expected
    offered = {c.pattern for c in by_tier(decision, "hybrid")}
    if d.get("workloads") == BY_SENSITIVITY:
        assert offered == {"tiered-by-sensitivity"}  # no overflow of confidential traffic
    if expected[0] != "hybrid":
        # The losing hybrid says why in numbers, in its reasons and the JSON.
        losers = [c for c in decision.as_dict()["candidates"] if c["tier"] == "hybrid" and c["feasible"]]
        assert losers and all(any(r.startswith(c["pattern"]) for r in c["reasons"]) for c in losers)


def hybrid(decision, pattern: str):
    (cand,) = [c for c in by_tier(decision, "hybrid") if c.pattern == pattern]
    return cand


def parts(cand) -> str:
    """The hybrid's cost in its parts, as its losing reason states it."""
    c = cand.cost
    return (f"${c['gpu_compute_usd'] + c['staffing_usd']:,.0f} ({cand.boundary_tier} part: {cand.plan.fleet.replicas} replica(s), "
            f"${c['gpu_compute_usd']:,.0f} GPUs + ${c['staffing_usd']:,.0f} staffing) + ${c['api_usd']:,.0f} (API part) "
            f"+ ${c['gateway_staffing_usd']:,.0f} (gateway staffing) = ${cand.monthly_cost_usd:,.0f}/month")


def test_burst_overflow_sends_nothing_to_the_api_when_the_floor_carries_the_peak(catalog):
    # 20,000 requests/day x 300 output tokens x 3 at peak = 208 tok/s; two replicas (the floor) carry 2 x 330.
    decision = run(catalog, spiky_internal(20_000))
    burst = hybrid(decision, "burst-overflow")
    alone = by_tier(decision, burst.boundary_tier)[0]  # the hybrid's in-boundary tier carrying everything
    assert burst.plan.sizing.limited_by == "redundancy floor"
    capacity = burst.plan.fleet.replicas * burst.plan.option.tok_s_per_replica
    assert capacity > 208.4
    # The gateway overflows only what the fleet cannot take: nothing, so no API cost, only the gateway's staff.
    assert burst.cost["api_usd"] == 0
    assert burst.monthly_cost_usd == pytest.approx(alone.monthly_cost_usd + burst.cost["gateway_staffing_usd"], abs=0.01)
    assert (f"burst-overflow loses: the redundancy floor of 2 replicas already carries the peak of 208 tok/s "
            f"(capacity {capacity:,.0f} tok/s), so nothing overflows and the hybrid is the {burst.boundary_tier} fleet plus "
            f"${burst.cost['gateway_staffing_usd']:,.0f}/month of gateway staffing") in burst.reasons


def test_burst_overflow_that_loses_states_its_parts_against_the_fleet_for_the_peak(catalog):
    decision = run(catalog, spiky_internal(800_000))
    burst = hybrid(decision, "burst-overflow")
    alone = by_tier(decision, burst.boundary_tier)[0]
    assert burst.cost["api_usd"] > 0
    line = next(r for r in burst.reasons if r.startswith("burst-overflow costs"))
    assert line.startswith(f"burst-overflow costs {parts(burst)} against ${alone.monthly_cost_usd:,.0f}/month for the "
                           f"{alone.tier} tier alone ({alone.plan.fleet.replicas} replica(s) for the 8,333 tok/s peak)")
    saved = alone.cost["gpu_compute_usd"] - burst.cost["gpu_compute_usd"]
    added = burst.cost["api_usd"] + burst.cost["gateway_staffing_usd"]
    assert line.endswith(f"saving ${saved:,.0f} of GPUs for ${added:,.0f} of API and gateway")
    assert line in decision.as_dict()["candidates"][[c.label for c in decision.candidates].index(burst.label)]["reasons"]


def test_tiered_by_sensitivity_that_loses_states_its_parts_against_the_tier_alone(catalog):
    decision = run(catalog, spiky_mixed_sensitivity(20_000))
    tiered = hybrid(decision, "tiered-by-sensitivity")
    alone = by_tier(decision, tiered.boundary_tier)[0]
    line = next(r for r in tiered.reasons if r.startswith("tiered-by-sensitivity costs"))
    # Both fleets are the redundancy floor, so moving 70% of requests to the API saves no GPU at all.
    assert line == (f"tiered-by-sensitivity costs {parts(tiered)} against ${alone.monthly_cost_usd:,.0f}/month for the "
                    f"{alone.tier} tier alone (2 replica(s) for the whole 208 tok/s peak): sending 70% of requests to the "
                    f"API saves $0 of GPUs and adds ${tiered.cost['api_usd'] + tiered.cost['gateway_staffing_usd']:,.0f} "
                    f"of API and gateway; its 62 tok/s alone needs the redundancy floor of 2 replicas")


def test_tiered_by_complexity_that_loses_states_its_parts_against_the_frontier_api(catalog):
    decision = run(catalog, spiky_mixed_quality(800_000))
    tiered, api = hybrid(decision, "tiered-by-complexity"), decision.chosen
    assert api.tier == "api" and api.api.quality == "frontier"
    line = next(r for r in tiered.reasons if r.startswith("tiered-by-complexity costs"))
    kept_off = api.monthly_cost_usd - tiered.cost["api_usd"]
    own = tiered.monthly_cost_usd - tiered.cost["api_usd"]
    assert line == (f"tiered-by-complexity costs {parts(tiered)} against ${api.monthly_cost_usd:,.0f}/month for "
                    f"{api.api.provider} {api.api.model} carrying all traffic: the 80% of requests it keeps off the "
                    f"frontier API would cost ${kept_off:,.0f} there, against ${own:,.0f} for the {tiered.boundary_tier} part and gateway")
    assert kept_off < own
