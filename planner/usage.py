"""Observed usage, as `llmhost replan` reads it, and the profile it turns into.

The file (YAML or JSON) holds daily averages over a window, per traffic class of the profile (its `workloads` names, or
one class `all` for a profile without workloads):

    window_days: 28            # the days the averages are taken over
    source: prometheus         # where the figures came from (free text, echoed in the output)
    peak_to_average: 2.6       # the day's highest 5-minute request rate over its average
    growth_monthly_percent: 6  # optional: observed growth, replacing the profile's assumption
    classes:
      - name: all
        daily_requests: 1500
        daily_input_tokens: 1200000
        daily_output_tokens: 450000

The figures are what the stack records: on a cluster the Prometheus recording rules `llmhost:requests:per_day`,
`llmhost:input_tokens:per_day`, `llmhost:output_tokens:per_day` and `llmhost:requests:peak_to_average`; on ECS and
Cloud Run the gateway's log-based metrics (README, "Re-planning from observed usage", has the queries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError, from_validation_error, read_yaml, refuse
from .profile import Profile, Traffic


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassUsage(_Strict):
    name: str = Field(min_length=1, description="the profile's workload name, or `all` for a profile without workloads")
    daily_requests: float = Field(ge=0, description="requests per day, averaged over the window")
    daily_input_tokens: float = Field(ge=0, description="prompt tokens per day")
    daily_output_tokens: float = Field(ge=0, description="completion tokens per day")


class Usage(_Strict):
    window_days: float = Field(ge=1, description="the days the averages are taken over (at least one)")
    source: str = Field(default="", description="where the figures came from")
    peak_to_average: float = Field(ge=1, description="the day's highest 5-minute request rate over its average")
    growth_monthly_percent: Optional[float] = Field(default=None, ge=0, le=100,
                                                    description="observed growth; the profile's assumption if absent")
    classes: list[ClassUsage] = Field(min_length=1)


def load_usage(path: Path) -> Usage:
    data = read_yaml(Path(path), "usage")
    if not isinstance(data, dict):
        raise refuse(path, "", "a usage file is a mapping: window_days, peak_to_average and classes (see README, "
                               "\"Re-planning from observed usage\")")
    try:
        return Usage.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(path, exc, Usage) from None


def observed_profile(profile: Profile, usage: Usage, usage_path: Path) -> Profile:
    """The profile with its traffic replaced by the observed figures; everything else (residency, team, model, SLA)
    is the profile's. Refusals name the usage file's field."""
    names = [c.name for c in profile.classes]
    seen: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, c in enumerate(usage.classes):
        if c.name not in names:
            problems.append((f"classes[{i}].name", f"{c.name!r} is not a traffic class of the profile; valid: {', '.join(names)}"))
        elif c.name in seen:
            problems.append((f"classes[{i}].name", f"{c.name!r} is listed twice"))
        seen.append(c.name)
        if c.daily_requests > 0 and c.daily_input_tokens < c.daily_requests:
            problems.append((f"classes[{i}].daily_input_tokens",
                             f"{c.daily_input_tokens:g} is less than one prompt token per request ({c.daily_requests:g} requests)"))
        if c.daily_requests > 0 and c.daily_output_tokens < c.daily_requests:
            problems.append((f"classes[{i}].daily_output_tokens",
                             f"{c.daily_output_tokens:g} is less than one completion token per request ({c.daily_requests:g} requests)"))
        if c.daily_requests == 0 and (c.daily_input_tokens or c.daily_output_tokens):
            problems.append((f"classes[{i}].daily_requests", "is 0 but the class has tokens"))
    missing = [n for n in names if n not in seen]
    if missing:
        problems.append(("classes", f"no figures for {', '.join(missing)}: list every traffic class of the profile "
                                    "(0 requests for a class that had none)"))
    if problems:
        raise InputError(usage_path, problems)
    requests = sum(c.daily_requests for c in usage.classes)
    if requests < 1:
        raise refuse(usage_path, "classes", "less than one request a day in all: there is nothing to plan for")
    t = profile.traffic
    traffic = {"daily_requests": max(1, int(round(requests))),
               "avg_input_tokens": max(1, int(round(sum(c.daily_input_tokens for c in usage.classes) / requests))),
               "avg_output_tokens": max(1, int(round(sum(c.daily_output_tokens for c in usage.classes) / requests))),
               "peak_to_average": usage.peak_to_average,
               "peak_hours_per_day": t.peak_hours_per_day,
               "growth_monthly_percent": t.growth_monthly_percent if usage.growth_monthly_percent is None
               else usage.growth_monthly_percent,
               "horizon_months": t.horizon_months}
    try:
        observed = Traffic.model_validate(traffic)
    except ValidationError as exc:
        # The only cross-field rule: the peak must fit in a day at the profile's peak hours.
        message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise refuse(usage_path, "peak_to_average", f"{usage.peak_to_average:g} with the profile's peak_hours_per_day "
                                                    f"{t.peak_hours_per_day:g}: {message}") from None
    update: dict = {"traffic": observed}
    if profile.workloads:
        by_name = {c.name: c.daily_requests for c in usage.classes}
        # Shares from the observed requests; a class that had none keeps a token share so the profile stays valid.
        raw = {w.name: max(by_name[w.name] / requests * 100.0, 0.01) for w in profile.workloads}
        scale = 100.0 / sum(raw.values())
        shares = {n: round(v * scale, 4) for n, v in raw.items()}
        last = profile.workloads[-1].name
        shares[last] = round(100.0 - sum(v for n, v in shares.items() if n != last), 4)
        update["workloads"] = [w.model_copy(update={"share_percent": shares[w.name]}) for w in profile.workloads]
    return profile.model_copy(update=update)
