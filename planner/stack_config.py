"""The stack configuration contract between `llmhost plan` (writer) and `__main__.py` (reader).

Both sides go through `load_stack_config`, so a hand-edited `stacks/Pulumi.<stack>.yaml` is held to the same
rules as a generated one: unknown keys, a region outside the residency list, or a contradiction (regulated
data routed to a third-party API, an air-gapped stack with an API tier) are refused before anything is built.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .catalog import load_regions
from .errors import InputError, from_validation_error, refuse
from .profile import BOUNDARY_SENSITIVITIES, Regulation, Sensitivity, endpoint_problem, licence_refusal

PROJECT = "llm-hosting"
Tier = Literal["api", "managed", "self-hosted", "hybrid"]
Pattern = Literal["burst-overflow", "tiered-by-sensitivity", "tiered-by-complexity"]
Network = Literal["public", "private", "airgapped"]
PROVIDER_REGION_KEY = {"aws": "aws:region", "gcp": "gcp:region"}
GATEWAY_MASTER_KEY = "gatewayMasterKey"  # the operators' key to the gateway (admin routes, the metrics scrape)
GATEWAY_TIERS = ("api", "managed", "self-hosted", "hybrid")  # every tier serves through the gateway


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              alias_generator=lambda s: s.split("_")[0] + "".join(w.title() for w in s.split("_")[1:]))


class ResidencyConfig(_Camel):
    allowed_regions: list[str] = Field(min_length=1)
    classification: Sensitivity
    regulations: list[Regulation] = []


class ModelConfig(_Camel):
    id: str = Field(min_length=1)
    size_class: str
    fine_tuned: bool = False
    max_context_tokens: int = Field(default=8192, gt=0)
    kv_cache_tokens: Optional[int] = Field(default=None, gt=0, description="KV-cache budget per replica; default max_context_tokens")
    weights_uri: Optional[str] = Field(default=None, pattern=r"^(s3|gs)://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/.*)?$")
    # Left out (None) unless the profile accepts the licence, so stacks of ungated models stay as they were.
    accept_eula: Optional[bool] = Field(default=None, description="the model's licence is accepted (profile model.accept_eula)")
    hugging_face_token_config: Optional[str] = Field(
        default=None, pattern=r"^[a-z][A-Za-z0-9]*$",
        description="Vertex AI: name of the secret config key holding a Hugging Face read token (default: Google's cached copy)")

    @property
    def kv_tokens(self) -> int:
        return self.kv_cache_tokens or self.max_context_tokens


# The address plan the network components build (components/aws_network.py and components/gcp_network.py check it
# again when they build); held here so a hand-edited range is refused against its stack key before anything is built.
AWS_VPC_PREFIXES = (16, 28)  # AWS accepts VPC blocks from /16 to /28
AWS_PRIVATE_MAX_PREFIX = 24  # private subnets hold nodes and, with the VPC CNI, one address per pod
AWS_PUBLIC_MAX_PREFIX = 27  # a load balancer's subnet is a /27 or larger with 8 free addresses
GCP_RANGE_PREFIXES = (8, 29)  # GCP subnet ranges, primary and secondary
# Ranges GCP rejects for subnets, or that would shadow the Google API VIPs the private variants route to.
GCP_RESERVED_RANGES = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "199.36.153.4/30", "199.36.153.8/30")
GCP_DEFAULT_PODS_CIDR = "10.16.0.0/14"
GCP_DEFAULT_SERVICES_CIDR = "10.20.0.0/20"
# Subnets every GCP stack (proxy-only, for the internal load balancer) or a private Vertex AI stack (Private Service
# Connect) adds next to the vpc ranges, at fixed addresses.
GCP_PROXY_ONLY_CIDR = "10.26.0.0/23"
GCP_PSC_CIDR = "10.24.0.0/28"


def _ipv4(key: str, value: str, example: str) -> ipaddress.IPv4Network:
    """`value` as an IPv4 network, or the refusal naming `key`."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError) as exc:
        raise _Field(key, f"{value!r} is not an IPv4 network in CIDR notation, e.g. {example} ({exc})") from None
    if net.version != 4:
        raise _Field(key, f"{value!r} is IPv6; give an IPv4 block, e.g. {example}")
    return net


def aws_subnet_problem(cidr: ipaddress.IPv4Network, az_count: int, need_public: bool) -> Optional[str]:
    """Why the VPC block cannot be carved into the network's subnets (one private block per zone, the public subnets
    cut from the last block; at least 8 blocks), or None: components/aws_network.py `plan_subnets` carves it so."""
    block_bits = max(3, az_count.bit_length())
    private_prefix = cidr.prefixlen + block_bits
    public_prefix = private_prefix + max(5, az_count.bit_length())
    problems = []
    if private_prefix > AWS_PRIVATE_MAX_PREFIX:
        problems.append(f"its {az_count} private subnets would be /{private_prefix} (need /{AWS_PRIVATE_MAX_PREFIX} or "
                        "larger: nodes and pods each take an address)")
    if need_public and public_prefix > AWS_PUBLIC_MAX_PREFIX:
        size = f"/{public_prefix}" if public_prefix <= 32 else "smaller than one address"
        problems.append(f"its {az_count} public subnets would be {size} (need /{AWS_PUBLIC_MAX_PREFIX} or larger for "
                        "NAT gateways and load balancers)")
    if not problems:
        return None
    smallest = AWS_PRIVATE_MAX_PREFIX - block_bits
    if need_public:
        smallest = min(smallest, AWS_PUBLIC_MAX_PREFIX - (public_prefix - cidr.prefixlen))
    return (f"{cidr} is too small for {az_count} availability zones: {'; '.join(problems)}; use a /{smallest} or "
            "larger block, e.g. 10.0.0.0/16")


class VpcConfig(_Camel):
    cidr: str = "10.0.0.0/16"  # AWS: the VPC; GCP: the subnet's primary range (nodes)
    az_count: int = Field(default=3, ge=3, le=6)  # zones the subnets (AWS) or node pools (GCP) span
    pods_cidr: Optional[str] = Field(default=None, description="GCP: secondary range for pods (default 10.16.0.0/14)")
    services_cidr: Optional[str] = Field(default=None, description="GCP: secondary range for services (default 10.20.0.0/20)")
    access_policy_id: Optional[str] = Field(default=None, pattern=r"^[0-9]+$",
                                            description="GCP: VPC Service Controls access policy; a perimeter is created")
    zones: list[str] = Field(default_factory=list, description="GCP: node-pool zones (default: the region's first azCount)")


