"""The cost model: the seeds' worked examples reproduced with the kit's functions, unit tests of the capacity
formulas, and properties that must hold for any volume (more volume never costs less, more load never needs
fewer GPUs, redundancy never drops below the availability floor, the cheapest feasible candidate wins)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from planner.catalog import ApiModel, Instance, Throughput, load_catalog
from planner.costmodel import (
    TP_SIZES,
    GpuOption,
    PhaseCapacity,
    ReplicaFit,
    Volume,
    api_monthly_cost_usd,
    blended_price_per_mtok,
    cheapest_plan,
    crossover,
    fit_replica,
    floor_replicas,
    gpu_options,
    kv_cache_tokens,
    phase_capacity,
    project_daily_requests,
    staffing_monthly_usd,
)
from planner.errors import InputError
from planner.profile import Profile
from planner.rules import decide
from planner.sizing import fit_problem

# The property tests use a module-level catalog rather than the fixture, so a falsifying example's report does not
# print the whole catalog.
CATALOG = load_catalog()
PROPERTY = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DAYS = 30.0  # the catalog's hours_per_month (720) / 24


# ---------------------------------------------------------------------------------------------------------------
# Helpers: synthetic catalog rows for the seeds' hypothetical set-ups


def api_model(input_per_mtok: float, output_per_mtok: float, name: str = "seed-model") -> ApiModel:
    return ApiModel(provider="seed", model=name, kind="closed", input_per_mtok=input_per_mtok,
                    output_per_mtok=output_per_mtok, quality="frontier", quality_basis="test", source="seed")


def synthetic_option(on_demand_hourly: float, tok_s_per_replica: float, *, spot_hourly: float | None = None,
                     gpu_count: int = 1, gpus_per_replica: int = 1, failover_nodes: int = 1, spare_replica: bool = False,
                     allow_spot: bool = False) -> GpuOption:
    """A GpuOption built by hand from pydantic rows, so the seeds' round numbers go in unchanged."""
    inst = Instance(cloud="aws", instance_type="seed.gpu", service="compute", gpu="A100-80GB", gpu_count=gpu_count,
                    region="us-east-1", on_demand_hourly=on_demand_hourly, spot_hourly=spot_hourly, source="seed")
    per_gpu = tok_s_per_replica / gpus_per_replica
    tp = Throughput(model_class="70b", model="seed", precision="fp16", gpu="A100-80GB", gpu_count=gpus_per_replica,
                    engine="vllm", output_tok_s_total=per_gpu * gpus_per_replica, output_tok_s_per_gpu=per_gpu, source="seed")
    fit = ReplicaFit("A100-80GB", "fp16", gpus_per_replica, 1.0, 1.0, 72.0 * gpus_per_replica)
    return GpuOption("aws", "us-east-1", "compute", inst, fit, tp, gpu_count // gpus_per_replica, tok_s_per_replica,
                     failover_nodes=failover_nodes, spare_replica=spare_replica, allow_spot=allow_spot)


def volume_for_monthly_tokens(monthly_tokens: float, avg_in: int, avg_out: int) -> Volume:
    """A flat (peak = average) volume whose monthly input + output tokens are `monthly_tokens`."""
    monthly_requests = monthly_tokens / (avg_in + avg_out)
    return Volume(monthly_requests / DAYS, avg_in, avg_out, peak_to_average=1.0, peak_hours_per_day=24, days_per_month=DAYS)


# ---------------------------------------------------------------------------------------------------------------
# a) Seed "When to Self-Host LLMs vs. Use APIs": the crossover table


# "| 10M | $75 | $4,000 | API |", "| 100M | $750 | ...", "| 500M | $3,750 | $4,000 | Roughly equal |",
# "| 1B | $7,500 | $4,000 | Self-host |", "| 5B | $37,500 | ..." -- GPT-4o at $2.50 in / $10.00 out per Mtok; the
# table's $7.50/Mtok is the blend at one input token for two output tokens.
@pytest.mark.parametrize("monthly_tokens, expected_usd", [
    (10e6, 75.0), (100e6, 750.0), (500e6, 3_750.0), (1e9, 7_500.0), (5e9, 37_500.0),
], ids=["10M", "100M", "500M", "1B", "5B"])
def test_seed_gpt4o_api_cost_table(catalog, monthly_tokens, expected_usd):
    gpt4o = next(m for m in catalog.api_models if m.model == "gpt-4o")
    assert (gpt4o.input_per_mtok, gpt4o.output_per_mtok) == (2.5, 10.0)
    volume = volume_for_monthly_tokens(monthly_tokens, avg_in=100, avg_out=200)
    assert volume.monthly_tokens == pytest.approx(monthly_tokens)
    assert blended_price_per_mtok(gpt4o, 100, 200) == pytest.approx(7.5)
    assert api_monthly_cost_usd(gpt4o, volume) == pytest.approx(expected_usd)


def test_seed_gpt4o_crossover_with_a_4000_usd_self_host(catalog):
    # "| 500M | $3,750 | $4,000 | Roughly equal |" and "The crossover typically happens around 500M-1B tokens per
    # month": a flat $4,000/month option with (effectively) unlimited capacity crosses GPT-4o's $7.50/Mtok blend at
    # exactly 4000 / 7.5 = 533.3M tokens/month.
    gpt4o = next(m for m in catalog.api_models if m.model == "gpt-4o")
    # $1/hour x 720 h = $720 of GPU plus $3,280 fixed = $4,000/month at the floor; capacity far beyond any volume.
    option = synthetic_option(on_demand_hourly=1.0, tok_s_per_replica=1e9)
    availability = 95.0  # below the failover floor: one replica is a whole deployment here
    assert availability < catalog.availability.failover_floor_target_percent
    assert floor_replicas(catalog, availability) == 1
    assert 3_280.0 + option.fleet(1, 1, catalog.serving.hours_per_month).monthly_compute_usd == pytest.approx(4_000.0)

    x = crossover(catalog, "self-hosted", option, 3_280.0, gpt4o, volume_for_monthly_tokens(500e6, 100, 200), availability)
    assert x.against == "openai/gpt-4o"
    assert x.api_usd_per_mtok == pytest.approx(7.5)
    assert x.marginal_usd_per_mtok == pytest.approx(0.0, abs=1e-3)
    assert x.monthly_tokens == pytest.approx(4_000 / 7.5 * 1e6)  # 533.3M tokens/month
    assert x.daily_requests == pytest.approx(4_000 / 7.5 * 1e6 / 300 / DAYS)
    assert "533M tokens/month" in x.note
    # Either side of the crossover the table's verdicts hold: API below, self-host above.
    assert api_monthly_cost_usd(gpt4o, volume_for_monthly_tokens(500e6, 100, 200)) < 4_000 < \
        api_monthly_cost_usd(gpt4o, volume_for_monthly_tokens(1e9, 100, 200))


