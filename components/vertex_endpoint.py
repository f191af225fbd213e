"""Managed tier on GCP: an open-weight LLM on a Vertex AI endpoint, served by vLLM in a custom container.

One `gcp.vertex.AiEndpointWithModelGardenDeployment` creates the endpoint and deploys the model to it: the vLLM
image (from Artifact Registry in the stack's region for private and air-gapped stacks) at the plan's precision,
dedicated GPU replicas (at least two unless the caller opts out), spot when asked, GPU duty-cycle autoscaling, and
for private and air-gapped stacks a Private Service Connect endpoint whose forwarding rule Vertex AI creates in our
VPC (PSC automation). Callers authenticate with Google OAuth and need `aiplatform.endpoints.predict`: there is no
API key.

Model Garden fetches the model itself. A gated model (Llama, Gemma, Mistral) deploys only with its licence accepted
(`accept_eula`, which the caller must set: refused otherwise). By default Model Garden deploys Google's cached copy
(no token to hold, and it works inside a VPC Service Controls perimeter); a Hugging Face token, given as a Pulumi
secret, makes it download from the Hub instead.

The resource cannot express everything the issue asks for (CMEK, the serving identity, a GCS model artifact,
labels, a canary). Each gap is in `NOT_EXPRESSIBLE` (setting -> why and the workaround), which the README quotes;
nothing here pretends to set what the provider cannot.

Private and air-gapped: PSC automation is service connectivity automation, which creates the forwarding rule only
under a service connection policy for Vertex AI's service class (`PSC_SERVICE_CLASS`) in the VPC and region. The
network component owns that policy (`GcpNetworkArgs.psc_service_classes`); pass it as `service_connection_policy`
so the deployment waits for it. Vertex AI documents `<endpoint_id>-<region>-<project_number>.prediction.p.vertexai.goog`
as the name of a PSC endpoint; a private Cloud DNS zone bound to the VPC resolves it to the forwarding rule's address,
and `endpoint_url` uses that same name. Port 443 answers with Vertex AI's self-signed certificate (SAN
`*.prediction.p.vertexai.goog`), so callers add it to their trust store (see the README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp

from planner.profile import licence_refusal

from .contract import TierOutputs
from .gcp_kms_keys import GcpKmsKeys, GcpKmsKeysArgs
from .gcp_network import name_prefix

NETWORK_VARIANTS = ("public", "private", "airgapped")
PRECISIONS = ("fp16", "fp8")
# The service class Vertex AI's PSC automation acts under; the network's service connection policy names it.
PSC_SERVICE_CLASS = "gcp-vertexai"
# Vertex AI's documented DNS suffix for PSC endpoints of online inference; its certificate covers *.<suffix>.
PSC_DNS_SUFFIX = "prediction.p.vertexai.goog"
PSC_DNS_TTL = 60  # the documented value; the address changes if the deployment is ever recreated

# Vertex AI AcceleratorType values that the CUDA vLLM image can use, with the machine families each one comes on.
# TPUs (TPU_V5_LITEPOD, ...) are Vertex accelerator types too, but the vLLM CUDA image does not run on them.
ACCELERATOR_MACHINES: dict[str, tuple[str, ...]] = {
    "NVIDIA_TESLA_T4": ("n1-",),
    "NVIDIA_TESLA_P4": ("n1-",),
    "NVIDIA_TESLA_P100": ("n1-",),
    "NVIDIA_TESLA_V100": ("n1-",),
    "NVIDIA_L4": ("g2-",),
    "NVIDIA_TESLA_A100": ("a2-highgpu-", "a2-megagpu-"),
    "NVIDIA_A100_80GB": ("a2-ultragpu-",),
    "NVIDIA_H100_80GB": ("a3-highgpu-",),
    "NVIDIA_H100_MEGA_80GB": ("a3-megagpu-",),
    "NVIDIA_H200_141GB": ("a3-ultragpu-",),
    "NVIDIA_B200": ("a4-highgpu-",),
}
# G2 sizes carry a fixed number of L4s; a2/a3/a4 types say it in their name (`-8g`); n1 takes 1, 2, 4 or 8.
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-24": 2,
           "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8}
N1_GPU_COUNTS = (1, 2, 4, 8)

DUTY_CYCLE_METRIC = "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle"
# The endpoint's own metrics (monitored resource aiplatform.googleapis.com/Endpoint) its alert policies read.
ENDPOINT_RESOURCE = "aiplatform.googleapis.com/Endpoint"
LATENCY_METRIC = "aiplatform.googleapis.com/prediction/online/prediction_latencies"  # distribution, ms
ERROR_METRIC = "aiplatform.googleapis.com/prediction/online/error_count"
PREDICTION_METRIC = "aiplatform.googleapis.com/prediction/online/prediction_count"
REPLICAS_METRIC = "aiplatform.googleapis.com/prediction/online/replicas"  # active replicas of the deployed model
ALERT_WINDOW = "300s"  # each policy looks at 5-minute windows...
ALERT_DURATION = "300s"  # ...and fires when the condition holds for 5 minutes
SATURATION_DURATION = "900s"  # at the ceiling for 15 minutes: not a burst the autoscaler is riding out
ERROR_RATIO = 0.05  # failed predictions per successful one
# What the on-call does first, quoted in each notification.
RUNBOOKS = {
    "latency": ("p95 request latency is above the stack's TTFT SLA. Check the replica count against max_replicas "
                "(scale-out blocked or at the ceiling?), GPU duty cycle, and prompt lengths in the request logs; "
                "raise max_replicas or move to a larger machine if load, not a fault, is the cause."),
    "errors": (f"More than {ERROR_RATIO:.0%} of predictions fail. Read the endpoint's container logs (resource "
               "aiplatform.googleapis.com/Endpoint) for vLLM errors (out of memory, context too long, engine dead); "
               "a recent deployment or image change is the first suspect."),
    "saturation": ("The deployed model has run at max_replicas for 15 minutes: the autoscaler cannot add capacity, "
                   "so queueing and latency will grow. Raise max_replicas (and the GPU quota in the region) or shed "
                   "load."),
}
CONTAINER_PORT = 8080  # Vertex AI's default AIP_HTTP_PORT; vLLM listens where --port says
HEALTH_ROUTE = "/health"  # vLLM's OpenAI server answers 200 here once the engine is up
PREDICT_ROUTE = "/v1/chat/completions"  # where :predict/:rawPredict bodies go; chat.completions reaches it as well
# Loading a large model (download + weights into GPU memory + CUDA graphs) can take tens of minutes; Vertex AI
# allows a deployment at most 2 hours.
DEPLOYMENT_TIMEOUT = "7200s"
# vLLM's tensor-parallel workers talk through NCCL over shared memory; Vertex AI's default /dev/shm is too small.
SHARED_MEMORY_MB_FOR_TP = "16384"
# weights_uri is streamed by vLLM's Run:ai model streamer, its documented loader for gs:// (`vllm serve gs://...
# --load-format runai_streamer`). v0.11.0 was reported to break on object-store paths (vllm-project/vllm#26600):
# check that the pinned vllm_tag loads a gs:// prefix before relying on it.
GCS_LOAD_FORMAT = "runai_streamer"

# <location>-docker.pkg.dev/<project>/<repository>/<image>[:tag|@sha256:digest]
ARTIFACT_REGISTRY_IMAGE = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/"
    r"(?P<repository>[a-z0-9][a-z0-9-]*)/(?P<image>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[\w][\w.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))?$")
GCS_PREFIX = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/(?P<prefix>.*)$")
COMPUTE_API = "https://www.googleapis.com/compute/v1/"
NETWORK_NAME = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")

# Every setting the issue asks for that pulumi-gcp 10.2.0's AiEndpointWithModelGardenDeployment cannot take, each
# keyed by the API/provider field name it would need. tests/test_vertex_endpoint.py checks that no key is a field
# of the resource's input types, so this list cannot silently go stale when the provider grows the field.
NOT_EXPRESSIBLE: dict[str, str] = {
    "encryption_spec": (
        "CMEK on the endpoint. The deployment resource has no encryption_spec; only gcp.vertex.AiEndpoint has one, and "
        "the provider has no resource that deploys a model into an existing AiEndpoint. The component still creates "
        "the regional key and grants it to the Vertex AI service agent (output kms_key_ids). Workaround: create the "
        "endpoint with that key outside Pulumi (`gcloud ai endpoints create --encryption-kms-key-name=...`) and "
        "deploy the model into it through the Vertex AI API."),
    "service_account": (
        "The identity the vLLM container runs as (DeployedModel.serviceAccount). deploy_config has no field for it, "
        "so the container runs as Vertex AI's managed prediction identity, whose permissions cannot be changed and "
        "only cover the model's own artifacts (AIP_STORAGE_URI). No IAM grant can give it read access to "
        "weights_uri. Workaround: deploy through the Vertex AI API (Model upload + DeployModel with serviceAccount set "
        "to an account that can read the prefix)."),
    "artifact_uri": (
        "Weights from our GCS prefix as the model artifact (Model.artifactUri, or the deploy API's v1beta1 "
        "custom_model.gcs_uri). The resource only takes hugging_face_model_id or publisher_model_name, so model_id "
        "goes to hugging_face_model_id (Model Garden resolves it on Google's side; gated models need accept_eula) and "
        "weights_uri reaches vLLM only as `--model gs://... --load-format runai_streamer`. Because of "
        "service_account, that load cannot succeed until the provider exposes one of these fields; until then, "
        "deploy GCS weights through the Vertex AI API."),
    "dedicated_endpoint_dns": (
        "The deployment does not export the endpoint's DNS name, and the API now gives Model Garden deployments a "
        "dedicated endpoint by default (the provider has only the deprecated dedicated_endpoint_enabled, not "
        "dedicated_endpoint_disabled), so the shared {region}-aiplatform.googleapis.com host cannot be chosen. A "
        "public stack's contract URL is built from the documented format https://{endpoint_id}.{region}-"
        "{project_number}.prediction.vertexai.goog; check it with `gcloud ai endpoints describe` after the first "
        "deployment. Private and air-gapped stacks do not depend on it: their URL is the documented PSC name "
        "{endpoint_id}-{region}-{project_number}.prediction.p.vertexai.goog, which the component's private zone "
        "resolves to the PSC forwarding rule."),
    "labels": (
        "Labels on the endpoint. The deployment takes none (deploy_config.system_labels are Google-managed), so "
        "labels land on the KMS key only. Workaround: `gcloud ai endpoints update --update-labels=...`."),
    "traffic_split": (
        "A canary or blue/green rollout. The resource deploys exactly one model to a new endpoint; traffic_split "
        "exists only on gcp.vertex.AiEndpoint, into which no provider resource can deploy. Workaround: stand up a "
        "second VertexEndpoint with the new version, test it, then switch callers to its URL."),
}


def machine_gpus(machine_type: str) -> Optional[int]:
    """The number of GPUs a machine type comes with, or None when the type takes a choice (n1) or is unknown."""
    if machine_type in G2_GPUS:
        return G2_GPUS[machine_type]
    match = re.search(r"-(\d+)g$", machine_type)
    return int(match.group(1)) if match else None


def network_name(network: str) -> str:
    """A VPC self link or id as `projects/<p>/global/networks/<n>`, the form PSC automation takes."""
    return network[len(COMPUTE_API):] if network.startswith(COMPUTE_API) else network


@dataclass(frozen=True)
class VertexEndpointArgs:
    stack: str
    region: str
    project: Optional[str]  # None: the provider's gcp:project
    model_id: str  # served model name / Hugging Face id, e.g. meta-llama/Llama-3.1-8B-Instruct
    image_uri: str  # vLLM serving image; Artifact Registry <region>-docker.pkg.dev/... for private and airgapped
    weights_uri: Optional[str]  # gs://bucket/prefix/ in the region, or None to pull model_id (not when airgapped)
    machine_type: str  # e.g. g2-standard-8
    accelerator_type: str  # Vertex AcceleratorType, e.g. NVIDIA_L4, NVIDIA_TESLA_A100, NVIDIA_H100_80GB
    accelerator_count: int  # per replica; also vLLM's tensor-parallel size
    min_replicas: int  # >= 2 unless allow_single_replica
    max_replicas: int
    max_context_tokens: int
    precision: Literal["fp16", "fp8"]  # the plan's: fp8 quantises weights and KV cache (GPUs with FP8 support)
    network_variant: Literal["public", "private", "airgapped"]
    network: Optional[pulumi.Input[str]] = None  # VPC self link or projects/<p>/global/networks/<n>, for PSC
    # The network's policy for PSC_SERVICE_CLASS (GcpNetwork.service_connection_policies). Without it, the caller
    # vouches that one exists; PSC automation fails without one and the DNS record then has no address.
    service_connection_policy: Optional[pulumi.Resource] = None
    spot: bool = False
    allow_single_replica: bool = False
    autoscaling_target_gpu_duty_cycle: int = 60  # percent
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    accept_eula: bool = False  # the caller accepts the model's licence in Model Garden (needed for gated models)
    # A Hugging Face read token as a Pulumi secret (Config.require_secret): Model Garden then downloads from the Hub
    # instead of deploying Google's cached copy.
    hugging_face_token: Optional[pulumi.Input[str]] = None
    # Cloud Monitoring channels (GcpAlertChannel.channel_name) the endpoint's alert policies notify; none = no policies.
    notification_channels: list[pulumi.Input[str]] = field(default_factory=list)
    # The profile's p95 TTFT SLA (observability.ttftP95Ms): the latency policy fires above it. None = no latency policy.
    latency_alert_ms: Optional[int] = None

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.region:
            raise ValueError("region: the stack's GCP region is required, e.g. us-central1")
        if not self.model_id:
            raise ValueError("model_id: the served-model name is required, e.g. meta-llama/Llama-3.1-8B-Instruct")
        if self.network_variant not in NETWORK_VARIANTS:
            raise ValueError(f"network_variant: {self.network_variant!r} is not one of {', '.join(NETWORK_VARIANTS)}")
        self._validate_image()
        self._validate_weights()
        self._validate_machine()
        if self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens: {self.max_context_tokens} must be at least 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.accept_eula:
            problem = licence_refusal(self.model_id, "accept_eula")
            if problem:
                raise ValueError(f"accept_eula: {problem}")
        if self.hugging_face_token is not None and self.network_variant == "airgapped":
            raise ValueError("hugging_face_token: an air-gapped stack downloads nothing from the Hugging Face Hub; "
                             "leave it out so Model Garden deploys Google's cached copy")
        if self.min_replicas < 1:
            raise ValueError(f"min_replicas: {self.min_replicas} must be at least 1")
        if self.min_replicas < 2 and not self.allow_single_replica:
            raise ValueError(f"min_replicas: {self.min_replicas} leaves no replica to fail over to during a node "
                             "failure, a spot preemption or maintenance; use 2 or more, or set "
                             "allow_single_replica=True to accept that")
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas: {self.max_replicas} must be >= min_replicas ({self.min_replicas})")
        if self.latency_alert_ms is not None and self.latency_alert_ms < 1:
            raise ValueError(f"latency_alert_ms: {self.latency_alert_ms} must be a positive number of milliseconds")
        if not 1 <= self.autoscaling_target_gpu_duty_cycle <= 100:
            raise ValueError(f"autoscaling_target_gpu_duty_cycle: {self.autoscaling_target_gpu_duty_cycle} is outside "
                             "Vertex AI's 1..100 percent")
        self._validate_network()

    def _validate_image(self) -> None:
        if not self.image_uri or "/" not in self.image_uri:
            raise ValueError(f"image_uri: {self.image_uri!r} is not an image reference, e.g. "
                             f"{self.region}-docker.pkg.dev/<project>/<repository>/vllm-openai:<tag>")
        last = self.image_uri.rsplit("/", 1)[1]
        tag = last.split(":", 1)[1] if ":" in last and "@" not in last else None
        if "@" not in last and tag is None or tag == "latest":
            raise ValueError(f"image_uri: {self.image_uri!r} must pin an exact tag or digest (never latest), e.g. "
                             ":v0.11.0 or @sha256:<digest>")
        if self.network_variant == "public":
            return
        match = ARTIFACT_REGISTRY_IMAGE.match(self.image_uri)
        if match and match.group("location") == self.region:
            return
        expected = f"{self.region}-docker.pkg.dev/<project>/<repository>/<image>:<tag>"
        if self.network_variant == "airgapped":
            raise ValueError(f"image_uri: {self.image_uri!r} is refused for an air-gapped stack; it must be an Artifact "
                             f"Registry image in the stack's region ({expected}), never a public registry (docker.io, "
                             "ghcr.io, nvcr.io, gcr.io) or another region")
        raise ValueError(f"image_uri: {self.image_uri!r} is refused for a private stack; Vertex AI serves it from "
                         f"Artifact Registry in the stack's region ({expected})")

    def _validate_weights(self) -> None:
        if self.weights_uri is None:
            if self.network_variant == "airgapped":
                raise ValueError("weights_uri: an air-gapped stack cannot download model_id from the Hugging Face Hub; "
                                 "give the in-region prefix holding the weights, e.g. gs://my-bucket/llama-3.1-8b/")
            return
        match = GCS_PREFIX.match(self.weights_uri)
        if not match:
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not a GCS location; give the in-region prefix "
                             "holding the weights, e.g. gs://my-bucket/llama-3.1-8b/")
        if not self.weights_uri.endswith("/"):
            raise ValueError(f"weights_uri: {self.weights_uri!r} must end with '/' (a prefix, e.g. {self.weights_uri}/)")

    def _validate_machine(self) -> None:
        families = ACCELERATOR_MACHINES.get(self.accelerator_type)
        if families is None:
            raise ValueError(f"accelerator_type: {self.accelerator_type!r} is not a Vertex AI GPU type the vLLM image "
                             f"runs on; use one of {', '.join(sorted(ACCELERATOR_MACHINES))}")
        if not self.machine_type.startswith(families):
            raise ValueError(f"machine_type: {self.machine_type!r} does not carry {self.accelerator_type}; use a "
                             f"{' or '.join(f + '*' for f in families)} machine type")
        if self.accelerator_count < 1:
            raise ValueError(f"accelerator_count: {self.accelerator_count} must be at least 1 (the tensor-parallel size)")
        fixed = machine_gpus(self.machine_type)
        if fixed is not None and fixed != self.accelerator_count:
            raise ValueError(f"accelerator_count: {self.machine_type} comes with {fixed} x {self.accelerator_type}, "
                             f"not {self.accelerator_count}")
        if self.machine_type.startswith("n1-") and self.accelerator_count not in N1_GPU_COUNTS:
            raise ValueError(f"accelerator_count: n1 machines take {', '.join(map(str, N1_GPU_COUNTS))} GPUs, "
                             f"not {self.accelerator_count}")

    def _validate_network(self) -> None:
        if self.network_variant == "public":
            if self.network is not None:
                raise ValueError("network: a public endpoint has no Private Service Connect forwarding rule; give a "
                                 "network only for the private and airgapped variants")
            if self.service_connection_policy is not None:
                raise ValueError("service_connection_policy: a public endpoint has no Private Service Connect "
                                 "forwarding rule to create; give a policy only for the private and airgapped variants")
            return
        if self.network is None:
            raise ValueError(f"network: a {self.network_variant} endpoint is reached through Private Service Connect "
                             "in a VPC; give its self link or projects/<project>/global/networks/<name>")
        zone = f"{name_prefix(self.stack)}-vertex-psc"
        if len(zone) > 63 or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", zone):
            raise ValueError(f"stack: {self.stack!r} makes the private DNS zone name {zone!r}, which must be at most 63 "
                             "lowercase letters, digits and dashes")
        if isinstance(self.network, str) and not NETWORK_NAME.match(network_name(self.network)):
            raise ValueError(f"network: {self.network!r} is not a VPC; expected {COMPUTE_API}projects/<project>/global/"
                             "networks/<name> or projects/<project>/global/networks/<name>")

    @property
    def private(self) -> bool:
        return self.network_variant != "public"


def container_args(args: VertexEndpointArgs) -> list[str]:
    """vLLM's `serve` flags: where the weights are, the name it answers to, GPUs per replica, context and port."""
    flags = [f"--model={args.weights_uri or args.model_id}"]
    if args.weights_uri:
        flags.append(f"--load-format={GCS_LOAD_FORMAT}")
    flags += [
        f"--served-model-name={args.model_id}",
        f"--tensor-parallel-size={args.accelerator_count}",
        f"--max-model-len={args.max_context_tokens}",
        "--host=0.0.0.0",
        f"--port={CONTAINER_PORT}",
    ]
    if args.precision == "fp8":
        # The precision the plan sized the replica for: 8-bit weights and KV cache, as serving/vllm.py does.
        flags += ["--quantization=fp8", "--kv-cache-dtype=fp8"]
    return flags


