"""All-in, capacity-aware monthly cost of each way to serve a workload.

Pure functions over the catalog: no cloud calls, no Pulumi. Units are in the names (`_usd`, `_tok_s`, `_gb`).
The formulas, in one place:

- projected daily requests = today's x (1 + growth)^horizon; a month is `hours_per_month` / 24 days.
- API cost = requests x (input tokens x input price + output tokens x output price) / 1e6.
- a replica's second is shared by its two phases: prompt tokens / prefill rate + output tokens / decode rate
  <= target utilisation (prefill is compute-bound, decode memory-bound; `PhaseCapacity`). The decode rate is the
  benchmark's output rate less the time its own prompts took. Without the workload's mix, capacity is the measured
  output rate at the benchmark's own prompt mix x target utilisation x GPUs per replica.
- replicas = the most of: that time budget at peak; the utilisation at which a prompt of average length still
  meets the TTFT SLA (TTFT = prefill time / (1 - utilisation)); the KV memory for the sequences in flight
  (Little's law); plus one spare at very high availability targets, and never below the failover floor.
- compute = on-demand instances for the floor (at least two nodes when failover is needed) + spot instances
  for the rest where spot is allowed and priced, x hours per month.
- a managed endpoint scales whole instances on demand between the replicas the off-peak level needs (never below the
  failover floor) and the replicas the peak needs (`PeakShape`, `GpuOption.fleet`). Like our own nodes (which the
  cluster autoscaler also shrinks off-peak) it is charged as provisioned for the peak all month, so every GPU tier
  is compared on the same, conservative footing; what following the day would save is reported beside it.
- staffing = FTE for the tier and the team's ML-ops capacity x annual cost / 12.
- crossover with an API = the lowest volume from which a GPU tier's all-in cost, planned afresh at each volume,
  stays at or below the API's; found by walking the tier's step-shaped cost curve (`CostCurve`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

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
    def avg_input_tok_s(self) -> float:
        return self.daily_requests * self.avg_input_tokens / 86400.0

    @property
    def peak_input_tok_s(self) -> float:
        """Prompt tokens per second at peak: the prefill work the fleet must do next to its output."""
        return self.avg_input_tok_s * self.peak_to_average

    @property
    def peak_requests_s(self) -> float:
        return self.daily_requests * self.peak_to_average / 86400.0

    @property
    def shape(self) -> "PeakShape":
        return PeakShape(self.peak_to_average, self.peak_hours_per_day)

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


@dataclass(frozen=True)
class PeakShape:
    """How a day's load moves: `peak_to_average` x the average for `peak_hours_per_day` hours, and the level that
    keeps the daily average for the rest of the day (`Volume.offpeak_output_tok_s`). The default is a flat day."""

    peak_to_average: float = 1.0
    peak_hours_per_day: float = 24.0

    @property
    def offpeak_share(self) -> float:
        """The off-peak level as a share of the peak: 24 avg = H peak + (24 - H) off-peak, peak = k avg."""
        h, k = self.peak_hours_per_day, self.peak_to_average
        if h >= 24 or k <= 1:
            return 1.0
        return min(1.0, max(0.0, (24 - h * k) / ((24 - h) * k)))

    def peak_hours_per_month(self, hours_per_month: float) -> float:
        return hours_per_month * min(self.peak_hours_per_day, 24.0) / 24.0


FLAT_DAY = PeakShape()


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
# Prompt (prefill) and output (decode) work

# Above this share of a benchmark's time going to its own prompts (at the prefill estimate), the estimate cannot
# split the row: the engine prefilled faster than estimated, so the row's output rate is taken as decode alone.
MAX_BENCHMARK_PROMPT_SHARE = 0.9
LIMITS = ("prefill", "decode", "latency", "memory", "redundancy floor")


def prefill_rate(catalog: Catalog, size_class: str, gpu: str) -> Optional[tuple[float, str]]:
    """(prompt tok/s per GPU, where it comes from): the catalog's prefill row, else derived the way the rows are
    (dense tensor FLOPS at the planner's precision x MFU / 2 FLOPs per parameter), else None."""
    row = catalog.prefill_for(size_class, gpu)
    if row is not None:
        return row.prompt_tok_s_per_gpu, row.source or f"estimate: {row.basis}"
    if catalog.prefill is None:
        return None
    g = catalog.gpus[gpu]
    tflops = g.fp8_tflops if planned_precision(catalog, gpu) == "fp8" else (g.bf16_tflops or g.fp16_tflops)
    if not tflops:
        return None
    params = catalog.models[size_class].params_billion
    rate = tflops * 1e12 * catalog.prefill.mfu / (2 * params * 1e9)
    return rate, f"estimate: {tflops:g} TFLOPS x MFU {catalog.prefill.mfu:g} / (2 FLOPs x {params:g}B parameters), no prefill row"


@dataclass(frozen=True)
class PhaseCapacity:
    """One replica at a workload's request mix, with prompt (prefill) and output (decode) work counted apart."""

    avg_input_tokens: int
    avg_output_tokens: int
    prompt_tok_s: float  # prefill rate of the replica at full use
    decode_tok_s: float  # decode rate of the replica at full use
    ttft_prompt_tok_s: float  # one prompt's prefill rate: over every GPU the model copy is sharded on
    kv_tokens: float  # KV cache the replica's memory holds beyond the weights
    itl_s: float  # time between a sequence's output tokens in a loaded batch
    target_utilization: float
    ttft_sla_ms: Optional[float]
    prefill_basis: str
    decode_basis: str

    @property
    def seconds_per_request(self) -> float:
        return self.avg_input_tokens / self.prompt_tok_s + self.avg_output_tokens / self.decode_tok_s

    @property
    def work_limit(self) -> str:
        """The phase that takes more of a replica's time at this mix."""
        return "prefill" if self.avg_input_tokens / self.prompt_tok_s >= self.avg_output_tokens / self.decode_tok_s else "decode"

    @property
    def prefill_seconds(self) -> float:
        return self.avg_input_tokens / self.ttft_prompt_tok_s

    @property
    def utilization_cap(self) -> float:
        """The busiest a replica may run: the target, or lower where a prompt's wait would break the TTFT SLA.
        A prompt shares the replica with the work in flight, so its prefill stretches to prefill / (1 - utilisation)."""
        if self.ttft_sla_ms is None:
            return self.target_utilization
        return min(self.target_utilization, 1 - self.prefill_seconds * 1000 / self.ttft_sla_ms)

    @property
    def meets_ttft(self) -> bool:
        return self.utilization_cap > 0

    @property
    def planned_output_tok_s(self) -> float:
        return self.avg_output_tokens / self.seconds_per_request * max(self.utilization_cap, 0.0)

    @property
    def max_sequences(self) -> float:
        return self.kv_tokens / (self.avg_input_tokens + self.avg_output_tokens)

    def utilization(self, requests_s: float) -> float:
        return requests_s * self.seconds_per_request

    def ttft_ms(self, requests_s: float) -> float:
        u = self.utilization(requests_s)
        return math.inf if u >= 1 else self.prefill_seconds * 1000 / (1 - u)

    def replicas_for_memory(self, requests_s: float) -> int:
        """Fewest replicas whose KV cache holds the sequences in flight: per-replica rate x with
        x p / (1 - x s) + x a <= S (p prefill time, s seconds per request, a decode time, S sequences held),
        i.e. a s x^2 - (p + a + S s) x + S >= 0, whose smaller root bounds x (it lies below 1 / s)."""
        if requests_s <= 0:
            return 0
        p, s, a, cap = self.prefill_seconds, self.seconds_per_request, self.avg_output_tokens * self.itl_s, self.max_sequences
        if cap <= 0:  # a fitted replica always has KV room; without it no count of replicas would do
            raise ValueError("a replica without KV cache room cannot serve")
        b = p + a + cap * s
        x = cap / b if a == 0 else (b - math.sqrt(max(b * b - 4 * a * s * cap, 0.0))) / (2 * a * s)
        r = max(1, math.ceil(requests_s / x))
        while self.in_flight(requests_s / r) > cap * (1 + 1e-9):  # float rounding at the root
            r += 1
        return r

    def in_flight(self, requests_s: float) -> float:
        """Sequences holding KV cache at once (Little's law): arrival rate x (time to first token + decode time)."""
        u = self.utilization(requests_s)
        if u >= 1:
            return math.inf
        return requests_s * (self.prefill_seconds / (1 - u) + self.avg_output_tokens * self.itl_s)


def phase_capacity(catalog: Catalog, size_class: str, fit: ReplicaFit, tp: Throughput, serving_gpus: int,
                   avg_input_tokens: int, avg_output_tokens: int, ttft_sla_ms: Optional[float]) -> Optional[PhaseCapacity]:
    """The replica's prefill and decode rates from the catalog, or None when no prefill rate can be had."""
    prefill = prefill_rate(catalog, size_class, fit.gpu)
    if prefill is None:
        return None
    p_gpu, p_basis = prefill
    measured = tp.output_tok_s_per_gpu
    bench_prompt = tp.prompt_tok_s_per_gpu
    share = bench_prompt / p_gpu if bench_prompt is not None else None
    if share is None:
        d_gpu = measured
        d_basis = (f"{measured:,.1f} output tok/s/GPU measured; the row states no prompt length, so it is counted as decode "
                   f"alone (its prompts are not subtracted: conservative)")
    elif share < MAX_BENCHMARK_PROMPT_SHARE:
        d_gpu = measured / (1 - share)
        d_basis = (f"{measured:,.1f} output tok/s/GPU measured at {tp.input_len} prompt / {tp.output_len} output tokens; its "
                   f"{bench_prompt:,.0f} prompt tok/s took {share:.0%} of the time at the prefill rate, so decode = "
                   f"{measured:,.1f} / {1 - share:.2f} = {d_gpu:,.1f}")
    else:
        d_gpu = measured
        d_basis = (f"{measured:,.1f} output tok/s/GPU measured; its prompts ({bench_prompt:,.0f} tok/s) exceed "
                   f"{MAX_BENCHMARK_PROMPT_SHARE:.0%} of the prefill estimate, so it is counted as decode alone")
    n = fit.gpus_per_replica
    spec = catalog.models[size_class]
    kv_tokens = max(0.0, fit.usable_gb - fit.weights_gb) * GB / (spec.kv_bytes_per_token_fp16 * BYTES_PER_PARAM[fit.precision] / 2.0)
    # A measured inter-token latency where the row has one; else the decode step's floor (all weights read once).
    itl = tp.mean_itl_ms / 1000 if tp.mean_itl_ms else fit.weights_gb / (catalog.gpus[fit.gpu].bandwidth_gbps * n)
    return PhaseCapacity(avg_input_tokens, avg_output_tokens, p_gpu * n, d_gpu * n, p_gpu * serving_gpus, kv_tokens, itl,
                         catalog.serving.target_utilization, ttft_sla_ms, p_basis, d_basis)


@dataclass(frozen=True)
class Sizing:
    """How many replicas a load needs and what sets that number."""

    replicas: int
    limited_by: str  # one of LIMITS, or "output throughput" when no prompt/output split is known
    bounds: dict  # replicas each limit alone needs (spare not included)
    ttft_ms: Optional[float]  # a prompt of average length at the planned load (None without a prefill rate)

    def as_dict(self) -> dict:
        return {"limited_by": self.limited_by, "replicas_by_limit": dict(self.bounds),
                "ttft_ms_at_peak": None if self.ttft_ms is None else round(self.ttft_ms, 1)}


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
    # The fewest replicas the fleet runs (the autoscaler's floor): the redundancy floor on our own nodes; on a managed
    # endpoint also what the off-peak level needs, since it scales whole instances between the two.
    min_replicas: int = 0
    # What the fleet would cost if it followed the day (the floor off-peak, the peak fleet for the peak hours): below
    # `monthly_compute_usd` only where it scales. Reported, never charged: scale-out lags the load and may not happen.
    scaled_monthly_compute_usd: float = 0.0

    @property
    def scales(self) -> bool:
        return self.min_replicas < self.replicas

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
    # Planned output tok/s per replica: at the workload's prompt/output mix and the utilisation its TTFT SLA allows
    # (`capacity`), or without a mix measured per-GPU x target utilisation x GPUs per replica.
    tok_s_per_replica: float
    failover_nodes: int
    spare_replica: bool
    allow_spot: bool
    capacity: Optional[PhaseCapacity] = None  # prompt and output work apart, at the workload's mix

    @property
    def spot_priced(self) -> bool:
        return self.allow_spot and self.instance.spot_hourly is not None

    @property
    def serving_gpus_per_replica(self) -> int:
        """The tensor-parallel degree the replica runs at: on a managed endpoint its one model copy per instance is
        sharded over all the instance's GPUs (the cost model pays for all of them), on our nodes the fitted size."""
        return self.instance.gpu_count if self.service != "compute" else self.fit.gpus_per_replica

    def replicas_for(self, load_tok_s: float, floor_replicas: int) -> int:
        return self.sizing(load_tok_s, floor_replicas).replicas

    def sizing(self, load_tok_s: float, floor_replicas: int) -> Sizing:
        """Replicas for `load_tok_s` output tok/s at peak (at the workload's mix), and which limit set the number."""
        c = self.capacity
        bounds: dict[str, int] = {}
        if c is None:
            bounds["output throughput"] = math.ceil(load_tok_s / self.tok_s_per_replica) if load_tok_s > 0 else 0
        else:
            requests_s = load_tok_s / c.avg_output_tokens
            per_replica_at_target = c.target_utilization / c.seconds_per_request
            bounds[c.work_limit] = math.ceil(requests_s / per_replica_at_target) if requests_s > 0 else 0
            if c.utilization_cap < c.target_utilization:
                bounds["latency"] = math.ceil(load_tok_s / self.tok_s_per_replica) if requests_s > 0 else 0
            bounds["memory"] = c.replicas_for_memory(requests_s)
        needed = max(bounds.values())
        limited_by = next(k for k, v in bounds.items() if v == needed)
        needed += 1 if self.spare_replica else 0
        if floor_replicas > needed:
            limited_by = "redundancy floor"
        replicas = max(needed, floor_replicas)
        ttft = None
        if c is not None:
            serving = max(1, replicas - (1 if self.spare_replica else 0))
            ttft = c.ttft_ms(load_tok_s / c.avg_output_tokens / serving)
        return Sizing(replicas, limited_by, bounds, ttft)

    @property
    def scales_per_instance(self) -> bool:
        """A managed endpoint adds and removes whole instances and bills each by the hour, so its fleet follows the
        day; on our own nodes the fleet is charged as provisioned for the peak (its floor on-demand, the rest spot)."""
        return self.service != "compute"

    def planned_concurrency(self) -> Optional[float]:
        """Requests one replica carries at once at its planned utilisation (Little's law: the planned request rate x
        the mean request duration, TTFT at that load plus the decode), or None without a prompt/output split."""
        c = self.capacity
        if c is None:
            return None
        return c.in_flight(self.tok_s_per_replica / c.avg_output_tokens)

    def fleet(self, replicas: int, floor_replicas: int, hours_per_month: float, min_replicas: Optional[int] = None,
              peak_hours_per_month: Optional[float] = None) -> Fleet:
        """The fleet of `replicas` at peak over a month of `hours_per_month`. Where the option scales per instance,
        `min_replicas` (default: the peak fleet, flat) run outside the `peak_hours_per_month` and `replicas` during them;
        the fleet is charged for `replicas` all month either way."""
        if self.scales_per_instance and min_replicas is not None and peak_hours_per_month is not None:
            low = max(floor_replicas, min(min_replicas, replicas))
            flat = self.fleet(replicas, floor_replicas, hours_per_month)
            base = self.fleet(low, floor_replicas, hours_per_month)
            peak_share = min(max(peak_hours_per_month / hours_per_month, 0.0), 1.0) if hours_per_month else 1.0
            following = base.monthly_compute_usd * (1 - peak_share) + flat.monthly_compute_usd * peak_share
            return replace(flat, min_replicas=low, scaled_monthly_compute_usd=following)
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
                     hourly * hours_per_month, min_replicas=min(floor_replicas, replicas),
                     scaled_monthly_compute_usd=hourly * hours_per_month)

    def marginal_cost_per_replica_hour(self) -> float:
        """What one more replica costs per hour once the floor is paid: spot where allowed."""
        price = self.instance.spot_hourly if self.spot_priced else self.instance.on_demand_hourly
        return price / self.replicas_per_instance


