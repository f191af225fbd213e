"""Usage metrics and decision-drift alert policies for the gateway on Cloud Run: log-based metrics, PromQL conditions.

On Cloud Run the gateway's stdout goes to Cloud Logging, and a line that is one JSON object becomes the entry's
jsonPayload. For every successful completion the gateway prints one usage line (USAGE_FIELDS in
components/aws_usage_metrics.py, the same line on both clouds):

    {"llmhost_usage": 1, "route": "llm", "upstream": "...", "third_party": false, "consumer": "chat-app",
     "prompt_tokens": 812, "completion_tokens": 240, "total_tokens": 1052}

Log-based metrics on the service's entries with `jsonPayload.llmhost_usage=1`:

| metric | kind | value | label |
|---|---|---|---|
| llmhost-<stack>-requests | DELTA INT64 counter | one per entry | route |
| llmhost-<stack>-input-tokens | DELTA DISTRIBUTION | jsonPayload.prompt_tokens | route |
| llmhost-<stack>-output-tokens | DELTA DISTRIBUTION | jsonPayload.completion_tokens | route |
| llmhost-<stack>-tokens | DELTA DISTRIBUTION | jsonPayload.total_tokens | (none: all routes) |

A counter log-based metric counts matching entries; it cannot add up a field. Token sums therefore are distributions
with a value extractor: a distribution keeps the exact sum and count of the values next to its histogram, and PromQL in
Cloud Monitoring reads it as a Prometheus histogram, `<name>_sum` / `_count` / `_bucket`. A metric type
`logging.googleapis.com/user/<name>` is `logging_googleapis_com:user_<name with every other special character as _>`
in PromQL (promql_metric below).

Alert policies (PromQL conditions) to the stack's notification channels, from the plan's drift thresholds
(planner/stack_config.py DriftConfig): the same alerts the cluster tiers evaluate in Prometheus, rendered by
serving/usage.py drift_rules over this runtime's daily token count, `sum(increase(<tokens>_sum[1d]))`:
LLMTrafficAboveDecision, LLMTrafficBelowDecision (a day without a usage line is zero, which is below) and
LLMTrafficGrowthAbovePlan (the last day against the same day 30 days earlier, once there is a month of history) and
LLMTrafficPastCrossover (the plan's crossover with the best API, in its direction). Each exists only when the plan
gives its threshold.

drift_rules asks for the condition to hold for DRIFT_FOR (2 days) before it alerts, so a one-off spike, which stays
in a 1-day window for a day, is not news. A PromQL condition's retest window (its `duration`) is at most 24 hours
(and retest window plus alignment period at most 25 hours), so 2 days cannot be a duration. The wait is written into
the query instead: the condition must hold now and over each earlier day of DRIFT_FOR (the same expression with every
window offset by whole days), which the policies' look-back of up to 2 years allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from planner.stack_config import DriftConfig
from serving.usage import DRIFT_FOR, REPLAN, DailyTokens, drift_rules

from .usage_line import (ALARM_CROSSOVER, COMPLETION_TOKENS_FIELD, PROMPT_TOKENS_FIELD, ROUTE_FIELD, TOTAL_TOKENS_FIELD,
                         USAGE_MARKER, drift_days)

RESOURCE_TYPE = "cloud_run_revision"  # Cloud Run services' log entries (and so their log-based metrics)
LOG_METRIC_DOMAIN = "logging.googleapis.com/user/"
EVALUATION_INTERVAL = "60s"
DURATION = "0s"  # the wait is in the query (module docstring)
SEVERITY = {"critical": "CRITICAL", "error": "ERROR", "warning": "WARNING"}
# Cloud Monitoring's limits on an alert policy's documentation.
MAX_DOC_CHARS, MAX_SUBJECT_CHARS = 8192, 255
# Token counts per request run from a few to a few million: 2^0 .. 2^24, exponential. The sum does not depend on them.
TOKEN_BUCKETS = gcp.logging.MetricBucketOptionsExponentialBucketsArgs(num_finite_buckets=24, growth_factor=2, scale=1)
_LOG_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")


@dataclass(frozen=True)
class LogMetric:
    suffix: str  # llmhost-<stack>-<suffix>
    value_field: Optional[str]  # jsonPayload field summed (a distribution), None: a counter of entries
    by_route: bool
    description: str


METRICS = (
    LogMetric("requests", None, True, "completions through the gateway, per public model group"),
    LogMetric("input-tokens", PROMPT_TOKENS_FIELD, True, "prompt tokens of the completions, per public model group"),
    LogMetric("output-tokens", COMPLETION_TOKENS_FIELD, True,
              "completion tokens of the completions, per public model group"),
    LogMetric("tokens", TOTAL_TOKENS_FIELD, False, "prompt + completion tokens of the completions, all routes"),
)
TOKENS = "tokens"


def metric_name(stack: str, suffix: str) -> str:
    return f"llmhost-{stack}-{suffix}"


def promql_metric(log_metric_name: str) -> str:
    """The PromQL name of a log-based metric: the first / becomes :, every other special character _."""
    domain, _, path = f"{LOG_METRIC_DOMAIN}{log_metric_name}".partition("/")
    return re.sub(r"[^A-Za-z0-9_]", "_", domain) + ":" + re.sub(r"[^A-Za-z0-9_]", "_", path)


def log_filter(service_name: str, region: str) -> str:
    """The Logging query for the usage lines of one Cloud Run service."""
    return (f'resource.type="{RESOURCE_TYPE}" AND resource.labels.service_name="{service_name}" '
            f'AND resource.labels.location="{region}" AND jsonPayload.{USAGE_MARKER}=1')


def tokens_series(stack: str) -> str:
    """The PromQL selector of the tokens distribution's running sum."""
    return f'{promql_metric(metric_name(stack, TOKENS))}_sum{{monitored_resource="{RESOURCE_TYPE}"}}'


