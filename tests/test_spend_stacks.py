"""The spend guardrails as every example stack builds them, with the amounts of its own plan (`llm-hosting:spend`).

For each built example: the gateway config it deploys (the ConfigMap on a cluster, the packed files of the ECS task
or the Cloud Run service) caps exactly its third-party routes at the plan's requests and tokens per minute, split over
the gateway's replicas, and turns LiteLLM's enforcement on; and the drift alerts it builds (PrometheusRule on EKS/GKE,
CloudWatch alarms on ECS, Cloud Monitoring policies on Cloud Run) are exactly those its plan has thresholds for, at
those thresholds. The budgets are tests/test_budgets.py's.
"""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import yaml

from conftest import ROOT
from planner.stack_config import load_stack_config
from planner.stackgen import read_stack_file
from preview.harness import run_preview
from serving.gateway_config import CONFIG_FILE, FILES_ENV, SERVERLESS_REPLICAS
from serving.usage import ALERT_ABOVE, ALERT_BELOW, ALERT_CROSSOVER, ALERT_GROWTH, DRIFT_ALERTS
from test_preview import BUILT

GATEWAY_REPLICAS = 2  # __main__.GATEWAY_REPLICAS: the cluster gateway's Deployment


@pytest.fixture(scope="module")
def previews():
    return {}


def _preview(previews, stack):
    if stack not in previews:
        previews[stack] = run_preview(ROOT, stack)
    return previews[stack]


def _cfg(stack):
    return load_stack_config(read_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


def _unpack(value: str) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(value)))


def gateway_config(result, cfg) -> tuple[dict, int]:
    """The LiteLLM config the stack deploys, and how many gateway replicas share its limits."""
    if cfg.self_hosted is not None:
        [cm] = [r for r in result.by_type("kubernetes:core/v1:ConfigMap") if CONFIG_FILE in (r.inputs.get("data") or {})]
        return yaml.safe_load(cm.inputs["data"][CONFIG_FILE]), GATEWAY_REPLICAS
    if cfg.cloud == "aws":
        [task] = result.by_type("aws:ecs/taskDefinition:TaskDefinition")
        env = {e["name"]: e["value"] for e in json.loads(task.inputs["containerDefinitions"])[0]["environment"]}
    else:
        [service] = result.by_type("gcp:cloudrunv2/service:Service")
        [container] = service.inputs["template"]["containers"]
        env = {e["name"]: e.get("value") for e in container["envs"]}
    return yaml.safe_load(_unpack(env[FILES_ENV])[CONFIG_FILE]), SERVERLESS_REPLICAS


@pytest.mark.parametrize("stack", BUILT)
def test_third_party_routes_are_capped_at_the_plans_figures(previews, stack):
    cfg = _cfg(stack)
    config, replicas = gateway_config(_preview(previews, stack), cfg)
    entries = config["model_list"]
    third = [m for m in entries if m["model_info"]["third_party"]]
    inside = [m for m in entries if not m["model_info"]["third_party"]]
    assert all("rpm" not in m["litellm_params"] and "tpm" not in m["litellm_params"] for m in inside)
    if cfg.api is None:
        assert not third and cfg.spend.api_requests_per_minute is None
        assert "enforce_model_rate_limits" not in config["router_settings"].get("optional_pre_call_checks", [])
        return
    assert third, f"{stack}: an api section but no third-party route"
    assert "enforce_model_rate_limits" in config["router_settings"]["optional_pre_call_checks"]
    for key, cap in (("rpm", cfg.spend.api_requests_per_minute), ("tpm", cfg.spend.api_tokens_per_minute)):
        admitted = replicas * sum(m["litellm_params"][key] for m in third)
        # Each replica admits its share of each group, rounded up: the gateway admits the cap, and at most one more
        # per replica and group.
        assert cap <= admitted < cap + replicas * len(third), (stack, key, cap, admitted)


def expected_alerts(cfg) -> dict[str, int | None]:
    d = cfg.spend.drift
    out = {ALERT_ABOVE: d.upper_daily_tokens, ALERT_BELOW: d.lower_daily_tokens, ALERT_CROSSOVER: d.crossover_daily_tokens,
           ALERT_GROWTH: None}
    out = {k: v for k, v in out.items() if v is not None or k == ALERT_GROWTH}
    if cfg.cloud == "aws" and cfg.self_hosted is None:
        out.pop(ALERT_GROWTH)  # a CloudWatch alarm cannot look a month back (README, "Usage and drift alerts")
    return out