def floor_replicas(catalog: Catalog, availability_target: float) -> int:
    return 2 if availability_target >= catalog.availability.failover_floor_target_percent else 1


def gpu_options(catalog: Catalog, cloud: str, regions: list[str], service: str, size_class: str, kv_tokens: int,
                availability_target: float, allow_spot: bool, avg_input_tokens: Optional[int] = None,
                avg_output_tokens: Optional[int] = None, ttft_sla_ms: Optional[float] = None) -> tuple[list[GpuOption], list[str]]:
    """Every instance in the allowed regions that can hold a replica and has a throughput figure.

    With the workload's average prompt and output lengths, capacity counts prefill and decode apart, and an
    instance whose replica cannot prefill an average prompt within `ttft_sla_ms` is passed over (a wider
    tensor-parallel replica on the same instance is tried first). Without them, capacity is the measured output rate
    at the benchmark's own prompt mix. Returns the options and the reasons the other instances were passed over.
    """
    with_mix = avg_input_tokens is not None and avg_output_tokens
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
            rows = catalog.throughput_for(size_class, inst.gpu)
            tp = pick_throughput(rows, fit.gpus_per_replica)
            if tp is None:
                passed_over.append(f"{inst.instance_type} ({region}): the catalog has no throughput figure for "
                                   f"{size_class} on {inst.gpu}")
                continue
            cap = None
            if with_mix:
                # A prompt's prefill is split over the replica's GPUs: where one average prompt cannot meet the TTFT
                # SLA, a wider replica on the same instance may.
                widths = [n for n in TP_SIZES if fit.gpus_per_replica <= n <= inst.gpu_count] if service == "compute" else [fit.gpus_per_replica]
                for n in widths:
                    wide = fit if n == fit.gpus_per_replica else fit_on(catalog, size_class, inst.gpu, kv_tokens, n)
                    if wide is None:
                        continue
                    wide_tp = tp if wide is fit else pick_throughput(rows, n)
                    serving_gpus = inst.gpu_count if service != "compute" else n
                    cap = phase_capacity(catalog, size_class, wide, wide_tp, serving_gpus, avg_input_tokens,
                                         avg_output_tokens, ttft_sla_ms)
                    if cap is None or cap.meets_ttft:
                        fit, tp = wide, wide_tp
                        break
                if cap is not None and not cap.meets_ttft:
                    passed_over.append(f"{inst.instance_type} ({region}): prefilling an average {avg_input_tokens}-token prompt "
                                       f"takes {cap.prefill_seconds * 1000:,.0f} ms on {serving_gpus} x {inst.gpu} even when idle, above "
                                       f"the {ttft_sla_ms:g} ms TTFT SLA")
                    continue
            # Managed endpoints place one model copy per instance; on our own nodes the scheduler packs replicas.
            # The copy is sharded over all the instance's GPUs, but capacity is planned on the GPUs the model needs.
            rpi = 1 if service != "compute" else inst.gpu_count // fit.gpus_per_replica
            if cap is not None:
                per_replica = cap.planned_output_tok_s
            else:
                per_replica = tp.output_tok_s_per_gpu * catalog.serving.target_utilization * fit.gpus_per_replica
            options.append(GpuOption(cloud, region, service, inst, fit, tp, rpi, per_replica,
                                     failover_nodes=2 if failover else 1, spare_replica=spare,
                                     allow_spot=allow_spot and service == "compute", capacity=cap))
    return options, passed_over


