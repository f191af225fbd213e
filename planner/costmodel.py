"""All-in, capacity-aware monthly cost of each way to serve a workload.

Pure functions over the catalog: no cloud calls, no Pulumi. Units are in the names (`_usd`, `_tok_s`, `_gb`).
The formulas, in one place:

- projected daily requests = today's x (1 + growth)^horizon; a month is `hours_per_month` / 24 days.
- API cost = requests x (input tokens x input price + output tokens x output price) / 1e6.
- replicas = ceil(peak output tok/s / (per-GPU tok/s x target utilisation x GPUs per replica)),
  plus one spare at very high availability targets, and never below the failover floor.
- compute = on-demand instances for the floor (at least two nodes when failover is needed) + spot instances
  for the rest where spot is allowed and priced, x hours per month.
- staffing = FTE for the tier and the team's ML-ops capacity x annual cost / 12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .catalog import ApiModel, Catalog, Instance, Throughput

GB = 1e9
BYTES_PER_PARAM = {"fp16": 2.0, "fp8": 1.0}
TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Volume:
    """Traffic at one point in time (today, or projected to the horizon)."""

    daily_requests: float
    avg_input_tokens: int
    avg_output_tokens: int
    peak_to_average: float
    peak_hours_per_day: float
    days_per_month: float = 30.0

    @property
    def monthly_requests(self) -> float:
        return self.daily_requests * self.days_per_month

    @property
    def monthly_input_tokens(self) -> float:
        return self.monthly_requests * self.avg_input_tokens

    @property
    def monthly_output_tokens(self) -> float:
        return self.monthly_requests * self.avg_output_tokens

    @property
    def monthly_tokens(self) -> float:
        return self.monthly_input_tokens + self.monthly_output_tokens

    @property
    def avg_output_tok_s(self) -> float:
        return self.daily_requests * self.avg_output_tokens / 86400.0

    @property
    def peak_output_tok_s(self) -> float:
        return self.avg_output_tok_s * self.peak_to_average

    @property
    def offpeak_output_tok_s(self) -> float:
        """The level outside the daily peak that keeps the daily average: 24 avg = H peak + (24 - H) off-peak."""
        h = self.peak_hours_per_day
        if h >= 24:
            return self.peak_output_tok_s
        level = (24 * self.avg_output_tok_s - h * self.peak_output_tok_s) / (24 - h)
        return min(max(0.0, level), self.avg_output_tok_s)  # clamp float cancellation when h is close to 24

    def scaled(self, share: float) -> "Volume":
        return Volume(self.daily_requests * share, self.avg_input_tokens, self.avg_output_tokens,
                      self.peak_to_average, self.peak_hours_per_day, self.days_per_month)

    def with_monthly_requests(self, monthly_requests: float) -> "Volume":
        return Volume(monthly_requests / self.days_per_month, self.avg_input_tokens, self.avg_output_tokens,
                      self.peak_to_average, self.peak_hours_per_day, self.days_per_month)


def project_daily_requests(daily_requests: float, growth_monthly_percent: float, months: float) -> float:
    return daily_requests * (1 + growth_monthly_percent / 100.0) ** months


def api_cost_per_request_usd(model: ApiModel, avg_input_tokens: float, avg_output_tokens: float) -> float:
    return (avg_input_tokens * model.input_per_mtok + avg_output_tokens * model.output_per_mtok) / 1e6


def api_monthly_cost_usd(model: ApiModel, volume: Volume) -> float:
    return volume.monthly_requests * api_cost_per_request_usd(model, volume.avg_input_tokens, volume.avg_output_tokens)


def blended_price_per_mtok(model: ApiModel, avg_input_tokens: float, avg_output_tokens: float) -> float:
    """USD per million tokens (input and output together) at this workload's mix."""
    return api_cost_per_request_usd(model, avg_input_tokens, avg_output_tokens) * 1e6 / (avg_input_tokens + avg_output_tokens)


def staffing_monthly_usd(catalog: Catalog, tier: str, capacity: str) -> float:
    return catalog.staffing.fte(tier, capacity) * catalog.staffing.fte_monthly_usd


# ---------------------------------------------------------------------------------------------------------------
# Fitting a model onto GPUs


@dataclass(frozen=True)
class ReplicaFit:
    gpu: str
    precision: str
    gpus_per_replica: int
    weights_gb: float
    kv_cache_gb: float
    usable_gb: float

    @property
    def needed_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb


def kv_cache_tokens(catalog: Catalog, avg_input_tokens: int, avg_output_tokens: int, max_context_tokens: int) -> int:
    """The KV budget: `kv_cache_sequences` requests of average length, and at least one full-context sequence."""
    return max(catalog.serving.kv_cache_sequences * (avg_input_tokens + avg_output_tokens), max_context_tokens)


def planned_precision(catalog: Catalog, gpu: str) -> str:
    """The planner's own choice: 8-bit weights and KV cache where the GPU has FP8 tensor cores; 16-bit elsewhere."""
    return "fp8" if catalog.gpus[gpu].supports_fp8 else "fp16"


def usable_gb(catalog: Catalog, gpu: str, gpus: int) -> float:
    """The engine's share of `gpus` GPUs' memory, less what activations and CUDA graphs take before the KV cache."""
    s = catalog.serving
    return gpus * (catalog.gpus[gpu].memory_gb * s.gpu_memory_utilization - s.activation_reserve_gb_per_gpu)


def replica_memory_gb(catalog: Catalog, size_class: str, kv_tokens: int, precision: str) -> tuple[float, float]:
    """(weights, KV budget) in GB at `precision`: weights and KV cache share the precision, as the engines run them."""
    spec = catalog.models[size_class]
    weights = spec.params_billion * 1e9 * BYTES_PER_PARAM[precision] / GB
    kv = kv_tokens * spec.kv_bytes_per_token_fp16 * (BYTES_PER_PARAM[precision] / 2.0) / GB
    return weights, kv


def fit_on(catalog: Catalog, size_class: str, gpu: str, kv_tokens: int, gpus: int,
           precision: Optional[str] = None) -> Optional[ReplicaFit]:
    """The replica on exactly `gpus` GPUs at `precision` (default: the planner's choice for the GPU), or None if it
    does not fit. An explicit fp8 on a GPU without FP8 support is refused, not silently run in 16 bits."""
    precision = precision or planned_precision(catalog, gpu)
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(BYTES_PER_PARAM)}")
    if precision == "fp8" and not catalog.gpus[gpu].supports_fp8:
        raise ValueError(f"precision fp8 needs FP8 support, which {gpu} lacks; use fp16")
    weights, kv = replica_memory_gb(catalog, size_class, kv_tokens, precision)
    usable = usable_gb(catalog, gpu, gpus)
    if weights + kv > usable:
        return None
    return ReplicaFit(gpu, precision, gpus, round(weights, 2), round(kv, 2), round(usable, 2))


def fit_replica(catalog: Catalog, size_class: str, gpu: str, kv_tokens: int, max_gpus: int = 8,
                precision: Optional[str] = None) -> Optional[ReplicaFit]:
    """Smallest tensor-parallel size whose memory holds the weights and the KV budget, or None.

    `precision` is what the stack runs; without it, the planner's choice for the GPU (`planned_precision`).
    """
    for n in TP_SIZES:
        if n > max_gpus:
            break
        fit = fit_on(catalog, size_class, gpu, kv_tokens, n, precision)
        if fit is not None:
            return fit
    return None


def pick_throughput(rows: list[Throughput], gpus_per_replica: int) -> Optional[Throughput]:
    """The most comparable capacity figure: vLLM first, then the same GPU count, then the higher figure."""
    if not rows:
        return None

    def rank(t: Throughput):
        return (0 if t.engine.startswith("vllm") else 1, abs(t.gpu_count - gpus_per_replica), -t.output_tok_s_per_gpu)

    return sorted(rows, key=rank)[0]


# ---------------------------------------------------------------------------------------------------------------
# Fleets of GPU instances


@dataclass(frozen=True)
class Fleet:
    """How many replicas run where, and what that costs per month."""

    replicas: int
    floor_replicas: int
    on_demand_instances: int
    spot_instances: int
    on_demand_replicas: int
    spot_replicas: int
    monthly_compute_usd: float

    @property
    def spot_share(self) -> float:
        return self.spot_replicas / self.replicas if self.replicas else 0.0