class ApiConfig(_Camel):
    provider: str
    model: str
    base_url: str = Field(pattern=r"^https://")
    api_key_config: str = Field(pattern=r"^[a-z][A-Za-z0-9]*$", description="name of the secret config key holding the provider key")
    replica_regions: list[str] = []
    consumer_role_name: Optional[str] = Field(default=None, description="AWS: IAM role to attach the read-only policy to")
    consumer_member: Optional[str] = Field(default=None, description="GCP: IAM member granted secretAccessor, e.g. serviceAccount:app@p.iam.gserviceaccount.com")


class GpuFleetConfig(_Camel):
    instance_type: str
    gpu: str
    gpus_per_replica: int = Field(gt=0, description="tensor-parallel degree; managed: the instance type's GPU count")
    precision: Literal["fp16", "fp8"] = Field(description="weights and KV cache as the engine runs them; the fit is checked at it")
    min_replicas: int = Field(gt=0)
    max_replicas: int = Field(gt=0)
    on_demand_replicas: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"maxReplicas ({self.max_replicas}) is below minReplicas ({self.min_replicas})")
        return self


class ManagedConfig(GpuFleetConfig):
    service: Literal["sagemaker", "vertex"]
    startup_timeout_seconds: int = Field(default=1800, gt=0)
    download_timeout_seconds: int = Field(default=1800, gt=0)
    target_invocations_per_instance: float = Field(default=60.0, gt=0, description="per minute, for target tracking")
    target_concurrent_requests: Optional[float] = Field(
        default=None, gt=0, description="requests one instance carries at once at the planned utilisation (Little's law: "
                                        "planned requests/s x mean request duration); SageMaker target tracking holds the "
                                        "high-resolution concurrency metric near it")
    allow_single_instance: bool = Field(default=False, description="opt out of the two-instance failover floor")


class SelfHostedConfig(GpuFleetConfig):
    cluster: Literal["eks", "gke"]
    engine: Literal["vllm", "tgi"] = "vllm"
    spot_replicas: int = Field(default=0, ge=0)
    spot_instance_types: list[str] = Field(default_factory=list, description="same GPU class; empty = no spot node group")
    system_instance_type: Optional[str] = None
    root_volume_gb: int = Field(default=200, ge=50)
    startup_timeout_seconds: int = Field(default=1800, gt=0)
    public_access_cidrs: list[str] = Field(default_factory=list, description="public variant only: who may reach the API server")
    control_plane_dns_endpoint: bool = Field(
        default=False, description="GKE, network private: also serve the Kubernetes API on GKE's DNS-based endpoint, "
                                   "reachable from outside the VPC with Google IAM credentials only (to deploy from a "
                                   "runner outside the VPC)")
    admin_role_arns: list[str] = Field(default_factory=list, description="IAM roles given cluster-admin through access entries")
    model_volume_claim: Optional[str] = Field(default=None, description="a pre-filled PersistentVolumeClaim holding the weights")


def unbuilt_refusal(tier: str, boundary_tier: Optional[str]) -> Optional[tuple[str, str]]:
    """Why `__main__.py` would refuse to build this tier (the stack key and the message), or None when it builds it.

    The one statement of what the program builds beyond what `StackConfig` validates: the planner drops candidates it
    names (so `llmhost plan` never writes a stack that `pulumi up` refuses) and the program refuses stacks it names.
    Every tier and boundary tier is built now: the gateway runs in the cluster of a self-hosted tier, and on ECS on
    Fargate or Cloud Run where there is no cluster (API and managed tiers, hybrids on a managed endpoint).
    """
    return None


