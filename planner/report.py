"""The decision report (`stacks/<stack>.decision.md`): a reviewer reads why, not only what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .costmodel import tokens_label

if TYPE_CHECKING:
    from .profile import Profile
    from .rules import Candidate, Decision
    from .stack_config import StackConfig


def _usd(v) -> str:
    return "n/a" if v is None else f"${v:,.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _capacity_lines(c) -> list[str]:
    """How a replica's capacity was planned, and what limits the fleet's size."""
    o, plan = c.plan.option, c.plan
    cap = o.capacity
    if cap is None:
        lines = [f"- Planned {o.tok_s_per_replica:,.0f} output tok/s per replica = {o.throughput.output_tok_s_per_gpu:,.1f} tok/s/GPU measured "
                 f"({o.throughput.engine}, {o.throughput.model}) x target utilisation x GPUs per replica, at the benchmark's own prompt mix."]
    else:
        prompt_s = cap.avg_input_tokens / cap.prompt_tok_s
        decode_s = cap.avg_output_tokens / cap.decode_tok_s
        lines = [f"- A request ({cap.avg_input_tokens} prompt + {cap.avg_output_tokens} output tokens) takes {prompt_s * 1000:,.1f} ms of a "
                 f"replica's prefill ({cap.prompt_tok_s:,.0f} prompt tok/s) and {decode_s * 1000:,.1f} ms of its decode "
                 f"({cap.decode_tok_s:,.0f} output tok/s); planned at {cap.utilization_cap:.0%} busy, that is "
                 f"{o.tok_s_per_replica:,.0f} output tok/s per replica.",
                 f"- Prefill: {cap.prefill_basis}.",
                 f"- Decode: {cap.decode_basis} ({o.throughput.engine}, {o.throughput.model})."]
    if plan.sizing is not None:
        sz = plan.sizing
        by = ", ".join(f"{k} {v}" for k, v in sz.bounds.items())
        lines.append(f"- Fleet size limited by **{sz.limited_by}** (replicas each limit needs: {by}; floor {plan.fleet.floor_replicas})"
                     + (f"; a {cap.avg_input_tokens}-token prompt waits about {sz.ttft_ms:,.0f} ms for its first token at peak "
                        f"(SLA {cap.ttft_sla_ms:g} ms)" if cap is not None and sz.ttft_ms is not None and cap.ttft_sla_ms else "") + ".")
    return lines


def _scaling_lines(c: "Candidate", p: "Profile") -> list[str]:
    """Why a managed endpoint's replica range is what it is, and what following the day would save."""
    o, f = c.plan.option, c.plan.fleet
    if not o.scales_per_instance:
        return []
    t = p.traffic
    hours = t.peak_hours_per_day if f.scales else 24
    concurrency = o.planned_concurrency()
    target = (f" Target tracking holds each instance near {concurrency:.1f} concurrent requests (the planned "
              f"{o.tok_s_per_replica / o.capacity.avg_output_tokens:.2f} requests/s x their mean duration, Little's law)."
              if concurrency is not None else "")
    if not f.scales:
        why = ("peak_to_average is 1, so the off-peak level is the peak" if t.peak_to_average <= 1 else
               f"the off-peak level already needs the {f.replicas} replica(s) the peak needs" if f.replicas > f.floor_replicas else
               f"the peak fits in the failover floor of {f.floor_replicas}")
        return [f"- The endpoint runs {f.replicas} instance(s) all day ({why}).{target}"]
    offpeak = c.plan.load_tok_s * c.plan.shape.offpeak_share
    return [f"- The endpoint scales between {f.min_replicas} and {f.replicas} instances: {f.min_replicas} carry the off-peak "
            f"{offpeak:,.0f} output tok/s (never fewer than the failover floor of {f.floor_replicas}) and {f.replicas} the "
            f"{c.plan.load_tok_s:,.0f} tok/s peak, which lasts {hours:g} h a day (peak_to_average {t.peak_to_average:g}). "
            f"The plan charges {_usd(f.monthly_compute_usd)}/month for {f.replicas} instances all day, as it does our own "
            f"nodes; following the day the endpoint would cost about {_usd(f.scaled_monthly_compute_usd)}.{target}"]


def _front_door_lines(cfg: "StackConfig", stack: str, rates) -> list[str]:
    """Where applications call the stack, and what that costs beside the totals (list prices from the catalog)."""
    from .spend import front_door_items

    cluster = cfg.self_hosted is not None
    runtime = ("the cluster" if cluster else
               {"aws": "ECS on Fargate", "gcp": "Cloud Run"}[cfg.cloud])
    internet = cfg.endpoint.audience == "internet"
    where = (f"https://{cfg.endpoint.domain}/v1 on an internet-facing load balancer" if internet else
             f"https://{stack}.llm.internal/v1 on an internal load balancer in the stack's VPC")
    lines = ["", "## Front door", "",
             f"- Applications call {where}, through the gateway on {runtime}, each with its own key "
             f"({', '.join(c.name for c in cfg.consumers)})."]
    if rates is None:
        return lines
    lines.append("- Not in the totals above, at list prices: " + "; ".join(i.text for i in front_door_items(cfg, rates)) + ".")
    return lines