def psc_host(endpoint_id: str, region: str, project_number: str) -> str:
    """The name Vertex AI documents for a dedicated endpoint reached through a PSC endpoint."""
    return f"{endpoint_id}-{region}-{project_number}.{PSC_DNS_SUFFIX}"


def public_host(endpoint_id: str, region: str, project_number: str) -> str:
    """The dedicated endpoint's public DNS name (NOT_EXPRESSIBLE["dedicated_endpoint_dns"])."""
    return f"{endpoint_id}.{region}-{project_number}.prediction.vertexai.goog"


def container_env(args: VertexEndpointArgs) -> dict[str, str]:
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}  # vLLM reports usage to its maintainers unless told not to
    if args.network_variant == "airgapped":
        # Nothing may try the Hugging Face Hub (it would hang on timeouts in an isolated network).
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


class VertexEndpoint(pulumi.ComponentResource):
    endpoint_id: pulumi.Output[str]
    endpoint_name: pulumi.Output[str]
    kms_key_ids: pulumi.Output[dict]
    psc_ip_address: Optional[pulumi.Output[Optional[str]]]  # the PSC forwarding rule's address (private variants)
    psc_dns_name: Optional[pulumi.Output[str]]  # the name callers in the VPC use for it (private variants)
    alert_policy_names: list[pulumi.Output[str]]  # the endpoint's alert policies (empty without channels)
    contract: TierOutputs

    psc_service_class = PSC_SERVICE_CLASS  # what the network's service connection policy must name

    def __init__(self, name: str, args: VertexEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:VertexEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = gcp.organizations.get_project_output(project_id=args.project,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))

        # Vertex AI encrypts with CMEK through its service agent, which must hold the key in the endpoint's region.
        # The deployment resource cannot take the key (NOT_EXPRESSIBLE["encryption_spec"]); it is made and granted
        # here so the out-of-band workaround only has to name it.
        agent = gcp.projects.ServiceIdentity(f"{name}-vertex-agent", service="aiplatform.googleapis.com",
                                             project=args.project, opts=child)
        keys = GcpKmsKeys(f"{name}-cmek", GcpKmsKeysArgs(
            key_ring=f"llm-hosting-{args.stack}-vertex", key_name="vertex-endpoint", locations=[args.region],
            encrypter_members=[agent.member], project=args.project, protect=args.protect, labels=args.labels,
        ), opts=child)

        env = container_env(args)
        container = gcp.vertex.AiEndpointWithModelGardenDeploymentModelConfigContainerSpecArgs(
            image_uri=args.image_uri,
            commands=["vllm", "serve"],  # the vllm-openai entrypoint, stated so a mirrored image cannot change it
            args=container_args(args),
            envs=[gcp.vertex.AiEndpointWithModelGardenDeploymentModelConfigContainerSpecEnvArgs(name=k, value=v)
                  for k, v in env.items()],
            ports=[gcp.vertex.AiEndpointWithModelGardenDeploymentModelConfigContainerSpecPortArgs(
                container_port=CONTAINER_PORT)],
            health_route=HEALTH_ROUTE,
            predict_route=PREDICT_ROUTE,
            deployment_timeout=DEPLOYMENT_TIMEOUT,
            shared_memory_size_mb=SHARED_MEMORY_MB_FOR_TP if args.accelerator_count > 1 else None,
        )
        resources = gcp.vertex.AiEndpointWithModelGardenDeploymentDeployConfigDedicatedResourcesArgs(
            machine_spec=gcp.vertex.AiEndpointWithModelGardenDeploymentDeployConfigDedicatedResourcesMachineSpecArgs(
                machine_type=args.machine_type, accelerator_type=args.accelerator_type,
                accelerator_count=args.accelerator_count),
            min_replica_count=args.min_replicas,
            max_replica_count=args.max_replicas,
            spot=args.spot,
            autoscaling_metric_specs=[
                gcp.vertex.AiEndpointWithModelGardenDeploymentDeployConfigDedicatedResourcesAutoscalingMetricSpecArgs(
                    metric_name=DUTY_CYCLE_METRIC, target=args.autoscaling_target_gpu_duty_cycle)],
        )
        if args.private:
            # PSC automation: Vertex AI creates the forwarding rule (and its address) in our VPC, so no consumer-side
            # ForwardingRule has to target a service attachment that is only known after the deployment exists.
            psc = gcp.vertex.AiEndpointWithModelGardenDeploymentEndpointConfigPrivateServiceConnectConfigArgs(
                enable_private_service_connect=True,
                project_allowlists=[project.project_id],
                psc_automation_configs=gcp.vertex.AiEndpointWithModelGardenDeploymentEndpointConfigPrivateServiceConnectConfigPscAutomationConfigsArgs(
                    project_id=project.project_id,
                    network=pulumi.Output.from_input(args.network).apply(network_name)),
            )
            endpoint_config = gcp.vertex.AiEndpointWithModelGardenDeploymentEndpointConfigArgs(
                endpoint_display_name=f"llm-hosting-{args.stack}", private_service_connect_config=psc)
        else:
            # What the API does by default anyway; stated so the URL below does not depend on a default.
            endpoint_config = gcp.vertex.AiEndpointWithModelGardenDeploymentEndpointConfigArgs(
                endpoint_display_name=f"llm-hosting-{args.stack}", dedicated_endpoint_enabled=True)

        deployment = gcp.vertex.AiEndpointWithModelGardenDeployment(
            f"{name}-deployment",
            location=args.region,
            project=args.project,
            # The deploy API needs a model reference (NOT_EXPRESSIBLE["artifact_uri"]); the container args decide
            # where vLLM really loads the weights from.
            hugging_face_model_id=args.model_id,
            model_config=gcp.vertex.AiEndpointWithModelGardenDeploymentModelConfigArgs(
                accept_eula=args.accept_eula,
                # Google's cached copy unless a Hub token is given; the token stays a secret in state and preview.
                hugging_face_cache_enabled=args.hugging_face_token is None,
                hugging_face_access_token=(pulumi.Output.secret(args.hugging_face_token)
                                           if args.hugging_face_token is not None else None),
                model_display_name=f"llm-hosting-{args.stack}",
                container_spec=container,
            ),
            deploy_config=gcp.vertex.AiEndpointWithModelGardenDeploymentDeployConfigArgs(dedicated_resources=resources),
            endpoint_config=endpoint_config,
            # A second lock next to protect: the provider refuses to undeploy and delete while this says PREVENT.
            deletion_policy="PREVENT" if args.protect else "DELETE",
            # PSC automation runs during the deployment and fails for good without the policy, so it must exist first.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                        depends_on=[args.service_connection_policy]
                                        if args.service_connection_policy is not None else None),
        )

        self.endpoint_id = deployment.endpoint
        self.endpoint_name = pulumi.Output.concat("projects/", project.project_id, "/locations/", args.region,
                                                  "/endpoints/", deployment.endpoint)
        self.kms_key_ids = keys.key_ids
        self.psc_ip_address = deployment.endpoint_config.apply(_psc_ip) if args.private else None
        # The endpoint's host, built once: the private zone's record and the contract URL both use it.
        host_of = psc_host if args.private else public_host
        host = pulumi.Output.all(deployment.endpoint, project.number).apply(
            lambda v: host_of(v[0], args.region, v[1]))
        self.psc_dns_name = host if args.private else None
        if args.private:
            # Only this VPC sees the zone, so the name resolves to the forwarding rule here and nowhere else.
            network = pulumi.Output.from_input(args.network).apply(network_name)
            zone = gcp.dns.ManagedZone(
                f"{name}-psc-dns", name=f"{name_prefix(args.stack)}-vertex-psc", project=args.project,
                dns_name=f"{PSC_DNS_SUFFIX}.", visibility="private",
                description=f"llm-hosting {args.stack}: Vertex AI endpoints through Private Service Connect",
                private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                    networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network)]),
                labels=args.labels, opts=child)
            gcp.dns.RecordSet(
                f"{name}-psc-dns-a", project=args.project, managed_zone=zone.name, name=host.apply(lambda h: f"{h}."),
                type="A", ttl=PSC_DNS_TTL, rrdatas=[deployment.endpoint_config.apply(_psc_ip_required)], opts=child)
        # OpenAI-compatible base URL. Vertex AI serves chat completions at POST
        # https://<host>/v1/projects/<project>/locations/<region>/endpoints/<id>/chat/completions (REST method
        # projects.locations.endpoints.chat.completions, in v1 and v1beta1; we use the GA v1), and OpenAI clients
        # append /chat/completions to the base URL, so the base stops at the endpoint. The host is the endpoint's
        # own name, not <region>-aiplatform.googleapis.com: a dedicated endpoint refuses the shared host. Public: the
        # dedicated endpoint's DNS, computed because the deployment does not export it
        # (NOT_EXPRESSIBLE["dedicated_endpoint_dns"]); private: the PSC name the zone above resolves.
        endpoint_url = pulumi.Output.all(host, deployment.endpoint, project.project_id).apply(
            lambda v: f"https://{v[0]}/v1/projects/{v[2]}/locations/{args.region}/endpoints/{v[1]}")
        self.contract = TierOutputs(endpoint_url=endpoint_url,
                                    api_key_secret="google-oauth (IAM aiplatform.endpoints.predict)",
                                    model=args.model_id, tier="managed")
        policies = _alert_policies(name, args, deployment.endpoint, self) if args.notification_channels else []
        self.alert_policy_names = [p.name for p in policies]
        self.register_outputs({"endpoint_id": self.endpoint_id, "endpoint_name": self.endpoint_name,
                               "kms_key_ids": self.kms_key_ids, "endpoint_url": endpoint_url,
                               "psc_dns_name": self.psc_dns_name, "alert_policy_names": self.alert_policy_names})


