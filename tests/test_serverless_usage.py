"""Usage metrics and drift alarms where the gateway runs serverless: CloudWatch on ECS, Cloud Monitoring on Cloud Run.

The gateway's usage line (serving/gateway_config.py usage_record) is the one input. On AWS the test plays CloudWatch
Logs over it: the log transformer the component registered (parse the JSON, add the stack), then each metric filter's
pattern in CloudWatch's JSON filter syntax, its value and its dimension selectors, against the usage line and against
the proxy's other output. On GCP it plays Cloud Logging's query and extractors the same way, and runs the alert
policies' PromQL under promtool, firing and staying quiet on a month of the log-based metric's series.

moto does not evaluate JSON filter patterns (its logs backend treats any pattern starting with `{` as matching every
event), so filter_log_events there would show nothing; the patterns are evaluated here instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import pulumi
import pytest
import yaml

from components.aws_usage_metrics import (ALARM_CROSSOVER, DAY_SECONDS, MAX_DESCRIPTION, MAX_RANGE_SECONDS, MAX_SHORT_RANGE_SECONDS,
                                          NAMESPACE, USAGE_FIELDS, AwsUsageMetrics, AwsUsageMetricsArgs, check_range, drift_days)
from components.gcp_usage_metrics import (RESOURCE_TYPE, GcpUsageMetrics, GcpUsageMetricsArgs, daily_tokens,
                                          metric_name, promql_metric, tokens_series)
from planner.stack_config import DriftConfig, load_stack_config
from preview.harness import run_program
from serving.gateway_cloud_run import GatewayCloudRun, GatewayCloudRunArgs, service_name
from serving.gateway_config import usage_record
from serving.gateway_ecs import GatewayEcs
from serving.usage import ALERT_ABOVE as ALARM_ABOVE
from serving.usage import ALERT_BELOW as ALARM_BELOW
from serving.usage import ALERT_GROWTH as ALARM_GROWTH
from serving.usage import DRIFT_FOR, REPLAN, drift_rules, growth_limit_percent
from tests.test_gateway_cloud_run import CONSUMERS as RUN_CONSUMERS
from tests.test_gateway_cloud_run import FAKE_MASTER as RUN_MASTER
from tests.test_gateway_cloud_run import GROQ_ENV as RUN_GROQ_ENV
from tests.test_gateway_cloud_run import GROQ_SECRET as RUN_GROQ_SECRET
from tests.test_gateway_cloud_run import routes as run_routes
from tests.test_gateway_ecs import ecs_args

ROOT = Path(__file__).resolve().parents[1]
PROJECT, REGION, GCP_REGION, GCP_PROJECT = "llm-hosting", "eu-central-1", "europe-west4", "acme-llm"
STACK = "test"  # the stack of tests/test_gateway_ecs.py's arguments
TOPIC = f"arn:aws:sns:{REGION}:123456789012:llm-hosting-{STACK}-alerts"
CHANNEL = f"projects/{GCP_PROJECT}/notificationChannels/4242"
LOG_GROUP = f"/llm-hosting/{STACK}/gateway"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:123456789012:log-group:{LOG_GROUP}"
UPPER_REASON = "self-hosted costs no more than openai/gpt-4o-mini at every volume from 13.5B tokens/month"
LOWER_REASON = "below 60M tokens/month the API tier costs less than the managed endpoint's minimum instances"
SPEND = {"plannedMonthlyUsd": 575.0, "cloudMonthlyUsd": 493.0, "apiMonthlyUsd": 82.13, "staffingMonthlyUsd": 0.0,
         "apiRequestsPerMinute": 8, "apiTokensPerMinute": 9600, "apiHeadroom": 1.5,
         "drift": {"dailyTokensNow": 1800000, "dailyTokensProjected": 2500000, "growthMonthlyPercent": 10.0,
                   "upperDailyTokens": 450000000, "upperReason": UPPER_REASON,
                   "lowerDailyTokens": None, "lowerReason": None}}

FILTER, TRANSFORMER = "aws:cloudwatch/logMetricFilter:LogMetricFilter", "aws:cloudwatch/logTransformer:LogTransformer"
ALARM, LOG_METRIC = "aws:cloudwatch/metricAlarm:MetricAlarm", "gcp:logging/metric:Metric"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")


def drift(**overrides) -> DriftConfig:
    """spend.drift as __main__ gets it: the startup-api stack file with the plan's spend block, through the loader."""
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.startup-api.yaml").read_text())
    spend = json.loads(json.dumps(SPEND))
    spend["drift"].update(overrides)
    values = {**doc["config"], "llm-hosting:spend": spend}
    return load_stack_config(values, "Pulumi.startup-api.yaml").spend.drift


