"""The gateway's usage recording rules and the decision-drift alerts, under promtool.

`check rules` on the rendered groups, then `test rules` from synthetic LiteLLM counters: the daily requests and tokens
per route (a route's fallbacks counted back to it, failures and another Deployment's pods left out), the peak-to-average
of a shaped day, and each drift alert firing when the daily tokens stay past its threshold and quiet when they stay
inside, cross it only for a spike, or when the plan gives no threshold; the growth alert with and without a month of
history. The same rules on the counters the pinned LiteLLM itself exports, fallbacks included. Then the PrometheusRule
against its CRD, the dashboard's usage panel, and a cluster stack with a spend section previewed end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest
import yaml

from conftest import edit_stack, set_section
from planner.stack_config import DriftConfig
from serving.alerts import AlertContext, prometheus_rule, rule_groups, runbooks
from serving.autoscaling import hpa_name, pod_matchers
from serving.engine import EngineInputs
from serving.usage import (
    ALERT_ABOVE,
    ALERT_BELOW,
    ALERT_GROWTH,
    ALERT_CROSSOVER,
    GROWTH_RETENTION,
    DRIFT_ALERTS,
    LITELLM_FALLBACKS,
    LITELLM_INPUT_TOKENS,
    LITELLM_OUTPUT_TOKENS,
    LITELLM_REQUESTS,
    LITELLM_TOTAL_TOKENS,
    PERCENT_VALUE,
    TOKENS_VALUE,
    growth_limit_percent,
    usage_group,
)
from serving.vllm import vllm_spec

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`); CI installs it, so the usage rules "
                             "are unchecked here")

NS, GATEWAY, STACK = "llm-serving", "llm-gateway", "dev"
GATEWAY_POD = "llm-gateway-6b7c8d9f5-yyyyy"
# Another Deployment whose name starts like the gateway's: its pods must not count.
DECOY_POD = "llm-gateway-canary-7c9d8f6b5-zzzzz"
UPPER_REASON = "self-hosted costs no more than openai/gpt-4o-mini at every volume from 13.5B tokens/month"
LOWER_REASON = "below 3B tokens/month the API costs less than the smallest GPU node"
DRIFT = {"dailyTokensNow": 1800000, "dailyTokensProjected": 2500000, "growthMonthlyPercent": 10.0,
         "upperDailyTokens": 450000000, "upperReason": UPPER_REASON,
         "lowerDailyTokens": 100000000, "lowerReason": LOWER_REASON}


def drift(**changes) -> DriftConfig:
    return DriftConfig.model_validate({**DRIFT, **changes})


def context(catalog, d: Optional[DriftConfig]) -> AlertContext:
    spec = vllm_spec(EngineInputs(image="docker.io/vllm/vllm-openai:v0.30.0", model_id="meta-llama/Llama-3.1-8B-Instruct",
                                  size_class="8b", gpu="H100", gpus_per_replica=1, max_context_tokens=8192), catalog)
    return AlertContext(stack=STACK, namespace=NS, deployment="llm", spec=spec, ttft_p95_ms=500,
                        queue_target_per_replica=5, max_replicas=4, hpa_name=hpa_name("llm"), gateway=GATEWAY,
                        usage=True, drift=d)


def counter(metric: str, steps: list[tuple[float, int]], pod: str = GATEWAY_POD, **labels: str) -> dict:
    """A counter from 0 that grows by `per_step` for `n` samples, segment after segment, in promtool's notation."""
    values, last = ["0"], 0.0
    for per_step, n in steps:
        values.append(f"{last + per_step:g}+{per_step:g}x{n - 1}")
        last += per_step * n
    inner = ",".join(f'{k}="{v}"' for k, v in {"namespace": NS, "pod": pod, **labels}.items())
    return {"series": f"{metric}{{{inner}}}", "values": " ".join(values)}


def requests(route: str, steps, status: str = "200", pod: str = GATEWAY_POD) -> dict:
    # LiteLLM's own `route` label is the HTTP path: it must not leak into ours.
    return counter(LITELLM_REQUESTS, steps, pod, requested_model=route, status_code=status, route="/chat/completions",
                   api_key_alias="chat-app")


def fallbacks(route: str, to: str, steps, pod: str = GATEWAY_POD) -> dict:
    return counter(LITELLM_FALLBACKS, steps, pod, requested_model=route, fallback_model=to, exception_status="503")


def tokens(metric: str, group: str, steps, pod: str = GATEWAY_POD) -> dict:
    return counter(metric, steps, pod, requested_model=group, model="served-model", api_key_alias="chat-app")