def endpoint_filter(metric: str, endpoint_id: str, region: str) -> str:
    """A Cloud Monitoring filter for one of this endpoint's metrics."""
    return (f'resource.type="{ENDPOINT_RESOURCE}" AND resource.labels.endpoint_id="{endpoint_id}" '
            f'AND resource.labels.location="{region}" AND metric.type="{metric}"')


def _alert_policies(name: str, args: VertexEndpointArgs, endpoint_id: pulumi.Output[str],
                    parent: pulumi.Resource) -> list[gcp.monitoring.AlertPolicy]:
    """Alert policies on the endpoint's own metrics: latency above the SLA, failing predictions, no headroom left."""
    def threshold_policy(key: str, title: str, what: str, **threshold) -> gcp.monitoring.AlertPolicy:
        return gcp.monitoring.AlertPolicy(
            f"{name}-alert-{key}",
            project=args.project,
            display_name=f"llm-hosting {args.stack}: Vertex AI endpoint {title}",
            combiner="OR",
            conditions=[gcp.monitoring.AlertPolicyConditionArgs(
                display_name=title, condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1), **threshold))],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                subject=f"llm-hosting {args.stack}: Vertex AI endpoint {title}",
                content=f"{what}\n\nRunbook: {RUNBOOKS[key]}", mime_type="text/markdown"),
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(notification_prompts=["OPENED", "CLOSED"]),
            notification_channels=list(args.notification_channels),
            user_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def metric(m: str) -> pulumi.Output[str]:
        return endpoint_id.apply(lambda e: endpoint_filter(m, e, args.region))

    policies = []
    if args.latency_alert_ms is not None:
        # The deployed model's p95 request latency. Vertex AI measures whole requests, not the first token: a
        # request's latency is at least its TTFT, so a breach of the TTFT SLA always shows here, and a long
        # non-streamed completion can show here without one (the runbook says where to look).
        policies.append(threshold_policy(
            "latency", f"p95 latency above {args.latency_alert_ms} ms",
            f"The p95 prediction latency of `{args.model_id}` has been above the stack's TTFT SLA "
            f"({args.latency_alert_ms} ms) for 5 minutes.",
            filter=metric(LATENCY_METRIC).apply(lambda f: f'{f} AND metric.labels.latency_type="total"'),
            aggregations=[gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                alignment_period=ALERT_WINDOW, per_series_aligner="ALIGN_PERCENTILE_95")],
            comparison="COMPARISON_GT", threshold_value=args.latency_alert_ms, duration=ALERT_DURATION))
    count = gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
        alignment_period=ALERT_WINDOW, per_series_aligner="ALIGN_DELTA", cross_series_reducer="REDUCE_SUM",
        group_by_fields=["resource.label.endpoint_id"])
    policies.append(threshold_policy(
        "errors", f"errors above {ERROR_RATIO:.0%} of predictions",
        f"More than {ERROR_RATIO:.0%} of `{args.model_id}`'s predictions have failed for 5 minutes.",
        filter=metric(ERROR_METRIC), aggregations=[count],
        denominator_filter=metric(PREDICTION_METRIC), denominator_aggregations=[
            gcp.monitoring.AlertPolicyConditionConditionThresholdDenominatorAggregationArgs(
                alignment_period=ALERT_WINDOW, per_series_aligner="ALIGN_DELTA", cross_series_reducer="REDUCE_SUM",
                group_by_fields=["resource.label.endpoint_id"])],
        comparison="COMPARISON_GT", threshold_value=ERROR_RATIO, duration=ALERT_DURATION))
    if args.max_replicas > args.min_replicas:
        # Pinned deployments (min == max) always run at the ceiling; there it says nothing. Threshold conditions
        # compare only greater/less than, so "at max" is "above max - 0.5".
        policies.append(threshold_policy(
            "saturation", f"at max_replicas ({args.max_replicas})",
            f"`{args.model_id}` has run at its max_replicas ({args.max_replicas}) for 15 minutes.",
            filter=metric(REPLICAS_METRIC),
            aggregations=[gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                alignment_period=ALERT_WINDOW, per_series_aligner="ALIGN_MIN", cross_series_reducer="REDUCE_SUM",
                # Spot and on-demand replicas are separate series (the `spot` label): their sum is the model's.
                group_by_fields=["metric.label.deployed_model_id"])],
            comparison="COMPARISON_GT", threshold_value=args.max_replicas - 0.5, duration=SATURATION_DURATION))
    return policies


def _automation(config):
    psc = getattr(config, "private_service_connect_config", None) if config else None
    return getattr(psc, "psc_automation_configs", None) if psc else None


def _psc_ip(config) -> Optional[str]:
    """The address of the forwarding rule PSC automation created; known only once the deployment exists."""
    automation = _automation(config)
    return getattr(automation, "ip_address", None) if automation else None


def _psc_ip_required(config) -> str:
    # A failed automation does not fail the deployment (Vertex AI reports it in the config instead); stop here with
    # its reason rather than publish a name that resolves nowhere.
    address = _psc_ip(config)
    if not address:
        automation = _automation(config)
        state = getattr(automation, "state", None) if automation else None
        error = getattr(automation, "error_message", None) if automation else None
        raise ValueError(f"Private Service Connect automation gave the endpoint no address (state {state}: {error}); "
                         f"check the network's service connection policy for {PSC_SERVICE_CLASS}")
    return address