BAND = dict(lowerDailyTokens=2_000_000, lowerReason=LOWER_REASON)


# -- the usage line and the proxy's other output ------------------------------------------------------------------------

def usage_line(route: str = "llm", prompt: int = 812, completion: int = 240) -> str:
    payload = {"status": "success", "model_id": "dep-1", "model_group": "llm-primary",
               "metadata": {"user_api_key_alias": "chat-app"}, "prompt_tokens": prompt,
               "completion_tokens": completion, "total_tokens": prompt + completion,
               "messages": [{"role": "user", "content": "never logged"}]}
    record = usage_record(payload, route, {"dep-1": {"upstream": "groq/llama-3.3-70b-versatile", "third_party": True}})
    return json.dumps(record)


OTHER_LINES = [
    'INFO:     10.0.1.23:51234 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
    '{"message": "litellm.acompletion(model=groq/llama-3.3-70b-versatile) 200 OK", "level": "INFO"}',
    '{"llmhost_usage": 0, "route": "llm", "total_tokens": 5}',
    "LiteLLM: Proxy initialized with Config, Set models: llm",
]


# -- CloudWatch Logs, played over the lines -----------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\(|\)|&&|\|\||!=|>=|<=|=|>|<|\$\.[A-Za-z0-9_.]+|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[A-Za-z_*][\w*]*)')


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        assert m, f"unsupported filter syntax at {text[pos:]!r}"
        out.append(m.group(1))
        pos = m.end()
    return out


def select(event: Any, selector: str) -> Any:
    """A `$.a.b` selector on a JSON event; None when a step is missing."""
    assert selector.startswith("$."), selector
    for step in selector[2:].split("."):
        if not isinstance(event, dict) or step not in event:
            return None
        event = event[step]
    return event


