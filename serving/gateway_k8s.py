"""The gateway on Kubernetes: the LiteLLM proxy of serving/gateway_config.py as a Deployment in the stack's cluster.

`Gateway` deploys the rendered config directory through the Kubernetes provider the caller passes: ConfigMap
(config.yaml, the request guard, the consumer authentication), Secret `<name>-keys` (provider keys and the master
key), one Secret `<name>-consumer-<consumer>` (key `api-key`) per consumer, Deployment (with its NetworkPolicy: the
proxy port, from pods in the cluster only), PodDisruptionBudget, ClusterIP Service. Its `service_url` is the stack's
`endpoint_url` for hybrid tiers.

Keys reach the pod as environment variables by secretKeyRef, which the kubelet resolves once, at container start.
Rotating a consumer's key therefore changes its own Secret and rolls the pods through a separate annotation (the
consumer Secrets' resourceVersions); the config checksum, which covers no key, stays as it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .gateway_config import (AUTH_SOURCE, CONFIG_DIR, CONFIG_FILE, CONSUMER_KEY_ENV_PREFIX, GUARD_SOURCE,
                             KEY_ENV_PATTERN, MASTER_KEY_ENV, METRICS_PATH, PORT, PROXY_ENV, GatewayRoutes,
                             USAGE_SOURCE, check_consumer_mapping, check_keys, config_files, consumer_key_env, render_config,
                             render_yaml)
from .monitoring import API_VERSION as MONITOR_API_VERSION, pod_monitor_spec

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
RESERVED_ENV = {MASTER_KEY_ENV, "LITELLM_LOCAL_MODEL_COST_MAP", "HOME"}
CONSUMER_SECRET_KEY = "api-key"  # the key inside each consumer Secret

# checkov waivers, as `checkov.io/skipN: CHECK=reason` on the Deployment (tests/test_manifests.py; no "=" in a reason).
WAIVE_TAG_PINNED = ("CKV_K8S_43", "the LiteLLM image is pinned by exact release tag in components/versions.py; a "
                                  "stack pins digests through llm-hosting:versions")
WAIVE_SECRET_ENV = ("CKV_K8S_35", "LiteLLM reads provider keys and its master key only from environment variables "
                                  "(os.environ/NAME in config.yaml) and the consumer keys likewise; they come from the gateway's "
                                  "Secrets by secretKeyRef")


MONITORING_NAMESPACE = "monitoring"  # where the stack's Prometheus scrapes /metrics from (components/monitoring_stack.py)


@dataclass(frozen=True)
class GatewayArgs:
    routes: Any  # GatewayRoutes, or a pulumi.Output[GatewayRoutes] when an upstream address is known only at deploy time
    image: str  # pinned LiteLLM image: VERSIONS.gateway_image(registry)
    api_keys: Mapping[str, Any]  # env var (Upstream.api_key_env) -> the provider key as a Pulumi secret
    master_key: Any  # pulumi.Input[str], a Pulumi secret: the operators' key (admin routes, the metrics scrape)
    # Consumer name (GatewayRoutes.consumers) -> its key, a pulumi.Input[str] Pulumi secret; what that application sends
    # as `Authorization: Bearer ...`. Each lands in its own Secret <name>-consumer-<consumer>.
    consumer_keys: Mapping[str, Any] = field(default_factory=dict)
    namespace: Any = "llm-serving"  # pulumi.Input[str]; the namespace must exist (pass its Output to order it)
    name: str = "llm-gateway"  # object names; the Service's DNS name
    replicas: int = 2
    service_account_name: Optional[str] = None  # for managed upstreams signed with the pod's cloud identity
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"
    labels: Mapping[str, str] = field(default_factory=dict)
    # A PodMonitor has the stack's Prometheus scrape the proxy's /metrics (requests, tokens, fallbacks per route); it is
    # created after what installs its CRD (the Prometheus operator release). Off when the cluster runs no Prometheus.
    pod_monitor: bool = False
    custom_resource_dependencies: list = field(default_factory=list)
    # Where the load balancer in front connects from (the VPC's range for an internal ALB with IP targets; the
    # proxy-only subnet and Google's health-check ranges for an internal Application Load Balancer): admitted by the
    # NetworkPolicy, with the pods of this namespace and the monitoring namespace, and nothing else.
    load_balancer_sources: Sequence[Any] = ()

    def __post_init__(self):
        tail = self.image.rsplit("/", 1)[-1]
        if "@sha256:" not in self.image and (":" not in tail or tail.endswith(":latest")):
            raise ValueError(f"image: {self.image!r} is not pinned; give an exact release tag or an @sha256 digest")
        if not DNS_LABEL.match(self.name) or len(self.name) > 40:
            raise ValueError(f"name: {self.name!r} must be a DNS label of at most 40 characters")
        if self.replicas < 2:
            raise ValueError(f"replicas: {self.replicas}; the gateway fronts every tier, so it runs at least 2 replicas")
        if self.master_key is None or self.master_key == "":
            raise ValueError("master_key: required (a Pulumi secret)")
        check_consumer_mapping("consumer_keys", self.consumer_keys)
        for env in self.api_keys:
            if not KEY_ENV_PATTERN.match(env) or env in RESERVED_ENV or env.startswith(CONSUMER_KEY_ENV_PREFIX):
                raise ValueError(f"api_keys: {env!r} is not a valid key variable (LLMHOST_[A-Z0-9_]+)")
            if self.api_keys[env] is None or self.api_keys[env] == "":
                raise ValueError(f"api_keys: {env} has no value")
        if isinstance(self.routes, GatewayRoutes):
            check_keys(self.routes, self.api_keys, self.consumer_keys)
        elif not _is_output(self.routes):
            raise ValueError("routes: a GatewayRoutes (or an Output of one)")


def _is_output(value: Any) -> bool:
    return isinstance(value, pulumi.Output)


def _build(args: "GatewayArgs", routes: GatewayRoutes) -> dict[str, Any]:
    check_keys(routes, args.api_keys, args.consumer_keys)
    # Checks every sensitive route with assert_no_third_party_route before returning; limits split over the replicas.
    return render_config(routes, replicas=args.replicas)


def consumer_secret_name(gateway_name: str, consumer: str) -> str:
    return f"{gateway_name}-consumer-{consumer}"


def service_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{PORT}/v1"


class Gateway(pulumi.ComponentResource):
    """The LiteLLM proxy fronting the stack's tiers; `service_url` is the stack's endpoint_url."""

    service_url: pulumi.Output[str]
    config: pulumi.Output[dict]
    service_name: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: GatewayArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:Gateway", name, None, opts)
        if _is_output(args.routes):
            config = args.routes.apply(lambda r: _build(args, r))
        else:  # known now: a bad route fails here, before anything is registered
            rendered = _build(args, args.routes)
            config = pulumi.Output.from_input(None).apply(lambda _: rendered)
        config_yaml = config.apply(render_yaml)
        checksum = config_yaml.apply(
            lambda y: hashlib.sha256((y + GUARD_SOURCE + AUTH_SOURCE + USAGE_SOURCE).encode()).hexdigest())
        ns = pulumi.Output.from_input(args.namespace)
        labels = {"app.kubernetes.io/name": "llm-gateway", "app.kubernetes.io/instance": args.name,
                  "app.kubernetes.io/component": "gateway", "app.kubernetes.io/managed-by": "pulumi"}
        all_labels = {**dict(args.labels), **labels}
        selector = {"app.kubernetes.io/name": "llm-gateway", "app.kubernetes.io/instance": args.name}
        child = pulumi.ResourceOptions(parent=self)

        def meta(obj_name: str, annotations: Optional[dict] = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=obj_name, namespace=ns, labels=all_labels, annotations=annotations)

        cm = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=meta(f"{args.name}-config"),
            data=config.apply(config_files), opts=child)
        secret_name = f"{args.name}-keys"
        secret = k8s.core.v1.Secret(
            f"{name}-keys", metadata=meta(secret_name), type="Opaque",
            string_data={env: pulumi.Output.secret(value)
                         for env, value in {MASTER_KEY_ENV: args.master_key, **dict(args.api_keys)}.items()},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]))

        def secret_env(env: str, secret: str = secret_name, key: Optional[str] = None) -> k8s.core.v1.EnvVarArgs:
            return k8s.core.v1.EnvVarArgs(name=env, value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key or env)))

        # One Secret per consumer: its key is rotated (or revoked) by changing that Secret alone, and access to it can
        # be granted to that application's team without opening the others' keys.
        consumer_secrets = {
            consumer: k8s.core.v1.Secret(
                f"{name}-consumer-{consumer}", metadata=meta(consumer_secret_name(args.name, consumer)), type="Opaque",
                string_data={CONSUMER_SECRET_KEY: pulumi.Output.secret(value)},
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]))
            for consumer, value in sorted(args.consumer_keys.items())}
        # The kubelet reads secretKeyRef values once, at container start: a rotated key must restart the pods. The
        # Secrets' resourceVersions change with every update of their data, and say nothing about the keys.
        key_versions = pulumi.Output.all(*[s.metadata.resource_version for s in consumer_secrets.values()]).apply(
            lambda versions: hashlib.sha256(",".join(f"{c}={v}" for c, v in zip(consumer_secrets, versions)).encode())
            .hexdigest())

        env = [
            *[k8s.core.v1.EnvVarArgs(name=n, value=v) for n, v in PROXY_ENV.items()],
            secret_env(MASTER_KEY_ENV),
            *[secret_env(e) for e in sorted(args.api_keys)],
            *[secret_env(consumer_key_env(c), consumer_secret_name(args.name, c), CONSUMER_SECRET_KEY)
              for c in sorted(args.consumer_keys)],
        ]
        pinned_by_digest = "@sha256:" in args.image
        waivers = ([] if pinned_by_digest else [WAIVE_TAG_PINNED]) + [WAIVE_SECRET_ENV]
        deployment_annotations = {f"checkov.io/skip{i}": f"{check}={reason}"
                                  for i, (check, reason) in enumerate(waivers, 1)}

        def probe(path: str, period: int, failures: int, initial: int = 0) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
                initial_delay_seconds=initial or None, period_seconds=period, timeout_seconds=5,
                failure_threshold=failures)

        spread = [
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1, topology_key="topology.kubernetes.io/zone", when_unsatisfiable="DoNotSchedule",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1, topology_key="kubernetes.io/hostname", when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
        ]
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(args.name, deployment_annotations),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    # A config change rolls the pods (LiteLLM reads config.yaml once, at start); so does a new
                    # consumer key (environment variables are read once, at start), without touching the config.
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=all_labels, annotations={
                        "llm-hosting/config-sha256": checksum, "llm-hosting/consumer-keys-version": key_versions}),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        enable_service_links=False,
                        service_account_name=args.service_account_name,
                        termination_grace_period_seconds=60,
                        topology_spread_constraints=spread,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True, run_as_user=10001, run_as_group=10001, fs_group=10001,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="litellm",
                            image=args.image,
                            image_pull_policy="IfNotPresent" if pinned_by_digest else "Always",
                            args=["--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--port", str(PORT)],
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT, protocol="TCP")],
                            env=env,
                            startup_probe=probe("/health/liveliness", 5, 36),  # up to 3 min to start
                            liveness_probe=probe("/health/liveliness", 15, 3),
                            readiness_probe=probe("/health/readiness", 10, 3),
                            # Let the Service drop this pod before LiteLLM stops taking requests.
                            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                                sleep=k8s.core.v1.SleepActionArgs(seconds=5))),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": args.cpu_request, "memory": args.memory_request},
                                limits={"cpu": args.cpu_limit, "memory": args.memory_limit}),
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False, read_only_root_filesystem=True,
                                run_as_non_root=True, privileged=False,
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
                                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                            ],
                        )],
                        volumes=[
                            k8s.core.v1.VolumeArgs(name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                name=cm.metadata.name, default_mode=0o444)),
                            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                size_limit="1Gi")),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, *consumer_secrets.values()]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(args.name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            opts=child)
        # Only the proxy port. From outside the namespace only the load balancer in front (its source ranges) and the
        # monitoring namespace (the metrics scrape); NetworkPolicy is enforced on both clouds (VPC CNI network
        # policies, GKE Dataplane V2), so a load balancer left out here could never reach the gateway.
        # Egress stays open: the upstreams are in-cluster engines, cloud endpoints and, for hybrid tiers, an API.
        # Registered under the Deployment whose pods it selects.
        peers = [k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                 k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                     match_labels={"kubernetes.io/metadata.name": MONITORING_NAMESPACE}))]
        peers += [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr))
                  for cidr in args.load_balancer_sources]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta(args.name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=peers, ports=[k8s.networking.v1.NetworkPolicyPortArgs(port="http", protocol="TCP")])]),
            opts=pulumi.ResourceOptions(parent=deployment))
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta(args.name),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP", selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http", protocol="TCP")]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))

        if args.pod_monitor:
            k8s.apiextensions.CustomResource(
                f"{name}-podmonitor", api_version=MONITOR_API_VERSION, kind="PodMonitor", metadata=meta(args.name),
                # LiteLLM answers /metrics only with a valid key: the scrape sends the master key by reference to the
                # gateway's own Secret, so the page stays closed to the rest of the cluster.
                spec=pod_monitor_spec(selector, METRICS_PATH, bearer_secret=(secret_name, MASTER_KEY_ENV)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, *args.custom_resource_dependencies]))
        self.service_name = service.metadata.name
        self.namespace = service.metadata.namespace
        self.service_url = pulumi.Output.all(service.metadata.name, service.metadata.namespace).apply(
            lambda a: service_url(a[0], a[1]))
        self.config = config
        self.register_outputs({"service_url": self.service_url, "service_name": self.service_name,
                               "namespace": self.namespace, "config": self.config})