def _spend_lines(cfg: "StackConfig", stack: str, profile_path: str) -> list[str]:
    """What the stack was planned to cost, the guardrails sized from it, and the traffic at which to re-plan."""
    from .stack_config import BUDGET_ALERT_PERCENTS

    s = cfg.spend
    if s is None:
        return []
    d = s.drift
    budget = "budget filtered to the stack's resources (its `llm-hosting:stack` cost-allocation tag)" if cfg.cloud == "aws" \
        else "Cloud Billing budget filtered to the stack's project and `llm-hosting-stack` label"
    alerts = ", ".join(f"{p}% ({_usd(s.cloud_monthly_usd * p / 100)})" for p in BUDGET_ALERT_PERCENTS)
    gpus = s.planned_monthly_usd - s.api_monthly_usd - s.staffing_monthly_usd
    lines = ["", "## Spend guardrails", "",
             f"- Planned all-in: **{_usd(s.planned_monthly_usd)}/month** = GPUs {_usd(gpus)} + API "
             f"{_usd(s.api_monthly_usd)} + staffing {_usd(s.staffing_monthly_usd)}; the stack exports it, with the cloud "
             "bill below, as `planned_monthly_cost_usd`.",
             f"- Cloud bill: the GPUs plus the front door at list prices (not in the total above) = "
             f"{_usd(s.cloud_monthly_usd)}/month. A {budget} of that amount alerts the stack's `alerts_topic` at {alerts}"
             + ("" if cfg.cloud == "aws" or s.billing_account else
                "; **no budget is created: set `gcp_billing_account` in the profile and re-plan**") + "."]
    if s.api_requests_per_minute:
        lines.append(f"- API: the gateway admits at most {s.api_requests_per_minute:,} requests and "
                     f"{s.api_tokens_per_minute:,} tokens per minute to {cfg.api.provider} (the plan's API share of the "
                     f"projected peak x {s.api_headroom:g}); past them callers get 429. Set the provider's own spend "
                     "limit as well (README, \"API spend caps\").")
    lines.append(f"- Usage: the gateway records requests, prompt and completion tokens per day and the peak-to-average "
                 f"ratio per route. Planned: {d.daily_tokens_now:,} tokens/day today, growing "
                 f"{d.growth_monthly_percent:g}%/month to {d.daily_tokens_projected:,} at the horizon.")
    watched = [("LLMTrafficAboveDecision", d.upper_daily_tokens, d.upper_reason),
               ("LLMTrafficBelowDecision", d.lower_daily_tokens, d.lower_reason),
               ("LLMTrafficPastCrossover", d.crossover_daily_tokens, d.crossover_reason)]
    for alert, tokens, reason in watched:
        if tokens is not None:
            lines.append(f"- `{alert}` at {tokens:,} tokens/day: {reason}.")
    if cfg.cloud == "aws" and cfg.self_hosted is None:
        lines.append(f"- Growth against the planned {d.growth_monthly_percent:g}%/month is not alarmed on ECS (a CloudWatch "
                     "alarm looks back at most 7 days, and its metric math cannot compare with a month earlier): compare "
                     "the monthly figures when you re-plan.")
    else:
        lines.append(f"- `LLMTrafficGrowthAbovePlan`: month-over-month growth of daily tokens well above the planned "
                     f"{d.growth_monthly_percent:g}%/month.")
    if all(t is None for _, t, _ in watched):
        lines.append("- No volume within 4096x of today's traffic, either way, changes the decision, so only the budget "
                     "and the growth alert watch it.")
    lines.append(f"- When one fires, export the observed usage and re-plan: `llmhost replan {profile_path} usage.yaml "
                 f"--stack {stack}` (README, \"Re-planning from observed usage\").")
    return lines