def json_pattern_matches(pattern: str, event: Any) -> bool:
    """CloudWatch Logs' JSON filter syntax: `{ $.x = 1 && ($.y = "a" || $.z > 2) }`. Not JSON: no match."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), f"{pattern!r} is not a JSON filter pattern"
    if not isinstance(event, dict):
        return False
    tokens = _tokens(body[1:-1])

    def term(i: int) -> tuple[bool, int]:
        if tokens[i] == "(":
            value, i = expr(i + 1)
            assert tokens[i] == ")"
            return value, i + 1
        selector, op, literal = tokens[i], tokens[i + 1], tokens[i + 2]
        actual = select(event, selector)
        if literal.startswith('"'):
            expected: Any = json.loads(literal)
        else:
            try:
                expected = float(literal)
            except ValueError:
                expected = literal
        if isinstance(expected, float):
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool) and {
                "=": actual == expected, "!=": actual != expected, ">": actual > expected, "<": actual < expected,
                ">=": actual >= expected, "<=": actual <= expected}[op]
        else:
            assert op in ("=", "!="), op
            ok = (actual == expected) == (op == "=") if isinstance(actual, str) else op == "!="
        return ok, i + 3

    def expr(i: int) -> tuple[bool, int]:
        value, i = term(i)
        while i < len(tokens) and tokens[i] in ("&&", "||"):
            right, j = term(i + 1)
            value = (value and right) if tokens[i] == "&&" else (value or right)
            i = j
        return value, i

    value, end = expr(0)
    assert end == len(tokens), f"trailing tokens in {pattern!r}"
    return value


def transform(line: str, transformer: dict) -> Any:
    """The log transformer's processors over one event: parse it as JSON, then add the keys. A line that is not
    JSON fails the parse and stays the text it was."""
    event: Any = line
    for processor in transformer["transformerConfigs"]:
        if "parseJsons" in processor:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                return line
        elif "addKeys" in processor and isinstance(event, dict):
            for entry in processor["addKeys"]["entries"]:
                if entry.get("overwriteIfExists") or entry["key"] not in event:
                    event[entry["key"]] = entry["value"]
    return event


def metric_datum(metric_filter: dict, transformer: dict, line: str) -> Optional[tuple[str, float, dict[str, str]]]:
    """What one filter publishes for one line: (metric, value, dimensions), or None when it does not match."""
    event = transform(line, transformer) if metric_filter.get("applyOnTransformedLogs") else line
    if not json_pattern_matches(metric_filter["pattern"], event):
        return None
    t = metric_filter["metricTransformation"]
    value = select(event, t["value"]) if t["value"].startswith("$.") else float(t["value"])
    dims = {name: select(event, selector) for name, selector in (t.get("dimensions") or {}).items()}
    assert isinstance(value, (int, float)), f"{t['value']} is not a number in {line}"
    assert all(isinstance(v, str) and v for v in dims.values()), f"a dimension has no value in {line}: {dims}"
    return t["name"], float(value), dims


# -- runs -------------------------------------------------------------------------------------------------------------

def run_aws(d: Optional[DriftConfig], topic: Optional[str] = TOPIC):
    def program():
        AwsUsageMetrics("usage", AwsUsageMetricsArgs(stack=STACK, log_group_name=LOG_GROUP, log_group_arn=LOG_GROUP_ARN,
                                                     drift=d, alarm_topic_arn=topic))
    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


@lru_cache(maxsize=None)
def aws_run(band: bool = False):
    return run_aws(drift(**BAND) if band else drift())


def run_gcp(d: Optional[DriftConfig]):
    def program():
        GcpUsageMetrics("usage", GcpUsageMetricsArgs(
            stack=STACK, project=GCP_PROJECT, region=GCP_REGION, service_name=service_name(STACK), drift=d,
            notification_channels=[CHANNEL] if d is not None else []))
    return run_program(program, PROJECT, STACK, {"gcp:region": GCP_REGION, "gcp:project": GCP_PROJECT})


@lru_cache(maxsize=None)
def gcp_run(band: bool = False):
    return run_gcp(drift(**BAND) if band else drift())


def the_transformer(result) -> dict:
    [t] = result.by_type(TRANSFORMER)
    return t.inputs


def alarms(result) -> dict[str, dict]:
    return {a.inputs["name"].removeprefix(f"llm-hosting-{STACK}-"): a.inputs for a in result.by_type(ALARM)}


# -- AWS: metric filters ----------------------------------------------------------------------------------------------

def test_the_usage_line_becomes_the_four_metrics_with_its_own_numbers_and_route():
    result = aws_run()
    transformer = the_transformer(result)
    assert transformer["logGroupArn"] == LOG_GROUP_ARN
    filters = [f.inputs for f in result.by_type(FILTER)]
    assert {f["logGroupName"] for f in filters} == {LOG_GROUP}
    line = usage_line(route="llm", prompt=812, completion=240)
    assert tuple(json.loads(line)) == USAGE_FIELDS  # the fields the component reads are the ones the gateway writes
    published = {d[0]: d[1:] for d in (metric_datum(f, transformer, line) for f in filters) if d}
    assert published == {
        "Requests": (1.0, {"Stack": STACK, "Route": "llm"}),
        "InputTokens": (812.0, {"Stack": STACK, "Route": "llm"}),
        "OutputTokens": (240.0, {"Stack": STACK, "Route": "llm"}),
        "Tokens": (1052.0, {"Stack": STACK}),
    }
    assert {f["metricTransformation"]["namespace"] for f in filters} == {NAMESPACE}


@pytest.mark.parametrize("line", OTHER_LINES)
def test_no_filter_counts_the_proxy_s_other_output(line):
    result = aws_run()
    transformer = the_transformer(result)
    assert [f.name for f in result.by_type(FILTER) if metric_datum(f.inputs, transformer, line)] == []


def test_without_the_transformer_no_line_could_carry_the_stack_dimension():
    # The usage line has no stack field: the Stack dimension exists only on the transformed event, so every filter must
    # read the transformed logs (and a filter with dimensions may take no default value).
    line = json.loads(usage_line())
    assert "stack" not in line
    for f in aws_run().by_type(FILTER):
        t = f.inputs["metricTransformation"]
        assert f.inputs["applyOnTransformedLogs"] is True and "defaultValue" not in t
        assert t["dimensions"]["Stack"] == "$.stack" and len(t["dimensions"]) <= 3
        assert all(select(line, s) is not None for d, s in t["dimensions"].items() if d != "Stack")


# -- AWS: alarms ------------------------------------------------------------------------------------------------------

def test_the_upper_bound_alarms_on_a_day_of_tokens_to_the_topic():
    found = alarms(aws_run())
    assert set(found) == {ALARM_ABOVE}  # lowerDailyTokens is null: no lower alarm
    a = found[ALARM_ABOVE]
    assert (a["namespace"], a["metricName"], a["dimensions"], a["statistic"]) == (NAMESPACE, "Tokens", {"Stack": STACK},
                                                                                 "Sum")
    assert a["threshold"] == 450_000_000 and a["comparisonOperator"] == "GreaterThanThreshold"
    # Sustained, as the cluster tiers' alerts wait: every one of the last DRIFT_FOR days above.
    assert a["period"] == DAY_SECONDS and a["evaluationPeriods"] == a["datapointsToAlarm"] == drift_days(DRIFT_FOR) == 2
    assert a["alarmActions"] == [TOPIC] and a["okActions"] == [TOPIC]
    assert a["treatMissingData"] == "notBreaching"  # an idle day is not above anything
    assert UPPER_REASON in a["alarmDescription"] and f"`{REPLAN}`" in a["alarmDescription"]


def test_the_lower_bound_counts_a_silent_day_as_below():
    found = alarms(aws_run(band=True))
    assert set(found) == {ALARM_ABOVE, ALARM_BELOW}
    b = found[ALARM_BELOW]
    assert b["threshold"] == 2_000_000 and b["comparisonOperator"] == "LessThanThreshold"
    assert b["treatMissingData"] == "breaching"
    assert b["alarmActions"] == [TOPIC] and LOWER_REASON in b["alarmDescription"] and REPLAN in b["alarmDescription"]


@pytest.mark.parametrize("band", [False, True])
def test_every_alarm_is_within_cloudwatch_s_limits(band):
    for a in alarms(aws_run(band)).values():
        period, n = a["period"], a["evaluationPeriods"]
        assert period % 60 == 0 and period * n <= (MAX_SHORT_RANGE_SECONDS if period < 3600 else MAX_RANGE_SECONDS)
        assert 1 <= a["datapointsToAlarm"] <= n and len(a["alarmDescription"]) <= MAX_DESCRIPTION
    check_range(DAY_SECONDS, 7)
    with pytest.raises(ValueError, match="at most 604800"):
        check_range(DAY_SECONDS, 8)  # a 30-day look back (the growth alarm) is out of an alarm's reach


def test_a_long_reason_is_cut_to_fit_the_description_and_still_says_what_to_do():
    a = alarms(run_aws(drift(upperReason="because " * 300)))[ALARM_ABOVE]
    assert len(a["alarmDescription"]) <= MAX_DESCRIPTION and a["alarmDescription"].endswith(
        f"Run `{REPLAN}` with the observed usage and apply the new decision.")


CROSSOVER_REASON = "the API costs less than self-hosting below 3,000,000 tokens/day"


@pytest.mark.parametrize("direction, comparison, missing", [("above", "GreaterThanThreshold", "notBreaching"),
                                                             ("below", "LessThanThreshold", "breaching")])
def test_the_crossover_alarms_in_the_plan_s_direction(direction, comparison, missing):
    found = alarms(run_aws(drift(crossoverDailyTokens=3_000_000, crossoverDirection=direction,
                                 crossoverReason=CROSSOVER_REASON)))
    c = found[ALARM_CROSSOVER]
    assert (c["threshold"], c["comparisonOperator"], c["treatMissingData"]) == (3_000_000, comparison, missing)
    assert c["alarmActions"] == [TOPIC] and CROSSOVER_REASON.rstrip(".") in c["alarmDescription"]


def test_no_bounds_no_alarms_and_bounds_need_the_topic():
    result = run_aws(None, topic=None)
    assert len(result.by_type(FILTER)) == 4 and result.by_type(ALARM) == []
    for thresholds in ({}, dict(crossoverDailyTokens=3_000_000, crossoverDirection="above",
                                 crossoverReason=CROSSOVER_REASON, upperDailyTokens=None, upperReason=None)):
        with pytest.raises(ValueError, match="alarm_topic_arn"):
            AwsUsageMetricsArgs(stack=STACK, log_group_name=LOG_GROUP, log_group_arn=LOG_GROUP_ARN,
                                drift=drift(**thresholds))
    # Only the growth assumption (no threshold): metrics, no alarm, no topic needed.
    quiet = run_aws(drift(upperDailyTokens=None, upperReason=None), topic=None)
    assert len(quiet.by_type(FILTER)) == 4 and quiet.by_type(ALARM) == []


# -- ECS wiring -------------------------------------------------------------------------------------------------------

def run_ecs(**overrides):
    def program():
        GatewayEcs("gateway", ecs_args(**overrides))
    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def test_gatewayecs_with_drift_meters_its_own_log_group():
    result = run_ecs(drift=drift(**BAND), alarm_topic_arn=TOPIC)
    [group] = result.by_type("aws:cloudwatch/logGroup:LogGroup")
    [usage] = result.by_type("llmhost:index:AwsUsageMetrics")
    assert usage.parent == "gateway"
    assert {f.inputs["logGroupName"] for f in result.by_type(FILTER)} == {group.inputs["name"]}
    assert [t.parent for t in result.by_type(TRANSFORMER)] == [usage.name]
    assert set(alarms(result)) == {ALARM_ABOVE, ALARM_BELOW}


def test_gatewayecs_without_drift_builds_no_usage_resources():
    result = run_ecs()
    assert result.by_type("llmhost:index:AwsUsageMetrics") == [] and result.by_type(FILTER) == []
    with pytest.raises(ValueError, match="alarm_topic_arn"):
        ecs_args(drift=drift())
    # The stack's topic may always be passed: without drift thresholds there is nothing to alarm on.
    assert run_ecs(alarm_topic_arn=TOPIC).by_type(ALARM) == []


# -- GCP: log-based metrics -------------------------------------------------------------------------------------------

def logging_query_matches(query: str, entry: dict) -> bool:
    """Cloud Logging's query language, the subset the component writes: `path="text"` / `path=number` joined by AND."""
    for clause in query.split(" AND "):
        path, _, literal = clause.partition("=")
        value: Any = entry
        for step in path.strip().split("."):
            value = value.get(step) if isinstance(value, dict) else None
        expected = json.loads(literal)
        if value != expected or isinstance(value, bool) != isinstance(expected, bool):
            return False
    return True


