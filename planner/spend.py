"""What the plan says a stack costs, the guardrails sized from it, and how far the decision holds.

- The cloud bill: the GPUs the plan prices plus the front door at list prices (load balancer, serverless gateway, the
  stack's private CA). It is what the stack's budget is set to; API spend is billed by the provider and capped at the
  gateway instead, and staffing is on no bill.
- API caps: the requests per minute the plan sends to its third-party API at the projected peak, with `API_HEADROOM`,
  and the tokens those requests carry.
- The decision band: the range of today's daily traffic (the profile's growth and horizon held) over which the
  planner makes the same decision (tier and pattern), found by re-deciding at other volumes. Its ends are the drift
  alerts' thresholds, in tokens per day, with the words the report uses for them.
- Costs along the horizon: each option's all-in monthly cost at each month's projected volume, as a table and an SVG
  chart, so a reader sees where the lines cross.

Pure functions over the planner: no Pulumi, no cloud calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional
from xml.sax.saxutils import escape

from .costmodel import tokens_label
from .errors import InputError

if TYPE_CHECKING:
    from .catalog import Catalog, FrontDoorRates
    from .profile import Profile
    from .rules import Candidate, Decision
    from .stack_config import StackConfig

# The API caps over the planned API peak: bursts inside the peak and growth before the next re-plan must not be
# refused, while a runaway (a client in a loop, a fleet that stops carrying its share) is.
API_HEADROOM = 1.5
# Burst overflow: the overflow is most of the peak already (the fleet carries the off-peak base), so the same headroom
# would admit more than the whole peak and cap nothing. Overflow beyond 10 % over plan means the fleet is not carrying
# what it was sized for: that is refused (429) and alerted, not paid for.
BURST_API_HEADROOM = 1.1
HOURS_PER_MONTH = 720  # the cost model's month (catalog serving.hours_per_month)
# The band search: doublings each way from today's volume, then bisection to about 1 % of the volume.
BAND_DOUBLINGS = 12
BAND_BISECTIONS = 7
# The decision holds where another option is not cheaper by more than this share of its cost. The candidates' costs
# are step functions of volume (whole instances), so near a tie they trade places in windows a few percent wide; a
# saving under 2 % is not worth a migration, nor an alert.
MATERIAL_SAVING = 0.02


def _usd(v: Optional[float]) -> str:
    return "n/a" if v is None else f"${v:,.0f}"


# -- the cloud bill ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrontDoorItem:
    text: str  # as the report prints it
    monthly_usd: Optional[float]  # None: a fee the catalog has no price for


def front_door_items(cfg: "StackConfig", rates: "FrontDoorRates") -> list[FrontDoorItem]:
    """The front door's resources at list prices: what the cost model's totals leave out and the cloud still bills."""
    from serving.gateway_config import (CLOUD_RUN_CPU, CLOUD_RUN_MEMORY_GIB, ECS_TASK_CPU_UNITS, ECS_TASK_MEMORY_MIB,
                                        SERVERLESS_REPLICAS)

    hours = HOURS_PER_MONTH
    cluster = cfg.self_hosted is not None
    internet = cfg.endpoint.audience == "internet"
    items: list[FrontDoorItem] = []
    if cfg.cloud == "aws":
        alb = (rates.aws_alb_hourly_usd + rates.aws_alb_lcu_hourly_usd) * hours
        items.append(FrontDoorItem(f"{'ALB' if internet else 'internal ALB'} {_usd(alb)} (hours plus one LCU)", alb))
        if not cluster:
            vcpu, gb = ECS_TASK_CPU_UNITS / 1024, ECS_TASK_MEMORY_MIB / 1024
            tasks = SERVERLESS_REPLICAS * (vcpu * rates.aws_fargate_vcpu_hourly_usd + gb * rates.aws_fargate_gb_hourly_usd) * hours
            items.append(FrontDoorItem(f"{SERVERLESS_REPLICAS} Fargate tasks of {vcpu:g} vCPU and {gb:g} GB {_usd(tasks)}", tasks))
        if not internet and not cfg.endpoint.certificate_authority_arn:
            items.append(FrontDoorItem(f"the stack's AWS Private CA {_usd(rates.aws_private_ca_monthly_usd)} (set "
                                       "endpoint.certificate_authority_arn to issue from the organisation's CA instead)",
                                       rates.aws_private_ca_monthly_usd))
    else:
        rule = rates.gcp_forwarding_rule_hourly_usd * hours
        items.append(FrontDoorItem(f"the load balancer's forwarding rule {_usd(rule)} plus its proxy instances", rule))
        if not cluster:
            instances = SERVERLESS_REPLICAS * (CLOUD_RUN_CPU * rates.gcp_cloud_run_vcpu_second_usd
                                               + CLOUD_RUN_MEMORY_GIB * rates.gcp_cloud_run_gib_second_usd) * 3600 * hours
            items.append(FrontDoorItem(f"{SERVERLESS_REPLICAS} always-on Cloud Run instances of {CLOUD_RUN_CPU} vCPU and "
                                       f"{CLOUD_RUN_MEMORY_GIB} GiB {_usd(instances)}", instances))
        if not internet:
            items.append(FrontDoorItem("the stack's CA Service DevOps-tier pool (its fee was not found)", None))
    return items


def cloud_monthly_usd(c: "Candidate", cfg: "StackConfig", rates: Optional["FrontDoorRates"]) -> float:
    """What the cloud bills for the stack's own resources: the GPUs the plan prices and the front door."""
    door = sum(i.monthly_usd or 0.0 for i in front_door_items(cfg, rates)) if rates is not None else 0.0
    return c.cost.get("gpu_compute_usd", 0.0) + door


