"""The Grafana dashboard of one self-hosted model: latency against the SLA, throughput, queue, KV cache, GPUs,
replicas, the gateway's routes and overflow, the daily tokens per route (with `usage`), and the cost per million
output tokens at the current rate.

`grafana_dashboard(ctx, usd_per_replica_hour)` returns the dashboard JSON model (for a ConfigMap the Grafana
sidecar picks up, or the HTTP API). Every query uses the label contract of `serving.alerts` / `serving.autoscaling`
and only the series the engine spec pins; panels for series an engine lacks are left out (TGI: no KV-cache gauge,
and its TTFT panel shows queue time, a lower bound).
"""

from __future__ import annotations

import hashlib
import re

from .alerts import (
    LITELLM_FALLBACKS,
    LITELLM_GROUP_REQUESTS,
    AlertContext,
    gateway_matchers,
    gpu_util_expr,
    queue_per_replica_expr,
    usage_labels,
)
from .autoscaling import engine_matchers, selector
from .usage import INPUT_TOKENS_PER_DAY, OUTPUT_TOKENS_PER_DAY, TOKENS_PER_DAY, recorded

# kube-prometheus-stack provisions its Prometheus datasource with this uid.
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
WIDTH, HEIGHT = 12, 8  # half the 24-column grid
RATE = "5m"


def dashboard_uid(stack: str, deployment: str) -> str:
    """Stable per stack and model (Grafana uids are at most 40 characters)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", f"llm-{stack}-{deployment}".lower()).strip("-")
    if len(slug) <= 40:
        return slug
    return slug[:31] + "-" + hashlib.sha256(slug.encode()).hexdigest()[:8]


def _quantile(q: float, histogram: str, matchers: str, scale: float = 1000) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({selector(histogram + '_bucket', matchers)}[{RATE}]))) * {scale:g}"


class _Panels:
    def __init__(self):
        self.panels: list[dict] = []

    def add(self, title: str, targets: list[tuple[str, str]], unit: str, kind: str = "timeseries",
            description: str = "") -> None:
        i = len(self.panels)
        # Two panels per row.
        self.panels.append({
            "id": i + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": HEIGHT, "w": WIDTH, "x": (i % 2) * WIDTH, "y": (i // 2) * HEIGHT},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                        for n, (expr, legend) in enumerate(targets)],
        })


def grafana_dashboard(ctx: AlertContext, usd_per_replica_hour: float) -> dict:
    if usd_per_replica_hour <= 0:
        raise ValueError(f"usd_per_replica_hour: {usd_per_replica_hour} must be positive")
    em = ctx.spec.metrics
    m = engine_matchers(ctx.namespace, ctx.deployment)
    hpa = f'namespace="{ctx.namespace}",horizontalpodautoscaler="{ctx.hpa_name}"'
    p = _Panels()

    ttft = em.ttft_histogram or em.queue_time_histogram
    if ttft:
        note = "" if em.ttft_histogram else f"{ctx.spec.engine} has no TTFT histogram: queue time, a lower bound of TTFT."
        p.add("Time to first token vs SLA", [
            (_quantile(0.5, ttft, m), "p50"),
            (_quantile(0.95, ttft, m), "p95"),
            (f"vector({ctx.ttft_p95_ms:g})", "SLA (p95)"),
        ], "ms", description=note)
    if em.inter_token_latency_histogram:
        p.add("Inter-token latency", [
            (_quantile(0.5, em.inter_token_latency_histogram, m), "p50"),
            (_quantile(0.95, em.inter_token_latency_histogram, m), "p95"),
        ], "ms")
    tokens = [(f"sum(rate({selector(name, m)}[{RATE}]))", legend)
              for name, legend in ((em.prompt_tokens, "prompt"), (em.generation_tokens, "generation")) if name]
    if tokens:
        p.add("Tokens per second", tokens, "short")
    queue = [(f"sum({selector(ctx.spec.queue_metric, m)})", "waiting (all replicas)"),
             (queue_per_replica_expr(ctx), "waiting per replica"),
             (f"vector({ctx.queue_target_per_replica})", "scaling target per replica")]
    if em.running:
        queue.append((f"sum({selector(em.running, m)})", "running"))
    p.add("Queue", queue, "short")
    # TGI exports no KV-cache usage gauge: no panel rather than an empty one.
    if em.kv_cache_usage:
        p.add("KV-cache usage", [
            (f"100 * avg(avg by (pod) ({selector(em.kv_cache_usage, m)}))", "average"),
            (f"100 * max(avg by (pod) ({selector(em.kv_cache_usage, m)}))", "fullest replica"),
        ], "percent")
    p.add("GPU utilisation", [(gpu_util_expr(ctx), "average")], "percent")
    p.add("Replicas and GPU nodes", [
        (f"max(kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}})", "current"),
        (f"max(kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}})", "desired"),
        (f"max(kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}})", "maximum"),
        # Nodes with allocatable NVIDIA GPUs (the device plugin's resource, as kube-state-metrics spells it).
        ('count(kube_node_status_capacity{resource="nvidia_com_gpu"} > 0)', "GPU nodes (cluster)"),
    ], "short")
    if ctx.gateway:
        g = gateway_matchers(ctx)
        routes = [(f"sum by (model_group) (rate({selector(LITELLM_GROUP_REQUESTS, g)}[{RATE}]))", "{{model_group}}")]
        if ctx.overflow:
            routes.append((f"sum by (fallback_model) (rate({selector(LITELLM_FALLBACKS, g)}[{RATE}]))",
                           "overflow to {{fallback_model}}"))
        p.add("Gateway routes" + (" and overflow" if ctx.overflow else ""), routes, "reqps")
    if ctx.usage:
        # The recorded daily usage (serving/usage.py): what `llmhost replan` is given, and what the drift alerts watch.
        labels = usage_labels(ctx)
        p.add("Tokens per day by route", [
            (recorded(INPUT_TOKENS_PER_DAY, labels), "{{route}} input"),
            (recorded(OUTPUT_TOKENS_PER_DAY, labels), "{{route}} output"),
            (recorded(TOKENS_PER_DAY, labels), "all routes"),
        ], "short", description="over the last 24 hours; a route's fallbacks count as the route's")
    if em.generation_tokens:
        # Cost of the replicas running now over the output tokens they produce per hour at the current rate.
        p.add("Cost per million output tokens", [(
            f"max(kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}) * {usd_per_replica_hour:g} "
            f"/ (sum(rate({selector(em.generation_tokens, m)}[{RATE}])) * 3600 / 1e6)", "USD / 1M output tokens")],
            "currencyUSD", kind="stat",
            description=f"replicas x {usd_per_replica_hour:g} USD/h / (generation tokens per hour / 1e6)")

    return {
        "uid": dashboard_uid(ctx.stack, ctx.deployment),
        "title": f"LLM serving: {ctx.stack} / {ctx.deployment}",
        "tags": ["llm-hosting", ctx.spec.engine],
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": p.panels,
    }


def panel_queries(dashboard: dict) -> list[str]:
    """Every PromQL expression on the dashboard."""
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]