def extract(extractor: str, entry: dict) -> Any:
    m = re.fullmatch(r"EXTRACT\(([A-Za-z0-9_.]+)\)", extractor)
    assert m, extractor
    value: Any = entry
    for step in m.group(1).split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return value


def cloud_run_entry(line: str, service: str = service_name(STACK)) -> dict:
    """A Cloud Run stdout line as Cloud Logging stores it: one JSON object becomes jsonPayload, anything else text."""
    try:
        body = {"jsonPayload": json.loads(line)}
    except json.JSONDecodeError:
        body = {"textPayload": line}
    return {"resource": {"type": RESOURCE_TYPE, "labels": {"service_name": service, "location": GCP_REGION}}, **body}


def test_the_log_based_metrics_read_the_usage_line_s_fields():
    metrics = {m.inputs["name"]: m.inputs for m in gcp_run().by_type(LOG_METRIC)}
    names = {s: metric_name(STACK, s) for s in ("requests", "input-tokens", "output-tokens", "tokens")}
    assert set(metrics) == set(names.values())
    entry = cloud_run_entry(usage_line(route="llm", prompt=812, completion=240))
    for m in metrics.values():
        assert logging_query_matches(m["filter"], entry)
        assert m["metricDescriptor"]["metricKind"] == "DELTA"
    # A counter counts entries; the token sums are distributions whose value is the line's own field.
    assert metrics[names["requests"]]["metricDescriptor"]["valueType"] == "INT64"
    assert "valueExtractor" not in metrics[names["requests"]]
    got = {s: extract(metrics[n]["valueExtractor"], entry) for s, n in names.items() if s != "requests"}
    assert got == {"input-tokens": 812, "output-tokens": 240, "tokens": 1052}
    for s in ("requests", "input-tokens", "output-tokens"):
        m = metrics[names[s]]
        assert [l["key"] for l in m["metricDescriptor"]["labels"]] == ["route"]
        assert extract(m["labelExtractors"]["route"], entry) == "llm"
    assert "labelExtractors" not in metrics[names["tokens"]]
    for s in ("input-tokens", "output-tokens", "tokens"):
        assert metrics[names[s]]["metricDescriptor"]["valueType"] == "DISTRIBUTION"
        assert metrics[names[s]]["bucketOptions"]["exponentialBuckets"]


