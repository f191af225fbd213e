"""What the gateway of a cluster tier served, per route and per day, and the alerts that hold it to the plan.

`usage_group(name, gateway_matchers, labels)` is a Prometheus rule group of recording rules over the LiteLLM gateway's
counters; `drift_rules(drift, daily_tokens, labels)` the alerts that compare the observed daily tokens with the plan's
thresholds (planner/stack_config.py DriftConfig). serving/alerts.py puts both in the stack's PrometheusRule; the
Cloud Run runtime renders the same alerts over its log-based metric by passing its own daily-tokens expression.

Recorded series (`route` = the public model group the consumer asked for; each also carries the rule group's labels):

| series | labels | what |
|---|---|---|
| llmhost:requests:per_day | route | successful requests over the last 24 hours |
| llmhost:input_tokens:per_day | route | prompt tokens over the last 24 hours |
| llmhost:output_tokens:per_day | route | completion tokens over the last 24 hours |
| llmhost:tokens:per_day | (none) | prompt + completion tokens of every request the gateway served, all routes |
| llmhost:requests:rate5m | route | successful requests per second over 5 minutes (what the peak is taken over) |
| llmhost:requests:peak_to_average | route | the last 24 hours' highest 5-minute request rate over their average |

These are the figures `llmhost replan` reads (planner/usage.py).

LiteLLM 1.106.2 (litellm/integrations/prometheus.py) labels a successful request's counters with `requested_model` =
the model group that served it. A request the router moved to a fallback group (`tier-<upstream>`,
serving/gateway_config.py) is therefore counted under that group, and
`litellm_deployment_successful_fallbacks_total` records the move with `requested_model` = the group the consumer asked
for and `fallback_model` = the group that served. So, per route:

* requests = the route's own successes + its successful fallbacks (exact: one fallback event per request served);
* tokens = the route's own tokens + each fallback group's tokens in proportion to the route's share of the successful
  fallbacks into that group (exact when one route falls back to the group; a split otherwise, since the token
  counters do not say where a fallback came from). Tokens of a client calling a `tier-` group directly are in
  `llmhost:tokens:per_day` but in no route.

The raw counters carry their own `route` label (LiteLLM's HTTP path, e.g. /chat/completions); it is summed away before
the model group is copied into `route`.

Zero traffic is a value, not an absence: LiteLLM creates a counter at its first increment, so an idle gateway has no
token series at all. `llmhost:tokens:per_day` is then 0 as long as the gateway pods are scraped (`up`), so the
below-the-decision alert sees an idle stack.

The growth alert compares with the recorded daily tokens of 30 days earlier, so the Prometheus must keep its data
longer than that (GROWTH_RETENTION) on storage that outlives the pod; with less history the alert stays quiet.
"""

from __future__ import annotations

from typing import Callable, Mapping

from planner.stack_config import DriftConfig

from .gateway_config import FALLBACK_PREFIX

# LiteLLM 1.106.2's counters as scraped (prometheus_client appends `_total`), all labelled `requested_model`.
LITELLM_REQUESTS = "litellm_proxy_total_requests_metric_total"  # also `status_code` ("200" on success)
LITELLM_INPUT_TOKENS = "litellm_input_tokens_metric_total"  # prompt_tokens
LITELLM_OUTPUT_TOKENS = "litellm_output_tokens_metric_total"  # completion_tokens
LITELLM_TOTAL_TOKENS = "litellm_total_tokens_metric_total"  # total_tokens
LITELLM_FALLBACKS = "litellm_deployment_successful_fallbacks_total"  # also `fallback_model`
SUCCESS = 'status_code="200"'

REQUESTS_PER_DAY = "llmhost:requests:per_day"
INPUT_TOKENS_PER_DAY = "llmhost:input_tokens:per_day"
OUTPUT_TOKENS_PER_DAY = "llmhost:output_tokens:per_day"
TOKENS_PER_DAY = "llmhost:tokens:per_day"
REQUESTS_RATE5M = "llmhost:requests:rate5m"
PEAK_TO_AVERAGE = "llmhost:requests:peak_to_average"
ROUTE = "route"
DAY, PEAK_WINDOW = "1d", "5m"

ALERT_ABOVE, ALERT_BELOW, ALERT_GROWTH = "LLMTrafficAboveDecision", "LLMTrafficBelowDecision", "LLMTrafficGrowthAbovePlan"
# The plan's crossover with the best API (spend.drift.crossover*), in the direction the plan watches it from.
ALERT_CROSSOVER = "LLMTrafficPastCrossover"
DRIFT_ALERTS = (ALERT_ABOVE, ALERT_BELOW, ALERT_CROSSOVER, ALERT_GROWTH)
# A one-off spike stays in a 1-day window for a day: a daily rate past a threshold for two days is sustained traffic.
DRIFT_FOR = "2d"
GROWTH_WINDOW = "30d"
# The growth alert fires when the month-over-month ratio of daily tokens exceeds the plan's (1 + growth) by a quarter:
# 10 %/month planned alerts above 37.5 %, none planned above 25 %.
GROWTH_MARGIN = 0.25
# Prometheus must keep the recorded series longer than GROWTH_WINDOW for the growth alert to see a month back.
GROWTH_RETENTION = "35d"
REPLAN = "llmhost replan"