# ---------------------------------------------------------------------------------------------------------------
# b) Seed "Layer 1: Surface": calculate_crossover_volume(0.30, 2.50, 4_000_000, 1)


def seed_calculate_crossover_volume(api_price_per_mtok, self_hosted_gpu_cost_per_hour, tokens_per_hour_per_gpu, num_gpus):
    """The seed's function, verbatim in substance."""
    monthly_gpu_cost = self_hosted_gpu_cost_per_hour * 24 * 30 * num_gpus
    cost_per_mtok_self_hosted = (monthly_gpu_cost / (tokens_per_hour_per_gpu * 24 * 30 * num_gpus)) * 1_000_000
    crossover_monthly_tokens = monthly_gpu_cost / api_price_per_mtok * 1_000_000
    return {
        "monthly_gpu_cost_usd": monthly_gpu_cost,
        "self_hosted_cost_per_mtok": round(cost_per_mtok_self_hosted, 4),
        "crossover_monthly_tokens": int(crossover_monthly_tokens),
        "crossover_daily_tokens": int(crossover_monthly_tokens / 30),
    }


def test_seed_layer1_crossover_formula_gives_6b_not_1_5b():
    # Seed: "result = calculate_crossover_volume(api_price_per_mtok=0.30, self_hosted_gpu_cost_per_hour=2.50,
    # tokens_per_hour_per_gpu=4_000_000, num_gpus=1)  # crossover at ~1.5B tokens/month; ~50M tokens/day".
    # By the seed's own formula the crossover is $1,800 / $0.30 per Mtok = 6,000M = 6B tokens/month (200M/day),
    # four times what its comment claims. And one GPU at 4M tokens/hour serves at most 2.88B tokens/month, so the
    # 6B "crossover" is beyond the capacity the $1,800 buys: the comment is wrong and the formula ignores capacity.
    r = seed_calculate_crossover_volume(0.30, 2.50, 4_000_000, 1)
    assert r["monthly_gpu_cost_usd"] == pytest.approx(1_800.0)
    assert r["crossover_monthly_tokens"] == pytest.approx(6_000_000_000, rel=1e-9)
    assert r["crossover_daily_tokens"] == pytest.approx(200_000_000, rel=1e-9)
    assert r["self_hosted_cost_per_mtok"] == pytest.approx(0.625)
    assert 4_000_000 * 720 < r["crossover_monthly_tokens"]


def test_seed_layer1_capacity_aware_crossover_finds_none(catalog):
    # The same case through the kit's capacity-aware crossover(): one GPU at $2.50/hour carrying 4M tokens/hour
    # (= 1,111.1 tok/s per replica) costs $0.625 per Mtok at full use, above the API's $0.30/Mtok, so adding volume
    # never makes self-hosting cheaper: there is no crossover at any volume.
    assert catalog.serving.hours_per_month == 720
    option = synthetic_option(on_demand_hourly=2.50, tok_s_per_replica=4_000_000 / 3600)
    api = api_model(0.30, 0.30)  # blended 0.30/Mtok whatever the mix
    # All of the seed's throughput tokens are counted as generated tokens: input 0, peak = average.
    volume = Volume(daily_requests=100_000, avg_input_tokens=0, avg_output_tokens=1000, peak_to_average=1.0,
                    peak_hours_per_day=24, days_per_month=DAYS)
    x = crossover(catalog, "self-hosted", option, 0.0, api, volume, availability_target=95.0)
    assert x.monthly_tokens is None
    assert x.daily_requests is None
    assert x.note.startswith("none")
    assert "marginal cost ($0.625/Mtok" in x.note and "API price ($0.300/Mtok)" in x.note
    assert x.api_usd_per_mtok == pytest.approx(0.30)
    assert x.marginal_usd_per_mtok == pytest.approx(0.625)
    # Cross-check by hand: a GPU run flat out for a month is 2.88B tokens, $864 at the API, $1,800 self-hosted.
    full_gpu = volume.with_monthly_requests(4_000_000 * 720 / 1000)
    assert api_monthly_cost_usd(api, full_gpu) == pytest.approx(864.0)
    assert option.fleet(1, 1, 720).monthly_compute_usd == pytest.approx(1_800.0)


def test_capacity_aware_crossover_matches_the_step_cost(catalog):
    # When there is a crossover, self-hosted all-in cost (fixed + whole replicas for the peak) meets the API's
    # linear cost there: at the crossover it is no dearer, just below it it is dearer.
    option = synthetic_option(on_demand_hourly=2.50, tok_s_per_replica=1_000.0)
    api = api_model(2.0, 8.0)
    volume = Volume(daily_requests=10_000, avg_input_tokens=1000, avg_output_tokens=300, peak_to_average=2.0,
                    peak_hours_per_day=4, days_per_month=DAYS)
    fixed = 25_000.0
    x = crossover(catalog, "self-hosted", option, fixed, api, volume, availability_target=99.9)
    assert x.monthly_tokens is not None

    def self_hosted(monthly_requests: float) -> float:
        v = volume.with_monthly_requests(monthly_requests)
        replicas = option.replicas_for(v.peak_output_tok_s, 2)
        return fixed + option.fleet(replicas, 2, 720).monthly_compute_usd

    at = x.daily_requests * DAYS
    assert self_hosted(at) <= api_monthly_cost_usd(api, volume.with_monthly_requests(at)) + 1e-6
    below = at * 0.999
    assert self_hosted(below) > api_monthly_cost_usd(api, volume.with_monthly_requests(below))


def test_crossover_means_cheaper_at_every_volume_above_it(catalog):
    # One replica = 1,000 tok/s = 2,592M output tokens/month for $1,800; $700/month fixed; API $1.00/Mtok.
    # Step r costs 700 + 1,800 r. crossover() reports 2,500M (700 + 1,800 = 2,500 within the first step), but at
    # 3,000M tokens the fleet needs a second replica: $4,300 against the API's $3,000. Steps 2-4 each start above
    # the API line; self-hosting is cheaper at every volume only above 7,900M tokens/month.
    option = synthetic_option(on_demand_hourly=2.50, tok_s_per_replica=1_000.0)
    api = api_model(1.0, 1.0)
    volume = Volume(1.0, 0, 1000, peak_to_average=1.0, peak_hours_per_day=24, days_per_month=DAYS)
    fixed = 700.0
    x = crossover(catalog, "self-hosted", option, fixed, api, volume, availability_target=95.0)
    assert x.monthly_tokens == pytest.approx(7_900e6)  # not the 2,500M where the first step touches the API line
    for step in range(1, 400):
        tokens = x.monthly_tokens * (1 + step / 100)
        v = volume.with_monthly_requests(tokens / 1000)
        self_hosted = fixed + option.fleet(option.replicas_for(v.peak_output_tok_s, 1), 1, 720).monthly_compute_usd
        assert self_hosted <= api_monthly_cost_usd(api, v) + 1e-6, f"dearer than the API at {tokens / 1e6:,.0f}M tokens"


