"""The gateway on Cloud Run: the LiteLLM proxy of serving/gateway_config.py for GCP stacks without a cluster.

API tier, Vertex AI tier and hybrid-on-Vertex stacks have no GKE cluster to run serving/gateway_k8s.py in. There the
gateway is a Cloud Run service that only the stack's regional internal Application Load Balancer can reach
(components/gcp_serverless_endpoint.py puts it behind one, by this service's name):

  client in the VPC --HTTPS--> internal ALB --serverless NEG--> Cloud Run (ingress: internal load balancer only)
      --Direct VPC egress, all traffic--> the Vertex endpoint's PSC address / Google APIs / (hybrid) the API provider

Cloud Run has no config volume: the container's command is gateway_config.BOOTSTRAP_ENTRYPOINT, which unpacks the
same config directory as the Kubernetes ConfigMap (config.yaml, the request guard, the consumer authentication) from
one plain environment variable (FILES_ENV) and then runs `litellm`. No key is in that variable or anywhere else in the
service spec: every key is a Secret Manager reference that Cloud Run resolves when an instance starts.

* the master key: a secret of this component's (`llm-hosting-<stack>-gateway-master-key`, CMEK), by pinned version;
* provider keys (api_key_secrets): the raw key, from the API tier's secret (components/gcp_api_key_secret.py);
* consumer keys (consumer_key_secrets): the consumer's JSON document {base_url, api_key, model}
  (components/gcp_consumer_keys.py); Cloud Run cannot pick one field of a secret, so the bootstrap takes `api_key`.

Provider and consumer secrets are read at version "latest": their components do not export the versions they write.
Cloud Run resolves "latest" when an instance starts, so a rotated key reaches the gateway with its next revision
(any change of the service) or its instances' next restart, not by itself.

Identity: a service account of its own, which can read exactly those secrets (one IAM member per secret) and, on a
Vertex tier, call predict on the stack's one endpoint through a custom role holding only aiplatform.endpoints.predict.
Writing logs needs no grant (Cloud Run's agent ships stdout/stderr).

Instances: min = max = `replicas`, always allocated. LiteLLM counts each consumer's requests and tokens in its own
memory, so gateway_config renders every rate limit as ceil(limit / replicas) per instance: that only adds up to the
consumer's limit when exactly `replicas` instances serve, hence no autoscaling. Cloud Run answers 429 beyond
replicas x concurrency in-flight requests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.gcp_network import name_prefix
from components.gcp_usage_metrics import GcpUsageMetrics, GcpUsageMetricsArgs
from planner.stack_config import DriftConfig

from .gateway_config import (BOOTSTRAP_ENTRYPOINT, CLOUD_RUN_CPU, CLOUD_RUN_MEMORY_GIB, CONSUMER_KEY_ENV_PREFIX,
                             FILES_ENV, KEY_ENV_PATTERN, SERVERLESS_REPLICAS,
                             MASTER_KEY_ENV, PORT, PROXY_ENV, GatewayRoutes, check_consumer_mapping, check_keys,
                             consumer_key_env, packed_files, render_config)

# Where Cloud Run pulls images from. Anything else (ghcr.io, quay.io, nvcr.io) must be mirrored into Artifact
# Registry first: components/gcp_image_mirror.py does it for ghcr.io.
CLOUD_RUN_REGISTRIES = ("<location>-docker.pkg.dev (Artifact Registry)", "gcr.io", "docker.io (Docker Hub)")
_ARTIFACT_REGISTRY = re.compile(r"^[a-z0-9-]+-docker\.pkg\.dev$")
_GCR = re.compile(r"^([a-z]+\.)?gcr\.io$")
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")  # Cloud Run: at most 49 characters
_ENDPOINT_NAME = re.compile(r"^projects/[^/]+/locations/(?P<location>[^/]+)/endpoints/[^/]+$")
_ENDPOINT_ID = re.compile(r"^[0-9]+$")
_CPU = re.compile(r"^([1-8]|[0-9]+m)$")
_MEMORY = re.compile(r"^[0-9]+(Mi|Gi)$")

# Cloud Run's own names for the settings below.
INGRESS = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
EGRESS = "ALL_TRAFFIC"
EXECUTION_ENVIRONMENT = "EXECUTION_ENVIRONMENT_GEN2"
HEALTH_PATH = "/health/liveliness"  # answered by the proxy itself, without calling an upstream
PREDICT_PERMISSION = "aiplatform.endpoints.predict"
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
RESERVED_ENV = {MASTER_KEY_ENV, FILES_ENV, *PROXY_ENV}


def registry_host(image: str) -> str:
    """The registry an image reference names; Docker Hub when the first path element is not a host."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def check_image(image: str, field_name: str = "image") -> None:
    """A pinned reference on a registry Cloud Run pulls from."""
    tail = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in tail or tail.endswith(":latest")):
        raise ValueError(f"{field_name}: {image!r} is not pinned; give an exact release tag or an @sha256 digest")
    host = registry_host(image)
    if not (_ARTIFACT_REGISTRY.match(host) or _GCR.match(host) or host in _DOCKER_HUB):
        raise ValueError(f"{field_name}: {image!r} is on {host}, and Cloud Run pulls only from "
                         f"{', '.join(CLOUD_RUN_REGISTRIES)}. Mirror it into Artifact Registry "
                         "(components/gcp_image_mirror.py: GcpImageMirror(...).image(...)) or give the same image in "
                         "the stack's registry")


