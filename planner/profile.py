"""Workload profiles: the YAML a team writes to describe what it must serve.

`load_profile` is the single strict entry point: unknown keys, wrong types, regions the cloud does not have
and self-contradictory settings are refused with the file and the field named.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from .catalog import Capacity, Catalog, Cloud, Quality, load_catalog, load_regions
from .errors import InputError, from_validation_error, read_yaml, refuse

Sensitivity = Literal["public", "internal", "confidential", "regulated"]
SENSITIVITY_RANK: dict[str, int] = {"public": 0, "internal": 1, "confidential": 2, "regulated": 3}
# Confidential and regulated data stay inside the organisation's cloud boundary: no third-party API sees them.
BOUNDARY_SENSITIVITIES = ("confidential", "regulated")
Regulation = Literal["hipaa", "gdpr", "fedramp", "pci-dss", "soc2"]
# Hugging Face publishers whose open-weight LLMs are gated behind a licence (Llama, Gemma, Mistral/Mixtral):
# Model Garden deploys them only with the licence accepted, which is a person's decision, never a default.
GATED_PUBLISHERS = ("meta-llama", "google", "mistralai")


def gated_publisher(model_id: str) -> Optional[str]:
    """The publisher of `model_id` when its models are gated behind a licence, else None."""
    publisher = model_id.split("/", 1)[0] if "/" in model_id else ""
    return publisher if publisher in GATED_PUBLISHERS else None


def licence_refusal(model_id: str, field: str) -> Optional[str]:
    """Why a Vertex AI deployment of `model_id` is refused without `field` set to true, or None when it is not gated."""
    publisher = gated_publisher(model_id)
    if publisher is None:
        return None
    return (f"{model_id} is a gated {publisher} model: Model Garden deploys it only once its licence is accepted. "
            f"Read the licence (https://huggingface.co/{model_id}) and, if you accept it, set {field}: true "
            "(the only valid value); or serve a model that is not gated")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Traffic(_Strict):
    daily_requests: int = Field(gt=0, description="requests per day today")
    avg_input_tokens: int = Field(gt=0)
    avg_output_tokens: int = Field(gt=0)
    peak_to_average: float = Field(default=2.0, ge=1.0, description="peak request rate / average request rate")
    peak_hours_per_day: float = Field(default=2.0, gt=0, le=24, description="how long the daily peak lasts")
    growth_monthly_percent: float = Field(default=0.0, ge=0, le=100)
    horizon_months: int = Field(default=12, ge=0, le=60, description="cost is judged at the volume this far ahead")

    @model_validator(mode="after")
    def _peak_fits_in_a_day(self):
        if self.peak_to_average * self.peak_hours_per_day > 24:
            raise ValueError(
                f"peak_to_average x peak_hours_per_day is {self.peak_to_average * self.peak_hours_per_day:g} hours, "
                "more than a day holds: a peak that long would raise the average itself (keep the product <= 24)")
        return self


class Residency(_Strict):
    allowed_regions: list[str] = Field(min_length=1, description="regions data and resources may live in; the first is the home region")


class Team(_Strict):
    ml_ops_capacity: Capacity


class ModelSpec(_Strict):
    id: str = Field(min_length=1, description="open-weight model id, e.g. meta-llama/Llama-3.1-70B-Instruct")
    size_class: str = Field(description="a size class from the catalog's `models` (8b, 70b, moe-47b, 405b)")
    fine_tuned: bool = Field(default=False, description="true means our own weights, which no API serves")
    max_context_tokens: int = Field(default=8192, gt=0, description="context length the server must hold per sequence")
    weights_uri: Optional[str] = Field(default=None, description="s3:// or gs:// location of the weights, in an allowed region")
    engine: Literal["vllm", "tgi"] = Field(
        default="vllm", description="the serving engine of a self-hosted (or hybrid) tier: vllm streams weights from "
                                    "weights_uri; tgi (Text Generation Inference) has them copied from weights_uri into "
                                    "the pod before it starts. Managed endpoints run their own vLLM container, so tgi "
                                    "rules them out")
    accept_eula: bool = Field(default=False, description="true records that you accept the model's licence; a gated "
                                                         "model (meta-llama, google, mistralai) needs it on Vertex AI")
    hugging_face_token_config: Optional[str] = Field(
        default=None, pattern=r"^[a-z][A-Za-z0-9]*$",
        description="Vertex AI: name of the secret config key holding a Hugging Face read token; without it Model "
                    "Garden deploys Google's cached copy of the model")


class ConsumerSpec(_Strict):
    """An application team that calls the stack's endpoint with its own key and its own rate limits."""
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$", description="DNS-label name; it names the key's secret")
    share_percent: float = Field(default=100.0, gt=0, le=100,
                                 description="its share of the projected peak traffic: its rate limits are sized from it")
    aws_role_name: Optional[str] = Field(default=None, description="AWS: the IAM role allowed to read its key")
    gcp_member: Optional[str] = Field(default=None, description="GCP: the IAM member allowed to read its key, e.g. "
                                                                "serviceAccount:app@p.iam.gserviceaccount.com")
    rotation: int = Field(default=1, ge=1, description="raise by one and re-plan to rotate this consumer's key only")