def daily_tokens(stack: str, days_ago: int = 0) -> DailyTokens:
    """drift_rules' daily tokens (prompt + completion, all routes) over the day ending `offset` ago, here from the
    log-based metric; `days_ago` moves every window that many days further back."""
    series = tokens_series(stack)

    def expr(offset: str) -> str:
        m = re.fullmatch(r" offset (\d+)d", offset)
        if offset and not m:
            raise ValueError(f"offset {offset!r}: expected ' offset <days>d'")
        days = days_ago + (int(m.group(1)) if m else 0)
        total = f"sum(increase({series}[1d]{f' offset {days}d' if days else ''}))"
        # The day being judged: no usage line in it at all is zero tokens (which the below alert must see). A day in
        # the past with no data stays absent: the growth alert reads that as "no history yet".
        return f"({total} or on () vector(0))" if not offset else total
    return expr


def rules(stack: str, drift: DriftConfig, days_ago: int = 0) -> list[dict]:
    """drift_rules over this runtime's metric."""
    return drift_rules(drift, daily_tokens(stack, days_ago), {"stack": stack}, templated=False)


def drift_policies(stack: str, drift: DriftConfig) -> list[dict]:
    """The rules, each condition required over DRIFT_FOR's days (module docstring)."""
    days = drift_days(DRIFT_FOR)
    per_day = [rules(stack, drift, d) for d in range(days)]
    policies = []
    for same_rule in zip(*per_day):
        rule = dict(same_rule[0])
        # `and` keeps the left side's (today's) series and labels.
        rule["expr"] = " and on () ".join(f"({r['expr']})" for r in same_rule)
        policies.append(rule)
    return policies


def documentation(stack: str, rule: dict) -> str:
    a = rule["annotations"]
    text = f"**llm-hosting {stack}: {rule['alert']}**\n\n{a['description']}\n\n{a['runbook']}"
    return text if len(text) <= MAX_DOC_CHARS else text[:MAX_DOC_CHARS - 1] + "…"