@dataclass(frozen=True)
class GpuOption:
    """One instance type in one region that can serve the model, with its measured capacity."""

    cloud: str
    region: str
    service: str
    instance: Instance
    fit: ReplicaFit
    throughput: Throughput
    replicas_per_instance: int
    tok_s_per_replica: float  # planned: measured per-GPU x target utilisation x GPUs per replica
    failover_nodes: int
    spare_replica: bool
    allow_spot: bool

    @property
    def spot_priced(self) -> bool:
        return self.allow_spot and self.instance.spot_hourly is not None

    @property
    def serving_gpus_per_replica(self) -> int:
        """The tensor-parallel degree the replica runs at: on a managed endpoint its one model copy per instance is
        sharded over all the instance's GPUs (the cost model pays for all of them), on our nodes the fitted size."""
        return self.instance.gpu_count if self.service != "compute" else self.fit.gpus_per_replica

    def replicas_for(self, load_tok_s: float, floor_replicas: int) -> int:
        needed = math.ceil(load_tok_s / self.tok_s_per_replica) if load_tok_s > 0 else 0
        if self.spare_replica:
            needed += 1
        return max(needed, floor_replicas)

    def fleet(self, replicas: int, floor_replicas: int, hours_per_month: float) -> Fleet:
        rpi = self.replicas_per_instance
        # The floor runs on on-demand capacity and on separate nodes, so one node loss leaves a replica serving.
        od_instances = max(math.ceil(floor_replicas / rpi), min(floor_replicas, self.failover_nodes))
        if self.spot_priced:
            od_replicas = min(replicas, od_instances * rpi)
            spot_replicas = replicas - od_replicas
            spot_instances = math.ceil(spot_replicas / rpi)
        else:
            od_instances = max(od_instances, math.ceil(replicas / rpi))
            od_replicas, spot_replicas, spot_instances = replicas, 0, 0
        hourly = od_instances * self.instance.on_demand_hourly + spot_instances * (self.instance.spot_hourly or 0.0)
        return Fleet(replicas, floor_replicas, od_instances, spot_instances, od_replicas, spot_replicas,
                     hourly * hours_per_month)

    def marginal_cost_per_replica_hour(self) -> float:
        """What one more replica costs per hour once the floor is paid: spot where allowed."""
        price = self.instance.spot_hourly if self.spot_priced else self.instance.on_demand_hourly
        return price / self.replicas_per_instance


def floor_replicas(catalog: Catalog, availability_target: float) -> int:
    return 2 if availability_target >= catalog.availability.failover_floor_target_percent else 1


def gpu_options(catalog: Catalog, cloud: str, regions: list[str], service: str, size_class: str, kv_tokens: int,
                availability_target: float, allow_spot: bool) -> tuple[list[GpuOption], list[str]]:
    """Every instance in the allowed regions that can hold a replica and has a throughput figure.

    Returns the options and the reasons the other instances were passed over.
    """
    options: list[GpuOption] = []
    passed_over: list[str] = []
    failover = floor_replicas(catalog, availability_target) > 1
    spare = availability_target >= catalog.availability.spare_replica_target_percent
    for region in regions:
        for inst in catalog.instances_in(cloud, region, service):
            fit = fit_replica(catalog, size_class, inst.gpu, kv_tokens, max_gpus=8)
            if fit is None or fit.gpus_per_replica > inst.gpu_count:
                need = f"{fit.gpus_per_replica} x {inst.gpu}" if fit else f"more than 8 x {inst.gpu}"
                passed_over.append(f"{inst.instance_type} ({region}): a {size_class} replica needs {need}, "
                                   f"the instance has {inst.gpu_count}")
                continue
            tp = pick_throughput(catalog.throughput_for(size_class, inst.gpu), fit.gpus_per_replica)
            if tp is None:
                passed_over.append(f"{inst.instance_type} ({region}): the catalog has no throughput figure for "
                                   f"{size_class} on {inst.gpu}")
                continue
            # Managed endpoints place one model copy per instance; on our own nodes the scheduler packs replicas.
            # The copy is sharded over all the instance's GPUs, but capacity is planned on the GPUs the model needs.
            rpi = 1 if service != "compute" else inst.gpu_count // fit.gpus_per_replica
            per_replica = tp.output_tok_s_per_gpu * catalog.serving.target_utilization * fit.gpus_per_replica
            options.append(GpuOption(cloud, region, service, inst, fit, tp, rpi, per_replica,
                                     failover_nodes=2 if failover else 1, spare_replica=spare,
                                     allow_spot=allow_spot and service == "compute"))
    return options, passed_over


@dataclass(frozen=True)
class GpuPlan:
    option: GpuOption
    load_tok_s: float
    fleet: Fleet

    @property
    def monthly_compute_usd(self) -> float:
        return self.fleet.monthly_compute_usd


def cheapest_plan(catalog: Catalog, options: list[GpuOption], load_tok_s: float, availability_target: float) -> Optional[GpuPlan]:
    floor = floor_replicas(catalog, availability_target)
    best: Optional[GpuPlan] = None
    for opt in options:
        replicas = opt.replicas_for(load_tok_s, floor)
        plan = GpuPlan(opt, load_tok_s, opt.fleet(replicas, floor, catalog.serving.hours_per_month))
        if best is None or plan.monthly_compute_usd < best.monthly_compute_usd - 1e-9:
            best = plan
    return best


