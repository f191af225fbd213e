"""Usage metrics and decision-drift alarms for a gateway without Prometheus: CloudWatch, from the gateway's own log.

On ECS on Fargate the gateway's stdout goes to its CloudWatch Logs group (awslogs). For every successful completion
the gateway prints one usage line, a JSON object (usage_line.py USAGE_FIELDS):

    {"llmhost_usage": 1, "route": "llm", "upstream": "...", "third_party": false, "consumer": "chat-app",
     "prompt_tokens": 812, "completion_tokens": 240, "total_tokens": 1052}

Metric filters on that group turn the lines into metrics in the namespace LLMHosting/Gateway:

| metric | value per line | dimensions |
|---|---|---|
| Requests | 1 | Stack, Route |
| InputTokens | prompt_tokens | Stack, Route |
| OutputTokens | completion_tokens | Stack, Route |
| Tokens | total_tokens | Stack |

A metric filter takes every dimension value from a field of the log event (a `$.` selector; a fixed value is refused),
and the usage line does not name the stack. So the group gets a log transformer that parses each JSON line and adds
`"stack": "<stack>"` (CloudWatch Logs' addKeys processor), and the filters read the transformed events
(applyOnTransformedLogs). Lines that are not JSON (LiteLLM's own logging) fail the parse and are kept as they came, with
`@transformationError`; no filter matches them. `route` is the public model group, a handful of names per stack:
far below the 1,000 dimension values an hour at which CloudWatch Logs disables a filter. A filter with dimensions takes
no default value, so an idle hour has no datapoint rather than a zero.

Alarms, to the stack's SNS topic (AwsAlertTopic), from the plan's drift thresholds (planner/stack_config.py DriftConfig):

- LLMTrafficAboveDecision: the day's Tokens (Sum over a 86,400 s period) above upperDailyTokens. An idle day is not
  above anything: missing data is notBreaching.
- LLMTrafficBelowDecision: the same sum below lowerDailyTokens. No usage line in a day means no traffic, which is
  below any bound: missing data is breaching.
- LLMTrafficPastCrossover: the same sum past crossoverDailyTokens, in the plan's crossoverDirection (above: an API
  stack that a GPU tier would now undercut; below: a GPU stack the API would now undercut).

Both must hold on each of the last DRIFT_FOR days (serving/usage.py, as the cluster tiers' Prometheus alerts wait):
that many 1-day evaluation periods, all breaching, so a one-off spike is not news. 2 x 86,400 s is well inside the
7 days CloudWatch evaluates for periods of an hour or more.

Each alarm exists only when the plan gives its threshold. Their descriptions carry the planner's reason in its own words
and say to re-plan (`llmhost replan`).

LLMTrafficGrowthAbovePlan (month-over-month growth above the profile's assumption) is not built here. It compares the
last day with the same day 30 days earlier, and a CloudWatch alarm cannot reach that far back: its evaluation range
(period x evaluation periods) is at most 7 days (604,800 s), metric math has no time-shift function, and a Metrics
Insights alarm queries only the last 3 hours. So AWS stacks go without it; the daily Tokens sums it would compare stay
in CloudWatch (15 months at periods of an hour or more) for whoever re-plans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws

from planner.stack_config import DriftConfig
from serving.usage import ALERT_ABOVE, ALERT_BELOW, DRIFT_FOR, REPLAN

# The usage line's field names, shared with gcp_usage_metrics.py (the filters below read them).
from .usage_line import (ALARM_CROSSOVER, COMPLETION_TOKENS_FIELD, PROMPT_TOKENS_FIELD, ROUTE_FIELD, TOTAL_TOKENS_FIELD,
                         USAGE_FIELDS, USAGE_MARKER, drift_days)

NAMESPACE = "LLMHosting/Gateway"
STACK_FIELD = "stack"  # added by this component's log transformer, not by the gateway

# CloudWatch Logs' JSON filter syntax: every usage line, and nothing else.
USAGE_PATTERN = f"{{ $.{USAGE_MARKER} = 1 }}"
STACK_DIMENSION, ROUTE_DIMENSION = "Stack", "Route"


@dataclass(frozen=True)
class UsageMetric:
    name: str  # the CloudWatch metric name
    value: str  # what one matching event adds: a literal or a `$.` selector
    dimensions: tuple[str, ...]  # dimension names, each read from its field (DIMENSION_FIELDS)


DIMENSION_FIELDS = {STACK_DIMENSION: STACK_FIELD, ROUTE_DIMENSION: ROUTE_FIELD}
METRICS = (
    UsageMetric("Requests", "1", (STACK_DIMENSION, ROUTE_DIMENSION)),
    UsageMetric("InputTokens", f"$.{PROMPT_TOKENS_FIELD}", (STACK_DIMENSION, ROUTE_DIMENSION)),
    UsageMetric("OutputTokens", f"$.{COMPLETION_TOKENS_FIELD}", (STACK_DIMENSION, ROUTE_DIMENSION)),
    # All routes together, one series per stack: what the drift alarms watch.
    UsageMetric("Tokens", f"$.{TOTAL_TOKENS_FIELD}", (STACK_DIMENSION,)),
)
TOKENS_METRIC = "Tokens"

ALARM_ABOVE, ALARM_BELOW = ALERT_ABOVE, ALERT_BELOW  # the alert names every runtime uses
DAY_SECONDS = 86_400
# CloudWatch's limits on an alarm's evaluation range (period x evaluation periods): 1 day below a 1-hour period,
# 7 days otherwise. The drift alarms use DRIFT_FOR days of 1-day periods.
MAX_RANGE_SECONDS, MAX_SHORT_RANGE_SECONDS = 604_800, 86_400
MAX_DESCRIPTION = 1024  # PutMetricAlarm's AlarmDescription
MAX_DIMENSIONS = 3  # per metric filter
_STACK = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")


def filter_name(stack: str, metric: UsageMetric) -> str:
    return f"llm-hosting-{stack}-usage-{metric.name}"


def alarm_name(stack: str, alert: str) -> str:
    return f"llm-hosting-{stack}-{alert}"


def metric_dimensions(metric: UsageMetric) -> dict[str, str]:
    """Dimension name -> the `$.` selector of the field its value is read from."""
    return {d: f"$.{DIMENSION_FIELDS[d]}" for d in metric.dimensions}


def check_range(period: int, evaluation_periods: int) -> None:
    """CloudWatch refuses an alarm whose evaluation range is longer than it keeps for that period."""
    limit = MAX_SHORT_RANGE_SECONDS if period < 3600 else MAX_RANGE_SECONDS
    if period * evaluation_periods > limit:
        raise ValueError(f"an alarm of {evaluation_periods} x {period} s evaluates {period * evaluation_periods} s; "
                         f"CloudWatch allows at most {limit} s")


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class DriftAlarm:
    alert: str
    threshold: int  # tokens a day
    above: bool  # True: alarms above the threshold; False: below it
    description: str

    @property
    def comparison(self) -> str:
        return "GreaterThanThreshold" if self.above else "LessThanThreshold"

    @property
    def treat_missing_data(self) -> str:
        # A day without a usage line is a day without traffic: above no bound, below every one.
        return "notBreaching" if self.above else "breaching"


def _description(stack: str, threshold: int, above: bool, what: str, reason: str) -> str:
    side = (f"more than {threshold:,} tokens (prompt + completion, all routes) a day for {DRIFT_FOR}" if above else
            f"fewer than {threshold:,} tokens (prompt + completion, all routes) a day for {DRIFT_FOR} (no usage at "
            "all counts as zero)")
    head = f"llm-hosting {stack}: the gateway served {side}, {what}. The plan says: "
    tail = f" Run `{REPLAN}` with the observed usage and apply the new decision."
    return head + _fit(reason.strip().rstrip("."), MAX_DESCRIPTION - len(head) - len(tail) - 1) + "." + tail


def drift_alarms(stack: str, drift: DriftConfig) -> list[DriftAlarm]:
    """The alarms the plan's thresholds call for; a threshold it leaves out gives none."""
    alarms = []
    if drift.upper_daily_tokens is not None:
        alarms.append(DriftAlarm(ALARM_ABOVE, drift.upper_daily_tokens, True, _description(
            stack, drift.upper_daily_tokens, True, "above the traffic the plan's decision holds for",
            drift.upper_reason or "")))
    if drift.lower_daily_tokens is not None:
        alarms.append(DriftAlarm(ALARM_BELOW, drift.lower_daily_tokens, False, _description(
            stack, drift.lower_daily_tokens, False, "below the traffic the plan's decision holds for",
            drift.lower_reason or "")))
    if drift.crossover_daily_tokens is not None:
        above = drift.crossover_direction == "above"
        alarms.append(DriftAlarm(ALARM_CROSSOVER, drift.crossover_daily_tokens, above, _description(
            stack, drift.crossover_daily_tokens, above, "past the crossover with the API the plan compared",
            drift.crossover_reason or "")))
    return alarms