@dataclass(frozen=True)
class GpuPlan:
    option: GpuOption
    load_tok_s: float
    fleet: Fleet
    sizing: Optional[Sizing] = None
    shape: "PeakShape" = FLAT_DAY  # how the load moves over the day: a re-plan of the same load keeps it

    @property
    def monthly_compute_usd(self) -> float:
        return self.fleet.monthly_compute_usd


def cheapest_plan(catalog: Catalog, options: list[GpuOption], load_tok_s: float, availability_target: float,
                  shape: PeakShape = FLAT_DAY) -> Optional[GpuPlan]:
    """The cheapest option for a peak of `load_tok_s` output tok/s. `shape` is how the load moves over the day: a
    managed endpoint runs what the off-peak level needs outside the peak hours (never below the failover floor)."""
    floor = floor_replicas(catalog, availability_target)
    hours = catalog.serving.hours_per_month
    best: Optional[GpuPlan] = None
    for opt in options:
        sizing = opt.sizing(load_tok_s, floor)
        if opt.scales_per_instance:
            low = opt.sizing(load_tok_s * shape.offpeak_share, floor).replicas
            fleet = opt.fleet(sizing.replicas, floor, hours, min_replicas=low,
                              peak_hours_per_month=shape.peak_hours_per_month(hours))
        else:
            fleet = opt.fleet(sizing.replicas, floor, hours)
        plan = GpuPlan(opt, load_tok_s, fleet, sizing, shape)
        if best is None or plan.monthly_compute_usd < best.monthly_compute_usd - 1e-9:
            best = plan
    return best