TOKENS_VALUE = "{{ $value | humanize }}"
PERCENT_VALUE = '{{ printf "%.1f" $value }}'

# offset modifier ("" or " offset 30d") -> PromQL of the tokens (prompt + completion, all routes) over the day
# ending then. A function, because PromQL takes `offset` on a selector, not on an expression.
DailyTokens = Callable[[str], str]


def _sel(metric: str, *matchers: str) -> str:
    return f"{metric}{{{','.join(m for m in matchers if m)}}}"


def _route(expr: str) -> str:
    """Sum what is labelled with the group asked for into `route`."""
    return f'sum by ({ROUTE}) (label_replace({expr}, "{ROUTE}", "$1", "requested_model", "(.*)"))'


def _public(fallback_prefix: str) -> tuple[str, str]:
    return f'requested_model!~"{fallback_prefix}.*"', f'requested_model=~"{fallback_prefix}.*"'


def requests_by_route(gateway: str, fn: str, window: str, fallback_prefix: str = FALLBACK_PREFIX) -> str:
    """Successful requests per route: those served by the route's own group, plus those a fallback group served.
    The two are kept apart by a `served_by` label until summed, so `or` keeps both."""
    public, _ = _public(fallback_prefix)
    own = f"sum by (requested_model) ({fn}({_sel(LITELLM_REQUESTS, gateway, SUCCESS, public)}[{window}]))"
    fallen = f"sum by (requested_model) ({fn}({_sel(LITELLM_FALLBACKS, gateway)}[{window}]))"
    return _route(f'{own} or label_replace({fallen}, "served_by", "fallback", "", "")')


def tokens_by_route(counter: str, gateway: str, window: str, fallback_prefix: str = FALLBACK_PREFIX) -> str:
    """A token counter per route: the route's own group, plus its share of each fallback group's tokens."""
    public, fallback = _public(fallback_prefix)
    own = f"sum by (requested_model) (increase({_sel(counter, gateway, public)}[{window}]))"
    moves = f"increase({_sel(LITELLM_FALLBACKS, gateway)}[{window}])"
    share = (f"sum by (requested_model, fallback_model) ({moves}) "
             f"/ on (fallback_model) group_left () sum by (fallback_model) ({moves})")
    served = (f'label_replace(sum by (requested_model) (increase({_sel(counter, gateway, fallback)}[{window}])), '
              f'"fallback_model", "$1", "requested_model", "(.*)")')
    return _route(f"{own} or ({share} * on (fallback_model) group_left () {served})")


def recorded(name: str, labels: Mapping[str, str]) -> str:
    """A recorded series of `usage_rules` rendered with these labels, as a selector."""
    return _sel(name, *(f'{k}="{v}"' for k, v in labels.items()))


def usage_rules(gateway: str, labels: Mapping[str, str], fallback_prefix: str = FALLBACK_PREFIX) -> list[dict]:
    """The recording rules. `gateway`: label matchers (without braces) for the gateway pods' series; `labels` are put
    on every recorded series (the stack), so two stacks' series never collide."""
    lab = dict(labels)
    tokens = f"sum(increase({_sel(LITELLM_TOTAL_TOKENS, gateway)}[{DAY}]))"
    # An idle gateway has no token counters yet: 0 while its pods are scraped (module docstring).
    idle = f"0 * sum({_sel('up', gateway)})"
    average = f"({recorded(REQUESTS_PER_DAY, lab)} / 86400 > 0)"
    rules = [
        (REQUESTS_PER_DAY, requests_by_route(gateway, "increase", DAY, fallback_prefix)),
        (INPUT_TOKENS_PER_DAY, tokens_by_route(LITELLM_INPUT_TOKENS, gateway, DAY, fallback_prefix)),
        (OUTPUT_TOKENS_PER_DAY, tokens_by_route(LITELLM_OUTPUT_TOKENS, gateway, DAY, fallback_prefix)),
        (TOKENS_PER_DAY, f"{tokens} or on () {idle}"),
        # Recorded, so the day's peak is a max over stored samples rather than a day-long subquery at every evaluation.
        (REQUESTS_RATE5M, requests_by_route(gateway, "rate", PEAK_WINDOW, fallback_prefix)),
        (PEAK_TO_AVERAGE, f"max_over_time({recorded(REQUESTS_RATE5M, lab)}[{DAY}]) / {average}"),
    ]
    return [{"record": name, "expr": expr, "labels": dict(lab)} for name, expr in rules]