@dataclass(frozen=True)
class GcpUsageMetricsArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # the Cloud Run service's region
    service_name: pulumi.Input[str]  # the gateway's Cloud Run service (GatewayCloudRun.service_name)
    drift: Optional[DriftConfig] = None  # the plan's drift thresholds; None builds the metrics only
    # projects/<p>/notificationChannels/<id> (GcpAlertChannel.channel_name); required with drift.
    notification_channels: Sequence[pulumi.Input[str]] = ()
    # The Logging bucket holding the service's entries, when a sink routes them out of _Default.
    bucket_name: Optional[pulumi.Input[str]] = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: required")
        for m in METRICS:
            if not _LOG_METRIC_NAME.match(metric_name(self.stack, m.suffix)):
                raise ValueError(f"stack: {self.stack!r} makes the log-based metric name "
                                 f"{metric_name(self.stack, m.suffix)!r}, which Cloud Logging refuses")
        if not self.region:
            raise ValueError("region: required")
        if self.service_name is None or self.service_name == "":
            raise ValueError("service_name: required (the gateway's Cloud Run service)")
        if self.drift is not None and not isinstance(self.drift, DriftConfig):
            raise ValueError("drift: a planner.stack_config.DriftConfig (spend.drift)")
        if self.drift is not None and not self.notification_channels:
            raise ValueError("notification_channels: the drift alert policies need the stack's notification channel "
                             "(GcpAlertChannel.channel_name)")


class GcpUsageMetrics(pulumi.ComponentResource):
    """Log-based metrics from the gateway's usage lines, and the drift alert policies on them."""

    metric_names: list[pulumi.Output[str]]
    alert_policy_names: list[pulumi.Output[str]]

    def __init__(self, name: str, args: GcpUsageMetricsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpUsageMetrics", name, None, opts)
        query = pulumi.Output.from_input(args.service_name).apply(lambda s: log_filter(s, args.region))
        metrics = []
        for m in METRICS:
            labels = [gcp.logging.MetricMetricDescriptorLabelArgs(
                key=ROUTE_FIELD, value_type="STRING", description="the public model group the consumer asked for")] \
                if m.by_route else []
            metrics.append(gcp.logging.Metric(
                f"{name}-{m.suffix}",
                name=metric_name(args.stack, m.suffix),
                project=args.project,
                description=f"llm-hosting {args.stack}: {m.description} (the gateway's usage lines)",
                filter=query,
                bucket_name=args.bucket_name,
                metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                    metric_kind="DELTA",
                    value_type="DISTRIBUTION" if m.value_field else "INT64",
                    unit="1",
                    labels=labels,
                    display_name=f"llm-hosting {args.stack} {m.suffix}"),
                value_extractor=f"EXTRACT(jsonPayload.{m.value_field})" if m.value_field else None,
                bucket_options=gcp.logging.MetricBucketOptionsArgs(exponential_buckets=TOKEN_BUCKETS)
                if m.value_field else None,
                label_extractors={ROUTE_FIELD: f"EXTRACT(jsonPayload.{ROUTE_FIELD})"} if m.by_route else None,
                opts=pulumi.ResourceOptions(parent=self)))

        policies = []
        if args.drift is not None:
            for rule in drift_policies(args.stack, args.drift):
                alert = rule["alert"]
                policies.append(gcp.monitoring.AlertPolicy(
                    f"{name}-{alert}",
                    project=args.project,
                    display_name=f"llm-hosting {args.stack}: {alert}",
                    combiner="OR",
                    # Cloud Monitoring has CRITICAL, ERROR and WARNING; an `info` rule is left unclassified.
                    severity=SEVERITY.get(rule["labels"]["severity"]),
                    conditions=[gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=rule["annotations"]["summary"],
                        condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                            query=rule["expr"],
                            duration=DURATION,
                            evaluation_interval=EVALUATION_INTERVAL,
                            # The metric's descriptor appears only with its first data point.
                            disable_metric_validation=True,
                            rule_group=f"llm-hosting-{args.stack}-usage",
                            alert_rule=alert,
                            labels=dict(rule["labels"])))],
                    documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                        subject=f"llm-hosting {args.stack}: {rule['annotations']['summary']}"[:MAX_SUBJECT_CHARS],
                        content=documentation(args.stack, rule), mime_type="text/markdown"),
                    alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(
                        notification_prompts=["OPENED", "CLOSED"]),
                    notification_channels=list(args.notification_channels),
                    user_labels=dict(args.labels),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=metrics)))

        self.metric_names = [m.name for m in metrics]
        self.alert_policy_names = [p.name for p in policies]
        self.register_outputs({"metric_names": self.metric_names, "alert_policy_names": self.alert_policy_names})