@pytest.mark.parametrize("stack", BUILT)
def test_drift_alerts_are_the_plans_thresholds(previews, stack):
    cfg = _cfg(stack)
    result = _preview(previews, stack)
    want = expected_alerts(cfg)
    if cfg.self_hosted is not None:
        [rule] = [r for r in result.resources if r.inputs.get("kind") == "PrometheusRule"]
        got = {r["alert"]: r for g in rule.inputs["spec"]["groups"] for r in g["rules"] if r.get("alert") in DRIFT_ALERTS}
        assert set(got) == set(want)
        for alert, threshold in want.items():
            if threshold is not None:
                assert got[alert]["expr"].endswith(f" {threshold}"), got[alert]["expr"]
        records = {r.get("record") for g in rule.inputs["spec"]["groups"] for r in g["rules"]}
        assert {"llmhost:requests:per_day", "llmhost:input_tokens:per_day", "llmhost:output_tokens:per_day",
                "llmhost:tokens:per_day", "llmhost:requests:peak_to_average"} <= records
    elif cfg.cloud == "aws":
        alarms = {a.inputs["name"].rsplit("-", 1)[-1]: a.inputs for a in result.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                  if a.inputs["name"].rsplit("-", 1)[-1] in DRIFT_ALERTS}
        assert set(alarms) == set(want)
        for alert, threshold in want.items():
            assert alarms[alert]["threshold"] == threshold
            assert alarms[alert]["alarmActions"] == [result.outputs["alerts_topic"]]
        filters = {f.inputs["metricTransformation"]["name"] for f in result.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
        assert filters == {"Requests", "InputTokens", "OutputTokens", "Tokens"}
    else:
        policies = {p.inputs["conditions"][0]["conditionPrometheusQueryLanguage"]["alertRule"]: p.inputs
                    for p in result.by_type("gcp:monitoring/alertPolicy:AlertPolicy")
                    if p.inputs["conditions"][0].get("conditionPrometheusQueryLanguage", {}).get("alertRule") in DRIFT_ALERTS}
        assert set(policies) == set(want)
        for alert, threshold in want.items():
            if threshold is not None:
                assert str(threshold) in policies[alert]["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]
        metrics = {m.inputs["name"] for m in result.by_type("gcp:logging/metric:Metric")}
        assert {f"llmhost-{stack}-{k}" for k in ("requests", "input-tokens", "output-tokens", "tokens")} <= metrics


def test_every_kind_of_threshold_is_built_somewhere(previews):
    """The examples between them build every drift alert on every runtime that has it."""
    kinds = {(("cluster" if c.self_hosted else c.cloud), a) for s in BUILT for c in [_cfg(s)] for a in expected_alerts(c)}
    assert ("cluster", ALERT_BELOW) in kinds and ("cluster", ALERT_GROWTH) in kinds
    assert ("aws", ALERT_CROSSOVER) in kinds and ("gcp", ALERT_GROWTH) in kinds


@pytest.mark.parametrize("stack", BUILT)
def test_outputs_say_what_it_was_planned_to_cost_and_when_to_revisit(previews, stack):
    cfg, out = _cfg(stack), _preview(previews, stack).outputs
    s, d = cfg.spend, cfg.spend.drift
    assert out["planned_monthly_cost_usd"] == {"total": s.planned_monthly_usd, "cloud": s.cloud_monthly_usd,
                                               "api": s.api_monthly_usd, "staffing": s.staffing_monthly_usd}
    report = (ROOT / "stacks" / f"{stack}.decision.md").read_text()
    assert out["revisit"]["when"] and f"- Revisit: {out['revisit']['when']}." in report
    assert (out["revisit"]["decision_holds_above_daily_tokens"], out["revisit"]["decision_holds_below_daily_tokens"],
            out["revisit"]["api_crossover_daily_tokens"]) == (d.lower_daily_tokens, d.upper_daily_tokens,
                                                               d.crossover_daily_tokens)
    assert "budget_name" in out or (cfg.cloud == "gcp" and not s.billing_account)
