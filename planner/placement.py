"""Where a replica can be placed: why a plan leaves the home region, and why no single node holds a size class.

Pure functions over the catalog; `rules.decide` calls them and the decision report prints what they return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .catalog import Catalog
from .costmodel import GpuOption, GpuPlan, cheapest_plan, fit_replica, kv_cache_tokens

if TYPE_CHECKING:
    from .profile import Profile


# A plan leaves the home region only when another allowed region's capacity is more than this much cheaper per
# token. Kit choice: what a profile binds to its home region (the registry mirror, the weights bucket, the rest of
# its infrastructure) sits there, and neighbouring regions' catalog prices differ by less than their own
# uncertainty (spot medians, estimates), so a saving of a few dollars must not move a deployment away from them.
HOME_REGION_MARGIN = 0.05


def _usd_per_tok_s(o: GpuOption) -> float:
    """What a replica's worth of capacity costs per hour per planned token/s (spot where allowed): load-independent,
    so the region choice, and with it the tier's cost curve, does not jump back and forth with volume."""
    return o.marginal_cost_per_replica_hour() / o.tok_s_per_replica


def home_is_competitive(profile: "Profile", options: list[GpuOption]) -> tuple[bool, Optional[float]]:
    """(whether the home region's options are within HOME_REGION_MARGIN of the cheapest per token, the home region's
    premium per token over the cheapest region: None when home has no option)."""
    home = [o for o in options if o.region == profile.home_region]
    if not home:
        return False, None
    premium = min(map(_usd_per_tok_s, home)) / min(map(_usd_per_tok_s, options)) - 1
    return premium <= HOME_REGION_MARGIN, premium


def prefer_home(catalog: Catalog, profile: "Profile", options: list[GpuOption], plan: Optional[GpuPlan]) -> Optional[GpuPlan]:
    """`plan` (the cheapest over all allowed regions), unless the home region's capacity is within HOME_REGION_MARGIN
    per token of the cheapest: then the cheapest plan in the home region."""
    if plan is None or plan.option.region == profile.home_region or not home_is_competitive(profile, options)[0]:
        return plan
    return cheapest_plan(catalog, [o for o in options if o.region == profile.home_region], plan.load_tok_s,
                         profile.availability_target, plan.shape)


def home_region_note(catalog: Catalog, profile: "Profile", service: str, options: list[GpuOption], plan: GpuPlan,
                     passed_over: list[str]) -> Optional[str]:
    """Why `plan` runs outside the profile's home region (its first allowed region), or None when it runs there."""
    home = profile.home_region
    where = plan.option.region
    if where == home:
        return None
    head = f"runs in {where}, not the home region {home} (the first of residency.allowed_regions)"
    _, premium = home_is_competitive(profile, options)
    if premium is None:
        size = profile.model.size_class if profile.model else "the model"
        why = [p for p in passed_over if f"({home})" in p]
        return (f"{head}: no {service} instance in {home} can serve {size} with a price and throughput figure in the catalog"
                + (f" ({'; '.join(why[:3])})" if why else " (the catalog prices none there)"))
    at_home = cheapest_plan(catalog, [o for o in options if o.region == home], plan.load_tok_s, profile.availability_target,
                            plan.shape)
    more = at_home.monthly_compute_usd - plan.monthly_compute_usd
    return (f"{head}: capacity in {home} costs {premium:.0%} more per token than in {where}, above the "
            f"{HOME_REGION_MARGIN:.0%} a plan gives up to stay at home (the cheapest {service} option in {home}, "
            f"{at_home.option.instance.instance_type}, costs ${more:,.0f}/month more in compute at this load). "
            f"Drop {where} from residency.allowed_regions to keep it at home")


def single_node_problem(catalog: Catalog, profile: "Profile") -> Optional[str]:
    """Why no single node of the allowed regions can hold one replica of `model.size_class` (None if one can).

    The kit does not build multi-node replicas, so a model larger than the biggest node must be refused, naming what
    would fit."""
    if profile.model is None or profile.model.size_class not in catalog.models:
        return None
    size = profile.model.size_class
    t = profile.traffic
    kv = kv_cache_tokens(catalog, t.avg_input_tokens, t.avg_output_tokens, profile.model.max_context_tokens)
    regions = profile.residency.allowed_regions
    here = [i for i in catalog.instances if i.cloud == profile.cloud and i.region in regions]
    if any((fit := fit_replica(catalog, size, i.gpu, kv, max_gpus=8)) and fit.gpus_per_replica <= i.gpu_count for i in here):
        return None
    needs = []
    for gpu in catalog.gpus:
        fit = fit_replica(catalog, size, gpu, kv, max_gpus=8)
        if fit is not None:
            needs.append(f"{fit.gpus_per_replica} x {gpu} at {fit.precision}")
    elsewhere = sorted({f"{i.instance_type} ({i.region})" for i in catalog.instances
                        if i.cloud == profile.cloud and i.service == "compute" and i.region not in regions
                        and (fit := fit_replica(catalog, size, i.gpu, kv, max_gpus=8)) and fit.gpus_per_replica <= i.gpu_count})
    largest = max(here, key=lambda i: i.gpu_count * catalog.gpus[i.gpu].memory_gb, default=None)
    smaller = [name for name, m in catalog.models.items()
               if m.params_billion < catalog.models[size].params_billion
               and any((f := fit_replica(catalog, name, i.gpu, kv, max_gpus=8)) and f.gpus_per_replica <= i.gpu_count for i in here)]
    msg = (f"{size} needs {' or '.join(needs) if needs else 'more than one 8-GPU node'} on one node for weights and a {kv}-token "
           f"KV cache; no instance in {', '.join(regions)} has that"
           + (f" (the largest is {largest.instance_type}, {largest.gpu_count} x {largest.gpu})" if largest else "")
           + " and the kit does not build multi-node replicas")
    fixes = []
    if elsewhere:
        fixes.append(f"allow a region with such a node, e.g. {', '.join(elsewhere[:4])}")
    if smaller:
        fixes.append(f"a smaller model.size_class that fits here ({', '.join(smaller)})")
    return msg + (f"; use {' or '.join(fixes)}" if fixes else "")