@pytest.mark.parametrize("line", OTHER_LINES)
def test_the_log_based_metrics_skip_the_proxy_s_other_output(line):
    for m in gcp_run().by_type(LOG_METRIC):
        assert not logging_query_matches(m.inputs["filter"], cloud_run_entry(line))
        # Nor another service's usage lines in the same project.
        assert not logging_query_matches(m.inputs["filter"], cloud_run_entry(usage_line(), service="other-gateway"))


def test_promql_names_follow_cloud_monitoring_s_mapping():
    assert promql_metric("llmhost-startup-api-tokens") == "logging_googleapis_com:user_llmhost_startup_api_tokens"
    assert promql_metric("llmhost-a.b-requests") == "logging_googleapis_com:user_llmhost_a_b_requests"


# -- GCP: alert policies under promtool ------------------------------------------------------------------------------

def policies(result) -> dict[str, dict]:
    return {p.inputs["conditions"][0]["conditionPrometheusQueryLanguage"]["alertRule"]: p.inputs
            for p in result.by_type(POLICY)}


def rule_file(result) -> dict:
    rules = []
    for alert, p in policies(result).items():
        c = p["conditions"][0]["conditionPrometheusQueryLanguage"]
        rules.append({"alert": alert, "expr": c["query"], "labels": c.get("labels", {})})
    return {"groups": [{"name": "usage", "rules": rules}]}