# ---------------------------------------------------------------------------------------------------------------
# c) Seed "On-prem / self-hosted vs cloud-hosted models": the logistics company's all-in price


def test_seed_logistics_all_in_self_hosting(catalog):
    # "2 ML platform engineers: $600k/year ≈ $50k/month": the catalog's $300k per FTE-year.
    assert catalog.staffing.fte_annual_cost_usd == 300_000
    assert 2 * catalog.staffing.fte_monthly_usd == pytest.approx(50_000)
    # "Ongoing model upgrade cadence: ~1 engineer-quarter every 6 months" = 0.25 FTE-year per half year = 0.5 FTE,
    # so the kit's dedicated-team self-hosting staffing is 2 + 0.5 = 2.5 FTE.
    assert catalog.staffing.fte("self-hosted", "dedicated") == 2.5
    staffing = staffing_monthly_usd(catalog, "self-hosted", "dedicated")
    assert staffing == pytest.approx(62_500)
    # "GPU cost with redundancy: $12k/month" ... "Real all-in: ~$70k/month". The kit's formula gives $74.5k: the
    # seed rounds down, leaving (most of) the upgrade cadence's $12.5k/month out of its ~$70k ($50k + $12k = $62k
    # without it). The kit follows the formula.
    assert staffing + 12_000 == pytest.approx(74_500)
    # The seed's own comparison still holds: all-in is nowhere near the "$4k/month" GPU-only estimate.
    assert staffing + 12_000 > 4_000 * 10


# ---------------------------------------------------------------------------------------------------------------
# Unit tests: fitting, traffic shape, growth, fleets


def test_fit_70b_on_h100_in_fp8_needs_two_gpus(catalog):
    kv = kv_cache_tokens(catalog, 1500, 500, 8192)
    assert kv == 32_000  # 16 sequences of 2,000 tokens, above one 8k context
    fit = fit_replica(catalog, "70b", "H100", kv)
    assert fit is not None
    assert (fit.precision, fit.gpus_per_replica) == ("fp8", 2)
    assert fit.weights_gb == pytest.approx(70.6)  # 1 byte per parameter
    assert fit.kv_cache_gb == pytest.approx(32_000 * 327_680 / 2 / 1e9, abs=0.01)  # fp8 KV: half the fp16 bytes
    # Per GPU: 90 % of memory for the engine, less 1 GB for activations and CUDA graphs.
    assert fit.usable_gb == pytest.approx(2 * (80 * 0.9 - 1.0))
    assert fit.needed_gb > 80 * 0.9 - 1.0  # why one H100 is not enough


def test_fit_keeps_headroom_for_activations(catalog):
    """70b in fp8 with one 8k context is 71.9 GB: it would fill one H100's 72 GB engine share exactly, so it gets two."""
    fit = fit_replica(catalog, "70b", "H100", kv_cache_tokens(catalog, 100, 100, 8192))
    assert fit.needed_gb == pytest.approx(70.6 + 8192 * 327_680 / 2 / 1e9, abs=0.01)
    assert 80 * 0.9 - 1.0 < fit.needed_gb <= 80 * 0.9
    assert fit.gpus_per_replica == 2


def test_fit_8b_on_a10g_fits_one_gpu_in_fp16(catalog):
    fit = fit_replica(catalog, "8b", "A10G", kv_cache_tokens(catalog, 1500, 500, 8192))
    assert fit is not None
    assert (fit.precision, fit.gpus_per_replica) == ("fp16", 1)  # A10G has no FP8 tensor cores
    assert fit.weights_gb == pytest.approx(16.06)
    assert fit.needed_gb <= fit.usable_gb == pytest.approx(24 * 0.9 - 1.0)


def test_fit_70b_does_not_fit_on_four_a10g(catalog):
    kv = kv_cache_tokens(catalog, 1500, 500, 8192)
    assert fit_replica(catalog, "70b", "A10G", kv, max_gpus=4) is None  # 141 GB of fp16 weights > 4 x 21.6 GB
    eight = fit_replica(catalog, "70b", "A10G", kv, max_gpus=8)
    assert eight is not None and eight.gpus_per_replica == 8


# 70b with healthcare-hipaa's KV budget (24,000 tokens) on L40S (48 GB): 141.2 + 7.9 GB in 16 bits, 70.6 + 3.9 GB in 8.
@pytest.mark.parametrize("gpus, precision, fits", [
    (2, "fp16", False),  # the stack's old shape without quantisation: 149.1 GB on 84.4 GB usable
    (4, "fp16", True),   # 168.8 GB usable
    (2, "fp8", True),
    (4, "fp8", True),    # what the endpoint now runs: the whole ml.g6e.12xlarge
    (1, "fp8", False),
])
def test_fit_at_the_stacks_precision(catalog, gpus, precision, fits):
    assert (fit_problem(catalog, "aws", "70b", "L40S", gpus, 24_000, precision) is None) is fits
    fit = fit_replica(catalog, "70b", "L40S", 24_000, max_gpus=gpus, precision=precision)
    assert (fit is not None) is fits
    assert fit is None or fit.precision == precision


def test_fit_without_a_precision_keeps_the_planners_choice(catalog):
    assert fit_replica(catalog, "70b", "L40S", 24_000).precision == "fp8"  # FP8 tensor cores
    assert fit_replica(catalog, "70b", "A100-80GB", 24_000).precision == "fp16"  # none


def test_fp8_is_refused_on_a_gpu_without_it(catalog):
    assert fit_problem(catalog, "aws", "8b", "A10G", 1, 8192, "fp8") == \
        "A10G has no FP8 support, so 8b cannot run in fp8 there; use precision: fp16"
    with pytest.raises(ValueError, match="precision fp8 needs FP8 support, which A10G lacks"):
        fit_replica(catalog, "8b", "A10G", 8192, precision="fp8")


def test_a_fit_problem_at_fp16_names_fp8_and_the_size_that_fit(catalog):
    assert fit_problem(catalog, "aws", "70b", "L40S", 2, 24_000, "fp16") == (
        "70b in fp16 needs 149.1 GB (weights + KV cache for 24000 tokens) but 2 x L40S offer 84.4 GB; "
        "use precision: fp8 (fits on 2 x L40S) or gpusPerReplica: 4 on e.g. g6e.12xlarge")
    # On a managed endpoint a replica is a whole instance: the suggestion is an instance type of the service.
    assert fit_problem(catalog, "aws", "70b", "A10G", 4, 24_000, "fp16", "sagemaker").endswith(
        "but 4 x A10G offer 82.4 GB; use instanceType: ml.g5.48xlarge with gpusPerReplica: 8")