@dataclass(frozen=True)
class AwsUsageMetricsArgs:
    stack: str
    log_group_name: pulumi.Input[str]  # the gateway's group (GatewayEcs): where the usage lines land
    log_group_arn: pulumi.Input[str]  # the same group's ARN: what the transformer is attached to
    # The plan's drift thresholds; None builds the metrics only (a stack planned before drift bounds existed).
    drift: Optional[DriftConfig] = None
    alarm_topic_arn: Optional[pulumi.Input[str]] = None  # the stack's SNS topic (AwsAlertTopic.topic_arn)
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.stack, str) or not _STACK.match(self.stack):
            raise ValueError(f"stack: {self.stack!r} must be lowercase letters, digits and '-' (2-32 characters)")
        for what in ("log_group_name", "log_group_arn"):
            if getattr(self, what) is None or getattr(self, what) == "":
                raise ValueError(f"{what}: required (the gateway's CloudWatch Logs group)")
        if self.drift is not None and not isinstance(self.drift, DriftConfig):
            raise ValueError("drift: a planner.stack_config.DriftConfig (spend.drift)")
        if self.drift is not None and drift_alarms(self.stack, self.drift) and not self.alarm_topic_arn:
            raise ValueError("alarm_topic_arn: the drift alarms need the stack's alert topic (AwsAlertTopic.topic_arn)")