def test_policies_name_the_tokens_series_and_the_channel():
    found = policies(gcp_run(band=True))
    assert set(found) == {ALARM_ABOVE, ALARM_BELOW, ALARM_GROWTH}
    series = promql_metric(metric_name(STACK, "tokens")) + "_sum"
    for alert, p in found.items():
        c = p["conditions"][0]["conditionPrometheusQueryLanguage"]
        assert series in c["query"] and f'monitored_resource="{RESOURCE_TYPE}"' in c["query"]
        assert p["notificationChannels"] == [CHANNEL]
        assert REPLAN in p["documentation"]["content"]
        # Cloud Monitoring: range (1d) + duration at most 25 h; the 2-day wait is in the query (an offset 1d copy).
        assert c["duration"] == "0s" and "[1d] offset 1d" in c["query"]
        assert c["labels"]["stack"] == STACK and c["labels"]["severity"] in ("warning", "info")
    assert UPPER_REASON in found[ALARM_ABOVE]["documentation"]["content"]
    assert LOWER_REASON in found[ALARM_BELOW]["documentation"]["content"]
    assert set(policies(gcp_run())) == {ALARM_ABOVE, ALARM_GROWTH}  # no lower bound: no lower policy
    assert run_gcp(None).by_type(POLICY) == []


