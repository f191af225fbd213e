"""The sourced catalog: API prices, GPUs, instance prices, throughput and planning assumptions.

Loaded once, strictly: a number without a `source` (or, for a derived row, `estimate: true` with a `basis`)
is refused, so every figure in a decision can be traced back.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import from_validation_error, read_yaml, refuse

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")
REGIONS_FILE = Path(__file__).with_name("regions.yaml")

Quality = Literal["frontier", "strong-open", "small"]
QUALITY_RANK: dict[str, int] = {"small": 1, "strong-open": 2, "frontier": 3}
Cloud = Literal["aws", "gcp"]
Capacity = Literal["none", "limited", "dedicated"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Strict):
    source: Optional[str] = None
    estimate: bool = False
    basis: Optional[str] = None

    @model_validator(mode="after")
    def _has_provenance(self):
        if not (self.source or (self.estimate and self.basis)):
            raise ValueError("every number needs a `source` (or `estimate: true` with a `basis`)")
        return self


class ApiProvider(_Strict):
    kind: Literal["closed", "hosted-open"]
    endpoints: dict[str, str] = Field(min_length=1, description="jurisdiction -> OpenAI-compatible base URL")
    source: str
    notes: Optional[str] = None


class ApiModel(_Sourced):
    provider: str
    model: str
    kind: Literal["closed", "hosted-open"]
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: Optional[float] = Field(default=None, ge=0)
    quality: Quality
    quality_basis: str
    source_date: Optional[str] = None
    status: Optional[str] = None
    notes: Optional[str] = None


class ModelClass(_Strict):
    params_billion: float = Field(gt=0)
    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    kv_bytes_per_token_fp16: int = Field(gt=0)
    max_context_tokens: int = Field(gt=0)
    quality: Quality
    source: str
    notes: Optional[str] = None

    @model_validator(mode="after")
    def _kv_consistent(self):
        expected = 2 * self.layers * self.kv_heads * self.head_dim * 2
        if expected != self.kv_bytes_per_token_fp16:
            raise ValueError(f"kv_bytes_per_token_fp16 should be 2 x layers x kv_heads x head_dim x 2 = {expected}")
        return self


class Gpu(_Strict):
    memory_gb: float = Field(gt=0)
    bandwidth_gbps: float = Field(gt=0)
    bf16_tflops: Optional[float] = None
    fp16_tflops: Optional[float] = None
    fp8_tflops: Optional[float] = None
    source: str
    notes: Optional[str] = None

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_tflops is not None


class Instance(_Sourced):
    cloud: Cloud
    instance_type: str
    service: Literal["compute", "sagemaker", "vertex"]
    gpu: str
    gpu_count: int = Field(gt=0)
    region: str
    on_demand_hourly: float = Field(gt=0)
    spot_hourly: Optional[float] = Field(default=None, gt=0)
    spot_hourly_range: Optional[list[float]] = None
    source_date: Optional[str] = None
    previous_on_demand_hourly: Optional[float] = None
    previous_source: Optional[str] = None
    price_basis: Optional[str] = None
    ec2_twin: Optional[str] = None
    premium_over_ec2: Optional[float] = None
    premium_basis: Optional[str] = None
    notes: Optional[str] = None


PriceRow = tuple[float, Optional[float]]


class RegionPriceTable(_Sourced):
    """Compute prices per instance type and region, in one compact table: `type: {region: [on_demand, spot]}`.

    A row fills a (type, region) that the `instances` list does not price; a listed row always wins. Each row becomes
    an `Instance` with the table's source (and `estimate`/`basis`), so the planner reads one list.
    """

    cloud: Cloud
    source_date: Optional[str] = None
    price_basis: Optional[str] = None
    spot_basis: str
    notes: Optional[str] = None
    prices: dict[str, dict[str, PriceRow]] = Field(min_length=1)

    @model_validator(mode="after")
    def _rows_valid(self):
        for itype, rows in self.prices.items():
            if not rows:
                raise ValueError(f"prices.{itype} lists no region")
            for region, (od, spot) in rows.items():
                where = f"prices.{itype}.{region}"
                if not (od > 0 and math.isfinite(od)):
                    raise ValueError(f"{where}: the on-demand price must be a positive number of USD per hour (got {od!r})")
                if spot is not None and not (0 < spot < od):
                    raise ValueError(f"{where}: the spot price must be above 0 and below the on-demand {od} (got {spot!r}); "
                                     "write null where the source lists none")
        return self


class ManagedEstimate(_Strict):
    """How managed-endpoint rates are derived where no list price is at hand: the compute twin's price in the region
    times a premium (fixed here, or each managed type's sourced `premium_over_ec2` when `premium` is left out)."""

    cloud: Cloud
    service: Literal["sagemaker", "vertex"]
    premium: Optional[float] = Field(default=None, gt=1)
    basis: str


class Throughput(_Sourced):
    model_class: str
    model: str
    precision: str
    gpu: str
    gpu_count: int = Field(gt=0)
    engine: str
    concurrency: Optional[int | str] = None
    output_tok_s_total: float = Field(gt=0)
    output_tok_s_per_gpu: float = Field(gt=0)
    input_len: Optional[int] = None
    output_len: Optional[int] = None
    mean_itl_ms: Optional[float] = None
    dataset: Optional[str] = None
    setup: Optional[str] = None
    notes: Optional[str] = None
    precision_note: Optional[str] = None
    carried_from: Optional[str] = None

    @property
    def is_capacity_figure(self) -> bool:
        """A single-request figure measures latency, not what a replica can carry."""
        return self.concurrency != 1

    @property
    def prompt_tok_s_per_gpu(self) -> Optional[float]:
        """Prompt tokens per second per GPU the benchmark processed alongside its output, when it states both lengths:
        every request brought `input_len` prompt tokens for its `output_len` output tokens."""
        if not (self.input_len and self.output_len):
            return None
        return self.output_tok_s_per_gpu * self.input_len / self.output_len


class Prefill(_Sourced):
    """Prompt (prefill) tokens per second per GPU for one model class on one GPU at the planner's precision.

    Prefill is compute-bound, so where no measurement is at hand the row is derived from the GPU's dense tensor
    FLOPS and the model's 2 x active parameters FLOPs per prompt token at a stated MFU (`estimate: true`)."""

    model_class: str
    gpu: str
    precision: str
    prompt_tok_s_per_gpu: float = Field(gt=0)


class PrefillTable(_Strict):
    mfu: float = Field(gt=0, le=1, description="model FLOPs utilisation assumed for derived rows")
    mfu_basis: str
    rows: list[Prefill]


class Staffing(_Strict):
    fte_annual_cost_usd: float = Field(gt=0)
    fte_annual_cost_source: str
    fte_by_tier: dict[Literal["api", "managed", "self-hosted", "gateway"], dict[Capacity, float]]
    fte_by_tier_source: str

    def fte(self, tier: str, capacity: str) -> float:
        return self.fte_by_tier[tier][capacity]

    @property
    def fte_monthly_usd(self) -> float:
        return self.fte_annual_cost_usd / 12


class FrontDoorRates(_Strict):
    """List prices of the stack's front door (us-east-1 / Tier 1 regions), which every tier has and the cost model
    does not count: the decision report states them beside the totals."""
    aws_private_ca_monthly_usd: float = Field(gt=0)
    aws_private_ca_source: str
    aws_alb_hourly_usd: float = Field(gt=0)
    aws_alb_lcu_hourly_usd: float = Field(gt=0)
    aws_alb_source: str
    aws_fargate_vcpu_hourly_usd: float = Field(gt=0)
    aws_fargate_gb_hourly_usd: float = Field(gt=0)
    aws_fargate_source: str
    gcp_cloud_run_vcpu_second_usd: float = Field(gt=0)
    gcp_cloud_run_gib_second_usd: float = Field(gt=0)
    gcp_cloud_run_source: str
    gcp_forwarding_rule_hourly_usd: float = Field(gt=0)
    gcp_forwarding_rule_source: str


class Serving(_Strict):
    target_utilization: float = Field(gt=0, le=1)
    target_utilization_source: str
    gpu_memory_utilization: float = Field(gt=0, le=1)
    gpu_memory_utilization_source: str
    activation_reserve_gb_per_gpu: float = Field(ge=0)
    activation_reserve_basis: str
    weights_download_mb_s: float = Field(gt=0)
    weights_load_mb_s: float = Field(gt=0)
    engine_warmup_seconds: int = Field(ge=0)
    startup_basis: str
    image_cache_gb: int = Field(gt=0)
    image_cache_basis: str
    # Before a replica's startup budget starts: a GPU node comes up and the serving image is pulled (rollout waits).
    gpu_node_provisioning_seconds: int = Field(default=600, gt=0)
    serving_image_gb: float = Field(default=20.0, gt=0)
    image_pull_mb_s: float = Field(default=100.0, gt=0)
    rollout_basis: str = "kit assumptions; see the kit's catalog"

    @property
    def image_pull_seconds(self) -> int:
        """Pulling the serving image onto a new node, doubled like the startup budgets."""
        return 2 * math.ceil(self.serving_image_gb * 1000 / self.image_pull_mb_s)
    kv_cache_sequences: int = Field(gt=0)
    kv_cache_sequences_basis: str
    hours_per_month: float = Field(gt=0)
    hours_per_month_source: str


class Latency(_Strict):
    api_min_reliable_ttft_ms: int = Field(gt=0)
    api_min_reliable_ttft_ms_source: str
    managed_min_reliable_ttft_ms: int = Field(gt=0)
    managed_min_reliable_ttft_ms_source: str


class Availability(_Strict):
    failover_floor_target_percent: float
    failover_floor_basis: str
    spare_replica_target_percent: float
    spare_replica_basis: str


class Shape(_Strict):
    gpu: str
    gpu_count: int = Field(gt=0)
    vcpus: int = Field(gt=0)
    memory_gib: int = Field(gt=0)


class InstanceShapes(_Strict):
    source: str
    aws: dict[str, Shape]
    gcp: dict[str, Shape]

    def for_cloud(self, cloud: str) -> dict[str, Shape]:
        return getattr(self, cloud)


class SourceNote(_Strict):
    source: str
    note: str


class Catalog(_Strict):
    as_of: str
    api_providers: dict[str, ApiProvider]
    api_models: list[ApiModel]
    models: dict[str, ModelClass]
    gpus: dict[str, Gpu]
    instances: list[Instance]
    instance_shapes: InstanceShapes
    throughput: list[Throughput]
    region_prices: list[RegionPriceTable] = []
    managed_estimates: list[ManagedEstimate] = []
    prefill: Optional[PrefillTable] = None
    staffing: Staffing
    serving: Serving
    latency: Latency
    availability: Availability
    front_door: Optional[FrontDoorRates] = None
    source_notes: list[SourceNote] = []
    gaps: list[str] = []

    @model_validator(mode="after")
    def _references_resolve(self):
        for i, m in enumerate(self.api_models):
            if m.provider not in self.api_providers:
                raise ValueError(f"api_models[{i}].provider {m.provider!r} is not in api_providers "
                                 f"({', '.join(sorted(self.api_providers))})")
        for i, row in enumerate(self.instances):
            if row.gpu not in self.gpus:
                raise ValueError(f"instances[{i}].gpu {row.gpu!r} is not in gpus ({', '.join(sorted(self.gpus))})")
        for cloud in ("aws", "gcp"):
            for name, shape in self.instance_shapes.for_cloud(cloud).items():
                if shape.gpu not in self.gpus:
                    raise ValueError(f"instance_shapes.{cloud}.{name}.gpu {shape.gpu!r} is not in gpus ({', '.join(sorted(self.gpus))})")
        for i, row in enumerate(self.throughput):
            if row.gpu not in self.gpus:
                raise ValueError(f"throughput[{i}].gpu {row.gpu!r} is not in gpus ({', '.join(sorted(self.gpus))})")
        for i, row in enumerate(self.prefill.rows if self.prefill else []):
            if row.gpu not in self.gpus or row.model_class not in self.models:
                raise ValueError(f"prefill.rows[{i}]: {row.model_class!r} on {row.gpu!r} needs a model class in models and a GPU in gpus")
        # The compact tables and the managed estimates become ordinary rows after the listed ones (which win).
        object.__setattr__(self, "instances", self.instances + self._region_rows())
        object.__setattr__(self, "instances", self.instances + self._managed_rows())
        return self

    def _region_rows(self) -> list[Instance]:
        regions = load_regions()
        have = {(i.cloud, i.service, i.instance_type, i.region) for i in self.instances}
        rows: list[Instance] = []
        for n, table in enumerate(self.region_prices):
            shapes = self.instance_shapes.for_cloud(table.cloud)
            known = regions.for_cloud(table.cloud).regions
            for itype, prices in table.prices.items():
                if itype not in shapes:
                    raise ValueError(f"region_prices[{n}].prices.{itype}: not an instance type in instance_shapes.{table.cloud}")
                for region, (od, spot) in prices.items():
                    if region not in known:
                        raise ValueError(f"region_prices[{n}].prices.{itype}.{region}: not a {table.cloud} region in regions.yaml")
                    key = (table.cloud, "compute", itype, region)
                    if key in have:
                        continue
                    have.add(key)
                    shape = shapes[itype]
                    rows.append(Instance(cloud=table.cloud, instance_type=itype, service="compute", gpu=shape.gpu,
                                         gpu_count=shape.gpu_count, region=region, on_demand_hourly=od, spot_hourly=spot,
                                         source=table.source, estimate=table.estimate, basis=table.basis,
                                         source_date=table.source_date, price_basis=table.price_basis,
                                         notes=f"from region_prices[{n}]; spot: {table.spot_basis}"))
        return rows

    def _managed_rows(self) -> list[Instance]:
        have = {(i.cloud, i.service, i.instance_type, i.region) for i in self.instances}
        rows: list[Instance] = []
        for n, rule in enumerate(self.managed_estimates):
            templates: dict[str, Instance] = {}
            for i in self.instances:
                if i.cloud == rule.cloud and i.service == rule.service and (rule.premium or i.premium_over_ec2):
                    if i.instance_type not in templates or (templates[i.instance_type].estimate and not i.estimate):
                        templates[i.instance_type] = i
            if not templates:
                raise ValueError(f"managed_estimates[{n}]: no {rule.service} row with a premium to derive from")
            for mtype, t in templates.items():
                twin = t.ec2_twin or t.instance_type
                premium = rule.premium or t.premium_over_ec2
                why = f"x {premium:g}" + (f" ({t.premium_basis})" if not rule.premium and t.premium_basis else "")
                for c in self.instances:
                    key = (rule.cloud, rule.service, mtype, c.region)
                    if c.cloud != rule.cloud or c.service != "compute" or c.instance_type != twin or key in have:
                        continue
                    have.add(key)
                    price = c.source if not c.estimate else f"itself an estimate: {c.basis}"
                    rows.append(Instance(cloud=rule.cloud, instance_type=mtype, service=rule.service, gpu=c.gpu,
                                         gpu_count=c.gpu_count, region=c.region, on_demand_hourly=round(c.on_demand_hourly * premium, 4),
                                         estimate=True, source="derived (see basis)", ec2_twin=t.ec2_twin, premium_over_ec2=premium,
                                         basis=f"{rule.basis}: compute {twin} in {c.region} {c.on_demand_hourly:g} ({price}) {why}"))
        return rows

    def instances_in(self, cloud: str, region: str, service: str) -> list[Instance]:
        return [i for i in self.instances if i.cloud == cloud and i.region == region and i.service == service]

    def throughput_for(self, model_class: str, gpu: str) -> list[Throughput]:
        return [t for t in self.throughput if t.model_class == model_class and t.gpu == gpu and t.is_capacity_figure]

    def prefill_for(self, model_class: str, gpu: str) -> Optional[Prefill]:
        rows = self.prefill.rows if self.prefill else []
        return next((r for r in rows if r.model_class == model_class and r.gpu == gpu), None)


class Regions(_Strict):
    zone_suffixes: list[str]
    regions: dict[str, str]


class RegionTable(_Strict):
    aws: Regions
    gcp: Regions

    def for_cloud(self, cloud: str) -> Regions:
        return getattr(self, cloud)

    def jurisdiction(self, cloud: str, region: str) -> str:
        return self.for_cloud(cloud).regions[region]

    def zones(self, cloud: str, region: str) -> list[str]:
        sep = "" if cloud == "aws" else "-"
        return [f"{region}{sep}{s}" for s in self.for_cloud(cloud).zone_suffixes]


_CATALOGS: dict[tuple[str, float], Catalog] = {}


def load_catalog(path: Path | None = None) -> Catalog:
    """The validated catalog; parsed once per file version (the planner and the stack checks both read it)."""
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        key = (str(path.resolve()), path.stat().st_mtime) if path.is_file() else None
    except (OSError, ValueError):
        key = None  # read_yaml below names what is wrong with the path
    if key in _CATALOGS:
        return _CATALOGS[key]
    data = read_yaml(path, "catalog")
    if not isinstance(data, dict):
        raise refuse(path, "", "a catalog is a YAML mapping with api_models, gpus, instances, throughput, ...")
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(path, exc, Catalog) from None
    if key:
        _CATALOGS[key] = catalog
    return catalog


_REGIONS: RegionTable | None = None


def load_regions() -> RegionTable:
    global _REGIONS
    if _REGIONS is None:
        data = read_yaml(REGIONS_FILE, "regions")
        try:
            _REGIONS = RegionTable.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(REGIONS_FILE, exc, RegionTable) from None
    return _REGIONS