# -- API caps ----------------------------------------------------------------------------------------------------------

def api_caps(p: "Profile", c: "Candidate") -> Optional[tuple[int, int]]:
    """(requests, tokens) per minute the gateway admits to the third-party API: the plan's API peak with headroom."""
    if c.api is None or c.api_peak_requests_s is None:
        return None
    rpm = max(1, math.ceil(c.api_peak_requests_s * 60 * api_headroom(c)))
    return rpm, rpm * (p.traffic.avg_input_tokens + p.traffic.avg_output_tokens)


def api_headroom(c: "Candidate") -> float:
    return BURST_API_HEADROOM if c.pattern == "burst-overflow" else API_HEADROOM


# -- the decision band -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BandEnd:
    daily_requests: int  # today's traffic at which the decision changes
    daily_tokens: int
    reason: str  # the report's words


@dataclass(frozen=True)
class Band:
    lower: Optional[BandEnd]  # None: the decision holds down to one request a day
    upper: Optional[BandEnd]  # None: it holds up to BAND_DOUBLINGS doublings of today's traffic


def _at_volume(p: "Profile", daily_requests: int) -> "Profile":
    return p.model_copy(update={"traffic": p.traffic.model_copy(update={"daily_requests": daily_requests})})


def _signature(d: Optional["Decision"]) -> tuple:
    return ("none", None) if d is None else (d.chosen.tier, d.chosen.pattern)


def holds(d: Optional["Decision"], signature: tuple) -> bool:
    """Whether the option `signature` (tier, pattern) is still the answer at `d`'s volume: chosen, or feasible and at
    most MATERIAL_SAVING dearer than what is chosen."""
    if d is None:
        return False
    if _signature(d) == signature:
        return True
    same = [c for c in d.candidates if c.feasible and (c.tier, c.pattern) == signature and c.monthly_cost_usd is not None]
    return bool(same) and min(c.monthly_cost_usd for c in same) <= d.chosen.monthly_cost_usd * (1 + MATERIAL_SAVING)


def _decide_at(p: "Profile", catalog: "Catalog", daily_requests: int, source: str, catalog_path: Optional[str]):
    from .rules import decide

    try:
        return decide(_at_volume(p, daily_requests), catalog, source, catalog_path, relax=False, explain=False)
    except InputError:
        return None  # no tier serves the profile at this volume: that is a change of decision too


def decision_band(d: "Decision", catalog: "Catalog", source: str = "profile",
                  catalog_path: Optional[str] = None) -> Band:
    """The range of today's daily requests over which `d`'s profile gets the same tier and pattern (or one no more
    than MATERIAL_SAVING dearer than the answer there)."""
    p = d.profile
    today = p.traffic.daily_requests
    per_request = p.traffic.avg_input_tokens + p.traffic.avg_output_tokens
    same = _signature(d)

    def end(direction: int) -> Optional[BandEnd]:
        inside, outside, other = today, None, None
        for k in range(1, BAND_DOUBLINGS + 1):
            volume = today * 2 ** k if direction > 0 else today // 2 ** k
            if volume < 1:
                break
            trial = _decide_at(p, catalog, volume, source, catalog_path)
            if not holds(trial, same):
                outside, other = volume, trial
                break
            inside = volume
        if outside is None:
            return None
        for _ in range(BAND_BISECTIONS):  # geometric bisection: the band's ends are ratios of today's traffic
            mid = int(round(math.sqrt(inside * outside)))
            if mid in (inside, outside):
                break
            trial = _decide_at(p, catalog, mid, source, catalog_path)
            if holds(trial, same):
                inside = mid
            else:
                outside, other = mid, trial
        return BandEnd(outside, outside * per_request, _band_reason(d, other, outside, per_request, direction))

    return Band(lower=end(-1), upper=end(+1))