_DNS_NAME = re.compile(r"^(?=.{4,64}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PCA_ARN = re.compile(r"^arn:aws[a-z-]*:acm-pca:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate-authority/[0-9a-f-]{36}$")


def endpoint_problem(audience: str, domain: Optional[str], public_zone: Optional[str], allowed_cidrs: list[str],
                     certificate_authority_arn: Optional[str], names: dict[str, str]) -> Optional[tuple[str, str]]:
    """What is wrong with an endpoint section on its own, as (field, message), or None. One statement for the profile
    (`endpoint.public_zone`) and the stack config (`endpoint.publicZone`): `names` maps each field to its spelling."""
    import ipaddress

    internet_only = {"domain": domain, "public_zone": public_zone, "allowed_cidrs": allowed_cidrs}
    if audience == "vpc":
        for key, value in internet_only.items():
            if value:
                return (names[key], "applies to audience internet only; a vpc endpoint has a private name in the "
                                    "stack's zone llm.internal")
    else:
        if not domain:
            return (names["domain"], "audience internet needs the public name clients call, under a zone the team owns "
                                     "(e.g. llm.example.com)")
        if not public_zone:
            return (names["public_zone"], "audience internet needs the public DNS zone holding the domain (AWS: Route 53 "
                                          "hosted zone id; GCP: Cloud DNS managed zone name)")
        if certificate_authority_arn:
            return (names["certificate_authority_arn"], "an internet-facing endpoint gets a publicly trusted "
                                                        "certificate; a private CA applies to audience vpc only")
    if domain and (not _DNS_NAME.match(domain) or domain.endswith((".internal", ".local", ".localhost", ".test"))):
        return (names["domain"], f"{domain!r} is not a public DNS name of two or more labels (lower-case letters, "
                                 "digits and '-', at most 64 characters for the certificate)")
    for i, cidr in enumerate(allowed_cidrs):
        try:
            ipaddress.IPv4Network(cidr, strict=True)
        except ValueError:
            return (f"{names['allowed_cidrs']}[{i}]", f"{cidr!r} is not an IPv4 CIDR such as 203.0.113.0/24")
    if certificate_authority_arn and not _PCA_ARN.match(certificate_authority_arn):
        return (names["certificate_authority_arn"], f"{certificate_authority_arn!r} is not an AWS Private CA ARN "
                                                    "(arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>)")
    return None


class EndpointSpec(_Strict):
    """Who calls the stack's endpoint from where. `vpc` (the default): applications in the stack's network, on a private
    name under a private CA. `internet`: an internet-facing endpoint under a domain the team owns, with a publicly
    trusted certificate; only for the public network variant and data that is neither confidential nor regulated."""
    audience: Literal["vpc", "internet"] = "vpc"
    domain: Optional[str] = Field(default=None, description="internet: the public name clients call, e.g. llm.example.com")
    public_zone: Optional[str] = Field(
        default=None, description="internet: the public DNS zone holding `domain` (AWS: Route 53 hosted zone id; GCP: "
                                  "Cloud DNS managed zone name)")
    allowed_cidrs: list[str] = Field(default_factory=list, description="internet: who may connect (default: anyone)")
    certificate_authority_arn: Optional[str] = Field(
        default=None, description="AWS, audience vpc: issue the endpoint's certificate from this existing AWS Private CA "
                                  "(shared by the organisation) instead of a CA of the stack's own")

    @model_validator(mode="after")
    def _shape(self):
        problem = endpoint_problem(self.audience, self.domain, self.public_zone, self.allowed_cidrs,
                                   self.certificate_authority_arn,
                                   {k: f"endpoint.{k}" for k in ("domain", "public_zone", "allowed_cidrs",
                                                                 "certificate_authority_arn")})
        if problem:
            raise _FieldError(*problem)
        return self


class Workload(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    share_percent: float = Field(gt=0, le=100)
    data_sensitivity: Sensitivity
    quality: Optional[Quality] = None


class Profile(_Strict):
    name: Optional[str] = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    cloud: Cloud
    traffic: Traffic
    latency_sla_ms: int = Field(gt=0, description="p95 time to first token the users need")
    data_sensitivity: Sensitivity
    regulations: list[Regulation] = []
    residency: Residency
    air_gapped: bool = False
    team: Team
    model: Optional[ModelSpec] = None
    quality: Quality
    availability_target: float = Field(default=99.9, ge=90.0, lt=100.0)
    allow_spot: bool = True
    gcp_project: Optional[str] = Field(default=None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    gcp_billing_account: Optional[str] = Field(
        default=None, pattern=r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$",
        description="GCP: the Cloud Billing account (XXXXXX-XXXXXX-XXXXXX) the stack's budget is created on; "
                    "without it a GCP stack gets no budget")
    aws_activate_cost_allocation_tag: bool = Field(
        default=True, description="AWS: the stack activates its `llm-hosting:stack` cost-allocation tag, which its budget "
                                  "filters on; set false in an AWS Organizations member account, where only the "
                                  "management (payer) account can activate it (activate it there once)")
    private_registry: Optional[str] = Field(default=None, description="in-region registry images are mirrored to (required when air_gapped)")
    consumers: list[ConsumerSpec] = Field(
        default_factory=lambda: [ConsumerSpec(name="app")], min_length=1,
        description="who calls the endpoint: each gets its own key and request/token rate limits at the gateway")
    workloads: list[Workload] = []
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    protect: bool = Field(
        default=True, description="protect the stack's stateful resources (keys, secrets, clusters, logs) from deletion; "
                                  "false only for throw-away stacks (the policy BAS-004-protect-stateful then advises)")

    @model_validator(mode="after")
    def _fits_the_model(self, info: ValidationInfo):
        # Against the catalog the plan uses (`load_profile(path, catalog)`), else the kit's own; an unknown size class
        # is the planner's refusal, which lists the valid ones.
        context = info.context if isinstance(info.context, dict) else {}
        catalog: Catalog = context.get("catalog") or load_catalog()
        if self.model is not None and self.model.size_class in catalog.models:
            limit = catalog.models[self.model.size_class].max_context_tokens
            if self.model.max_context_tokens > limit:
                raise _FieldError("model.max_context_tokens", f"{self.model.max_context_tokens} is above the {limit} "
                                                              f"tokens {self.model.size_class} models are trained for; "
                                                              f"use {limit} or less")
        return self

    @model_validator(mode="after")
    def _consistent(self):
        regions = load_regions().for_cloud(self.cloud).regions
        for i, region in enumerate(self.residency.allowed_regions):
            if region not in regions:
                raise _FieldError(f"residency.allowed_regions[{i}]",
                                  f"{region!r} is not a region of {self.cloud}; valid {self.cloud} regions: {', '.join(regions)}")
        if len(set(self.residency.allowed_regions)) != len(self.residency.allowed_regions):
            raise _FieldError("residency.allowed_regions", "lists a region twice")
        if self.gcp_project and self.cloud != "gcp":
            raise _FieldError("gcp_project", f"only applies to cloud: gcp (this profile is cloud: {self.cloud})")
        if not self.aws_activate_cost_allocation_tag and self.cloud != "aws":
            raise _FieldError("aws_activate_cost_allocation_tag", f"only applies to cloud: aws (this profile is cloud: "
                                                                  f"{self.cloud})")
        if self.gcp_billing_account and self.cloud != "gcp":
            raise _FieldError("gcp_billing_account", f"only applies to cloud: gcp (this profile is cloud: {self.cloud}); "
                                                     "AWS budgets are created in the stack's account")
        if self.workloads:
            total = sum(w.share_percent for w in self.workloads)
            if abs(total - 100.0) > 0.01:
                raise _FieldError("workloads", f"share_percent values add up to {total:g}, they must add up to 100")
            names = [w.name for w in self.workloads]
            if len(set(names)) != len(names):
                raise _FieldError("workloads", "workload names must be unique")
            for i, w in enumerate(self.workloads):
                if SENSITIVITY_RANK[w.data_sensitivity] > SENSITIVITY_RANK[self.data_sensitivity]:
                    raise _FieldError(f"workloads[{i}].data_sensitivity",
                                      f"{w.data_sensitivity!r} is above the profile's data_sensitivity "
                                      f"{self.data_sensitivity!r}; the profile's value is the stack's classification and must be the highest")
        if self.model and self.model.weights_uri:
            scheme = {"aws": "s3://", "gcp": "gs://"}[self.cloud]
            if not self.model.weights_uri.startswith(scheme):
                raise _FieldError("model.weights_uri", f"must be an {scheme} URI of a bucket in the allowed regions (cloud is {self.cloud})")
        if self.model is not None:
            per_request = self.traffic.avg_input_tokens + self.traffic.avg_output_tokens
            if per_request > self.model.max_context_tokens:
                raise _FieldError("traffic.avg_input_tokens",
                                  f"an average request of {self.traffic.avg_input_tokens} + {self.traffic.avg_output_tokens} "
                                  f"tokens does not fit the {self.model.max_context_tokens}-token context the server "
                                  "holds per sequence (model.max_context_tokens): raise that, or check the averages")
        if self.air_gapped and not self.private_registry:
            raise _FieldError("private_registry", "an air-gapped deployment needs the in-region registry its images are mirrored to "
                                                  "(ECR on aws, Artifact Registry on gcp)")
        return self

    @property
    def classes(self) -> list[Workload]:
        """Traffic classes: the declared workloads, or the whole profile as one class."""
        if self.workloads:
            return [w if w.quality else w.model_copy(update={"quality": self.quality}) for w in self.workloads]
        return [Workload(name="all", share_percent=100.0, data_sensitivity=self.data_sensitivity, quality=self.quality)]

    @property
    def home_region(self) -> str:
        return self.residency.allowed_regions[0]


class _FieldError(ValueError):
    """A cross-field problem that knows which field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def load_profile(path: Path, catalog: Optional[Catalog] = None) -> Profile:
    """The profile at `path`, validated (against `catalog`, the one the plan uses; default: the kit's own)."""
    path = Path(path)
    data = read_yaml(path, "profile")
    if not isinstance(data, dict):
        raise refuse(path, "", "a workload profile is a YAML mapping (cloud, traffic, residency, team, quality, ...)")
    if data.get("cloud") == "gcp" and data.get("gcp_project") is None:
        # Without it the stack would deploy into whatever project the runner's credentials default to.
        raise refuse(path, "gcp_project", "is required for cloud: gcp: the Google Cloud project the stack deploys "
                                          "into (6-30 lower-case letters, digits and '-', e.g. acme-llm-prod)")
    try:
        profile = Profile.model_validate(data, context={"catalog": catalog} if catalog is not None else None)
    except ValidationError as exc:
        field_errors = [e for e in exc.errors(include_url=False) if isinstance(e.get("ctx", {}).get("error"), _FieldError)]
        if field_errors:
            problems = []
            for e in field_errors:
                err = e["ctx"]["error"]
                prefix = ".".join(str(p) for p in e["loc"])
                # A section's own rule may already name the field from the top (endpoint.allowed_cidrs[1]).
                whole = not prefix or err.field == prefix or err.field.startswith((prefix + ".", prefix + "["))
                problems.append((err.field if whole else f"{prefix}.{err.field}", str(err)))
            raise InputError(path, problems) from None
        raise from_validation_error(path, exc, Profile) from None
    if profile.name is None:
        profile = profile.model_copy(update={"name": path.stem})
    return profile