@given(data=st.data(), kv=st.integers(1, 400_000))
@PROPERTY
def test_fit_problem_is_none_exactly_when_weights_and_kv_fit(data, kv):
    """For every catalog model, GPU, tensor-parallel size and precision (or none: the planner's choice)."""
    size = data.draw(st.sampled_from(sorted(CATALOG.models)))
    gpu = data.draw(st.sampled_from(sorted(CATALOG.gpus)))
    tp = data.draw(st.sampled_from(TP_SIZES))
    precision = data.draw(st.sampled_from([None, "fp16", "fp8"]))
    spec, g, s = CATALOG.models[size], CATALOG.gpus[gpu], CATALOG.serving
    runs = precision or ("fp8" if g.supports_fp8 else "fp16")
    per_value = {"fp16": 2.0, "fp8": 1.0}[runs]
    needed = spec.params_billion * per_value + kv * spec.kv_bytes_per_token_fp16 * per_value / 2 / 1e9
    usable = tp * (g.memory_gb * s.gpu_memory_utilization - s.activation_reserve_gb_per_gpu)
    assume(abs(needed - usable) > 1e-6)  # float rounding exactly at the edge is not the property
    runnable = runs == "fp16" or g.supports_fp8
    problem = fit_problem(CATALOG, "aws", size, gpu, tp, kv, precision)
    assert (problem is None) == (runnable and needed <= usable), problem


@given(avg_out=st.integers(1, 4000), daily=st.floats(1, 1e7), p2a=st.floats(1.0, 6.0), frac=st.floats(0.01, 1.0))
@PROPERTY
def test_offpeak_keeps_the_daily_average(avg_out, daily, p2a, frac):
    hours = frac * 24 / p2a  # the profile's validator keeps peak_to_average x peak hours <= 24
    # Within a hair of 24 h the formula divides a cancellation error by (24 - H) ~ 1e-15: no profile has that.
    assume(hours <= 23.9)
    v = Volume(daily, 100, avg_out, p2a, hours)
    off = v.offpeak_output_tok_s
    assert 0 <= off <= v.avg_output_tok_s * (1 + 1e-9)
    # 24 x avg = H x peak + (24 - H) x off-peak
    assert 24 * v.avg_output_tok_s == pytest.approx(hours * v.peak_output_tok_s + (24 - hours) * off, rel=1e-9)


def test_offpeak_examples():
    v = Volume(86_400, 100, 100, peak_to_average=3.0, peak_hours_per_day=4)  # 100 tok/s on average
    assert v.avg_output_tok_s == pytest.approx(100)
    assert v.peak_output_tok_s == pytest.approx(300)
    assert v.offpeak_output_tok_s == pytest.approx((2400 - 1200) / 20)  # 60 tok/s
    flat = Volume(86_400, 100, 100, peak_to_average=1.0, peak_hours_per_day=24)
    assert flat.offpeak_output_tok_s == pytest.approx(100)
    all_peak = Volume(86_400, 100, 100, peak_to_average=4.0, peak_hours_per_day=6)  # 6 h at 4x carries the whole day
    assert all_peak.offpeak_output_tok_s == pytest.approx(0.0)


def test_project_daily_requests_compounds():
    assert project_daily_requests(1000, 10, 12) == pytest.approx(1000 * 1.1 ** 12)  # 3,138.4
    assert project_daily_requests(1000, 10, 12) == pytest.approx(3138.428, rel=1e-6)
    assert project_daily_requests(12_000, 8, 12) == pytest.approx(30_218.04, rel=1e-6)
    assert project_daily_requests(1000, 0, 24) == 1000
    assert project_daily_requests(1000, 50, 0) == 1000
    # Compound, not simple: two 6-month steps equal one 12-month step.
    assert project_daily_requests(project_daily_requests(500, 3, 6), 3, 6) == pytest.approx(project_daily_requests(500, 3, 12))


def test_fleet_floor_on_two_on_demand_nodes_and_spot_above_it():
    # Four replicas per instance, failover across two nodes, spot priced and allowed.
    opt = synthetic_option(10.0, 100.0, spot_hourly=4.0, gpu_count=4, failover_nodes=2, allow_spot=True)
    at_floor = opt.fleet(2, 2, 720)
    assert (at_floor.on_demand_instances, at_floor.spot_instances) == (2, 0)  # two nodes, though one would hold both
    assert (at_floor.on_demand_replicas, at_floor.spot_replicas) == (2, 0)
    assert at_floor.monthly_compute_usd == pytest.approx(2 * 10.0 * 720)
    # The two on-demand nodes have 8 slots; replicas 9 and 10 go to one spot instance.
    big = opt.fleet(10, 2, 720)
    assert (big.on_demand_instances, big.on_demand_replicas) == (2, 8)
    assert (big.spot_instances, big.spot_replicas) == (1, 2)
    assert big.spot_share == pytest.approx(0.2)
    assert big.monthly_compute_usd == pytest.approx((2 * 10.0 + 1 * 4.0) * 720)


def test_fleet_without_failover_uses_one_node():
    opt = synthetic_option(10.0, 100.0, spot_hourly=4.0, gpu_count=4, failover_nodes=1, allow_spot=True)
    f = opt.fleet(1, 1, 720)
    assert (f.on_demand_instances, f.spot_instances, f.replicas) == (1, 0, 1)
    assert f.monthly_compute_usd == pytest.approx(7_200)


@pytest.mark.parametrize("allow_spot, spot_hourly", [(False, 4.0), (True, None)], ids=["spot-not-allowed", "spot-not-priced"])
def test_fleet_all_on_demand_without_spot(allow_spot, spot_hourly):
    opt = synthetic_option(10.0, 100.0, spot_hourly=spot_hourly, gpu_count=4, failover_nodes=2, allow_spot=allow_spot)
    assert not opt.spot_priced
    f = opt.fleet(10, 2, 720)
    assert (f.on_demand_instances, f.spot_instances) == (3, 0)  # ceil(10 / 4)
    assert (f.on_demand_replicas, f.spot_replicas, f.spot_share) == (10, 0, 0.0)
    assert f.monthly_compute_usd == pytest.approx(3 * 10.0 * 720)
    assert opt.marginal_cost_per_replica_hour() == pytest.approx(10.0 / 4)


def test_availability_thresholds(catalog):
    assert catalog.availability.failover_floor_target_percent == 99.0
    assert catalog.availability.spare_replica_target_percent == 99.95
    assert floor_replicas(catalog, 98.99) == 1
    assert floor_replicas(catalog, 99.0) == 2  # "at or above 99.0 %"
    kv = kv_cache_tokens(catalog, 1000, 300, 8192)
    for availability, nodes, spare in [(98.9, 1, False), (99.0, 2, False), (99.9, 2, False), (99.95, 2, True)]:
        options, _ = gpu_options(catalog, "aws", ["us-east-1"], "compute", "8b", kv, availability, True)
        assert options
        assert {(o.failover_nodes, o.spare_replica) for o in options} == {(nodes, spare)}