def _band_reason(d: "Decision", other: Optional["Decision"], daily_requests: int, per_request: int, direction: int) -> str:
    c = d.chosen
    where = (f"{'above' if direction > 0 else 'below'} {tokens_label(daily_requests * per_request)} tokens/day "
             f"({daily_requests:,} requests/day today, at {d.profile.traffic.growth_monthly_percent:g}%/month growth "
             f"over {d.profile.traffic.horizon_months} months)")
    if other is None:
        return f"{where} no tier the planner can build serves the profile: re-plan before traffic gets there"
    o = other.chosen
    ours = [x.monthly_cost_usd for x in other.candidates if x.feasible and (x.tier, x.pattern) == (c.tier, c.pattern)
            and x.monthly_cost_usd is not None]
    against = (f"; {c.tier}" + (f" ({c.pattern})" if c.pattern else "") + f" would cost ${min(ours):,.0f}") if ours else \
        f"; {c.tier}" + (f" ({c.pattern})" if c.pattern else "") + " would no longer be allowed"
    return (f"{where} the planner would choose {o.label} (${o.monthly_cost_usd:,.0f}/month all-in at that volume"
            f"{against}) instead of {c.label}")


# -- costs along the horizon -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HorizonCosts:
    months: list[int]
    series: dict[str, list[Optional[float]]]  # option -> all-in monthly cost at each month (None: not priced)
    ruled_out: dict[str, str]  # option -> why it is not allowed (at the horizon), for the chart's dashed lines
    chosen: list[str]  # the option chosen at each month


def _series_key(c: "Candidate") -> str:
    if c.tier == "api":
        return f"api: {c.api.provider} {c.api.model}"
    if c.tier == "hybrid":
        return f"hybrid ({c.pattern})"
    return f"{c.tier}" + (f" ({c.provider})" if c.provider else "")


def horizon_months(horizon: int) -> list[int]:
    """Every month up to two years; beyond that every quarter (and the horizon itself)."""
    step = 1 if horizon <= 24 else 3
    return sorted(set(range(0, horizon + 1, step)) | {horizon})


def horizon_costs(p: "Profile", catalog: "Catalog", source: str = "profile",
                  catalog_path: Optional[str] = None) -> HorizonCosts:
    """Each option's all-in monthly cost at the volume each month of the horizon projects, planned as at the horizon
    (each month is decided afresh, so the fleet, the instance type and the API overflow follow the volume)."""
    from .rules import decide

    months = horizon_months(p.traffic.horizon_months)
    series: dict[str, list[Optional[float]]] = {}
    ruled_out: dict[str, str] = {}
    chosen: list[str] = []
    for i, m in enumerate(months):
        at = p.model_copy(update={"traffic": p.traffic.model_copy(update={"horizon_months": m})})
        try:
            d = decide(at, catalog, source, catalog_path, relax=False, explain=False)
        except InputError:
            chosen.append("none")
            continue
        chosen.append(_series_key(d.chosen))
        apis = [c for c in d.candidates if c.tier == "api" and c.monthly_cost_usd is not None]
        best_api = min(apis, key=lambda c: (not c.feasible, c.monthly_cost_usd)) if apis else None
        for c in d.candidates:
            if c.monthly_cost_usd is None or (c.tier == "api" and c is not best_api):
                continue
            key = _series_key(c)
            series.setdefault(key, [None] * len(months))[i] = c.monthly_cost_usd
            if not c.feasible and m == months[-1]:
                ruled_out[key] = c.reasons[0] if c.reasons else "ruled out"
            elif c.feasible:
                ruled_out.pop(key, None)
    return HorizonCosts(months, series, ruled_out, chosen)