def sample(record: str, value: float, **labels: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in {**labels, "stack": STACK}.items())
    return {"labels": f"{record}{{{inner}}}", "value": value}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def run_tests(tmp_path: Path, groups: list[dict], tests: list[dict], evaluation: str) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": evaluation, "tests": tests}, sort_keys=False))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


DAY_STEPS_5M = 12 * 26  # 26 hours of 5-minute samples: a full day behind the 25 h evaluation


@needs_promtool
def test_daily_usage_per_route(catalog, tmp_path):
    """Per 5 minutes: `llm` serves 10 requests itself and 2 through fallbacks (1 to tier-openai, 1 of tier-vllm's 4);
    `llm-sensitive` 2 itself and 3 through tier-vllm. Failures (500) and the canary's pods are not counted, and each
    fallback group's tokens go to the routes that fell back to it, in proportion (tier-vllm: 1/4 and 3/4)."""
    n = DAY_STEPS_5M
    series = [
        requests("llm", [(10, n)]), requests("llm", [(5, n)], status="500"), requests("llm-sensitive", [(2, n)]),
        requests("tier-openai", [(1, n)]), requests("tier-vllm", [(4, n)]),
        requests("llm", [(100, n)], pod=DECOY_POD),
        fallbacks("llm", "tier-openai", [(1, n)]), fallbacks("llm", "tier-vllm", [(1, n)]),
        fallbacks("llm-sensitive", "tier-vllm", [(3, n)]), fallbacks("llm", "tier-openai", [(50, n)], pod=DECOY_POD),
    ]
    per_group = {"llm": (1000, 200), "llm-sensitive": (500, 100), "tier-openai": (300, 60), "tier-vllm": (400, 80)}
    for group, (prompt, completion) in per_group.items():
        series += [tokens(LITELLM_INPUT_TOKENS, group, [(prompt, n)]),
                   tokens(LITELLM_OUTPUT_TOKENS, group, [(completion, n)]),
                   tokens(LITELLM_TOTAL_TOKENS, group, [(prompt + completion, n)])]
    series += [tokens(LITELLM_TOTAL_TOKENS, "llm", [(99999, n)], pod=DECOY_POD)]
    day = 288  # 5-minute steps in a day
    expected = {
        "llmhost:requests:per_day": {"llm": day * (10 + 1 + 1), "llm-sensitive": day * (2 + 3)},
        "llmhost:input_tokens:per_day": {"llm": day * (1000 + 300 + 400 / 4), "llm-sensitive": day * (500 + 400 * 3 / 4)},
        "llmhost:output_tokens:per_day": {"llm": day * (200 + 60 + 80 / 4), "llm-sensitive": day * (100 + 80 * 3 / 4)},
        # Steady traffic: the peak is the average.
        "llmhost:requests:peak_to_average": {"llm": 1.0, "llm-sensitive": 1.0},
    }
    checks = [{"expr": record, "eval_time": "25h",
               "exp_samples": [sample(record, v, route=route) for route, v in values.items()]}
              for record, values in expected.items()]
    # All routes together, and whatever only a fallback group served: every token the gateway counted.
    checks.append({"expr": "llmhost:tokens:per_day", "eval_time": "25h",
                   "exp_samples": [sample("llmhost:tokens:per_day", day * 2640)]})
    groups = rule_groups(context(catalog, None))
    run_tests(tmp_path, groups, [{"interval": "5m", "input_series": series, "promql_expr_test": checks}], "5m")


@needs_promtool
def test_peak_to_average_of_a_shaped_day(catalog, tmp_path):
    """`llm`: 10 requests a minute, but 70 for one hour (10:00-11:00); `llm-sensitive` a steady 4. Over the day ending at
    25:00, llm serves 23 x 600 + 4200 = 18,000 requests, 12.5 a minute on average, so its peak is 70 / 12.5 = 5.6 times
    the average; the steady route's is 1."""
    minutes = 26 * 60
    series = [requests("llm", [(10, 600), (70, 60), (10, minutes - 660)]),
              requests("llm-sensitive", [(4, minutes)])]
    # Rounded: the ratio of two float sums is 5.6 give or take the last bit.
    checks = [{"expr": "round(llmhost:requests:peak_to_average, 0.001)", "eval_time": "25h",
               "exp_samples": [sample("", 5.6, route="llm"), sample("", 1.0, route="llm-sensitive")]},
              {"expr": "llmhost:requests:per_day", "eval_time": "25h",
               "exp_samples": [sample("llmhost:requests:per_day", 18000, route="llm"),
                               sample("llmhost:requests:per_day", 5760, route="llm-sensitive")]}]
    groups = rule_groups(context(catalog, None))
    # Samples every minute, rules every 5 minutes: the burst holds whole 5-minute windows.
    run_tests(tmp_path, groups, [{"interval": "1m", "input_series": series, "promql_expr_test": checks}], "5m")