class GeneratedBy(_Camel):
    tool: Literal["llmhost"]
    profile: str
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class ConsumerConfig(_Camel):
    """One application that calls the gateway: its own key (generated, stored in the cloud's secret store, readable by
    its role or member only) and its own limits, enforced by the gateway per consumer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$", description="DNS-label name; names its key's secret")
    requests_per_minute: int = Field(gt=0, description="the gateway answers 429 above this")
    tokens_per_minute: int = Field(gt=0, description="prompt + completion tokens per minute before 429")
    role_name: Optional[str] = Field(default=None, description="AWS: IAM role given read access to the key's secret")
    member: Optional[str] = Field(default=None, description="GCP: IAM member given secretAccessor on the key's secret")
    rotation: int = Field(default=1, ge=1, description="raise by one to rotate this consumer's key (and only its key)")


class EndpointConfig(_Camel):
    """Where the stack's endpoint is served: in the VPC (default) or, opted into, on the internet under the team's
    own domain (see planner.profile.EndpointSpec)."""

    audience: Literal["vpc", "internet"] = "vpc"
    domain: Optional[str] = None
    public_zone: Optional[str] = None
    allowed_cidrs: list[str] = Field(default_factory=list)
    certificate_authority_arn: Optional[str] = None

    @model_validator(mode="after")
    def _shape(self):
        problem = endpoint_problem(self.audience, self.domain, self.public_zone, self.allowed_cidrs,
                                   self.certificate_authority_arn,
                                   {"domain": "endpoint.domain", "public_zone": "endpoint.publicZone",
                                    "allowed_cidrs": "endpoint.allowedCidrs",
                                    "certificate_authority_arn": "endpoint.certificateAuthorityArn"})
        if problem:
            raise _Field(*problem)
        return self


class ObservabilityConfig(_Camel):
    """What the stack's alerts and logs are held to: the profile's latency SLA and how long logs are kept."""

    ttft_p95_ms: int = Field(gt=0, description="p95 time to first token the users need (the profile's latency_sla_ms); "
                                               "the TTFT alert fires above it")
    log_retention_days: int = Field(default=30, description="how long workload and endpoint logs are kept, in-region")

    @model_validator(mode="after")
    def _retention_the_clouds_offer(self):
        # CloudWatch Logs takes only these values; a Cloud Logging bucket takes 1..3650 days, so the kit keeps to both.
        if self.log_retention_days not in CLOUDWATCH_RETENTION_DAYS:
            raise _Field("observability.logRetentionDays", f"{self.log_retention_days} is not a retention CloudWatch Logs "
                                                           f"offers; use one of {', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))}")
        return self


BUDGET_ALERT_PERCENTS = (80, 100, 120)  # of the planned cloud spend: approaching, at, and past the plan


class DriftConfig(_Camel):
    """The planner's thresholds as daily token rates (prompt + completion, all routes): what the drift alerts watch.

    The band [lowerDailyTokens, upperDailyTokens] is the range of today's daily traffic over which the planner makes the
    same decision (tier and pattern); outside it the answer changes, in the report's own words (`upperReason`,
    `lowerReason`). `dailyTokensNow` and `growthMonthlyPercent` are the profile's assumption, which the growth alert
    holds the observed month-over-month growth to."""

    daily_tokens_now: int = Field(ge=0, description="the profile's traffic today, tokens per day")
    daily_tokens_projected: int = Field(ge=0, description="at the horizon, tokens per day (what the fleet is sized for)")
    growth_monthly_percent: float = Field(ge=0, description="the profile's growth assumption")
    upper_daily_tokens: Optional[int] = Field(default=None, gt=0, description="above: the decision changes (None: not within the search)")
    upper_reason: Optional[str] = None
    lower_daily_tokens: Optional[int] = Field(default=None, gt=0, description="below: the decision changes (None: it holds down to zero)")
    lower_reason: Optional[str] = None
    crossover_daily_tokens: Optional[int] = Field(
        default=None, gt=0, description="the crossover against the best API, as a daily volume (None: no crossover)")
    crossover_direction: Optional[Literal["above", "below"]] = Field(
        default=None, description="above: an API stack is past it when traffic rises above it (a GPU tier would cost "
                                  "less); below: a GPU stack is past it when traffic falls below it (the API would)")
    crossover_reason: Optional[str] = None

    @model_validator(mode="after")
    def _band(self):
        if self.upper_daily_tokens is not None and self.lower_daily_tokens is not None \
                and self.lower_daily_tokens >= self.upper_daily_tokens:
            raise _Field("spend.drift.lowerDailyTokens", f"{self.lower_daily_tokens} must be below "
                                                         f"spend.drift.upperDailyTokens ({self.upper_daily_tokens})")
        if (self.crossover_daily_tokens is None) != (self.crossover_direction is None) or \
                (self.crossover_daily_tokens is not None and not self.crossover_reason):
            raise _Field("spend.drift.crossoverDailyTokens", "comes with spend.drift.crossoverDirection (above or below) "
                                                             "and spend.drift.crossoverReason")
        for bound, reason in (("upper", self.upper_reason), ("lower", self.lower_reason)):
            if getattr(self, f"{bound}_daily_tokens") is not None and not reason:
                raise _Field(f"spend.drift.{bound}Reason", f"says what changes past spend.drift.{bound}DailyTokens")
        return self


class SpendConfig(_Camel):
    """What the plan said the stack costs, and the guardrails sized from it (written by `llmhost plan`).

    - `cloudMonthlyUsd` is what the cloud bills for the stack's own resources (GPUs and the front door at list prices):
      the budget's amount, alerting at 80/100/120 % to the stack's notification topic.
    - `apiRequestsPerMinute` / `apiTokensPerMinute` cap the gateway's routes to third-party APIs (the whole gateway;
      each replica admits its share): the planned API share of the peak with `apiHeadroom`.
    - `billingAccount` (GCP): the Cloud Billing account the budget is created on."""

    planned_monthly_usd: float = Field(ge=0, description="all-in: cloud + API + staffing, as the report's total")
    cloud_monthly_usd: float = Field(gt=0, description="the budget's amount: what the cloud bills for the stack")
    api_monthly_usd: float = Field(default=0.0, ge=0, description="planned third-party API spend (the provider bills it)")
    staffing_monthly_usd: float = Field(default=0.0, ge=0, description="people: in the plan, on no bill")
    api_requests_per_minute: Optional[int] = Field(default=None, gt=0, description="cap on the third-party routes")
    api_tokens_per_minute: Optional[int] = Field(default=None, gt=0, description="cap on the third-party routes")
    api_headroom: Optional[float] = Field(default=None, ge=1, description="the caps over the planned API peak")
    billing_account: Optional[str] = Field(default=None, pattern=r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$",
                                           description="GCP: the Cloud Billing account id the budget is created on")
    activate_cost_allocation_tag: bool = Field(
        default=True, description="AWS: the stack activates its cost-allocation tag; false in an Organizations member "
                                  "account, where only the management account can (the profile's "
                                  "aws_activate_cost_allocation_tag)")
    revisit: Optional[str] = Field(default=None, description="when the report says to revisit the decision")
    drift: DriftConfig


CLOUDWATCH_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                             2922, 3288, 3653)


class StackConfig(_Camel):
    """Everything under the `llm-hosting:` namespace, plus the provider region."""

    tier: Tier
    cloud: Literal["aws", "gcp"]
    network: Network
    region: str = Field(description="the provider's region (aws:region / gcp:region)")
    gcp_project: Optional[str] = Field(default=None, description="gcp:project, when set")
    pattern: Optional[Pattern] = None
    residency: ResidencyConfig
    model: Optional[ModelConfig] = None
    api: Optional[ApiConfig] = None
    managed: Optional[ManagedConfig] = None
    self_hosted: Optional[SelfHostedConfig] = None
    consumers: list[ConsumerConfig] = Field(
        default_factory=list, description="who calls the gateway, each with its own key and limits: required on every tier")
    observability: Optional[ObservabilityConfig] = Field(
        default=None, description="alert thresholds and log retention; required where the stack runs a model")
    protect: bool = Field(default=True, description="protect stateful resources (keys, secrets, clusters) from deletion")
    registry: Optional[str] = Field(default=None, description="in-region private registry the images are mirrored to")
    vpc: VpcConfig = Field(default_factory=VpcConfig)
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig, description="where the endpoint is served (vpc or internet)")
    versions: dict[str, str] = Field(default_factory=dict, description="overrides of components/versions.py")
    catalog: Optional[str] = Field(default=None, description="the catalog the stack was planned with, if not the kit's own")
    spend: Optional[SpendConfig] = Field(default=None, description="the plan's cost and the guardrails sized from it")
    generated_by: Optional[GeneratedBy] = None

    @model_validator(mode="after")
    def _coherent(self):
        regions = load_regions().for_cloud(self.cloud).regions
        allowed = self.residency.allowed_regions
        for i, r in enumerate(allowed):
            if r not in regions:
                raise _Field(f"residency.allowedRegions[{i}]", f"{r!r} is not a region of {self.cloud}")
        if self.region not in allowed:
            raise _Field(PROVIDER_REGION_KEY[self.cloud],
                         f"{self.region!r} is outside residency.allowedRegions ({', '.join(allowed)})")
        needs = {"api": ["api"], "managed": ["managed"], "self-hosted": ["self_hosted"], "hybrid": ["api"]}[self.tier]
        for section in needs:
            if getattr(self, section) is None:
                raise _Field(_alias(section), f"is required for tier {self.tier}")
        if self.tier == "hybrid":
            if self.pattern is None:
                raise _Field("pattern", "a hybrid stack names its pattern: burst-overflow, tiered-by-sensitivity or tiered-by-complexity")
            if self.managed is None and self.self_hosted is None:
                raise _Field("tier", "a hybrid stack needs a managed or selfHosted section besides api")
        elif self.pattern is not None:
            raise _Field("pattern", f"only hybrid stacks have a pattern (tier is {self.tier})")
        if self.tier in ("managed", "self-hosted", "hybrid") and self.model is None:
            raise _Field("model", f"is required for tier {self.tier} (the open-weight model to serve)")
        names = [c.name for c in self.consumers]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise _Field(f"consumers[{i}].name", f"{n!r} is listed twice; each consumer has one key")
        for i, c in enumerate(self.consumers):
            if c.role_name and self.cloud != "aws":
                raise _Field(f"consumers[{i}].roleName", "is for AWS stacks; on GCP use member")
            if c.member and self.cloud != "gcp":
                raise _Field(f"consumers[{i}].member", "is for GCP stacks; on AWS use roleName")
        if self.tier in GATEWAY_TIERS and not self.consumers:
            raise _Field("consumers", f"a {self.tier} stack serves through its gateway, which admits only named consumers; "
                                      "list at least one (name, requestsPerMinute, tokensPerMinute)")
        if self.tier in ("managed", "self-hosted", "hybrid") and self.observability is None:
            raise _Field("observability", f"is required for tier {self.tier}: observability.ttftP95Ms (the latency SLA "
                                          "the alerts hold the model to)")
        if self.spend is not None:
            if not self.spend.activate_cost_allocation_tag and self.cloud != "aws":
                raise _Field("spend.activateCostAllocationTag", "is for AWS stacks (a GCP budget filters on labels)")
            if self.spend.billing_account and self.cloud != "gcp":
                raise _Field("spend.billingAccount", "is for GCP stacks (a Cloud Billing account); AWS budgets live in the account")
            capped = self.spend.api_requests_per_minute is not None or self.spend.api_tokens_per_minute is not None
            if self.api is None and capped:
                raise _Field("spend.apiRequestsPerMinute", "caps a route to a third-party API, and this stack has no api section")
            if self.api is not None and (self.spend.api_requests_per_minute is None or self.spend.api_tokens_per_minute is None):
                raise _Field("spend.apiRequestsPerMinute", "a stack that sends traffic to a third-party API caps it: set "
                                                           "spend.apiRequestsPerMinute and spend.apiTokensPerMinute")
        # Contradictions, refused with the reason.
        if self.api is not None and self.network == "airgapped":
            raise _Field("api", "an air-gapped stack has no route to a third-party API; remove the api section or choose network private")
        if self.api is not None and self.residency.classification in BOUNDARY_SENSITIVITIES:
            if not (self.tier == "hybrid" and self.pattern == "tiered-by-sensitivity"):
                raise _Field("api", f"{self.residency.classification} data may not be sent to a third-party API; only a "
                                    "tiered-by-sensitivity hybrid, whose gateway keeps that traffic in the boundary, may have an api section")
        if self.residency.classification in BOUNDARY_SENSITIVITIES and self.network == "public":
            raise _Field("network", f"{self.residency.classification} data needs network private or airgapped")
        if self.api is not None:
            for i, r in enumerate(self.api.replica_regions):
                if r not in allowed:
                    raise _Field(f"api.replicaRegions[{i}]", f"{r!r} is outside residency.allowedRegions ({', '.join(allowed)})")
                if r == self.region:
                    raise _Field(f"api.replicaRegions[{i}]", f"{r!r} is the primary region; replicas go to other allowed regions")
            if self.cloud == "aws" and self.api.consumer_member:
                raise _Field("api.consumerMember", "is for GCP stacks; on AWS use api.consumerRoleName")
            if self.cloud == "gcp" and self.api.consumer_role_name:
                raise _Field("api.consumerRoleName", "is for AWS stacks; on GCP use api.consumerMember")
        expected = {"aws": ("sagemaker", "eks"), "gcp": ("vertex", "gke")}[self.cloud]
        if self.managed is not None and self.managed.service != expected[0]:
            raise _Field("managed.service", f"{self.managed.service} is not on {self.cloud}; use {expected[0]}")
        if self.self_hosted is not None and self.self_hosted.cluster != expected[1]:
            raise _Field("selfHosted.cluster", f"{self.self_hosted.cluster} is not on {self.cloud}; use {expected[1]}")
        if self.gcp_project and self.cloud != "gcp":
            raise _Field("gcp:project", "is set but the stack's cloud is aws")
        self._check_registry()
        self._check_weights()
        self._check_versions()
        self._check_model_licence()
        self._check_network()
        fleet_key, fleet = ("managed", self.managed) if self.managed else ("selfHosted", self.self_hosted)
        if fleet is not None:
            self._check_replicas(fleet_key, fleet)
            self._check_fleet(fleet_key, fleet)
        if self.model is not None and self.model.weights_uri:
            scheme = {"aws": "s3://", "gcp": "gs://"}[self.cloud]
            if not self.model.weights_uri.startswith(scheme):
                raise _Field("model.weightsUri", f"weights of this {self.cloud} stack come from an in-region {scheme} location")
        if self.cloud == "aws" and (self.vpc.pods_cidr or self.vpc.services_cidr or self.vpc.access_policy_id or self.vpc.zones):
            raise _Field("vpc", "podsCidr, servicesCidr, accessPolicyId and zones are GCP settings; this stack's cloud is aws")
        for i, zone in enumerate(self.vpc.zones):
            region = zone.rsplit("-", 1)[0]
            if region != self.region:
                where = "outside residency.allowedRegions" if region not in allowed else f"not in the stack's region {self.region}"
                raise _Field(f"vpc.zones[{i}]", f"zone {zone!r} is {where} ({', '.join(allowed)}); use zones of {self.region}, "
                                                f"e.g. {', '.join(load_regions().zones(self.cloud, self.region))}")
        # TGI cannot stream weights from a bucket: the model server copies model.weightsUri into the pod's model volume
        # before TGI starts, or mounts selfHosted.modelVolumeClaim. Both at once leave it unclear which copy serves.
        if self.self_hosted is not None and self.self_hosted.engine == "tgi" and self.model is not None \
                and self.model.weights_uri and self.self_hosted.model_volume_claim:
            raise _Field("selfHosted.modelVolumeClaim", "TGI reads its weights from one place: a volume pre-filled with "
                                                        "them, or model.weightsUri copied into the pod; remove one of the two")
        if self.self_hosted is not None and self.self_hosted.public_access_cidrs and self.network != "public":
            raise _Field("selfHosted.publicAccessCidrs", f"the {self.network} network variant keeps the cluster endpoint private; "
                                                         "public access CIDRs apply to network public only")
        if self.self_hosted is not None:
            for i, cidr in enumerate(self.self_hosted.public_access_cidrs):
                key = f"selfHosted.publicAccessCidrs[{i}]"
                if _ipv4(key, cidr, "203.0.113.0/24").prefixlen == 0:
                    raise _Field(key, f"{cidr} opens the cluster's API server to the whole internet; name the CIDRs "
                                      "that deploy to it (e.g. the CI runner's, 203.0.113.0/24)")
        if self.cloud == "gcp" and self.observability is not None and self.observability.log_retention_days > 3650:
            # A Cloud Logging bucket keeps logs 1..3650 days.
            raise _Field("observability.logRetentionDays", f"{self.observability.log_retention_days} is beyond the 3650 "
                                                           "days a Cloud Logging bucket keeps logs; use 3288 or less")
        e = self.endpoint
        if e.audience == "internet":
            if self.network != "public":
                raise _Field("endpoint.audience", f"an internet-facing endpoint needs the public network variant; this "
                                                  f"stack's network is {self.network}")
            if self.residency.classification in BOUNDARY_SENSITIVITIES:
                raise _Field("endpoint.audience", f"{self.residency.classification} data is never served on an "
                                                  "internet-facing load balancer; keep audience vpc")
        if e.certificate_authority_arn:
            if self.cloud != "aws":
                raise _Field("endpoint.certificateAuthorityArn", "is an AWS Private CA; GCP stacks issue from their own "
                                                                 "CA Service pool")
            region = e.certificate_authority_arn.split(":")[3]
            if region != self.region:
                raise _Field("endpoint.certificateAuthorityArn", f"the CA is in {region}; ACM issues only from a CA in "
                                                                 f"the stack's region {self.region}")
        if e.public_zone is not None:
            zone_form = (r"^Z[0-9A-Z]{1,31}$", "a Route 53 hosted zone id, e.g. Z0123456789ABCDEFGHIJ (without /hostedzone/)") \
                if self.cloud == "aws" else (r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", "a Cloud DNS managed zone's name, "
                                             "e.g. example-com (1-63 lower-case letters, digits and '-')")
            if not re.match(zone_form[0], e.public_zone):
                raise _Field("endpoint.publicZone", f"{e.public_zone!r} is not {zone_form[1]}")
        if self.self_hosted is not None and self.self_hosted.control_plane_dns_endpoint:
            if self.self_hosted.cluster != "gke":
                raise _Field("selfHosted.controlPlaneDnsEndpoint", "is GKE's; an EKS cluster is deployed from inside its "
                                                                   "VPC or through publicAccessCidrs on network public")
            if self.network == "airgapped":
                raise _Field("selfHosted.controlPlaneDnsEndpoint", "an air-gapped cluster admits nothing from outside its "
                                                                   "VPC; deploy from a runner inside it")
        return self

    def _check_registry(self) -> None:
        if self.network == "airgapped" and not self.registry:
            example = (f"123456789012.dkr.ecr.{self.region}.amazonaws.com/llm-mirror" if self.cloud == "aws"
                       else f"{self.region}-docker.pkg.dev/PROJECT/llm-mirror")
            raise _Field("registry", f"an air-gapped stack pulls images only from an in-region private registry; set it, e.g. {example}")
        if self.cloud == "gcp" and self.managed is not None and self.model is not None and self.model.weights_uri:
            raise _Field("model.weightsUri", "Vertex AI through pulumi-gcp cannot load weights from a GCS prefix (the Model "
                                             "Garden deployment has no model-artifact or service-account field); leave weightsUri "
                                             "out to serve the model id through Model Garden, or use the self-hosted tier")
        if self.cloud == "gcp" and self.managed is not None and self.network != "public" and not self.registry:
            raise _Field("registry", f"a {self.network} Vertex AI endpoint serves the vLLM image from Artifact Registry in "
                                     f"{self.region}; set it, e.g. {self.region}-docker.pkg.dev/PROJECT/llm-images")
        if self.registry is None:
            return
        if self.cloud == "aws":
            pattern = rf"^\d{{12}}\.dkr\.ecr\.{re.escape(self.region)}\.amazonaws\.com(/[a-z0-9][a-z0-9._/-]*)?$"
            form = f"<account>.dkr.ecr.{self.region}.amazonaws.com/<repository-prefix>"
        else:
            pattern = rf"^{re.escape(self.region)}-docker\.pkg\.dev/[a-z][a-z0-9-]{{4,28}}[a-z0-9]/[a-z0-9][a-z0-9-]*$"
            form = f"{self.region}-docker.pkg.dev/<project>/<repository>"
        if not re.match(pattern, self.registry):
            raise _Field("registry", f"{self.registry!r} is not a private registry in {self.region}; expected {form}"
                                     + (" (an air-gapped stack cannot reach a public registry)" if self.network == "airgapped" else ""))

    def _check_weights(self) -> None:
        """Where the weights come from, as the program needs it (so the planner drops what it would refuse): a
        SageMaker endpoint loads them only from an S3 key prefix, and an air-gapped cluster cannot reach the hub."""
        if self.model is None:
            return
        uri = self.model.weights_uri
        if self.managed is not None and self.managed.service == "sagemaker":
            if uri is None:
                raise _Field("model.weightsUri", "a SageMaker endpoint loads the weights from an in-region S3 prefix (uncompressed); "
                                                 "set it, e.g. s3://BUCKET/llama-3.1-70b-instruct/")
            if not uri.endswith("/"):
                raise _Field("model.weightsUri", f"{uri!r} must end with '/': SageMaker reads a key prefix (e.g. {uri}/)")
        if self.network == "airgapped" and self.self_hosted is not None and uri is None \
                and not self.self_hosted.model_volume_claim:
            raise _Field("model.weightsUri", f"an air-gapped cluster cannot download {self.model.id} from the hub; set it to "
                                             "the s3:// or gs:// prefix the weights were copied to (or give "
                                             "selfHosted.modelVolumeClaim, a volume pre-filled with them)")

    def _check_model_licence(self) -> None:
        if self.model is None:
            return
        vertex = self.managed is not None and self.managed.service == "vertex"
        if vertex and not self.model.accept_eula:
            problem = licence_refusal(self.model.id, "model.acceptEula")
            if problem:
                raise _Field("model.acceptEula", problem + " (in the profile: model.accept_eula: true, then re-plan)")
        if self.model.hugging_face_token_config and not vertex:
            raise _Field("model.huggingFaceTokenConfig", "only a Vertex AI endpoint reads a Hugging Face token (Model "
                                                         "Garden's download); remove it from this stack")

    def _check_network(self) -> None:
        """The address plan the network component carves: valid IPv4 blocks the cloud accepts, large enough for the
        zones, and (GCP) ranges that do not overlap each other, Google's reserved ranges or the kit's own subnets."""
        vpc = self.vpc
        if self.cloud == "aws":
            cidr = _ipv4("vpc.cidr", vpc.cidr, "10.0.0.0/16")
            low, high = AWS_VPC_PREFIXES
            if not low <= cidr.prefixlen <= high:
                raise _Field("vpc.cidr", f"{vpc.cidr}: AWS takes VPC blocks from /{low} to /{high}, e.g. 10.0.0.0/16")
            problem = aws_subnet_problem(cidr, vpc.az_count, need_public=self.network != "airgapped")
            if problem:
                raise _Field("vpc.cidr", problem)
            return
        ranges = {"vpc.cidr": (vpc.cidr, "10.0.0.0/16"),
                  "vpc.podsCidr": (vpc.pods_cidr or GCP_DEFAULT_PODS_CIDR, GCP_DEFAULT_PODS_CIDR),
                  "vpc.servicesCidr": (vpc.services_cidr or GCP_DEFAULT_SERVICES_CIDR, GCP_DEFAULT_SERVICES_CIDR)}
        nets: dict[str, ipaddress.IPv4Network] = {}
        low, high = GCP_RANGE_PREFIXES
        for key, (value, example) in ranges.items():
            net = nets[key] = _ipv4(key, value, example)
            if not low <= net.prefixlen <= high:
                raise _Field(key, f"{value}: GCP takes subnet ranges from /{low} to /{high}")
            for reserved in GCP_RESERVED_RANGES:
                if net.overlaps(ipaddress.ip_network(reserved)):
                    raise _Field(key, f"{value} overlaps {reserved}, which GCP reserves or uses for the Google APIs")
        fixed = {"the proxy-only subnet": GCP_PROXY_ONLY_CIDR}
        if self.managed is not None and self.network != "public":
            fixed["the Private Service Connect subnet"] = GCP_PSC_CIDR
        written = {"vpc.cidr": True, "vpc.podsCidr": vpc.pods_cidr is not None,
                   "vpc.servicesCidr": vpc.services_cidr is not None}
        keys = list(nets)
        for i, key in enumerate(keys):
            for other in keys[i + 1:]:
                if nets[key].overlaps(nets[other]):
                    # Named on the range the stack file sets (the later one when it sets both).
                    named, against = (other, key) if written[other] else (key, other)
                    default = "" if written[against] else "the default "
                    raise _Field(named, f"{nets[named]} overlaps {default}{against} ({nets[against]}); the subnet and "
                                        "the GKE pod and service ranges must not share addresses")
            for what, cidr in fixed.items():
                if nets[key].overlaps(ipaddress.ip_network(cidr)):
                    raise _Field(key, f"{nets[key]} overlaps {cidr}, {what} the stack adds; choose a range clear of it")
        if vpc.zones:
            if len(set(vpc.zones)) != len(vpc.zones):
                raise _Field("vpc.zones", "lists a zone twice")
            if self.self_hosted is not None and len(vpc.zones) < 2:
                raise _Field("vpc.zones", f"the GPU node pools span at least two zones of {self.region}, so a zone "
                                          f"outage leaves replicas serving; e.g. "
                                          f"{', '.join(load_regions().zones(self.cloud, self.region)[:3])}")

    def _check_replicas(self, key: str, fleet: "GpuFleetConfig") -> None:
        """The fleet's replica counts and timeouts as the serving components take them."""
        from .sizing import SAGEMAKER_TIMEOUT_RANGE

        if isinstance(fleet, ManagedConfig):
            if fleet.min_replicas < 2 and not fleet.allow_single_instance:
                raise _Field("managed.minReplicas", f"{fleet.min_replicas} leaves no instance serving during an instance "
                                                    "failure, a deployment or maintenance; use 2 or more, or set "
                                                    "managed.allowSingleInstance: true to accept that")
            if fleet.on_demand_replicas > fleet.max_replicas:
                raise _Field("managed.onDemandReplicas", f"{fleet.on_demand_replicas} is above managed.maxReplicas "
                                                         f"({fleet.max_replicas}); a managed endpoint runs every instance "
                                                         f"on demand, so at most {fleet.max_replicas}")
            if fleet.service == "sagemaker":
                lo, hi = SAGEMAKER_TIMEOUT_RANGE
                for name in ("startup_timeout_seconds", "download_timeout_seconds"):
                    value = getattr(fleet, name)
                    if not lo <= value <= hi:
                        raise _Field(f"managed.{ManagedConfig.model_fields[name].alias}",
                                     f"{value} is outside SageMaker's range of {lo}..{hi} seconds")
            return
        from .costmodel import TP_SIZES

        s = fleet
        assert isinstance(s, SelfHostedConfig)
        if s.min_replicas < 2:
            raise _Field("selfHosted.minReplicas", f"{s.min_replicas} leaves no replica serving while a node fails, a "
                                                   "spot node is reclaimed or the model is rolled; use 2 or more")
        if s.gpus_per_replica not in TP_SIZES:
            # Tensor parallelism splits the attention heads evenly; the catalog's models (8 KV heads) take 1, 2, 4 or 8.
            raise _Field("selfHosted.gpusPerReplica", f"{s.gpus_per_replica} does not split the model evenly; use one "
                                                      f"of {', '.join(map(str, TP_SIZES))}")
        if s.on_demand_replicas > s.max_replicas:
            raise _Field("selfHosted.onDemandReplicas", f"{s.on_demand_replicas} is above selfHosted.maxReplicas "
                                                        f"({s.max_replicas})")
        if s.spot_replicas > s.max_replicas:
            raise _Field("selfHosted.spotReplicas", f"{s.spot_replicas} is above selfHosted.maxReplicas ({s.max_replicas})")
        if s.on_demand_replicas < s.min_replicas:
            raise _Field("selfHosted.onDemandReplicas", f"{s.on_demand_replicas} is below selfHosted.minReplicas "
                                                        f"({s.min_replicas}): the floor runs on on-demand nodes, so a "
                                                        "spot reclaim never takes it")
        if s.on_demand_replicas + s.spot_replicas > s.max_replicas:
            # (Below it, the pools hold fewer replicas than the autoscaler may ask for: LNK-002-replicas-fit names the
            # pools and the missing nodes from the built inventory.)
            raise _Field("selfHosted.spotReplicas", f"onDemandReplicas + spotReplicas ({s.on_demand_replicas} + "
                                                    f"{s.spot_replicas}) is above maxReplicas ({s.max_replicas}), the "
                                                    "peak fleet they split; set spotReplicas: "
                                                    f"{s.max_replicas - s.on_demand_replicas}")
        if s.spot_replicas and not s.spot_instance_types:
            raise _Field("selfHosted.spotInstanceTypes", f"is empty, so there is no spot node group for the "
                                                         f"{s.spot_replicas} spot replicas; list instance types with "
                                                         f"{s.gpu} GPUs (e.g. [{s.instance_type}]) or set spotReplicas: 0 "
                                                         "(and raise onDemandReplicas)")
        if s.startup_timeout_seconds < 60:
            raise _Field("selfHosted.startupTimeoutSeconds", f"{s.startup_timeout_seconds} s cannot cover a model "
                                                             "download and load; use 60 or more")

    def _check_model(self, catalog: Any) -> None:
        """The model section against the catalog: a size class it knows, a context the model was trained for."""
        model = self.model
        if model is None:
            return
        if model.size_class not in catalog.models:
            raise _Field("model.sizeClass", f"{model.size_class!r} is not a size class in the catalog; valid: "
                                            f"{', '.join(catalog.models)}")
        limit = catalog.models[model.size_class].max_context_tokens
        if model.max_context_tokens > limit:
            raise _Field("model.maxContextTokens", f"{model.max_context_tokens} is above the {limit} tokens "
                                                   f"{model.size_class} models are trained for; use {limit} or less")
        if self.self_hosted is not None and self.self_hosted.engine == "tgi" and model.max_context_tokens < 2:
            raise _Field("model.maxContextTokens", "TGI needs room for at least one input and one output token; use 2 "
                                                   "or more")

    def _check_versions(self) -> None:
        from components.versions import ComponentVersions  # pure data, no Pulumi import

        known = set(ComponentVersions.__dataclass_fields__)
        for key, value in self.versions.items():
            if key not in known:
                raise _Field(f"versions.{key}", f"unknown version key; valid: {', '.join(sorted(known))}")
            if not isinstance(value, str) or not value.strip() or value.lower() == "latest" or value.endswith(":latest"):
                raise _Field(f"versions.{key}", f"{value!r} is not pinned; give an exact release (or tag@sha256:digest), "
                                                f"e.g. {getattr(ComponentVersions(), key)}")
        versions = ComponentVersions().with_overrides(self.versions)
        if self.self_hosted is not None:
            # The engine's queue metric (what KEDA scales on and the alerts read) is named per release.
            from serving.vllm import QUEUE_METRIC_BY_RELEASE as VLLM_QUEUE, metric_for_version
            from serving.tgi import QUEUE_METRIC_BY_RELEASE as TGI_QUEUE

            engine = self.self_hosted.engine
            try:
                metric_for_version(engine, getattr(versions, f"{engine}_tag"), VLLM_QUEUE if engine == "vllm" else TGI_QUEUE)
            except ValueError as exc:
                raise _Field(f"versions.{engine}_tag", str(exc)) from None
            tag_minor = ".".join(versions.cluster_autoscaler_tag.lstrip("v").split(".")[:2])
            if self.self_hosted.cluster == "eks" and tag_minor != versions.eks_version:
                # The autoscaler simulates the scheduler of its own Kubernetes minor; another minor mis-predicts.
                key = "cluster_autoscaler_tag" if "cluster_autoscaler_tag" in self.versions else "eks_version"
                raise _Field(f"versions.{key}", f"the cluster autoscaler {versions.cluster_autoscaler_tag} and "
                                                f"Kubernetes {versions.eks_version} differ; set "
                                                f"versions.cluster_autoscaler_tag to a v{versions.eks_version}.x release")

    def _check_fleet(self, key: str, fleet: "GpuFleetConfig") -> None:
        from .catalog import load_catalog
        from .sizing import fit_problem

        catalog = load_catalog(Path(self.catalog)) if self.catalog else load_catalog()
        self._check_model(catalog)
        service = "compute" if key == "selfHosted" else fleet.service  # type: ignore[union-attr]
        priced = {i.instance_type: i for i in catalog.instances_in(self.cloud, self.region, service)}
        if fleet.instance_type not in priced:
            where = f"{service} instances in {self.region}"
            raise _Field(f"{key}.instanceType", f"{fleet.instance_type!r} is not in the catalog's {where}; available: "
                                                f"{', '.join(sorted(priced)) or 'none (choose another allowed region)'}")
        row = priced[fleet.instance_type]
        if row.gpu != fleet.gpu:
            raise _Field(f"{key}.gpu", f"{fleet.instance_type} has {row.gpu} GPUs, not {fleet.gpu}")
        if key == "managed" and fleet.gpus_per_replica != row.gpu_count:
            # The cost model pays for the whole instance, and the container shards its one copy over that many GPUs.
            raise _Field("managed.gpusPerReplica", f"{fleet.instance_type} has {row.gpu_count} GPU(s) and a managed endpoint "
                                                   f"serves one model copy per instance on all of them; set gpusPerReplica: "
                                                   f"{row.gpu_count}")
        if fleet.gpus_per_replica > row.gpu_count:
            raise _Field(f"{key}.gpusPerReplica", f"{fleet.instance_type} has {row.gpu_count} GPU(s); a replica cannot span nodes")
        if fleet.precision == "fp8" and not catalog.gpus[fleet.gpu].supports_fp8:
            raise _Field(f"{key}.precision", f"{fleet.gpu} has no FP8 support, so the engine cannot run the model in fp8 "
                                             "there; use precision: fp16")
        if self.model is not None and self.model.size_class in catalog.models:
            # Checked at the precision the engine will run, not the planner's default for the GPU.
            size, kv = self.model.size_class, self.model.kv_tokens
            problem = fit_problem(catalog, self.cloud, size, fleet.gpu, fleet.gpus_per_replica, kv, fleet.precision, service)
            if problem:
                fp8_fits = fleet.precision == "fp16" and catalog.gpus[fleet.gpu].supports_fp8 and \
                    fit_problem(catalog, self.cloud, size, fleet.gpu, fleet.gpus_per_replica, kv, "fp8", service) is None
                # The key to change: precision when fp8 would fit; else the replica's size, which on a managed
                # endpoint is the instance type's.
                field = "precision" if fp8_fits else ("instanceType" if key == "managed" else "gpusPerReplica")
                raise _Field(f"{key}.{field}", problem)
        if key == "selfHosted":
            shapes = catalog.instance_shapes.for_cloud(self.cloud)
            for i, t in enumerate(fleet.spot_instance_types):  # type: ignore[union-attr]
                if t not in shapes or shapes[t].gpu != fleet.gpu:
                    raise _Field(f"selfHosted.spotInstanceTypes[{i}]", f"{t!r} is not an instance type of {self.cloud} with {fleet.gpu} GPUs")

    def unbuilt(self) -> Optional[tuple[str, str]]:
        """What the program refuses to build in this (valid) stack, as `unbuilt_refusal` says; None when it builds it."""
        return unbuilt_refusal(self.tier, "self-hosted" if self.self_hosted else ("managed" if self.managed else None))

    def deploy_warning(self) -> Optional[str]:
        """What `pulumi up` needs that a laptop or a hosted CI runner lacks: a route to a private Kubernetes API.

        The providers that install the charts and workloads talk to the cluster's API server during the deployment, and
        a private or air-gapped cluster has no public endpoint. The README's "Deploying a private cluster" lists the ways."""
        if self.self_hosted is None or self.network == "public" or self.self_hosted.control_plane_dns_endpoint:
            return None
        cluster = "EKS" if self.self_hosted.cluster == "eks" else "GKE"
        ways = ("a runner inside the VPC (or peered/VPN-connected to it)"
                + (", GKE's DNS-based control-plane endpoint" if cluster == "GKE" else "")
                + ", or a public endpoint for the deploy only (network: public with selfHosted.publicAccessCidrs naming "
                  "the runner's addresses)")
        return (f"the {cluster} cluster's Kubernetes API is private (network: {self.network}): `pulumi up` must reach it "
                f"from {ways}; see README.md, \"Deploying a private cluster\"")

    def required_secrets(self) -> list[str]:
        """Config keys that must hold Pulumi secrets (`pulumi config set --secret`) before `pulumi up`."""
        keys = [self.api.api_key_config] if self.api else []
        if self.tier in GATEWAY_TIERS:
            keys.append(GATEWAY_MASTER_KEY)
        if self.model is not None and self.model.hugging_face_token_config:
            keys.append(self.model.hugging_face_token_config)
        return keys

    def flat(self) -> dict[str, Any]:
        """The `config:` mapping of a stack file: namespaced keys, camelCase names, None left out."""
        out: dict[str, Any] = {PROVIDER_REGION_KEY[self.cloud]: self.region}
        if self.gcp_project:
            out["gcp:project"] = self.gcp_project
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        for key in ("region", "gcpProject"):
            data.pop(key, None)
        for key, value in data.items():
            out[f"{PROJECT}:{key}"] = _drop_empty(value)
        return {k: v for k, v in out.items() if v not in ({}, [])}