class AwsUsageMetrics(pulumi.ComponentResource):
    """Metric filters turning the gateway's usage lines into CloudWatch metrics, and the drift alarms on them."""

    namespace: str
    metric_names: list[str]
    alarm_names: list[pulumi.Output[str]]  # the drift alarms built (none without bounds)

    def __init__(self, name: str, args: AwsUsageMetricsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsUsageMetrics", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**dict(args.tags), "llm-hosting/stack": args.stack, "llm-hosting/component": "usage-metrics"}

        # Parse each JSON line and stamp it with the stack, so the filters can read a Stack dimension from it.
        transformer = aws.cloudwatch.LogTransformer(
            f"{name}-stack-key",
            log_group_arn=args.log_group_arn,
            transformer_configs=[
                aws.cloudwatch.LogTransformerTransformerConfigArgs(
                    parse_jsons=[aws.cloudwatch.LogTransformerTransformerConfigParseJsonArgs()]),
                aws.cloudwatch.LogTransformerTransformerConfigArgs(
                    add_keys=aws.cloudwatch.LogTransformerTransformerConfigAddKeysArgs(entries=[
                        # The group is this stack's alone: its name wins over anything the line may say.
                        aws.cloudwatch.LogTransformerTransformerConfigAddKeysEntryArgs(
                            key=STACK_FIELD, value=args.stack, overwrite_if_exists=True)])),
            ],
            opts=child)

        filters = []
        for metric in METRICS:
            assert len(metric.dimensions) <= MAX_DIMENSIONS
            filters.append(aws.cloudwatch.LogMetricFilter(
                f"{name}-{metric.name.lower()}",
                name=filter_name(args.stack, metric),
                log_group_name=args.log_group_name,
                pattern=USAGE_PATTERN,
                apply_on_transformed_logs=True,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric.name, namespace=NAMESPACE, value=metric.value,
                    dimensions=metric_dimensions(metric), unit="Count"),
                # applyOnTransformedLogs is valid only once the group has a transformer.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[transformer])))

        alarms: list[aws.cloudwatch.MetricAlarm] = []
        if args.drift is not None:
            actions = [args.alarm_topic_arn]
            days = drift_days(DRIFT_FOR)
            check_range(DAY_SECONDS, days)
            for a in drift_alarms(args.stack, args.drift):
                alarms.append(aws.cloudwatch.MetricAlarm(
                    f"{name}-{a.alert}", name=alarm_name(args.stack, a.alert), alarm_description=a.description,
                    namespace=NAMESPACE, metric_name=TOKENS_METRIC, dimensions={STACK_DIMENSION: args.stack},
                    # Every one of the last DRIFT_FOR days past the threshold.
                    statistic="Sum", period=DAY_SECONDS, evaluation_periods=days, datapoints_to_alarm=days,
                    comparison_operator=a.comparison, threshold=a.threshold, treat_missing_data=a.treat_missing_data,
                    alarm_actions=actions, ok_actions=actions, tags=tags,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=filters)))

        self.namespace = NAMESPACE
        self.metric_names = [m.name for m in METRICS]
        self.alarm_names = [a.name for a in alarms]
        self.register_outputs({"namespace": self.namespace, "metric_names": self.metric_names,
                               "alarm_names": self.alarm_names})