def emit_litellm_counters(names: list[str]) -> None:
    """Runs in the pinned LiteLLM's own venv: its Router with LiteLLM's Prometheus callback serves `llm` only through
    its fallback group (the primary refuses connections) twice and `llm-sensitive` directly three times, then prints
    the counters as prometheus_client holds them: exactly the series the gateway's /metrics exposes."""
    import asyncio
    import json

    import litellm
    from litellm import Router
    from litellm.integrations.prometheus import PrometheusLogger
    from prometheus_client import REGISTRY

    async def serve():
        litellm.callbacks = [PrometheusLogger()]
        router = Router(model_list=[
            {"model_name": "llm", "litellm_params": {"model": "openai/primary", "api_base": "http://127.0.0.1:9/v1", "api_key": "k"}},
            {"model_name": "tier-api", "litellm_params": {"model": "openai/api", "api_key": "k", "mock_response": "from the api"}},
            {"model_name": "llm-sensitive", "litellm_params": {"model": "openai/inside", "api_key": "k", "mock_response": "inside"}},
        ], fallbacks=[{"llm": ["tier-api"]}], num_retries=0)
        for model, n in (("llm", 2), ("llm-sensitive", 3)):
            for _ in range(n):
                await router.acompletion(model=model, messages=[{"role": "user", "content": "hello"}])
        await asyncio.sleep(1)  # the success callbacks run after the call returns

    asyncio.run(serve())
    print(json.dumps([{"name": x.name, "labels": x.labels, "value": x.value}
                      for family in REGISTRY.collect() for x in family.samples if x.name in names]))