def test_replicas_for_adds_the_spare_and_keeps_the_floor():
    opt = synthetic_option(10.0, 100.0)
    assert opt.replicas_for(0, 1) == 1
    assert opt.replicas_for(0, 2) == 2
    assert opt.replicas_for(250, 2) == 3
    assert opt.replicas_for(300, 1) == 3
    spare = synthetic_option(10.0, 100.0, spare_replica=True)
    assert spare.replicas_for(250, 2) == 4
    assert spare.replicas_for(50, 2) == 2


def test_real_catalog_70b_fleet_uses_spot_above_the_floor(catalog):
    kv = kv_cache_tokens(catalog, 2000, 1000, 8192)
    options, _ = gpu_options(catalog, "aws", ["us-east-1"], "compute", "70b", kv, 99.9, allow_spot=True)
    plan = cheapest_plan(catalog, options, 11_574.07, 99.9)  # 500k requests/day x 1,000 output tokens, peak 2x
    o, f = plan.option, plan.fleet
    assert o.instance.instance_type == "g6e.12xlarge"
    assert (o.fit.gpus_per_replica, o.replicas_per_instance) == (2, 2)
    assert f.replicas == math.ceil(11_574.07 / o.tok_s_per_replica) == 24
    assert (f.on_demand_instances, f.on_demand_replicas, f.spot_instances, f.spot_replicas) == (2, 4, 10, 20)
    assert f.monthly_compute_usd == pytest.approx((2 * o.instance.on_demand_hourly + 10 * o.instance.spot_hourly) * 720)
    no_spot, _ = gpu_options(catalog, "aws", ["us-east-1"], "compute", "70b", kv, 99.9, allow_spot=False)
    assert all(cheapest_plan(catalog, no_spot, x, 99.9).fleet.spot_instances == 0 for x in (0, 5_000, 11_574.07))
    managed, _ = gpu_options(catalog, "aws", ["us-east-1"], "sagemaker", "70b", kv, 99.9, allow_spot=True)
    assert all(not o.spot_priced for o in managed)  # managed endpoints never use spot
    # One model copy per managed instance, sharded over all its GPUs; capacity stays planned on the fitted size.
    assert {(o.instance.instance_type, o.fit.gpus_per_replica, o.serving_gpus_per_replica) for o in managed
            if o.instance.instance_type == "ml.g6e.12xlarge"} == {("ml.g6e.12xlarge", 2, 4)}
    assert all(o.serving_gpus_per_replica == o.instance.gpu_count for o in managed)
    assert all(o.serving_gpus_per_replica == o.fit.gpus_per_replica for o in options)


# ---------------------------------------------------------------------------------------------------------------
# Property tests


OPTION_SETS = [("aws", "us-east-1", "compute"), ("aws", "us-east-1", "sagemaker"), ("aws", "eu-central-1", "compute"),
               ("gcp", "us-central1", "compute"), ("gcp", "us-central1", "vertex")]
AVAILABILITY = [95.0, 98.9, 99.0, 99.5, 99.9, 99.95, 99.99]


def real_options(catalog, where, size, availability, allow_spot, avg_in=1000, avg_out=300):
    cloud, region, service = where
    kv = kv_cache_tokens(catalog, avg_in, avg_out, 8192)
    options, _ = gpu_options(catalog, cloud, [region], service, size, kv, availability, allow_spot)
    return options


@given(data=st.data(), d1=st.floats(0, 1e7), d2=st.floats(0, 1e7), avg_in=st.integers(0, 8000), avg_out=st.integers(1, 4000))
@PROPERTY
def test_api_cost_never_falls_with_more_requests(data, d1, d2, avg_in, avg_out):
    model = data.draw(st.sampled_from(CATALOG.api_models))
    lo, hi = sorted((d1, d2))
    cost = [api_monthly_cost_usd(model, Volume(d, avg_in, avg_out, 2.0, 2.0)) for d in (lo, hi)]
    assert 0 <= cost[0] <= cost[1]


@given(data=st.data(), l1=st.floats(0, 60_000), l2=st.floats(0, 60_000))
@PROPERTY
def test_cheapest_plan_never_falls_with_more_load(data, l1, l2):
    where = data.draw(st.sampled_from(OPTION_SETS))
    size = data.draw(st.sampled_from(["8b", "70b"]))
    availability = data.draw(st.sampled_from(AVAILABILITY))
    options = real_options(CATALOG, where, size, availability, data.draw(st.booleans()))
    assume(options)
    lo, hi = sorted((l1, l2))
    a, b = (cheapest_plan(CATALOG, options, x, availability) for x in (lo, hi))
    assert a.monthly_compute_usd <= b.monthly_compute_usd + 1e-6
    assert a.monthly_compute_usd > 0


@given(data=st.data(), l1=st.floats(0, 100_000), l2=st.floats(0, 100_000))
@PROPERTY
def test_more_load_never_needs_fewer_replicas_or_gpus(data, l1, l2):
    availability = data.draw(st.sampled_from(AVAILABILITY))
    options = real_options(CATALOG, data.draw(st.sampled_from(OPTION_SETS)), data.draw(st.sampled_from(["8b", "70b"])),
                           availability, True)
    assume(options)
    opt = data.draw(st.sampled_from(options))
    floor = floor_replicas(CATALOG, availability)
    lo, hi = sorted((l1, l2))
    r_lo, r_hi = opt.replicas_for(lo, floor), opt.replicas_for(hi, floor)
    assert r_lo <= r_hi
    assert r_lo * opt.fit.gpus_per_replica <= r_hi * opt.fit.gpus_per_replica
    # Enough planned capacity for the load (the spare, if any, on top).
    assert (r_hi - (1 if opt.spare_replica else 0)) * opt.tok_s_per_replica >= hi - 1e-6


@given(data=st.data(), load=st.floats(0, 100_000),
       availability=st.one_of(st.sampled_from([90.0, 98.99, 99.0, 99.95]), st.floats(90.0, 99.999)))