def service_name(stack: str) -> str:
    return f"{name_prefix(stack)}-gateway"


def master_key_secret_id(stack: str) -> str:
    return f"{name_prefix(stack)}-gateway-master-key"


def service_account_id(stack: str) -> str:
    """llm-<stack>-gateway in 6-30 characters; a long stack name is cut and made unique again with a hash of it."""
    label = name_prefix(stack).removeprefix("llm-hosting-")
    if len(label) > 18:
        label = f"{label[:11].rstrip('-')}-{hashlib.sha256(stack.encode()).hexdigest()[:6]}"
    return f"llm-{label}-gateway"


def predict_role_id(stack: str) -> str:
    """A project custom role id ([a-zA-Z0-9_.], 3-64 characters)."""
    return "llmhost_" + re.sub(r"[^a-zA-Z0-9]", "_", stack)[:36] + "_vertex_predict"


def _is_output(value: Any) -> bool:
    return isinstance(value, pulumi.Output)


@dataclass(frozen=True)
class GatewayCloudRunArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # the service, its master-key secret and the load balancer in front
    routes: Any  # GatewayRoutes, or a pulumi.Output[GatewayRoutes] when an upstream address is known only at deploy time
    # Pinned LiteLLM image on a registry Cloud Run pulls from: GcpImageMirror(...).image(VERSIONS.gateway_image(None))
    # or VERSIONS.gateway_image(<the stack's Artifact Registry>). An Output is checked when it resolves.
    image: pulumi.Input[str]
    master_key: pulumi.Input[str]  # a Pulumi secret: the operators' key (admin routes, /metrics)
    # Env var (Upstream.api_key_env) -> Secret Manager secret (id or projects/.../secrets/<id>) holding the raw key.
    api_key_secrets: Mapping[str, pulumi.Input[str]]
    # Consumer (GatewayRoutes.consumers) -> its secret (GcpConsumerKeys.secret_names[consumer]): the JSON document.
    consumer_key_secrets: Mapping[str, pulumi.Input[str]]
    kms_key_id: pulumi.Input[str]  # CMEK key in `region` for the master-key secret (GcpConsumerKeys.kms_key_id)
    network: pulumi.Input[str]  # VPC self link (Direct VPC egress)
    subnetwork: pulumi.Input[str]  # self link of the stack's subnet in `region`: the instances take addresses from it
    # The Vertex AI endpoint the routes call (VertexEndpoint.endpoint_name: projects/<p>/locations/<r>/endpoints/<id>,
    # or its numeric id in `region`); None when no route calls Vertex AI.
    vertex_endpoint: Optional[pulumi.Input[str]] = None
    replicas: int = SERVERLESS_REPLICAS
    cpu: str = str(CLOUD_RUN_CPU)
    memory: str = f"{CLOUD_RUN_MEMORY_GIB}Gi"
    concurrency: int = 80  # in-flight requests per instance; the proxy is async, most of a request is waiting
    timeout_seconds: int = 600  # per request: the longest route's budget (litellm_settings.request_timeout) fits
    labels: Mapping[str, str] = field(default_factory=dict)
    protect: bool = True
    # What must exist before the first revision starts: the writers of the secrets it reads at "latest" (e.g. the
    # GcpConsumerKeys and GcpApiKeySecret components, whose secret names are known before their versions are).
    secrets_ready: Sequence[pulumi.Resource] = ()
    # Consumer -> its secret's version number (GcpConsumerKeys.versions): pinned, so a rotated key makes a new
    # revision; without it the service reads `latest`, which an instance resolves only when it starts.
    consumer_key_versions: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The plan's drift thresholds (spend.drift). Given, the usage lines the gateway prints become log-based metrics
    # (components/gcp_usage_metrics.py) and the thresholds alert policies on them, to notification_channels.
    drift: Optional[DriftConfig] = None
    notification_channels: Sequence[pulumi.Input[str]] = ()  # GcpAlertChannel.channel_name; required with drift

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: required")
        if not _SERVICE_NAME.match(service_name(self.stack)):
            raise ValueError(f"stack: {self.stack!r} makes the service name {service_name(self.stack)!r}, which is not "
                             "at most 49 lowercase letters, digits and dashes")
        if not self.region:
            raise ValueError("region: required")
        if isinstance(self.image, str):
            check_image(self.image)
        elif not _is_output(self.image):
            raise ValueError("image: a pinned image reference (a str or an Output of one)")
        if self.master_key is None or self.master_key == "":
            raise ValueError("master_key: required (a Pulumi secret)")
        if self.kms_key_id is None or self.kms_key_id == "":
            raise ValueError("kms_key_id: required (the master-key secret is encrypted with the stack's CMEK key)")
        for what in ("network", "subnetwork"):
            if getattr(self, what) is None or getattr(self, what) == "":
                raise ValueError(f"{what}: required (the gateway's egress goes through the stack's VPC)")
        check_consumer_mapping("consumer_key_secrets", self.consumer_key_secrets, "secret")
        for env, secret in self.api_key_secrets.items():
            if not KEY_ENV_PATTERN.match(env) or env in RESERVED_ENV or env.startswith(CONSUMER_KEY_ENV_PREFIX):
                raise ValueError(f"api_key_secrets: {env!r} is not a valid key variable (LLMHOST_[A-Z0-9_]+)")
            if secret is None or secret == "":
                raise ValueError(f"api_key_secrets: {env} has no secret")
        if isinstance(self.vertex_endpoint, str):
            full = _ENDPOINT_NAME.match(self.vertex_endpoint)
            if not full and not _ENDPOINT_ID.match(self.vertex_endpoint):
                raise ValueError(f"vertex_endpoint: {self.vertex_endpoint!r} is neither "
                                 "projects/<project>/locations/<region>/endpoints/<id> nor a numeric endpoint id")
            if full and full.group("location") != self.region:
                raise ValueError(f"vertex_endpoint: {self.vertex_endpoint!r} is not in {self.region}, the gateway's "
                                 "region")
        elif self.vertex_endpoint is not None and not _is_output(self.vertex_endpoint):
            raise ValueError("vertex_endpoint: the endpoint's resource name or id (a str or an Output of one)")
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 2:
            raise ValueError(f"replicas: {self.replicas!r}; the gateway fronts every tier, so it runs at least 2 "
                             "instances")
        if not _CPU.match(self.cpu):
            raise ValueError(f"cpu: {self.cpu!r} is not a Cloud Run CPU limit such as 1, 2, 4")
        if not _MEMORY.match(self.memory):
            raise ValueError(f"memory: {self.memory!r} is not a Cloud Run memory limit such as 2Gi or 512Mi")
        if not 1 <= self.concurrency <= 1000:
            raise ValueError(f"concurrency: {self.concurrency} is outside Cloud Run's 1-1000")
        if not 1 <= self.timeout_seconds <= 3600:
            raise ValueError(f"timeout_seconds: {self.timeout_seconds} is outside Cloud Run's 1-3600")
        if self.drift is not None and not isinstance(self.drift, DriftConfig):
            raise ValueError("drift: a planner.stack_config.DriftConfig (spend.drift)")
        if self.drift is not None and not self.notification_channels:
            raise ValueError("notification_channels: the drift alert policies need the stack's notification channel "
                             "(GcpAlertChannel.channel_name)")
        if isinstance(self.routes, GatewayRoutes):
            _check_secrets(self, self.routes)
        elif not _is_output(self.routes):
            raise ValueError("routes: a GatewayRoutes (or an Output of one)")