def usage_group(name: str, gateway: str, labels: Mapping[str, str], fallback_prefix: str = FALLBACK_PREFIX) -> dict:
    # Rules of a group run in order at each evaluation: the peak reads the rate and the daily count recorded just before.
    return {"name": name, "rules": usage_rules(gateway, labels, fallback_prefix)}


def recorded_daily_tokens(labels: Mapping[str, str]) -> DailyTokens:
    """The daily tokens as `usage_rules` records them with these labels."""
    selector = recorded(TOKENS_PER_DAY, labels)
    return lambda offset: f"{selector}{offset}"


def _quote(reason: str) -> str:
    """A planner's sentence inside an annotation: Prometheus renders annotations as Go templates."""
    return reason.replace("{{", "{ {").replace("}}", "} }").strip().rstrip(".")


def growth_limit_percent(drift: DriftConfig) -> float:
    """The month-over-month growth (percent) above which the growth alert fires."""
    return 100 * ((1 + drift.growth_monthly_percent / 100) * (1 + GROWTH_MARGIN) - 1)


def drift_rules(drift: DriftConfig, daily_tokens: DailyTokens, labels: Mapping[str, str],
                templated: bool = True) -> list[dict]:
    """The decision-drift alerts. A threshold the plan leaves out (None) gives no alert.

    `labels` go on every alert besides `severity` (stack, namespace...). `templated`: the annotations quote the observed
    value with Prometheus' template syntax; False for an alerting system that does not render it."""
    now = daily_tokens("")
    replan = (f"Write the observed daily requests, tokens and peak-to-average into a usage file and run `{REPLAN} "
              f"<profile> <usage>`; review the new decision and apply it.")
    observed = f"The gateway served {TOKENS_VALUE} tokens in the last 24 hours" if templated else \
        "The gateway's daily tokens have been"
    rules: list[dict] = []

    def alert(name: str, expr: str, severity: str, summary: str, description: str, runbook: str) -> None:
        rules.append({"alert": name, "expr": expr, "for": DRIFT_FOR,
                      "labels": {"severity": severity, **labels},
                      "annotations": {"summary": summary, "description": description, "runbook": runbook}})

    if drift.upper_daily_tokens is not None:
        alert(ALERT_ABOVE, f"{now} > {drift.upper_daily_tokens}", "warning",
              f"Traffic above the plan's decision: more than {drift.upper_daily_tokens:,} tokens a day",
              f"{observed} (prompt + completion, all routes), above {drift.upper_daily_tokens:,} for {DRIFT_FOR}. "
              f"The plan says: {_quote(drift.upper_reason or '')}. Run `{REPLAN}` with the observed usage.",
              replan)
    if drift.lower_daily_tokens is not None:
        # Not `info`: kube-prometheus-stack's InfoInhibitor silences an info alert unless a warning fires beside it.
        alert(ALERT_BELOW, f"{now} < {drift.lower_daily_tokens}", "warning",
              f"Traffic below the plan's decision: fewer than {drift.lower_daily_tokens:,} tokens a day",
              f"{observed} (prompt + completion, all routes; none counts as zero), below "
              f"{drift.lower_daily_tokens:,} for {DRIFT_FOR}. The plan says: {_quote(drift.lower_reason or '')}. "
              f"Run `{REPLAN}` with the observed usage.",
              replan)
    if drift.crossover_daily_tokens is not None:
        x, above = drift.crossover_daily_tokens, drift.crossover_direction == "above"
        side = f"more than {x:,}" if above else f"fewer than {x:,}"
        alert(ALERT_CROSSOVER, f"{now} {'>' if above else '<'} {x}", "warning",
              f"Traffic past the crossover with the API: {side} tokens a day",
              f"{observed} (prompt + completion, all routes), {side} for {DRIFT_FOR}: past the crossover the plan "
              f"compared. The plan says: {_quote(drift.crossover_reason or '')}. Run `{REPLAN}` with the observed usage.",
              replan)
    # Month over month: today's daily tokens over those of 30 days earlier, so quiet without a month of history. The
    # gateway's first day is a partial one and looks like growth 30 days on, but for less than DRIFT_FOR.
    limit = growth_limit_percent(drift)
    growth = f"100 * ({now} / ({daily_tokens(f' offset {GROWTH_WINDOW}')} > 0) - 1)"
    value = f"{PERCENT_VALUE} %" if templated else "faster than that"
    alert(ALERT_GROWTH, f"{growth} > {limit:g}", "warning",
          f"Traffic growing faster than planned: above {limit:g} % a month",
          f"Daily tokens grew {value} over {GROWTH_WINDOW} (for {DRIFT_FOR}); the plan assumes "
          f"{drift.growth_monthly_percent:g} % a month, from {drift.daily_tokens_now:,} tokens a day now to "
          f"{drift.daily_tokens_projected:,} at the horizon the fleet is sized for. Run `{REPLAN}` with the observed "
          f"usage and its growth.",
          replan)
    return rules