@PROPERTY
def test_redundancy_never_drops_below_the_availability_floor(data, load, availability):
    options = real_options(CATALOG, data.draw(st.sampled_from(OPTION_SETS)), data.draw(st.sampled_from(["8b", "70b"])),
                           availability, data.draw(st.booleans()))
    assume(options)
    opt = data.draw(st.sampled_from(options))
    floor = floor_replicas(CATALOG, availability)
    replicas = opt.replicas_for(load, floor)
    fleet = opt.fleet(replicas, floor, CATALOG.serving.hours_per_month)
    assert fleet.replicas == replicas == fleet.on_demand_replicas + fleet.spot_replicas
    if availability >= CATALOG.availability.failover_floor_target_percent:
        assert floor == 2
        assert replicas >= 2
        assert fleet.on_demand_instances >= 2  # the floor on two separate on-demand nodes
        assert fleet.on_demand_replicas >= 2
    else:
        assert floor == 1
        assert replicas >= 1
        assert fleet.on_demand_instances >= 1
    if availability >= CATALOG.availability.spare_replica_target_percent:
        assert replicas >= math.ceil(load / opt.tok_s_per_replica) + 1
    # Instances hold every replica.
    rpi = opt.replicas_per_instance
    assert fleet.on_demand_instances * rpi >= fleet.on_demand_replicas
    assert fleet.spot_instances * rpi >= fleet.spot_replicas


# Random but valid profiles for decide().

REGIONS = {"aws": [["us-east-1"], ["us-east-1", "us-west-2"], ["eu-central-1"]],
           "gcp": [["us-central1"], ["europe-west4"]]}


@st.composite
def profile_dicts(draw):
    """Weighted towards profiles some tier can serve (a model, a team), but refusals are drawn too."""
    cloud = draw(st.sampled_from(["aws", "gcp"]))
    p2a = draw(st.floats(1.0, 4.0))
    sensitivity = draw(st.sampled_from(["public", "internal", "internal", "confidential", "regulated"]))
    boundary = sensitivity in ("confidential", "regulated")
    quality = draw(st.sampled_from(["small", "strong-open", "strong-open"] + ([] if boundary else ["frontier"])))
    size = draw(st.sampled_from([None, "8b", "8b", "70b", "70b", "70b"]))
    d = {
        "cloud": cloud,
        "traffic": {
            "daily_requests": round(10 ** draw(st.floats(2.0, 6.5))),
            "avg_input_tokens": draw(st.integers(50, 4000)),
            "avg_output_tokens": draw(st.integers(20, 1500)),
            "peak_to_average": p2a,
            "peak_hours_per_day": draw(st.floats(0.5, 0.999 * 24 / p2a)),  # product stays <= 24 after rounding
            "growth_monthly_percent": draw(st.sampled_from([0, 2, 5])),
            "horizon_months": draw(st.sampled_from([0, 6, 12])),
        },
        "latency_sla_ms": draw(st.sampled_from([80, 150, 250, 1000, 1000, 1000])),
        "data_sensitivity": sensitivity,
        "residency": {"allowed_regions": draw(st.sampled_from(REGIONS[cloud]))},
        "team": {"ml_ops_capacity": draw(st.sampled_from(["none", "limited", "dedicated", "dedicated"]))},
        "quality": quality,
        "availability_target": draw(st.sampled_from([95.0, 99.0, 99.9, 99.95])),
        "allow_spot": draw(st.booleans()),
        "air_gapped": draw(st.integers(0, 5)) == 0,
    }
    if d["air_gapped"]:
        region = d["residency"]["allowed_regions"][0]
        d["private_registry"] = (f"123456789012.dkr.ecr.{region}.amazonaws.com/llm-mirror" if cloud == "aws"
                                 else f"{region}-docker.pkg.dev/acme-llm/llm-mirror")
    if size:
        d["model"] = {"id": f"org/model-{size}", "size_class": size, "fine_tuned": draw(st.integers(0, 5)) == 0}
    if boundary and draw(st.booleans()):
        d["workloads"] = [{"name": "open", "share_percent": 60, "data_sensitivity": "public"},
                          {"name": "closed", "share_percent": 40, "data_sensitivity": sensitivity}]
    return d


def scaled(d: dict, k: float) -> dict:
    out = {**d, "traffic": {**d["traffic"]}}
    out["traffic"]["daily_requests"] = max(1, round(d["traffic"]["daily_requests"] * k))
    return out


def try_decide(d, catalog):
    try:
        return decide(Profile.model_validate(d), catalog)
    except InputError as e:
        assert e.problems, "a refusal names at least one problem"
        return None


def key(c):
    return (c.tier, c.pattern, c.provider)


@given(d=profile_dicts(), k=st.floats(1.05, 8.0))
@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_more_volume_never_lowers_any_candidates_cost(d, k):
    small, big = try_decide(d, CATALOG), try_decide(scaled(d, k), CATALOG)
    # Feasibility does not depend on volume: both refuse or neither.
    assert (small is None) == (big is None)
    if small is None:
        return
    before = {key(c): c for c in small.candidates}
    after = {key(c): c for c in big.candidates}
    assert len(before) == len(small.candidates) and len(after) == len(big.candidates)  # keys are unique
    compared = 0
    for k_, c in before.items():
        other = after.get(k_)
        if other is None or c.monthly_cost_usd is None or other.monthly_cost_usd is None:
            continue
        assert c.feasible == other.feasible, k_
        assert c.monthly_cost_usd <= other.monthly_cost_usd + 0.01, (k_, c.label, other.label)
        compared += 1
    assert compared >= 1
    # The whole-traffic API candidates scale exactly linearly with requests.
    ratio = big.profile.traffic.daily_requests / small.profile.traffic.daily_requests
    for c in small.candidates:
        if c.tier == "api":
            assert after[key(c)].cost["api_usd"] == pytest.approx(c.cost["api_usd"] * ratio, rel=1e-9)


@given(d=profile_dicts())
@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_decide_picks_the_cheapest_feasible_candidate(d):
    decision = try_decide(d, CATALOG)
    if decision is None:
        return
    feasible = [c for c in decision.candidates if c.feasible]
    assert decision.chosen in feasible
    assert decision.chosen.monthly_cost_usd == pytest.approx(min(c.monthly_cost_usd for c in feasible), abs=0.01)
    assert decision.candidates[0] is decision.chosen
    for c in decision.candidates:
        if not c.feasible:
            assert c.reasons, f"{c.label} is infeasible without a reason"
        if c.tier == "api" and (decision.profile.air_gapped or decision.profile.data_sensitivity in ("confidential", "regulated")):
            assert not c.feasible


# ---------------------------------------------------------------------------------------------------------------
# The crossover: the lowest volume from which the GPU tier costs no more than the API at every volume, each volume
# priced as the planner would plan it. At the crossover the two costs agree (the API's line reaches the cost of the
# step it lies on); just below it the API is cheaper.