def test_policies_are_drift_rules_over_the_log_based_metric():
    d = drift(**BAND)
    shared = {r["alert"]: r for r in drift_rules(d, daily_tokens(STACK), {"stack": STACK}, templated=False)}
    found = policies(gcp_run(band=True))
    assert set(found) == set(shared)
    for alert, p in found.items():
        c = p["conditions"][0]["conditionPrometheusQueryLanguage"]
        # Today's condition first (its series and labels are what the incident shows), then yesterday's.
        assert c["query"].startswith(f"({shared[alert]['expr']}) and on () (")
        assert c["labels"] == shared[alert]["labels"]
        assert shared[alert]["annotations"]["description"] in p["documentation"]["content"]
        assert shared[alert]["annotations"]["runbook"] in p["documentation"]["content"]


HOURS = 34 * 24  # hourly samples: enough for today and yesterday against 30 and 31 days earlier, and a day before


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def cumulative(*segments: tuple[int, int]) -> str:
    """The tokens distribution's _sum as promtool input: (tokens per hour, until hour) segments up to HOURS."""
    values, total, hour = [], 0, 0
    for per_hour, until in segments:
        count = until - hour
        if count > 0:
            values.append(f"{total + per_hour}+{per_hour}x{count - 1}" if values else f"0+{per_hour}x{count}")
            total += per_hour * count
            hour = until
    return " ".join(values)