def horizon_table(h: HorizonCosts, max_rows: int = 7) -> tuple[list[str], list[list[str]]]:
    """A compact table: a row per sampled month (today, evenly spaced, the horizon), a column per option."""
    n = len(h.months)
    picks = sorted({round(i * (n - 1) / (max_rows - 1)) for i in range(max_rows)}) if n > max_rows else list(range(n))
    header = ["month", *[k + (" (ruled out)" if k in h.ruled_out else "") for k in h.series], "chosen"]
    rows = [[str(h.months[i]), *[_usd(v[i]) for v in h.series.values()], h.chosen[i]] for i in picks]
    return header, rows


PALETTE = ("#1b6ac9", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#5c5c5c")


def _chart_range(h: HorizonCosts) -> tuple[float, float]:
    """The y range the chart shows: up to twice the costliest of the cheapest allowed options each month (lines above
    it leave the chart and are named as off it), from zero unless the lines sit high above it."""
    allowed = [s for k, s in h.series.items() if k not in h.ruled_out] or list(h.series.values())
    cheapest = [min((s[i] for s in allowed if s[i] is not None), default=None) for i in range(len(h.months))]
    ceiling = 2 * max((c for c in cheapest if c is not None), default=1.0)
    shown = [v for s in h.series.values() for v in s if v is not None and v <= ceiling]
    hi = max(shown, default=1.0) or 1.0
    lo = min(shown, default=0.0)
    step = _nice_step((hi - (lo if lo > 0.5 * hi else 0.0)) / 5)
    y_min = step * math.floor(lo * 0.95 / step) if lo > 0.5 * hi else 0.0
    return y_min, step * math.ceil(hi / step)


def horizon_svg(h: HorizonCosts, title: str) -> str:
    """The horizon's costs as a line chart (SVG, no dependencies): one line per option, dashed where the option is
    ruled out, so a reader sees where the lines cross."""
    width, height = 860, 420
    left, right, top, bottom = 100, 330, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    y_min, y_max = _chart_range(h)
    step = _nice_step((y_max - y_min) / 5)
    x_max = max(h.months[-1], 1)

    def x(m: float) -> float:
        return left + plot_w * m / x_max

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, y_min), y_max) - y_min) / (y_max - y_min))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="12">',
           f'<title>{escape(title)}</title>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    v = y_min
    while v <= y_max + step / 2:
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(_usd(v))}</text>')
        v += step
    month_step = max(1, int(math.ceil(x_max / 12)))
    for m in range(0, x_max + 1, month_step):
        out.append(f'<text x="{x(m):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{m}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle">months from today '
               '(projected volume)</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2:.1f}" transform="rotate(-90 14 {top + plot_h / 2:.1f})" '
               'text-anchor="middle">all-in $/month</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>')
    for i, (key, costs) in enumerate(h.series.items()):
        colour = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if key in h.ruled_out else ""
        priced = [(m, c) for m, c in zip(h.months, costs) if c is not None]
        runs: list[list[tuple[int, float]]] = [[]]
        for m, c in priced:  # a line leaves the chart above its range: draw the runs inside it
            if y_min <= c <= y_max:
                runs[-1].append((m, c))
            elif runs[-1]:
                runs.append([])
        for run in (r for r in runs if r):
            points = " ".join(f"{x(m):.1f},{y(c):.1f}" for m, c in run)
            out.append(f'<polyline data-option="{escape(key)}" fill="none" stroke="{colour}" stroke-width="2"{dash} '
                       f'points="{points}"/>')
        ly = top + 14 + 32 * i
        out.append(f'<line x1="{left + plot_w + 12}" y1="{ly - 4}" x2="{left + plot_w + 34}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        label = key if len(key) <= 40 else key[:39] + "\u2026"
        out.append(f'<text x="{left + plot_w + 40}" y="{ly}">{escape(label)}</text>')
        notes = (["ruled out"] if key in h.ruled_out else []) + \
            ([f"off the chart: {_span(priced)}"]
             if priced and (max(c for _, c in priced) > y_max or min(c for _, c in priced) < y_min) else [])
        if notes:
            out.append(f'<text x="{left + plot_w + 40}" y="{ly + 14}" font-size="10" fill="#555">'
                       f'{escape("; ".join(notes))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _span(priced: list[tuple[int, float]]) -> str:
    lo, hi = min(c for _, c in priced), max(c for _, c in priced)
    return _usd(lo) if round(lo) == round(hi) else f"{_usd(lo)}-{_usd(hi)}"


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(raw))
    return next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= raw)