# One replica carries 2,000 tok/s = 5,184M output tokens/month for $1,800 (on demand, $2.50/hour); the API costs
# $1.00/Mtok; nothing fixed. One replica's floor meets the API at 1,800M; the failover floor of two replicas at
# 3,600M, after which each step starts below the API line. With a spare (99.95% and up) the third replica comes at
# 5,184M and costs $5,400, above the API's $5,184 there: self-hosting stays cheaper only from 5,400M. Before the
# fix, 99.0% up to 99.95% reported 0 ("at every volume above 0"): the floor's step was priced from one replica's
# traffic, not from zero.
@pytest.mark.parametrize("availability, expected_mtok", [
    (95.0, 1_800), (99.0, 3_600), (99.5, 3_600), (99.9, 3_600), (99.95, 5_400), (99.99, 5_400),
])
def test_crossover_starts_from_zero_traffic_at_every_availability_target(catalog, availability, expected_mtok):
    floor = floor_replicas(catalog, availability)
    spare = availability >= catalog.availability.spare_replica_target_percent
    option = synthetic_option(on_demand_hourly=2.50, tok_s_per_replica=2_000.0, failover_nodes=2 if floor > 1 else 1,
                              spare_replica=spare)
    api = api_model(1.0, 1.0)
    volume = Volume(1.0, 0, 1000, peak_to_average=1.0, peak_hours_per_day=24, days_per_month=DAYS)
    x = crossover(catalog, "self-hosted", option, 0.0, api, volume, availability)
    assert x.monthly_tokens == pytest.approx(expected_mtok * 1e6, rel=1e-9)
    assert f"{expected_mtok:,}M tokens/month" in x.note and "above 0M" not in x.note
    # At one request a day the floor costs thousands of dollars and the API a tenth of a cent.
    one_a_day = volume.with_monthly_requests(DAYS)
    fleet = option.fleet(option.replicas_for(one_a_day.peak_output_tok_s, floor), floor, 720).monthly_compute_usd
    assert fleet >= 1_800.0 > api_monthly_cost_usd(api, one_a_day)


CROSSOVER_TARGETS = [95.0, 99.0, 99.5, 99.9, 99.95, 99.99]


@st.composite
def gpu_profiles(draw):
    """Profiles some GPU tier can serve (an open model, a team, no air gap, a loose SLA), so that the decision
    prices both GPU tiers, at each availability target."""
    d = draw(profile_dicts())
    d.pop("private_registry", None)
    size = draw(st.sampled_from(["8b", "70b"]))
    d.update(availability_target=draw(st.sampled_from(CROSSOVER_TARGETS)), air_gapped=False, latency_sla_ms=1000,
             team={"ml_ops_capacity": "dedicated"}, quality="strong-open" if size == "70b" else "small",
             model={"id": f"org/model-{size}", "size_class": size, "fine_tuned": False})
    return d


@given(d=gpu_profiles(), above=st.lists(st.floats(1e-6, 16.0), min_size=3, max_size=3))
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_crossover_is_where_the_planners_costs_meet(d, above):
    from planner.rules import _gpu_candidate, _volume

    try:
        decision = decide(Profile.model_validate(d), CATALOG, relax=False)
    except InputError:
        return
    profile = decision.profile
    projected = _volume(profile, CATALOG, profile.traffic.horizon_months)
    apis = {f"{c.api.provider}/{c.api.model}": c.api for c in decision.candidates if c.tier == "api" and c.api}

    def gpu(tier: str, monthly_requests: float) -> float:
        """The tier's all-in cost at this volume, through the candidate the planner would build there."""
        v = projected.with_monthly_requests(monthly_requests)
        return sum(_gpu_candidate(profile, CATALOG, v, tier, v.peak_output_tok_s).cost.values())

    def api(label: str, monthly_requests: float) -> float:
        return api_monthly_cost_usd(apis[label], projected.with_monthly_requests(monthly_requests))

    for x in decision.crossovers:
        # At one request a day the floor (one or more whole replicas) costs more than the API.
        assert gpu(x.tier, DAYS) > api(x.against, DAYS), (x.tier, x.against)
        if x.monthly_tokens is None:
            assert x.note.startswith("none")
            continue
        at = x.daily_requests * projected.days_per_month
        assert at > DAYS  # never "every volume above 0"
        # At the crossover the API's line has reached the cost of the step it lies on: the two agree to 1e-9.
        assert gpu(x.tier, at) == pytest.approx(api(x.against, at), rel=1e-9)
        # Just below it the API is cheaper.
        below = at * (1 - 1e-7)
        assert gpu(x.tier, below) > api(x.against, below), (x.tier, x.against, at)
        # Above it the tier stays no dearer (sampled up to 17 times the crossover volume).
        for k in above:
            v = at * (1 + k)
            assert gpu(x.tier, v) <= api(x.against, v) * (1 + 1e-9), (x.tier, x.against, at, v)


# ---------------------------------------------------------------------------------------------------------------
# Prompt (prefill) work counted next to output (decode) work (issue 11, section 3)