# ---------------------------------------------------------------------------------------------------------------
# Crossover against an API


@dataclass(frozen=True)
class Crossover:
    against: str  # "provider/model"
    tier: str  # the tier compared with the API
    api_usd_per_mtok: float  # blended at this workload's mix
    marginal_usd_per_mtok: float  # self-hosting's cost of one more million tokens, provisioned for peak
    monthly_tokens: Optional[float]
    daily_requests: Optional[float]
    note: str

    def as_dict(self) -> dict:
        return {
            "against": self.against,
            "tier": self.tier,
            "api_usd_per_mtok": round(self.api_usd_per_mtok, 4),
            "marginal_usd_per_mtok": round(self.marginal_usd_per_mtok, 4),
            "monthly_tokens": None if self.monthly_tokens is None else round(self.monthly_tokens),
            "daily_requests": None if self.daily_requests is None else round(self.daily_requests),
            "note": self.note,
        }


def crossover(catalog: Catalog, tier: str, option: GpuOption, fixed_monthly_usd: float, api: ApiModel,
              volume: Volume, availability_target: float, max_replicas: int = 100_000) -> Crossover:
    """The monthly volume above which `tier` on `option` costs less than `api`, or why there is none.

    Self-hosted cost is a step function of volume (whole replicas) plus fixed staffing; API cost is linear.
    """
    hours = catalog.serving.hours_per_month
    floor = floor_replicas(catalog, availability_target)
    tokens_per_request = volume.avg_input_tokens + volume.avg_output_tokens
    api_per_request = api_cost_per_request_usd(api, volume.avg_input_tokens, volume.avg_output_tokens)
    api_per_mtok = api_per_request * 1e6 / tokens_per_request
    # Provisioned for peak: each request needs peak_to_average x its output tokens of replica capacity.
    replica_hours_per_request = volume.avg_output_tokens * volume.peak_to_average / (option.tok_s_per_replica * 3600.0)
    marginal_per_request = replica_hours_per_request * option.marginal_cost_per_replica_hour()
    marginal_per_mtok = marginal_per_request * 1e6 / tokens_per_request
    label = f"{api.provider}/{api.model}"
    if marginal_per_request >= api_per_request:
        return Crossover(label, tier, api_per_mtok, marginal_per_mtok, None, None,
                         f"none: {tier}'s marginal cost (${marginal_per_mtok:.3f}/Mtok at peak provisioning) is at or above "
                         f"the API price (${api_per_mtok:.3f}/Mtok), so more volume never makes it cheaper")
    # Monthly requests one replica carries at this peak-to-average ratio.
    per_replica_requests = option.tok_s_per_replica * 86400 * volume.days_per_month / (volume.avg_output_tokens * volume.peak_to_average)
    spare = 1 if option.spare_replica else 0
    # Self-hosting is cheaper on [max(cost_r / price, low_r), high_r] within the volume range of r replicas. Each
    # added replica (or node) steps the cost up, so a step can start above the API line again: the crossover is
    # where self-hosting stays cheaper for good, found by scanning until the pattern of steps has repeated.
    od_capacity = option.fleet(floor, floor, hours).on_demand_instances * option.replicas_per_instance
    settle = max(floor, od_capacity) + spare + 2 * option.replicas_per_instance + 2
    last_failing: Optional[tuple[float, float]] = None  # (where self gets cheaper in that step, its upper edge)
    cheaper_run = 0
    for replicas in range(floor, max_replicas):
        serving = replicas - spare
        if serving < 1:
            continue
        low = (serving - 1) * per_replica_requests
        high = serving * per_replica_requests
        cost = fixed_monthly_usd + option.fleet(replicas, floor, hours).monthly_compute_usd
        meets = cost / api_per_request
        if meets > low:  # not cheaper at the start of this step
            last_failing = (meets, high)
            cheaper_run = 0
        else:
            cheaper_run += 1
        if replicas >= settle and cheaper_run >= 2 * option.replicas_per_instance + 1:
            if last_failing is None:
                monthly_requests = 0.0
            else:
                meets, high = last_failing
                monthly_requests = meets if meets <= high else high
            return Crossover(label, tier, api_per_mtok, marginal_per_mtok, monthly_requests * tokens_per_request,
                             monthly_requests / volume.days_per_month,
                             f"{tier} costs less than {label} at every volume above "
                             f"{monthly_requests * tokens_per_request / 1e6:,.0f}M tokens/month")
    return Crossover(label, tier, api_per_mtok, marginal_per_mtok, None, None,
                     f"none below {max_replicas} replicas")