def _horizon_lines(horizon, stack: str) -> list[str]:
    from .spend import horizon_table

    if horizon is None or not horizon.series:
        return []
    header, rows = horizon_table(horizon)
    lines = ["", "## Cost along the horizon", "",
             "Each option's all-in monthly cost at each month's projected volume, planned afresh at that volume "
             "(dashed in the chart where the option is ruled out).", "",
             "| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    lines += ["", f"![Cost along the horizon]({stack}.costs.svg)"]
    return lines


def render_report(d: "Decision", cfg: "StackConfig", stack: str, profile_path: str, front_door=None, horizon=None) -> str:
    """The decision report. `front_door`: the catalog's FrontDoorRates, to price what the totals leave out;
    `horizon`: the options' costs along the growth horizon (planner.spend.HorizonCosts)."""
    p, c = d.profile, d.chosen
    lines = [f"# Hosting decision: {stack}", "",
             f"Profile: `{profile_path}`" + (f" ({p.description.strip()})" if p.description else ""), "",
             "## Recommendation", ""]
    what = f"**{c.tier}**" + (f" ({c.pattern})" if c.pattern else "")
    breakdown = ", ".join(f"{k.replace('_usd', '')} {_usd(v)}" for k, v in c.cost.items())
    lines += [f"- Tier: {what}, network variant **{d.network}**, {p.cloud} {c.region}.",
              f"- Serving: {c.label}.",
              *([f"- Region: {c.region_note}."] if c.region_note else []),
              f"- All-in monthly cost at projected volume: **{_usd(c.monthly_cost_usd)}** "
              f"({breakdown}).",
              f"- Revisit: {d.revisit}."]
    if d.class_routes and (p.workloads or c.tier == "hybrid"):
        lines.append("- Routes: " + "; ".join(f"`{k}` -> {v}" for k, v in d.class_routes.items()) + ".")
    for n in c.notes:
        lines.append(f"- Note: {n}")
    lines += _front_door_lines(cfg, stack, front_door)
    lines += _spend_lines(cfg, stack, profile_path)
    lines += ["", "## Rules that fired", ""] + [f"- {r}" for r in d.reasons]
    lines += ["", "## Numbers used", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"| {k} | {v} |"
              for k, v in d.numbers.items()]
    if c.plan:
        o, f = c.plan.option, c.plan.fleet
        lines += ["", "## Capacity", "",
                  f"- {p.model.id} ({p.model.size_class}) in {o.fit.precision} on {o.fit.gpu}: {o.fit.weights_gb} GB of weights + "
                  f"{o.fit.kv_cache_gb} GB KV cache in {o.fit.usable_gb} GB usable, so {o.fit.gpus_per_replica} GPU(s) per replica.",
                  *_capacity_lines(c),
                  f"- {f.replicas} replica(s) for a load of {c.plan.load_tok_s:,.0f} output tok/s"
                  + (f" and {c.plan.load_tok_s * p.traffic.avg_input_tokens / p.traffic.avg_output_tokens:,.0f} prompt tok/s"
                     if o.capacity is not None else "") + f"; floor {f.floor_replicas} on on-demand capacity; "
                  f"{f.on_demand_instances} on-demand + {f.spot_instances} spot {o.instance.instance_type} instance(s) "
                  f"({o.replicas_per_instance} replica(s) each).",
                  *_scaling_lines(c, p),
                  *([f"- Engine: {cfg.self_hosted.engine} (model.engine)"
                     + (f"; TGI cannot read a bucket, so an init container copies {cfg.model.weights_uri} into the pod's "
                        "model volume, as the pod's own identity, before TGI starts (the startup budget's download part)"
                        if cfg.self_hosted.engine == "tgi" and cfg.model.weights_uri and not cfg.self_hosted.model_volume_claim
                        else "") + "."] if cfg.self_hosted is not None else []),
                  f"- Throughput source: {o.throughput.source}.",
                  f"- Price source: {o.instance.source or o.instance.basis}."]
    lines += ["", "## Candidates", "", "| tier | option | monthly cost | feasible | reasons |", "|---|---|---|---|---|"]
    for x in d.candidates:
        lines.append(f"| {x.tier} | {_cell(x.label)} | {_usd(x.monthly_cost_usd)} | {'yes' if x.feasible else 'no'} | "
                     f"{_cell('; '.join(x.reasons)) or ('chosen' if x is c else '')} |")
    lines += ["", "## Crossover against each API option", ""]
    if d.crossovers:
        lines += ["| tier | API | API $/Mtok | marginal $/Mtok | crossover (tokens/month) | requests/day |", "|---|---|---|---|---|---|"]
        for x in d.crossovers:
            vol = "none" if x.monthly_tokens is None else tokens_label(x.monthly_tokens)
            req = "-" if x.daily_requests is None else f"{x.daily_requests:,.0f}"
            lines.append(f"| {x.tier} | {x.against} | {x.api_usd_per_mtok:.3f} | {x.marginal_usd_per_mtok:.3f} | {vol} | {req} |")
        lines += ["", "The crossover is the lowest volume from which the tier costs no more than the API at every volume, "
                      "each volume priced as the planner would plan it (instance type, replicas for the peak, redundancy "
                      "floor, staffing); just below it the API is cheaper, and further below too except, in places, where "
                      "a step's capacity is nearly full. Marginal cost is what one more million tokens costs at large volume, "
                      "provisioned for peak; where it is at or above the API price there is no crossover."]
    else:
        lines.append("No self-hosted or managed option could be priced, so there is no crossover to report.")
    lines += _horizon_lines(horizon, stack)
    lines += ["", "## What would change the answer", ""] + [f"- {t}" for t in d.thresholds]
    lines += ["", "## Next steps", "", "```sh"]
    for key in cfg.required_secrets():
        lines.append(f"pulumi config set --secret llm-hosting:{key} <value> --stack {stack}")
    lines += [f"llmhost preview --stack {stack}",
              f"pulumi preview --stack {stack} --policy-pack policies --policy-pack-config stacks/{stack}.policy-config.json",
              "```", ""]
    return "\n".join(lines)