# ---------------------------------------------------------------------------------------------------------------
# Crossover against an API


def tokens_label(tokens: float) -> str:
    """Millions of tokens for prose and tables: whole millions once they matter, three figures below ten million."""
    return f"{tokens / 1e6:,.0f}M" if tokens >= 10e6 else f"{tokens / 1e6:.3g}M"


class CostCurve:
    """A tier's all-in monthly cost (USD) as a function of monthly requests, as the planner prices each volume.

    Whole replicas and instances make it a non-decreasing step function on top of fixed costs, so each cost value
    holds on one interval of volume; the ends of those intervals are found by bisection and remembered, because the
    crossover against every API walks the same curve. `stop_after` bounds how many prices a search may take.
    """

    RELATIVE_TOLERANCE = 1e-9  # the API line and a step's cost compared with this slack
    EDGE_TOLERANCE = 1e-5  # a step's edge is located to this share of its volume
    MAX_MONTHLY_REQUESTS = 1e18  # beyond any real workload: a cost still flat here is flat for good
    FIRST = 1e-6  # the smallest volume priced: the floor is paid from the first request

    def __init__(self, cost_at: Callable[[float], float], scale: float = 1.0):
        self._cost_at = cost_at
        self._scale = scale  # a volume of the curve's order, where the search for the first edge begins
        self._costs: dict[float, float] = {}
        self._ends: dict[float, tuple[float, float]] = {}
        self._slope: Optional[float] = None
        self._width = 0.0  # the width of the last step found from its start: the next step is likely as wide
        self._starts: set[float] = {self.FIRST}  # volumes known to start a step
        self.stop_after = math.inf  # evaluations in all, after which a search gives up

    @property
    def evaluations(self) -> int:
        return len(self._costs)

    def __call__(self, monthly_requests: float) -> float:
        cost = self._costs.get(monthly_requests)
        if cost is None:
            if len(self._costs) >= self.stop_after:
                raise CurveSearchExhausted(monthly_requests)
            cost = self._costs[monthly_requests] = self._cost_at(monthly_requests)
        return cost

    def step_end(self, monthly_requests: float, tolerance: Optional[float] = None) -> tuple[float, float]:
        """(the last volume at this volume's cost, the first volume past it), to `tolerance` (default
        `EDGE_TOLERANCE`) of the volume: the step's edge."""
        cost = self(monthly_requests)
        if cost in self._ends:
            lo, hi = self._ends[cost]
            if tolerance is not None and not math.isinf(hi):
                lo, hi = self._bisect(cost, lo, hi, tolerance)
                self._ends[cost] = (lo, hi)
            return lo, hi
        if self._width > 0:
            # Steps mostly repeat (one more replica or instance each): try the edge one step's width on first.
            guess = monthly_requests + self._width
            lo, hi = guess * (1 - self.EDGE_TOLERANCE / 2), guess * (1 + self.EDGE_TOLERANCE / 2)
            if lo >= monthly_requests and self(lo) <= cost < self(hi):
                self._ends[cost] = (lo, hi)
                return lo, hi
        lo, width = monthly_requests, max(self._width, monthly_requests * self.EDGE_TOLERANCE * 16, self._scale * 1e-3)
        while self(lo + width) <= cost:
            lo += width
            if lo >= self.MAX_MONTHLY_REQUESTS:
                self._ends[cost] = (math.inf, math.inf)
                return self._ends[cost]
            width *= 2
        lo, hi = self._bisect(cost, lo, lo + width, tolerance or self.EDGE_TOLERANCE)
        self._ends[cost] = (lo, hi)
        if monthly_requests in self._starts:
            self._width = hi - monthly_requests
        self._starts.add(hi)
        return lo, hi

    def _bisect(self, cost: float, lo: float, hi: float, tolerance: float) -> tuple[float, float]:
        while hi - lo > tolerance * hi:
            mid = (lo + hi) / 2
            if self(mid) <= cost:
                lo = mid
            else:
                hi = mid
        return lo, hi

    def search_limit(self) -> float:
        """The volume at which a crossover search stops: 4,096 times the first step's, thousands of replicas."""
        first_end, _ = self.step_end(self.FIRST)
        return first_end * 4096

    def marginal_per_request(self) -> float:
        """The cost of one more request at large volume: the slope between the ends of two steps, one at 64 times the
        first step's volume and one at twice that, where the floor and the on-demand base no longer count."""
        if self._slope is None:
            first_end, _ = self.step_end(self.FIRST)
            if math.isinf(first_end):
                self._slope = 0.0
            else:
                e1, _ = self.step_end(first_end * 64, tolerance=1e-10)
                e2, _ = self.step_end(e1 * 2, tolerance=1e-10)
                self._slope = 0.0 if math.isinf(e2) else (self(e2) - self(e1)) / (e2 - e1)
        return self._slope