def _check_secrets(args: GatewayCloudRunArgs, routes: GatewayRoutes) -> None:
    """gateway_config.check_keys, its messages naming this runtime's fields."""
    try:
        check_keys(routes, args.api_key_secrets, args.consumer_key_secrets)
    except ValueError as exc:
        message = str(exc)
        for field_name in ("api_keys", "consumer_keys"):
            if message.startswith(f"{field_name}:"):
                message = field_name.removesuffix("s") + "_secrets" + message[len(field_name):]
        raise ValueError(message) from None


def _build(args: GatewayCloudRunArgs, routes: GatewayRoutes) -> dict[str, Any]:
    _check_secrets(args, routes)
    # Checks every sensitive route before returning; each instance admits ceil(limit / replicas).
    return render_config(routes, replicas=args.replicas)


def _checked_image(image: str) -> str:
    check_image(image)
    return image


class GatewayCloudRun(pulumi.ComponentResource):
    """The LiteLLM proxy as a Cloud Run service reachable only through an internal Application Load Balancer."""

    service_name: pulumi.Output[str]
    service_id: pulumi.Output[str]
    service_account_email: pulumi.Output[str]
    uri: pulumi.Output[str]  # Cloud Run's own URL; not reachable from clients (ingress is the load balancer only)
    master_key_secret_id: pulumi.Output[str]
    config: pulumi.Output[dict]
    usage: Optional[GcpUsageMetrics]  # the usage metrics and drift alert policies, when drift was given

    def __init__(self, name: str, args: GatewayCloudRunArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GatewayCloudRun", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if _is_output(args.routes):
            config = args.routes.apply(lambda r: _build(args, r))
        else:  # known now: a bad route fails here, before anything is registered
            rendered = _build(args, args.routes)
            config = pulumi.Output.from_input(None).apply(lambda _: rendered)
        image = pulumi.Output.from_input(args.image).apply(_checked_image)

        account = gcp.serviceaccount.Account(
            f"{name}-sa", account_id=service_account_id(args.stack), project=args.project,
            display_name=f"llm-hosting {args.stack}: the LiteLLM gateway on Cloud Run",
            description="Reads the gateway's key secrets; calls predict on the stack's Vertex AI endpoint only",
            opts=child)

        master = gcp.secretmanager.Secret(
            f"{name}-master-key",
            secret_id=master_key_secret_id(args.stack),
            project=args.project,
            replication=gcp.secretmanager.SecretReplicationArgs(
                user_managed=gcp.secretmanager.SecretReplicationUserManagedArgs(replicas=[
                    gcp.secretmanager.SecretReplicationUserManagedReplicaArgs(
                        location=args.region,
                        customer_managed_encryption=gcp.secretmanager.SecretReplicationUserManagedReplicaCustomerManagedEncryptionArgs(
                            kms_key_name=args.kms_key_id))])),
            labels=dict(args.labels),
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        master_version = gcp.secretmanager.SecretVersion(
            f"{name}-master-key-version", secret=master.id, secret_data=pulumi.Output.secret(args.master_key),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_data"]))

        # Exactly the secrets the revision reads, each granted on its own: env var -> (secret, version). The master
        # key's version is pinned (a new key makes a new revision); the others' writers export no version.
        secret_env: dict[str, tuple[Any, Any]] = {MASTER_KEY_ENV: (master.name, master_version.version)}
        for env in sorted(args.api_key_secrets):
            secret_env[env] = (args.api_key_secrets[env], "latest")
        for consumer in sorted(args.consumer_key_secrets):
            secret_env[consumer_key_env(consumer)] = (args.consumer_key_secrets[consumer],
                                                      args.consumer_key_versions.get(consumer, "latest"))
        readers: list[pulumi.Resource] = []
        for env, (secret, _) in secret_env.items():
            # A secret given by its full name (projects/<p>/secrets/<id>) names its project; an id is in `project`.
            readers.append(gcp.secretmanager.SecretIamMember(
                f"{name}-reads-{env.lower().replace('_', '-')}", project=args.project, secret_id=secret,
                role=SECRET_ACCESSOR, member=account.member, opts=child))

        if args.vertex_endpoint is not None:
            # No predefined role is this narrow (roles/aiplatform.user can also deploy, train and read data), and a
            # project-level grant would reach every endpoint: a custom role with the one permission, on one endpoint.
            role = gcp.projects.IAMCustomRole(
                f"{name}-predict-role", role_id=predict_role_id(args.stack), project=args.project,
                title=f"llm-hosting {args.stack}: Vertex AI predict",
                description="Call predict (and the OpenAI-compatible chat route) on a Vertex AI endpoint; nothing else",
                permissions=[PREDICT_PERMISSION], stage="GA", opts=child)
            # The id form (projects/<p>/roles/<id>) built from the role's own outputs, so the grant waits for it.
            role_name = pulumi.Output.concat("projects/", role.project, "/roles/", role.role_id)
            readers.append(gcp.vertex.AiEndpointIamMember(
                f"{name}-predict", endpoint=args.vertex_endpoint, location=args.region, project=args.project,
                role=role_name, member=account.member, opts=child))

        def secret_ref(env: str, secret: Any, version: Any) -> gcp.cloudrunv2.ServiceTemplateContainerEnvArgs:
            return gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(
                name=env, value_source=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceArgs(
                    secret_key_ref=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                        secret=secret, version=version)))

        envs = [
            *[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name=n, value=v) for n, v in PROXY_ENV.items()],
            # The config directory, packed; deterministic, so an unchanged config makes no new revision.
            gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name=FILES_ENV, value=config.apply(packed_files)),
            *[secret_ref(env, secret, version) for env, (secret, version) in secret_env.items()],
        ]

        service = gcp.cloudrunv2.Service(
            f"{name}-service",
            name=service_name(args.stack),
            project=args.project,
            location=args.region,
            description=f"llm-hosting {args.stack}: the LiteLLM gateway (OpenAI-compatible API)",
            launch_stage="GA",
            # Only the internal Application Load Balancer in front can reach the service; its run.app URL answers
            # nothing from the internet or from the VPC directly.
            ingress=INGRESS,
            # The load balancer forwards the client's request as is, with no Google identity, so Cloud Run's invoker
            # check would refuse every call. The gateway authenticates each request itself (the consumers' keys, the
            # master key), and ingress already limits who can send one.
            invoker_iam_disabled=True,
            deletion_protection=args.protect,
            labels=dict(args.labels),
            template=gcp.cloudrunv2.ServiceTemplateArgs(
                service_account=account.email,
                labels=dict(args.labels),
                # Exactly `replicas` instances: the per-instance rate limits (ceil(limit / replicas)) add up to each
                # consumer's limit only then.
                scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                    min_instance_count=args.replicas, max_instance_count=args.replicas),
                max_instance_request_concurrency=args.concurrency,
                execution_environment=EXECUTION_ENVIRONMENT,
                timeout=f"{args.timeout_seconds}s",
                # Direct VPC egress with all traffic: every call the gateway makes (the Vertex endpoint's PSC
                # address, named in the VPC's private DNS zone; Google APIs through Private Google Access; a hybrid's
                # API provider through the VPC's Cloud NAT) leaves through the stack's VPC, under its firewall, DNS
                # and NAT. With private ranges only, public destinations would leave from Cloud Run straight to the
                # internet, around the VPC's controls, and an air-gapped network would not be air-gapped.
                vpc_access=gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
                    network_interfaces=[gcp.cloudrunv2.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                        network=args.network, subnetwork=args.subnetwork)],
                    egress=EGRESS),
                containers=[gcp.cloudrunv2.ServiceTemplateContainerArgs(
                    name="litellm",
                    image=image,
                    commands=list(BOOTSTRAP_ENTRYPOINT),
                    ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(name="http1", container_port=PORT),
                    envs=envs,
                    resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
                        limits={"cpu": args.cpu, "memory": args.memory},
                        # Always allocated: the minimum instances serve traffic (and count rate limits) all the time,
                        # not only while a request is open.
                        cpu_idle=False,
                        startup_cpu_boost=True),
                    startup_probe=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
                        http_get=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeHttpGetArgs(
                            path=HEALTH_PATH, port=PORT),
                        period_seconds=5, timeout_seconds=5, failure_threshold=36),  # up to 3 minutes to start
                    liveness_probe=gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeArgs(
                        http_get=gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                            path=HEALTH_PATH, port=PORT),
                        period_seconds=15, timeout_seconds=5, failure_threshold=3),
                )],
            ),
            # The first revision starts only if its identity can already read every secret (and call the endpoint).
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                        depends_on=[*readers, master_version, *args.secrets_ready]))

        # Cloud Run ships the service's stdout to Cloud Logging; the usage lines arrive there as jsonPayload.
        self.usage = GcpUsageMetrics(f"{name}-usage", GcpUsageMetricsArgs(
            stack=args.stack, project=args.project, region=args.region, service_name=service.name, drift=args.drift,
            notification_channels=list(args.notification_channels), labels=dict(args.labels)),
            opts=child) if args.drift is not None else None

        self.service_name = service.name
        self.service_id = service.id
        self.service_account_email = account.email
        self.uri = service.uri
        self.master_key_secret_id = master.secret_id
        self.config = config
        self.register_outputs({"service_name": self.service_name, "service_id": self.service_id,
                               "service_account_email": self.service_account_email, "uri": self.uri,
                               "master_key_secret_id": self.master_key_secret_id, "config": self.config})
