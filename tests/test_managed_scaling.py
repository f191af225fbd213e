"""Managed endpoints scale: the planner gives SageMaker and Vertex AI a replica range from the off-peak level (never
below the failover floor) to the peak, charges the peak fleet all month like every GPU tier (reporting what following
the day would save), and writes the concurrency target."""

from __future__ import annotations

import pytest

from planner.costmodel import FLAT_DAY, PeakShape, Volume, cheapest_plan, floor_replicas
from planner.profile import Profile
from planner.rules import decide
from planner.stackgen import stack_config_from
from planner.report import render_report
from test_rules import profile

# A regulated 70B workload big enough that the peak needs more than the failover floor: the managed tier is chosen.
BUSY = dict(daily_requests=400_000, avg_input_tokens=1200, avg_output_tokens=300, latency_sla_ms=1000,
            sensitivity="regulated", regulations=["hipaa"], team="limited", model="70b")


def managed_decision(catalog, cloud: str = "aws", **traffic):
    d = profile(**{**BUSY, **traffic}, cloud=cloud)
    if cloud == "gcp":  # a private Vertex AI endpoint serves the vLLM image from Artifact Registry; Model Garden's licence
        d.update(gcp_project="acme-llm", private_registry="us-central1-docker.pkg.dev/acme-llm/llm-images")
        d["model"]["accept_eula"] = True
    d = decide(Profile.model_validate(d), catalog)
    assert d.tier == "managed", d.chosen.reasons
    return d


def test_peak_to_average_one_gives_one_flat_fleet(catalog):
    d = managed_decision(catalog, peak_to_average=1.0)
    f = d.chosen.plan.fleet
    assert f.replicas > floor_replicas(catalog, 99.9)  # the load alone needs more than the floor
    assert f.min_replicas == f.replicas
    assert f.monthly_compute_usd == pytest.approx(f.scaled_monthly_compute_usd)
    cfg = stack_config_from(d, "p.yaml", catalog)
    assert cfg.managed.min_replicas == cfg.managed.max_replicas == f.replicas


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_bursty_traffic_gives_a_range_charged_at_the_peak(catalog, cloud):
    kw = {"model": "8b", "sensitivity": "confidential", "regulations": [], "quality": "small"} if cloud == "gcp" else {}
    d = managed_decision(catalog, cloud, peak_to_average=3.0, peak_hours_per_day=4.0, **kw)
    plan = d.chosen.plan
    f, o = plan.fleet, plan.option
    assert 2 <= f.min_replicas < f.replicas
    # The floor carries the off-peak level: 24 avg = 4 h x 3 avg + 20 h x off-peak, so off-peak = 0.6 avg = peak / 5.
    assert plan.shape.offpeak_share == pytest.approx(0.2)
    assert f.min_replicas == max(2, o.sizing(plan.load_tok_s * 0.2, 2).replicas)
    assert f.replicas == o.sizing(plan.load_tok_s, 2).replicas
    # Charged for the peak fleet all day, as our own nodes are; following the day (the floor for 20 h, the peak fleet
    # for 4 h) is reported as what it could cost.
    hourly = o.instance.on_demand_hourly
    following = hourly * (f.min_replicas * 720 * 20 / 24 + f.replicas * 720 * 4 / 24)
    assert f.scaled_monthly_compute_usd == pytest.approx(following)
    assert f.scaled_monthly_compute_usd < f.monthly_compute_usd == pytest.approx(hourly * f.replicas * 720)
    assert d.chosen.cost["gpu_compute_usd"] == pytest.approx(f.monthly_compute_usd)
    # The stack says the same, and the report explains the range.
    cfg = stack_config_from(d, "p.yaml", catalog)
    assert (cfg.managed.min_replicas, cfg.managed.max_replicas) == (f.min_replicas, f.replicas)
    report = render_report(d, cfg, "busy", "p.yaml")
    assert f"scales between {f.min_replicas} and {f.replicas} instances" in report
    assert "failover floor of 2" in report and "4 h a day" in report
    assert d.numbers["fleet_min_replicas"] == f.min_replicas and d.numbers["fleet_max_replicas"] == f.replicas


def test_the_floor_never_drops_below_failover(catalog):
    # Tiny traffic: the off-peak level needs less than one replica, but two stay up for failover.
    d = managed_decision(catalog, daily_requests=4_500, peak_to_average=3.0)
    f = d.chosen.plan.fleet
    assert f.min_replicas == f.floor_replicas == 2 == f.replicas
    assert "the peak fits in the failover floor of 2" in render_report(d, stack_config_from(d, "p.yaml", catalog), "s", "p.yaml")


def test_self_hosted_fleets_keep_their_redundancy_floor_and_flat_charge(catalog):
    d = decide(Profile.model_validate(profile(**{**BUSY, "team": "dedicated", "latency_sla_ms": 80},
                                              peak_to_average=3.0, peak_hours_per_day=4.0)), catalog)
    assert d.tier == "self-hosted"
    f = d.chosen.plan.fleet
    assert f.min_replicas == f.floor_replicas
    assert f.monthly_compute_usd == pytest.approx(f.scaled_monthly_compute_usd)


def test_peak_shape_offpeak_share():
    assert FLAT_DAY.offpeak_share == 1.0
    assert PeakShape(1.0, 2.0).offpeak_share == 1.0
    assert PeakShape(2.0, 12.0).offpeak_share == 0.0  # the whole day's requests arrive in the peak
    v = Volume(86_400, 100, 100, 2.5, 3.0)
    assert v.shape.offpeak_share * v.peak_output_tok_s == pytest.approx(v.offpeak_output_tok_s)


def test_managed_plan_cost_never_falls_with_more_load(catalog):
    from planner.costmodel import gpu_options, kv_cache_tokens
    kv = kv_cache_tokens(catalog, 1200, 300, 8192)
    options, _ = gpu_options(catalog, "aws", ["us-east-1"], "sagemaker", "70b", kv, 99.9, False, 1200, 300, 1000.0)
    shape = PeakShape(3.0, 4.0)
    costs = [cheapest_plan(catalog, options, x, 99.9, shape).monthly_compute_usd for x in range(0, 6000, 250)]
    assert costs == sorted(costs)


def test_target_concurrent_requests_is_littles_law(catalog):
    d = managed_decision(catalog, peak_to_average=3.0, peak_hours_per_day=4.0)
    o = d.chosen.plan.option
    c = o.capacity
    rate = o.tok_s_per_replica / c.avg_output_tokens  # requests/s one instance takes at the planned utilisation
    duration = c.prefill_seconds / (1 - c.utilization(rate)) + c.avg_output_tokens * c.itl_s
    cfg = stack_config_from(d, "p.yaml", catalog)
    assert cfg.managed.target_concurrent_requests == pytest.approx(round(rate * duration, 1))
    assert cfg.managed.target_concurrent_requests > 1