def _drop_empty(value: Any) -> Any:
    """Empty lists and mappings are the defaults; leaving them out keeps stack files short."""
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ({}, [])}
    return value


class _Field(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _alias(name: str) -> str:
    return StackConfig.model_fields[name].alias or name


# Keys of the llm-hosting namespace whose values are objects or lists (JSON strings at run time).
_FIELDS_BY_KEY = {(f.alias or n): n for n, f in StackConfig.model_fields.items()}


def load_stack_config(values: dict[str, Any], source: str) -> StackConfig:
    """Validate a flat config mapping ("llm-hosting:tier" -> value) as the CLI presents it.

    Values may be parsed YAML (stack files) or strings with JSON for objects (the Pulumi runtime).
    """
    data: dict[str, Any] = {}
    unknown: list[str] = []
    cloud = None
    for key, value in values.items():
        ns, _, name = key.partition(":")
        if ns == PROJECT:
            if name not in _FIELDS_BY_KEY or name in ("region", "gcpProject"):
                unknown.append(key)
                continue
            data[name] = _decode(value)
        elif key in ("aws:region", "gcp:region"):
            data["region"] = value
            cloud = key.split(":")[0]
        elif key == "gcp:project":
            data["gcpProject"] = value
    # The provider key lives in the namespace too, under the name the api section gives it; so do the
    # gateway's key of a hybrid stack and the Hugging Face token the model section names.
    api = data.get("api")
    key_name = api.get("apiKeyConfig") if isinstance(api, dict) else None
    model = data.get("model")
    token_name = model.get("huggingFaceTokenConfig") if isinstance(model, dict) else None
    secrets = [k for k in (key_name, GATEWAY_MASTER_KEY if data.get("tier") in GATEWAY_TIERS else None, token_name) if k]
    valid = sorted(k for k in _FIELDS_BY_KEY if k not in ("region", "gcpProject"))
    problems = [(k, f"unknown key; valid {PROJECT} keys: {', '.join(valid + secrets)}")
                for k in unknown if k not in {f"{PROJECT}:{s}" for s in secrets}]
    if problems:
        raise InputError(source, problems)
    if "cloud" in data and cloud and data["cloud"] != cloud:
        raise refuse(source, f"{cloud}:region", f"the stack's cloud is {data['cloud']}; set {PROVIDER_REGION_KEY.get(data['cloud'], 'the region')} instead")
    if "region" not in data and data.get("cloud") in PROVIDER_REGION_KEY:
        raise refuse(source, PROVIDER_REGION_KEY[data["cloud"]], "is required: the provider region the stack deploys to")
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        fields = [e for e in exc.errors(include_url=False) if isinstance(e.get("ctx", {}).get("error"), _Field)]
        if fields:
            raise InputError(source, [(_ns(e["ctx"]["error"].field), str(e["ctx"]["error"])) for e in fields]) from None
        err = from_validation_error(source, exc, StackConfig)
        err.problems = [(_ns(f), m) for f, m in err.problems]
        raise InputError(source, err.problems) from None


def _ns(field: str) -> str:
    if ":" in field.split(".")[0]:
        return field
    if field.split(".")[0].split("[")[0] == "region":
        return "region"
    return f"{PROJECT}:{field}"


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return value