@needs_promtool
def test_the_policies_fire_and_stay_quiet_under_promtool(tmp_path):
    result = gcp_run(band=True)
    d = drift(**BAND)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_file(result), sort_keys=False))
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    upper, lower = d.upper_daily_tokens // 24, d.lower_daily_tokens // 24  # per hour
    base = (lower + upper) // 100  # comfortably inside the band
    limit = 1 + growth_limit_percent(d) / 100
    within = 1 + (d.growth_monthly_percent + growth_limit_percent(d)) / 200  # faster than planned, within the margin
    switch, spike = 400, HOURS - 24  # traffic changes at hour 400; a spike fills only the last day
    cases = {
        # name: (series values, or None for no usage line at all; the alerts expected at the end)
        "steady-in-band": (cumulative((base, HOURS)), set()),
        "above-the-plan": (cumulative((base, switch), (upper * 2, HOURS)), {ALARM_ABOVE, ALARM_GROWTH}),
        "a-one-day-spike": (cumulative((base, spike), (upper * 2, HOURS)), set()),
        "no-traffic": (None, {ALARM_BELOW}),
        "below-the-plan": (cumulative((base, switch), (lower // 2, HOURS)), {ALARM_BELOW}),
        "growing-within-the-margin": (cumulative((base, switch), (int(base * within), HOURS)), set()),
        "growing-past-the-plan": (cumulative((base, switch), (int(base * (limit + 0.2)), HOURS)), {ALARM_GROWTH}),
        # Traffic began this month: nothing to compare with, so no growth alert.
        "new-traffic": (cumulative((0, switch), (base, HOURS)), set()),
    }
    conditions = {alert: p["conditions"][0]["conditionPrometheusQueryLanguage"]
                  for alert, p in policies(result).items()}
    tests = []
    for name, (values, expected) in cases.items():
        inputs = [{"series": tokens_series(STACK), "values": values}] if values else []
        tests.append({"name": name, "interval": "1h", "input_series": inputs, "alert_rule_test": [
            {"eval_time": f"{HOURS}h", "alertname": alert,
             "exp_alerts": [{"exp_labels": conditions[alert]["labels"]}] if alert in expected else []}
            for alert in (ALARM_ABOVE, ALARM_BELOW, ALARM_GROWTH)]})
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1h", "tests": tests}, sort_keys=False))
    ran = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr


@needs_promtool
@pytest.mark.parametrize("direction", ["above", "below"])
def test_the_crossover_policy_fires_once_traffic_stays_past_it(tmp_path, direction):
    crossover = 3_000_000
    result = run_gcp(drift(crossoverDailyTokens=crossover, crossoverDirection=direction,
                           crossoverReason=CROSSOVER_REASON))
    assert ALARM_CROSSOVER in policies(result)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_file(result), sort_keys=False))
    this_side, past = (crossover // 48, crossover // 12) if direction == "above" else (crossover // 12, crossover // 48)
    cases = {
        "this-side": (cumulative((this_side, HOURS)), False),
        "past-it-for-days": (cumulative((this_side, HOURS - 72), (past, HOURS)), True),
        "past-it-for-a-day": (cumulative((this_side, HOURS - 24), (past, HOURS)), False),
    }
    if direction == "below":
        cases["no-traffic"] = (None, True)
    labels = policies(result)[ALARM_CROSSOVER]["conditions"][0]["conditionPrometheusQueryLanguage"]["labels"]
    tests = [{"name": name, "interval": "1h",
              "input_series": [{"series": tokens_series(STACK), "values": values}] if values else [],
              "alert_rule_test": [{"eval_time": f"{HOURS}h", "alertname": ALARM_CROSSOVER,
                                   "exp_alerts": [{"exp_labels": labels}] if fires else []}]}
             for name, (values, fires) in cases.items()]
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1h", "tests": tests}, sort_keys=False))
    ran = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr


# -- Cloud Run wiring -------------------------------------------------------------------------------------------------

def run_cloud_run(**overrides):
    def program():
        GatewayCloudRun("gateway", cloud_run_args(**overrides))
    return run_program(program, PROJECT, STACK, {"gcp:region": GCP_REGION, "gcp:project": GCP_PROJECT})


def cloud_run_args(**overrides) -> GatewayCloudRunArgs:
    base = dict(
        stack=STACK, project=GCP_PROJECT, region=GCP_REGION, routes=run_routes(vertex=False),
        image="docker.io/litellm/litellm:v1.76.0-stable", master_key=pulumi.Output.secret(RUN_MASTER),
        api_key_secrets={RUN_GROQ_ENV: RUN_GROQ_SECRET},
        consumer_key_secrets={c.name: f"projects/{GCP_PROJECT}/secrets/llm-hosting-{STACK}-{c.name}"
                              for c in RUN_CONSUMERS},
        kms_key_id=f"projects/{GCP_PROJECT}/locations/{GCP_REGION}/keyRings/r/cryptoKeys/k",
        network=f"projects/{GCP_PROJECT}/global/networks/n",
        subnetwork=f"projects/{GCP_PROJECT}/regions/{GCP_REGION}/subnetworks/s")
    return GatewayCloudRunArgs(**{**base, **overrides})


def test_gatewaycloudrun_with_drift_meters_its_own_service():
    result = run_cloud_run(drift=drift(**BAND), notification_channels=[CHANNEL])
    [svc] = result.by_type("gcp:cloudrunv2/service:Service")
    [usage] = result.by_type("llmhost:index:GcpUsageMetrics")
    assert usage.parent == "gateway"
    entry = cloud_run_entry(usage_line(), service=svc.inputs["name"])
    assert all(logging_query_matches(m.inputs["filter"], entry) for m in result.by_type(LOG_METRIC))
    assert {p.inputs["notificationChannels"][0] for p in result.by_type(POLICY)} == {CHANNEL}
    assert set(policies(result)) == {ALARM_ABOVE, ALARM_BELOW, ALARM_GROWTH}


def test_gatewaycloudrun_without_drift_builds_no_usage_resources():
    result = run_cloud_run()
    assert result.by_type(LOG_METRIC) == [] and result.by_type(POLICY) == []
    with pytest.raises(ValueError, match="notification_channels"):
        cloud_run_args(drift=drift())
    assert run_cloud_run(notification_channels=[CHANNEL]).by_type(POLICY) == []