def doc_profile(avg_in: int, avg_out: int, daily_requests: int = 10_000_000, latency_sla_ms: int = 1000) -> dict:
    """A self-hostable 8b workload on aws us-east-1 at a given prompt/output mix."""
    return {"cloud": "aws",
            "traffic": {"daily_requests": daily_requests, "avg_input_tokens": avg_in, "avg_output_tokens": avg_out,
                        "peak_to_average": 2.0, "peak_hours_per_day": 4, "horizon_months": 0},
            "latency_sla_ms": latency_sla_ms, "data_sensitivity": "confidential",
            "residency": {"allowed_regions": ["us-east-1"]}, "team": {"ml_ops_capacity": "dedicated"},
            "quality": "small", "availability_target": 99.9,
            "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "size_class": "8b"}}


def gpus_planned_vs_output_only(catalog, avg_in: int, avg_out: int, **kw):
    """(GPUs the planner's self-hosted candidate runs, GPUs the output-only model plans for the same load, decision)."""
    decision = decide(Profile.model_validate(doc_profile(avg_in, avg_out, **kw)), catalog)
    sh = next(c for c in decision.candidates if c.tier == "self-hosted")
    now = sh.plan.fleet.replicas * sh.plan.option.fit.gpus_per_replica
    # The output-only model: capacity is the measured output rate at each benchmark's own prompt mix.
    options, _ = gpu_options(catalog, "aws", ["us-east-1"], "compute", "8b", kv_cache_tokens(catalog, avg_in, avg_out, 8192),
                             99.9, True)
    old = cheapest_plan(catalog, options, sh.plan.load_tok_s, 99.9)
    return now, old.fleet.replicas * old.option.fit.gpus_per_replica, decision


def test_document_classification_needs_more_than_twice_the_output_only_gpus(catalog):
    # 1,000 prompt tokens in, 50 out: the prompts are most of the work, and the benchmarks' output rates were measured
    # with far less prompt per output token (the rows' 500/2,000 and 832/76 mixes), so counting output alone
    # under-plans the fleet.
    now, output_only, decision = gpus_planned_vs_output_only(catalog, 1000, 50)
    assert now > 2 * output_only, (now, output_only)
    assert decision.numbers["fleet_limited_by"] == "prefill"
    assert decision.numbers["replicas_for_prefill"] >= decision.numbers["replicas_for_memory"]


def test_a_decode_heavy_workload_is_planned_nearly_as_before(catalog):
    # 100 prompt tokens in, 1,000 out: output dominates, so the split changes the fleet little.
    now, output_only, decision = gpus_planned_vs_output_only(catalog, 100, 1000)
    assert 0.8 * output_only <= now <= 1.1 * output_only, (now, output_only)
    assert decision.numbers["fleet_limited_by"] == "decode"


def test_the_limiting_factor_is_reported(catalog):
    from planner.report import _capacity_lines

    small = decide(Profile.model_validate(doc_profile(1000, 300, daily_requests=1_000)), catalog)
    assert small.numbers["fleet_limited_by"] == "redundancy floor"
    busy = decide(Profile.model_validate(doc_profile(1000, 50)), catalog)
    chosen = busy.chosen
    assert chosen.plan.sizing.limited_by == busy.numbers["fleet_limited_by"] == "prefill"
    assert chosen.as_dict()["capacity"]["limited_by"] == "prefill"
    assert any("limited by **prefill**" in line for line in _capacity_lines(chosen))
    assert busy.numbers["ttft_ms_at_peak"] <= 1000
    assert busy.numbers["peak_input_tok_s_projected"] == pytest.approx(20 * busy.numbers["peak_output_tok_s_projected"], rel=1e-6)


def synthetic_capacity(avg_in: int, avg_out: int, *, prompt_tok_s: float = 10_000.0, decode_tok_s: float = 1_000.0,
                       kv_tokens: float = 1e9, itl_s: float = 0.02, ttft_sla_ms: float | None = None) -> PhaseCapacity:
    return PhaseCapacity(avg_in, avg_out, prompt_tok_s, decode_tok_s, prompt_tok_s, kv_tokens, itl_s, 0.6, ttft_sla_ms,
                         "test", "test")


def with_capacity(cap: PhaseCapacity, **kw) -> GpuOption:
    return dataclasses.replace(synthetic_option(10.0, 1.0, **kw), capacity=cap, tok_s_per_replica=cap.planned_output_tok_s)


@pytest.mark.parametrize("cap, requests_s, floor, limit, replicas", [
    # 1,000 in / 50 out: 100 ms of prefill + 50 ms of decode a request; at 60 % a replica carries 4 requests/s,
    # so 41 requests/s need ceil(10.25) = 11.
    (synthetic_capacity(1000, 50), 41.0, 2, "prefill", 11),
    # 100 in / 500 out: 10 ms + 500 ms; 41 x 0.51 / 0.6 = 34.85.
    (synthetic_capacity(100, 500), 41.0, 2, "decode", 35),
    (synthetic_capacity(100, 500), 0.5, 2, "redundancy floor", 2),
    # A 150 ms SLA on a 100 ms prefill: a replica may be 1 - 100/150 = 33 % busy, not 60 %: 41 x 0.15 / (1/3) = 18.45.
    (synthetic_capacity(1000, 50, ttft_sla_ms=150), 41.0, 2, "latency", 19),
    # KV room for 4 sequences of 1,050 tokens, each in flight 0.1 / (1 - u) + 50 x 20 ms: at most 3.33 requests/s
    # per replica (the smaller root of 0.15 x^2 - 1.7 x + 4), so 41 / 3.33 = 12.3.
    (synthetic_capacity(1000, 50, kv_tokens=4 * 1050), 41.0, 2, "memory", 13),
], ids=["prefill", "decode", "floor", "latency", "memory"])
def test_sizing_names_what_limits_the_fleet(cap, requests_s, floor, limit, replicas):
    opt = with_capacity(cap)
    s = opt.sizing(requests_s * cap.avg_output_tokens, floor)
    assert (s.limited_by, s.replicas) == (limit, replicas), s
    assert s.replicas == opt.replicas_for(requests_s * cap.avg_output_tokens, floor)
    # The planned fleet meets the SLA and holds its sequences.
    per_replica = requests_s / s.replicas
    assert cap.utilization(per_replica) <= cap.target_utilization + 1e-9
    assert cap.in_flight(per_replica) <= cap.max_sequences * (1 + 1e-9)
    if cap.ttft_sla_ms:
        assert s.ttft_ms <= cap.ttft_sla_ms + 1e-6


def test_a_prompt_that_cannot_meet_the_ttft_sla_passes_the_instance_over(catalog):
    kv = kv_cache_tokens(catalog, 4000, 50, 8192)
    options, passed_over = gpu_options(catalog, "aws", ["us-east-1"], "compute", "70b", kv, 99.9, True,
                                       avg_input_tokens=4000, avg_output_tokens=50, ttft_sla_ms=100)
    assert all(o.capacity.prefill_seconds * 1000 < 100 for o in options)
    assert any("above the 100 ms TTFT SLA" in r for r in passed_over)


SIZING_OPTIONS = [("aws", "us-east-1", "compute", "8b"), ("aws", "us-east-1", "compute", "70b"),
                  ("aws", "us-east-1", "sagemaker", "70b"), ("gcp", "us-central1", "compute", "8b")]


@given(data=st.data(), in1=st.integers(1, 8000), in2=st.integers(1, 8000), out1=st.integers(1, 4000),
       out2=st.integers(1, 4000), requests_s=st.floats(0, 2000), sla=st.sampled_from([None, 80, 300, 1000, 5000]))
@PROPERTY
def test_replicas_never_fall_when_prompts_or_outputs_grow(data, in1, in2, out1, out2, requests_s, sla):
    """On one instance type and replica shape, at the same request rate: longer prompts or longer outputs never
    need fewer replicas (and a prompt too long for the SLA stays too long when it grows)."""
    cloud, region, service, size = data.draw(st.sampled_from(SIZING_OPTIONS))
    availability = data.draw(st.sampled_from(AVAILABILITY))
    options, _ = gpu_options(CATALOG, cloud, [region], service, size, kv_cache_tokens(CATALOG, 1000, 300, 8192),
                             availability, True, avg_input_tokens=1000, avg_output_tokens=300)
    assume(options)
    base = data.draw(st.sampled_from(options))
    floor = floor_replicas(CATALOG, availability)
    serving_gpus = base.serving_gpus_per_replica

    def replicas(avg_in: int, avg_out: int) -> float:
        cap = phase_capacity(CATALOG, size, base.fit, base.throughput, serving_gpus, avg_in, avg_out, sla)
        if not cap.meets_ttft:
            return math.inf
        opt = dataclasses.replace(base, capacity=cap, tok_s_per_replica=cap.planned_output_tok_s)
        return opt.replicas_for(requests_s * avg_out, floor)

    lo_in, hi_in = sorted((in1, in2))
    lo_out, hi_out = sorted((out1, out2))
    assert replicas(lo_in, lo_out) <= replicas(hi_in, lo_out)
    assert replicas(lo_in, lo_out) <= replicas(lo_in, hi_out)