class CurveSearchExhausted(Exception):
    """A crossover search used its evaluation budget before the curve settled."""


@dataclass(frozen=True)
class Crossover:
    """Where a GPU tier stops costing more than an API.

    The crossover volume is the lowest volume at and above which the tier costs no more than the API at every
    volume, its cost taken as the planner would plan each volume (instance type, replicas, redundancy floor, fixed
    staffing). Just below it the API is cheaper; further below, the API may not be cheaper everywhere: a step
    whose capacity is nearly full can dip under the API line (`api_cheaper_below` is False then).
    """

    against: str  # "provider/model"
    tier: str  # the tier compared with the API
    api_usd_per_mtok: float  # blended at this workload's mix
    marginal_usd_per_mtok: float  # self-hosting's cost of one more million tokens at large volume, provisioned for peak
    monthly_tokens: Optional[float]
    daily_requests: Optional[float]
    note: str
    api_cheaper_below: bool = True

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


# A crossover holds once the tier has stayed no dearer for this many steps and its lead over the API at a step's
# start covers the largest step seen: each step adds at most one instance, so the lead cannot be lost again.
SETTLED_STEPS = 3
SEARCH_EVALUATIONS = 300  # prices of the curve one crossover search may take (each a call of the planner)


def crossover_on_curve(tier: str, curve: CostCurve, api: ApiModel, volume: Volume) -> Crossover:
    """The crossover of `curve` (the tier's all-in monthly cost by monthly requests) with `api`'s linear cost, at
    `volume`'s token mix. The search walks the curve from zero: where the tier is dearer it jumps to where the API's
    line reaches the current step's cost (no volume in between can be cheaper), where it is cheaper it steps to the
    next step's edge."""
    tokens_per_request = volume.avg_input_tokens + volume.avg_output_tokens
    api_per_request = api_cost_per_request_usd(api, volume.avg_input_tokens, volume.avg_output_tokens)
    api_per_mtok = api_per_request * 1e6 / tokens_per_request
    label = f"{api.provider}/{api.model}"

    def none(marginal_per_mtok: float, why: str) -> Crossover:
        return Crossover(label, tier, api_per_mtok, marginal_per_mtok, None, None, why)

    marginal_per_mtok = curve.marginal_per_request() * 1e6 / tokens_per_request
    if marginal_per_mtok >= api_per_mtok:
        return none(marginal_per_mtok,
                    f"none: {tier}'s marginal cost (${marginal_per_mtok:.3f}/Mtok at peak provisioning) is at or above "
                    f"the API price (${api_per_mtok:.3f}/Mtok), so more volume never makes it cheaper")
    limit = curve.search_limit()
    curve.stop_after = curve.evaluations + SEARCH_EVALUATIONS
    try:
        at = 0.0  # every volume below `at` has been classified
        run_start: Optional[float] = None  # where the current no-dearer run began
        run_steps, run_jump, patches = 0, 0.0, False
        while at < limit:
            probe = at if at > 0 else CostCurve.FIRST
            cost = curve(probe)
            if cost <= api_per_request * probe * (1 + CostCurve.RELATIVE_TOLERANCE):
                if run_start is None:
                    run_start, run_steps, run_jump = at, 0, 0.0
                _, nxt = curve.step_end(probe)
                if math.isinf(nxt):
                    break
                run_steps += 1
                run_jump = max(run_jump, curve(nxt) - cost)
                if run_steps >= SETTLED_STEPS and api_per_request * nxt - curve(nxt) >= run_jump:
                    break
                at = nxt
            else:
                if run_start is not None:
                    patches = True
                run_start = None
                # No volume below where the API's line reaches this step's cost can be cheaper.
                at = max(cost / api_per_request, math.nextafter(probe, math.inf))
        else:
            raise CurveSearchExhausted(at)
    except CurveSearchExhausted as e:
        return none(marginal_per_mtok,
                    f"none below {tokens_label(e.args[0] * tokens_per_request)} tokens/month: {tier}'s marginal cost "
                    f"(${marginal_per_mtok:.3f}/Mtok at peak provisioning) is so close to the API price "
                    f"(${api_per_mtok:.3f}/Mtok) that its steps still cross the API's line there")
    finally:
        curve.stop_after = math.inf
    monthly_requests = run_start
    where = tokens_label(monthly_requests * tokens_per_request)
    below = (f"below it {label} is cheaper" if not patches else
             f"below it {label} is cheaper except just before some steps add capacity")
    return Crossover(label, tier, api_per_mtok, marginal_per_mtok, monthly_requests * tokens_per_request,
                     monthly_requests / volume.days_per_month,
                     f"{tier} costs no more than {label} at every volume from {where} tokens/month; {below}",
                     api_cheaper_below=not patches)


def crossover(catalog: Catalog, tier: str, option: GpuOption, fixed_monthly_usd: float, api: ApiModel,
              volume: Volume, availability_target: float) -> Crossover:
    """The crossover of one instance type with `api`: `fixed_monthly_usd` plus that type's fleet at each volume,
    sized by `cheapest_plan` as the planner sizes it (the planner's own curve also lets the type change with volume:
    see `rules._crossovers`)."""

    def cost_at(monthly_requests: float) -> float:
        load = volume.with_monthly_requests(monthly_requests).peak_output_tok_s
        return fixed_monthly_usd + cheapest_plan(catalog, [option], load, availability_target, volume.shape).monthly_compute_usd

    return crossover_on_curve(tier, CostCurve(cost_at), api, volume)
