"""The plan's cost and the guardrails sized from it, as `llmhost plan` writes them (`llm-hosting:spend`).

Every example stack carries the amounts its own plan computes: the all-in total and its parts, the budget's amount
(GPUs plus the front door at list prices), the API caps (the plan's API share of the projected peak with headroom)
and the drift thresholds (the band of volumes over which the decision holds, the crossover against the best API).
The band is checked against the planner itself: just inside an end it decides the same, at the end it does not.
The report carries the thresholds' words and the costs along the horizon; the chart beside it draws them.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PROFILES, ROOT, edit_stack, set_section
from planner.errors import InputError
from planner.profile import Profile, load_profile
from planner.rules import _fleet_capacity_tok_s, decide
from planner.spend import (API_HEADROOM, BAND_DOUBLINGS, BURST_API_HEADROOM, MATERIAL_SAVING, _decide_at, holds, _signature, decision_band, front_door_items, horizon_costs,
                           horizon_months, horizon_svg, horizon_table)
from planner.stack_config import BUDGET_ALERT_PERCENTS, load_stack_config
from planner.stackgen import stack_config_from

EXAMPLES = [p.stem for p in PROFILES]
SVG = "{http://www.w3.org/2000/svg}"


def _stack(name: str):
    from planner.stackgen import read_stack_file

    values = read_stack_file(ROOT / "stacks" / f"Pulumi.{name}.yaml")
    return load_stack_config(values, f"stacks/Pulumi.{name}.yaml")


@pytest.fixture(scope="module")
def decisions(catalog):
    out = {}
    for path in PROFILES:
        ref = f"stacks/profiles/{path.name}"
        out[path.stem] = decide(load_profile(path), catalog, ref)
    return out


@pytest.mark.parametrize("name", EXAMPLES)
def test_spend_section_is_the_plans_own_numbers(name, decisions, catalog):
    d = decisions[name]
    cfg = _stack(name)
    s, c = cfg.spend, d.chosen
    assert s is not None, f"{name}: the example stack has no llm-hosting:spend"
    assert s.planned_monthly_usd == pytest.approx(c.monthly_cost_usd, abs=0.01)
    assert s.planned_monthly_usd == pytest.approx(s.cloud_monthly_usd - _front_door(cfg, catalog) + s.api_monthly_usd
                                                  + s.staffing_monthly_usd, abs=0.05)
    assert s.cloud_monthly_usd == pytest.approx(c.cost.get("gpu_compute_usd", 0.0) + _front_door(cfg, catalog), abs=0.01)
    assert s.api_monthly_usd == pytest.approx(c.cost.get("api_usd", 0.0), abs=0.01)
    t = d.profile.traffic
    per_request = t.avg_input_tokens + t.avg_output_tokens
    assert s.drift.daily_tokens_now == t.daily_requests * per_request
    assert s.drift.growth_monthly_percent == t.growth_monthly_percent
    assert s.drift.daily_tokens_projected == round(d.numbers["daily_requests_projected"] * per_request, -3) or \
        abs(s.drift.daily_tokens_projected - d.numbers["daily_requests_projected"] * per_request) <= per_request
    if cfg.cloud == "gcp":
        assert s.billing_account == d.profile.gcp_billing_account and s.billing_account


def _front_door(cfg, catalog) -> float:
    return sum(i.monthly_usd or 0.0 for i in front_door_items(cfg, catalog.front_door))


@pytest.mark.parametrize("name", EXAMPLES)
def test_api_caps_follow_the_planned_api_peak(name, decisions):
    d, s = decisions[name], _stack(name).spend
    c, t = d.chosen, d.profile.traffic
    if c.api is None:
        assert s.api_requests_per_minute is None and s.api_tokens_per_minute is None
        return
    projected = d.numbers["daily_requests_projected"]
    if c.pattern == "burst-overflow":
        # Only the peak above what the fleet carries overflows, at the peak's rate.
        peak_tok_s = d.numbers["peak_output_tok_s_projected"]
        api_rps = max(0.0, peak_tok_s - _fleet_capacity_tok_s(c.plan)) / t.avg_output_tokens
    else:
        share = 1.0 if c.tier == "api" else sum(w.share_percent for w in d.profile.classes
                                                 if d.class_routes[w.name] == "api") / 100.0
        api_rps = projected * share * t.peak_to_average / 86400.0
    headroom = BURST_API_HEADROOM if c.pattern == "burst-overflow" else API_HEADROOM
    assert s.api_headroom == headroom
    assert s.api_requests_per_minute == max(1, math.ceil(api_rps * 60 * headroom))
    assert s.api_tokens_per_minute == s.api_requests_per_minute * (t.avg_input_tokens + t.avg_output_tokens)


def test_burst_overflow_cap_is_below_the_whole_peak(decisions):
    """The cap bounds the overflow, not the traffic: a fleet that cannot scale overflows no more than the cap."""
    d, s = decisions["burst-hybrid"], _stack("burst-hybrid").spend
    whole_peak_rpm = d.numbers["daily_requests_projected"] * d.profile.traffic.peak_to_average / 1440
    assert 0 < s.api_requests_per_minute < whole_peak_rpm


@pytest.mark.parametrize("name", EXAMPLES)
def test_band_ends_are_where_the_decision_changes(name, decisions, catalog):
    d = decisions[name]
    drift = _stack(name).spend.drift
    t = d.profile.traffic
    per_request = t.avg_input_tokens + t.avg_output_tokens
    ref = f"stacks/profiles/{name}.yaml"
    same = _signature(d)
    for tokens, inside in ((drift.upper_daily_tokens, 0.99), (drift.lower_daily_tokens, 1.01)):
        if tokens is None:
            continue
        at = tokens // per_request
        assert not holds(_decide_at(d.profile, catalog, at, ref, None), same)
        assert holds(_decide_at(d.profile, catalog, int(at * inside), ref, None), same)
    if drift.upper_daily_tokens is not None:
        assert drift.upper_daily_tokens > drift.daily_tokens_now
    if drift.lower_daily_tokens is not None:
        assert drift.lower_daily_tokens < drift.daily_tokens_now


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(EXAMPLES), at=st.floats(min_value=0.0, max_value=1.0))
def test_the_decision_holds_everywhere_inside_the_band(name, at, catalog):
    """Anywhere between the band's ends (today's traffic scaled, in log space) the planner gives the same answer, or
    one no more than MATERIAL_SAVING cheaper: the drift alerts stay quiet exactly where a re-plan would not move."""
    path = ROOT / "stacks" / "profiles" / f"{name}.yaml"
    p = load_profile(path)
    drift = _stack(name).spend.drift
    per_request = p.traffic.avg_input_tokens + p.traffic.avg_output_tokens
    # The ends are found to within the bisection's 2^(1/128) of the volume: the band proper starts 1 % inside them.
    lo = math.ceil(drift.lower_daily_tokens / per_request * 1.01) if drift.lower_daily_tokens else 1
    hi = (math.floor(drift.upper_daily_tokens / per_request / 1.01) if drift.upper_daily_tokens
          else p.traffic.daily_requests * 2 ** BAND_DOUBLINGS)
    volume = max(lo, min(hi, int(round(lo * (hi / lo) ** at))))
    d = decide(p, catalog, str(path), relax=False, explain=False)
    assert holds(_decide_at(p, catalog, volume, str(path), None), _signature(d)), (name, volume, MATERIAL_SAVING)


def test_examples_exercise_every_threshold():
    drifts = {n: _stack(n).spend.drift for n in EXAMPLES}
    assert any(d.lower_daily_tokens for d in drifts.values())
    assert any(d.crossover_direction == "above" for d in drifts.values())
    assert drifts["startup-api"].crossover_direction == "above"
    assert drifts["burst-hybrid"].lower_daily_tokens is not None


def test_a_profile_that_outgrows_the_api_gets_an_upper_band(catalog):
    data = load_profile(ROOT / "stacks/profiles/startup-api.yaml").model_dump(mode="json")
    data["team"]["ml_ops_capacity"] = "dedicated"
    data["model"].update(size_class="70b", id="meta-llama/Llama-3.3-70B-Instruct")
    d = decide(Profile.model_validate(data), catalog, "profile")
    band = decision_band(d, catalog, "profile")
    assert d.chosen.tier == "api" and band.upper is not None and band.lower is None
    assert band.upper.daily_requests > d.profile.traffic.daily_requests
    assert "the planner would choose" in band.upper.reason and d.chosen.label in band.upper.reason


@pytest.mark.parametrize("name", EXAMPLES)
def test_report_says_what_it_costs_and_when_to_revisit(name):
    cfg = _stack(name)
    report = (ROOT / "stacks" / f"{name}.decision.md").read_text()
    s, d = cfg.spend, cfg.spend.drift
    assert "## Spend guardrails" in report and "## Cost along the horizon" in report
    assert f"${s.planned_monthly_usd:,.0f}/month" in report
    for p in BUDGET_ALERT_PERCENTS:
        assert f"{p}% (${s.cloud_monthly_usd * p / 100:,.0f})" in report
    for reason in (d.upper_reason, d.lower_reason, d.crossover_reason):
        if reason:
            assert reason in report  # the alerts' descriptions quote the report's own words
    assert f"llmhost replan stacks/profiles/{name}.yaml" in report
    if s.api_requests_per_minute:
        assert f"{s.api_requests_per_minute:,} requests and {s.api_tokens_per_minute:,} tokens per minute" in report
    assert f"![Cost along the horizon]({name}.costs.svg)" in report


@pytest.mark.parametrize("name", EXAMPLES)
def test_chart_draws_each_option_along_the_horizon(name, decisions, catalog):
    d = decisions[name]
    svg = ET.fromstring((ROOT / "stacks" / f"{name}.costs.svg").read_text())
    lines = svg.findall(f"{SVG}polyline")
    drawn = {ln.get("data-option") for ln in lines}
    h = horizon_costs(d.profile, catalog, f"stacks/profiles/{name}.yaml")
    assert h.months == horizon_months(d.profile.traffic.horizon_months)
    assert h.chosen[-1] == _key(d.chosen)  # the horizon is the plan itself
    assert _key(d.chosen) in drawn
    assert drawn <= set(h.series)
    legend = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    for key in h.series:
        assert key[:39] in legend
    # The horizon column is the decision's own candidates.
    for c in d.candidates:
        key = _key(c)
        if key in h.series and c.monthly_cost_usd is not None and (c.tier != "api" or key == _best_api(d)):
            assert h.series[key][-1] == pytest.approx(c.monthly_cost_usd, abs=0.01)


def _key(c) -> str:
    from planner.spend import _series_key

    return _series_key(c)


def _best_api(d) -> str:
    apis = [c for c in d.candidates if c.tier == "api" and c.monthly_cost_usd is not None]
    return _key(min(apis, key=lambda c: (not c.feasible, c.monthly_cost_usd)))


def test_chart_lines_cross_where_the_costs_cross(decisions, catalog):
    """burst-hybrid: the API is cheaper today and the hybrid at the horizon, so their lines cross in the chart."""
    d = decisions["burst-hybrid"]
    h = horizon_costs(d.profile, catalog, "stacks/profiles/burst-hybrid.yaml")
    api, hybrid = _best_api(d), "hybrid (burst-overflow)"
    assert h.series[api][0] < h.series[hybrid][0] and h.series[api][-1] > h.series[hybrid][-1]
    assert h.chosen[0] == api and h.chosen[-1] == hybrid
    svg = ET.fromstring(horizon_svg(h, "t"))
    ys = {ln.get("data-option"): [float(p.split(",")[1]) for p in ln.get("points").split()]
          for ln in svg.findall(f"{SVG}polyline")}
    # SVG y grows downwards: the API's line starts below the hybrid's and ends above it.
    assert ys[api][0] > ys[hybrid][0] and ys[api][-1] < ys[hybrid][-1]
    header, rows = horizon_table(h)
    assert header[0] == "month" and header[-1] == "chosen" and rows[0][0] == "0" and rows[-1][0] == "12"
    assert rows[0][-1] == api and rows[-1][-1] == hybrid


def test_plan_prints_the_horizon_and_writes_the_chart(cli, project):
    result = cli("plan", str(ROOT / "stacks/profiles/burst-hybrid.yaml"), "--stack", "burst-hybrid", "--force",
                 "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    assert "along the growth horizon" in result.output
    assert "wrote stacks/burst-hybrid.costs.svg" in result.output
    assert (project / "stacks" / "burst-hybrid.costs.svg").read_text() == \
        (ROOT / "stacks" / "burst-hybrid.costs.svg").read_text()  # deterministic: a re-plan rewrites the same chart
    out = cli("plan", str(ROOT / "stacks/profiles/burst-hybrid.yaml"), "--stack", "burst-hybrid", "--force", "--json",
              "--project-dir", str(project))
    doc = json.loads(out.stdout)
    assert doc["spend"]["apiRequestsPerMinute"] == _stack("burst-hybrid").spend.api_requests_per_minute
    assert doc["horizon"]["months"][0] == 0 and "stacks/burst-hybrid.costs.svg" in doc["files"]


def test_gcp_profile_without_billing_account_warns_and_gets_no_account(cli, project, tmp_path):
    path = tmp_path / "nobill.yaml"
    doc = yaml.safe_load((ROOT / "stacks/profiles/us-vertex-support.yaml").read_text())
    doc.pop("gcp_billing_account")
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", str(path), "--stack", "nobill", "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    assert "gcp_billing_account is not set, so the stack gets no budget" in result.stderr
    stack = yaml.safe_load((project / "stacks" / "Pulumi.nobill.yaml").read_text())["config"]
    assert "billingAccount" not in stack["llm-hosting:spend"]
    assert "no budget is created: set `gcp_billing_account`" in (project / "stacks" / "nobill.decision.md").read_text()


@pytest.mark.parametrize("value, cloud, message", [
    ("0123-45", "us-vertex-support", "gcp_billing_account"),
    ("012345-6789AB-CDEF01", "startup-api", "only applies to cloud: gcp"),
])
def test_bad_billing_account_is_refused_at_plan(cli, project, tmp_path, value, cloud, message):
    path = tmp_path / "bad.yaml"
    doc = yaml.safe_load((ROOT / f"stacks/profiles/{cloud}.yaml").read_text())
    doc["gcp_billing_account"] = value
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.stderr and "gcp_billing_account" in result.stderr
    assert not (project / "stacks" / "Pulumi.bad.yaml").exists()


@pytest.mark.parametrize("edit, key", [
    (set_section("spend", apiRequestsPerMinute=None, apiTokensPerMinute=None), "llm-hosting:spend.apiRequestsPerMinute"),
    (set_section("spend", billingAccount="012345-6789AB-CDEF01"), "llm-hosting:spend.billingAccount"),
    (set_section("spend", cloudMonthlyUsd=0), "llm-hosting:spend.cloudMonthlyUsd"),
])
def test_hand_edited_spend_is_refused_before_anything_is_built(cli, project, edit, key):
    def drop_none(config):
        edit(config)
        config["llm-hosting:spend"] = {k: v for k, v in config["llm-hosting:spend"].items() if v is not None}
    edit_stack(project, "startup-api", drop_none)
    result = cli("preview", "--stack", "startup-api", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert key in result.stderr and "Traceback" not in result.output


def test_caps_on_a_stack_without_an_api_are_refused(catalog):
    from planner.stackgen import read_stack_file

    values = read_stack_file(ROOT / "stacks" / "Pulumi.realtime-npc.yaml")
    values["llm-hosting:spend"] = {**values["llm-hosting:spend"], "apiRequestsPerMinute": 10, "apiTokensPerMinute": 100}
    with pytest.raises(InputError) as exc:
        load_stack_config(values, "stacks/Pulumi.realtime-npc.yaml")
    assert "spend.apiRequestsPerMinute" in exc.value.render() and "no api section" in exc.value.render()


def test_drift_band_must_be_ordered():
    from planner.stackgen import read_stack_file

    values = read_stack_file(ROOT / "stacks" / "Pulumi.burst-hybrid.yaml")
    drift = dict(values["llm-hosting:spend"]["drift"])
    drift.update(upperDailyTokens=drift["lowerDailyTokens"] - 1, upperReason="x")
    values["llm-hosting:spend"] = {**values["llm-hosting:spend"], "drift": drift}
    with pytest.raises(InputError) as exc:
        load_stack_config(values, "stacks/Pulumi.burst-hybrid.yaml")
    assert "spend.drift.lowerDailyTokens" in exc.value.render()


def test_stack_config_from_is_deterministic(decisions, catalog):
    d = decisions["tiered-sensitivity"]
    a = stack_config_from(d, "stacks/profiles/tiered-sensitivity.yaml", catalog)
    b = stack_config_from(d, "stacks/profiles/tiered-sensitivity.yaml", catalog)
    assert a.flat() == b.flat()


def test_member_account_leaves_the_tag_to_the_payer(cli, project, tmp_path):
    """aws_activate_cost_allocation_tag: false (an Organizations member account): the stack still budgets on the tag,
    but does not try to activate it, which only the management account may."""
    from preview.harness import run_preview

    path = tmp_path / "member.yaml"
    doc = yaml.safe_load((ROOT / "stacks/profiles/startup-api.yaml").read_text())
    doc["aws_activate_cost_allocation_tag"] = False
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", str(path), "--stack", "member", "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    stack = yaml.safe_load((project / "stacks" / "Pulumi.member.yaml").read_text())["config"]
    assert stack["llm-hosting:spend"]["activateCostAllocationTag"] is False
    preview = run_preview(project, "member")
    assert preview.by_type("aws:budgets/budget:Budget")
    assert not preview.by_type("aws:costexplorer/costAllocationTag:CostAllocationTag")
    default = run_preview(project, "startup-api")
    assert default.by_type("aws:costexplorer/costAllocationTag:CostAllocationTag")


def test_cost_allocation_tag_switch_is_aws_only(cli, project, tmp_path):
    path = tmp_path / "gcp.yaml"
    doc = yaml.safe_load((ROOT / "stacks/profiles/us-vertex-support.yaml").read_text())
    doc["aws_activate_cost_allocation_tag"] = False
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", str(path), "--stack", "gcp", "--project-dir", str(project))
    assert result.exit_code == 2 and "aws_activate_cost_allocation_tag" in result.stderr
    assert not (project / "stacks" / "Pulumi.gcp.yaml").exists()