@needs_promtool
def test_the_rules_read_what_litellm_exports(tmp_path):
    """The pinned LiteLLM's own counters, as if scraped every 5 minutes with the same increments for a day: the rules
    find them by name and labels, and count `llm`'s fallback-served requests and tokens as `llm`'s, although LiteLLM
    labels them with the group that served (`tier-api`)."""
    import inspect
    import json

    from tests.tools import litellm_bin

    python = litellm_bin().parent / "python"
    names = [LITELLM_REQUESTS, LITELLM_FALLBACKS, LITELLM_INPUT_TOKENS, LITELLM_OUTPUT_TOKENS, LITELLM_TOTAL_TOKENS]
    program = f"{inspect.getsource(emit_litellm_counters)}\nemit_litellm_counters({names!r})\n"
    out = subprocess.run([str(python), "-c", program], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    scraped = json.loads(out.stdout.strip().splitlines()[-1])
    got = {(x["name"], x["labels"].get("requested_model"), x["labels"].get("fallback_model")): x["value"] for x in scraped}
    # What LiteLLM itself says: the fallback-served requests under the group that served them.
    assert got[(LITELLM_REQUESTS, "tier-api", None)] == 2 and got[(LITELLM_REQUESTS, "llm-sensitive", None)] == 3
    assert got[(LITELLM_FALLBACKS, "llm", "tier-api")] == 2 and (LITELLM_REQUESTS, "llm", None) not in got

    def series(x: dict) -> dict:
        labels = {**x["labels"], "namespace": NS, "pod": GATEWAY_POD}
        inner = ",".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
        return {"series": f'{x["name"]}{{{inner}}}', "values": f'0+{x["value"]:g}x{DAY_STEPS_5M}'}

    def per_day(name: str, group: str) -> float:
        return 288 * got[(name, group, None)]

    expected = {
        "llmhost:requests:per_day": {"llm": 288 * 2, "llm-sensitive": 288 * 3},
        "llmhost:input_tokens:per_day": {"llm": per_day(LITELLM_INPUT_TOKENS, "tier-api"),
                                         "llm-sensitive": per_day(LITELLM_INPUT_TOKENS, "llm-sensitive")},
        "llmhost:output_tokens:per_day": {"llm": per_day(LITELLM_OUTPUT_TOKENS, "tier-api"),
                                          "llm-sensitive": per_day(LITELLM_OUTPUT_TOKENS, "llm-sensitive")},
    }
    checks = [{"expr": record, "eval_time": "25h", "exp_samples": [sample(record, v, route=r) for r, v in values.items()]}
              for record, values in expected.items()]
    total = per_day(LITELLM_TOTAL_TOKENS, "tier-api") + per_day(LITELLM_TOTAL_TOKENS, "llm-sensitive")
    checks.append({"expr": "llmhost:tokens:per_day", "eval_time": "25h",
                   "exp_samples": [sample("llmhost:tokens:per_day", total)]})
    groups = [usage_group("llm-usage-dev", pod_matchers(NS, GATEWAY), {"stack": STACK})]
    run_tests(tmp_path, groups, [{"interval": "5m", "input_series": [series(x) for x in scraped],
                                  "promql_expr_test": checks}], "5m")


def expected_alert(rule: dict, value: Optional[str]) -> list[dict]:
    """The firing alert with its labels and rendered annotations (`value` as Prometheus renders it), or none."""
    if value is None:
        return []

    def render(text: str) -> str:
        return text.replace(TOKENS_VALUE, value).replace(PERCENT_VALUE, value)
    return [{"exp_labels": dict(rule["labels"]), "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}]


def total_tokens(steps) -> dict:
    return tokens(LITELLM_TOTAL_TOKENS, "llm", steps)


HOURS = 4 * 24 + 2


@needs_promtool
def test_traffic_above_and_below_the_decision(catalog, tmp_path):
    """Hourly samples. Above the 450M band: 24M an hour (576M a day) fires after two days above, not at 60 h (the
    daily rate crosses at about 19 h); 12M an hour (288M) is inside; a six-hour spike to 60M an hour lifts one
    day's window above 450M for about a day and stays quiet. Below the 100M band: 2M an hour (48M) fires, and so
    does a gateway that is scraped but has served nothing; an 18-hour lull in 288M a day stays quiet."""
    groups = rule_groups(context(catalog, drift()))
    rules = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    above, below = rules[ALERT_ABOVE], rules[ALERT_BELOW]
    idle = {"series": f'up{{namespace="{NS}",pod="{GATEWAY_POD}",job="{NS}/{GATEWAY}"}}', "values": f"1+0x{HOURS}"}
    cases = [
        (ALERT_ABOVE, [total_tokens([(24e6, HOURS)])], "3d", "576M"),
        (ALERT_ABOVE, [total_tokens([(24e6, HOURS)])], "60h", None),
        (ALERT_ABOVE, [total_tokens([(12e6, HOURS)])], "4d", None),
        (ALERT_ABOVE, [total_tokens([(12e6, 30), (60e6, 6), (12e6, HOURS - 36)])], "4d", None),
        (ALERT_BELOW, [total_tokens([(2e6, HOURS)])], "3d", "48M"),
        (ALERT_BELOW, [idle], "3d", "0"),
        (ALERT_BELOW, [total_tokens([(12e6, HOURS)])], "4d", None),
        (ALERT_BELOW, [total_tokens([(12e6, 30), (0, 18), (12e6, HOURS - 48)])], "4d", None),
        # A spike is no growth either, and a month has not passed.
        (ALERT_GROWTH, [total_tokens([(12e6, 30), (60e6, 6), (12e6, HOURS - 36)])], "4d", None),
    ]
    tests = [{"interval": "1h", "input_series": series,
              "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                   "exp_alerts": expected_alert(rules[alert], value)}]}
             for alert, series, at, value in cases]
    run_tests(tmp_path, groups, tests, "1h")
    assert UPPER_REASON in above["annotations"]["description"] and LOWER_REASON in below["annotations"]["description"]
    assert all("llmhost replan" in r["annotations"]["description"] for r in (above, below))
    assert above["labels"] == below["labels"] == {"severity": "warning", "stack": STACK, "namespace": NS, "deployment": GATEWAY}


CROSS_REASON = "below 6,000M tokens/month (150,000 requests/day) groq/llama-3.1-8b-instant would cost less than self-hosted"


@needs_promtool
@pytest.mark.parametrize("direction, fires, quiet", [("above", 24e6, 6e6), ("below", 2e6, 12e6)])
def test_traffic_past_the_crossover(catalog, tmp_path, direction, fires, quiet):
    """The crossover against the best API, from the side the plan watches it: an API stack alerts once traffic stays
    above it (a GPU tier would undercut the API), a GPU stack once it stays below it (the API would cost less)."""
    threshold = 200_000_000  # tokens a day: 8.3M an hour
    groups = rule_groups(context(catalog, drift(crossoverDailyTokens=threshold, crossoverDirection=direction,
                                                crossoverReason=CROSS_REASON)))
    rules = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    rule = rules[ALERT_CROSSOVER]
    assert rule["expr"].endswith(f"{'>' if direction == 'above' else '<'} {threshold}")
    assert CROSS_REASON in rule["annotations"]["description"] and "llmhost replan" in rule["annotations"]["description"]
    value = f"{fires * 24 / 1e6:g}M"
    tests = [{"interval": "1h", "input_series": [total_tokens([(rate, HOURS)])],
              "alert_rule_test": [{"eval_time": "3d", "alertname": ALERT_CROSSOVER,
                                   "exp_alerts": expected_alert(rule, value if rate == fires else None)}]}
             for rate in (fires, quiet)]
    run_tests(tmp_path, groups, tests, "1h")


@needs_promtool
def test_an_absent_threshold_has_no_alert(catalog, tmp_path):
    """A plan whose decision holds at any volume gives neither bound: only the growth alert, and 576M a day for four
    days fires nothing."""
    d = drift(upperDailyTokens=None, upperReason=None, lowerDailyTokens=None, lowerReason=None)
    groups = rule_groups(context(catalog, d))
    names = [r["alert"] for g in groups for r in g["rules"] if "alert" in r and r["alert"] in DRIFT_ALERTS]
    assert names == [ALERT_GROWTH]
    only_lower = rule_groups(context(catalog, drift(upperDailyTokens=None, upperReason=None)))
    assert [r["alert"] for g in only_lower for r in g["rules"] if r.get("alert") in DRIFT_ALERTS] == [ALERT_BELOW, ALERT_GROWTH]
    tests = [{"interval": "1h", "input_series": [total_tokens([(24e6, HOURS)])],
              "alert_rule_test": [{"eval_time": "4d", "alertname": alert, "exp_alerts": []} for alert in DRIFT_ALERTS]}]
    run_tests(tmp_path, groups, tests, "1h")


@needs_promtool
def test_growth_against_the_plan_needs_a_month_of_history(catalog, tmp_path):
    """Samples every 2 hours, rules every 6. 120M a day for 31 days, then 240M: 100 % month over month against 10 % planned (alerting above
    37.5 %), firing by day 34. 120M then 126M (5 %) is within the plan. A jump from 120M to 480M after 10 days is
    not compared with anything: there is no day 30 days earlier."""
    groups = rule_groups(context(catalog, drift()))
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == ALERT_GROWTH)
    assert growth_limit_percent(drift()) == pytest.approx(37.5)
    assert rule["expr"] == ('100 * (llmhost:tokens:per_day{stack="dev"} / (llmhost:tokens:per_day{stack="dev"} offset 30d > 0)'
                            ' - 1) > 37.5')
    steps_per_day, days = 12, 35
    cases = [
        ([total_tokens([(10e6, 31 * steps_per_day), (20e6, (days - 31) * steps_per_day)])], "34d", "100.0"),
        ([total_tokens([(10e6, 31 * steps_per_day), (10.5e6, (days - 31) * steps_per_day)])], "34d", None),
        ([total_tokens([(10e6, 10 * steps_per_day), (40e6, 10 * steps_per_day)])], "19d", None),
        # 30 days on, the gateway's partial first day looks like growth, but for less than the alert's `for`.
        ([total_tokens([(10e6, days * steps_per_day)])], "31d12h", None),
    ]
    tests = [{"interval": "2h", "input_series": series,
              "alert_rule_test": [{"eval_time": at, "alertname": ALERT_GROWTH, "exp_alerts": expected_alert(rule, value)}]}
             for series, at, value in cases]
    run_tests(tmp_path, groups, tests, "6h")


def test_the_prometheus_rule_is_a_valid_custom_resource(catalog):
    from crd_schemas import validate_custom_resource

    cr = prometheus_rule(context(catalog, drift()), "llm-hosting-dev", {"llm-hosting/stack": STACK})
    names = [g["name"] for g in cr["spec"]["groups"]]
    assert names == ["llm-serving-dev-llm", "llm-usage-dev"]
    assert validate_custom_resource(cr) == []
    # The records first, then the drift alerts that read them in the same evaluation.
    rules = [r.get("record") or r["alert"] for r in cr["spec"]["groups"][1]["rules"]]
    assert rules == ["llmhost:requests:per_day", "llmhost:input_tokens:per_day", "llmhost:output_tokens:per_day",
                     "llmhost:tokens:per_day", "llmhost:requests:rate5m", "llmhost:requests:peak_to_average",
                     ALERT_ABOVE, ALERT_BELOW, ALERT_GROWTH]


def test_usage_and_drift_need_the_gateway_and_each_other(catalog):
    import dataclasses

    ctx = context(catalog, None)
    with pytest.raises(ValueError, match="usage recording rules"):
        dataclasses.replace(ctx, usage=False, drift=drift())
    with pytest.raises(ValueError, match="gateway"):
        dataclasses.replace(ctx, gateway=None)
    # Without drift no drift group; without usage no recording rules: the serving alerts alone.
    assert [g["name"] for g in rule_groups(ctx)] == ["llm-serving-dev-llm", "llm-usage-dev"]
    assert [g["name"] for g in rule_groups(dataclasses.replace(ctx, usage=False))] == ["llm-serving-dev-llm"]


def test_runbooks_name_every_alert_and_fit_the_gke_notification(catalog):
    """GKE forwards firing alerts by name and quotes each one's runbook in the notification; recording rules have
    none, and the drift alerts' lines still fit Cloud Monitoring's documentation limit."""
    from components.gke_alert_forwarding import GkeAlertForwardingArgs

    ctx = context(catalog, drift(crossoverDailyTokens=200000000, crossoverDirection="below", crossoverReason=CROSS_REASON))
    books = runbooks(ctx)
    assert set(DRIFT_ALERTS) <= set(books) and all("llmhost replan" in books[a] for a in DRIFT_ALERTS)
    GkeAlertForwardingArgs(stack=STACK, project=None, cluster_name="c", notification_channels=["ch"],
                           prometheus_pod_labels={"app.kubernetes.io/name": "prometheus"}, runbooks=books)


@needs_promtool
def test_the_dashboard_shows_the_daily_tokens_per_route(catalog, tmp_path):
    from serving.dashboard import grafana_dashboard

    d = grafana_dashboard(context(catalog, drift()), usd_per_replica_hour=4.0)
    (panel,) = [p for p in d["panels"] if p["title"] == "Tokens per day by route"]
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs == ['llmhost:input_tokens:per_day{stack="dev"}', 'llmhost:output_tokens:per_day{stack="dev"}',
                     'llmhost:tokens:per_day{stack="dev"}']
    records = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Without the usage records, no panel reading them.
    import dataclasses
    plain = grafana_dashboard(dataclasses.replace(context(catalog, None), usage=False), usd_per_replica_hour=4.0)
    assert "Tokens per day by route" not in [p["title"] for p in plain["panels"]]


SPEND = {"plannedMonthlyUsd": 9000.0, "cloudMonthlyUsd": 8500.0, "apiMonthlyUsd": 0.0, "staffingMonthlyUsd": 500.0,
         "drift": DRIFT}


def test_a_cluster_stack_with_a_plan_records_usage_and_alerts_on_drift(project):
    """The GKE example with a spend section: its PrometheusRule carries the usage and drift groups, and the alert
    forwarding's notification lists the drift alerts' runbooks."""
    from preview.harness import run_preview

    edit_stack(project, "eu-airgapped-gke", set_section("spend", **SPEND))
    result = run_preview(project, "eu-airgapped-gke")
    rule = next(r for r in result.resources if r.inputs.get("kind") == "PrometheusRule")
    usage = {r.get("record") or r["alert"]: r for g in rule.inputs["spec"]["groups"] if g["name"] == "llm-usage-eu-airgapped-gke"
             for r in g["rules"]}
    assert {"llmhost:tokens:per_day", ALERT_ABOVE, ALERT_BELOW, ALERT_GROWTH} <= set(usage)
    assert usage[ALERT_ABOVE]["expr"] == 'llmhost:tokens:per_day{stack="eu-airgapped-gke"} > 450000000'
    assert UPPER_REASON in usage[ALERT_ABOVE]["annotations"]["description"]
    policy = next(r for r in result.by_type("gcp:monitoring/alertPolicy:AlertPolicy")
                  if "Prometheus alerts" in str(r.inputs.get("displayName")))
    assert f"**{ALERT_ABOVE}**" in policy.inputs["documentation"]["content"]
    # The growth alert looks a month back: the stack's Prometheus keeps the recorded series longer than that.
    release = next(r for r in result.by_type("kubernetes:helm.sh/v3:Release") if "prometheus" in str(r.inputs.get("chart")))
    assert release.inputs["values"]["prometheus"]["prometheusSpec"]["retention"] == GROWTH_RETENTION == "35d"
