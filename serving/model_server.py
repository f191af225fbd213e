"""A model server (vLLM or TGI) on Kubernetes, with the defaults that prevent these engines' known failures.

- Failover: at least two replicas, spread across zones, a disruption budget, and a preference for the
  on-demand GPU pool so the floor survives spot reclaims.
- Start-up: a startup probe whose budget comes from the model's size (download + load + warm-up), so a loading
  replica is never killed; liveness only starts once the startup probe has passed.
- Drain: a preStop sleep lets the Service drop the pod before SIGTERM, the engine then finishes in-flight requests
  for its shutdown timeout, and the grace period is longer than both.
- Autoscaling on queue depth: a KEDA ScaledObject whose Prometheus triggers read the engine's waiting-requests gauge
  and KV-cache usage (names pinned per engine version) from the stack's Prometheus, which scrapes the pods through
  this component's PodMonitor; a fallback replica count holds when Prometheus cannot be read, and scale-down is slow.
- GPUs requested and limited; non-root, no privilege escalation, read-only root where the engine allows it.
- Scanned with checkov's Kubernetes checks (tests/test_manifests.py): a check that cannot hold is waived on the
  object with a `checkov.io/skipN: CHECK=reason` annotation (checkov reads them from the object's own metadata).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .autoscaling import scaled_object
from .monitoring import API_VERSION as MONITOR_API_VERSION, pod_monitor_spec
from .engine import QUEUE_TARGET_PER_REPLICA, EngineSpec

ZONE_KEY = "topology.kubernetes.io/zone"
GPU_TOLERATION = k8s.core.v1.TolerationArgs(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
RUN_AS_USER = 10001  # any non-root UID; the engine's caches are redirected to mounted volumes
PROBE_PERIOD_SECONDS = 10

# checkov waivers (the reason must not contain "=": checkov splits the annotation on it).
WAIVE_TAG_PINNED = ("CKV_K8S_43", "images are pinned by exact release tag in components/versions.py; a stack pins "
                                  "digests through llm-hosting:versions")
WAIVE_SECRET_ENV = ("CKV_K8S_35", "vLLM and TGI take the gated-hub token from their environment (HF_TOKEN); it "
                                  "comes from a Secret by secretKeyRef and is never written into the manifest")


def checkov_waivers(*waivers: tuple[str, str]) -> dict[str, str]:
    """`checkov.io/skipN` annotations, one per (check, reason)."""
    for check, reason in waivers:
        if "=" in reason or not reason.strip():
            raise ValueError(f"{check}: a waiver needs a reason without '='")
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(waivers, 1)}


@dataclass(frozen=True)
class ModelServerArgs:
    name: str  # the Service name clients (the gateway) call
    spec: EngineSpec
    min_replicas: int
    max_replicas: int
    gpus_per_replica: int
    # The node pools' own selector (EksGpuNodeGroups/GkeGpuNodePools.gpu_node_selector): taken from the component that
    # labels the nodes, never retyped here, so the pods always match a pool.
    node_selector: dict[str, str]
    startup_budget_seconds: int  # download + load + warm-up for this model, from planner.sizing.startup_budget
    cpu: int  # container CPU request and limit: the replica's share of its node (planner.sizing.pod_size)
    memory_gib: int  # container memory request and limit (weights are staged through host memory)
    cache_size_gib: int  # emptyDir for the model cache
    namespace: str = "llm-serving"
    create_namespace: bool = True
    service_account_annotations: pulumi.Input[dict] = field(default_factory=dict)  # e.g. GKE Workload Identity
    queue_target_per_replica: int = QUEUE_TARGET_PER_REPLICA  # waiting requests per replica before scaling out
    prestop_sleep_seconds: int = 20  # time for endpoints to drop the pod before SIGTERM
    shm_size_gib: int = 16
    model_volume_claim: Optional[str] = None  # a PersistentVolumeClaim pre-filled with the weights, mounted read-only
    allow_single_replica: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    preferred_node_labels: dict[str, str] = field(default_factory=dict)  # e.g. the on-demand pool's capacity label
    # Before a new replica can start its startup budget: a GPU node is provisioned and joins (the pools scale from their
    # floor), then the multi-GB serving image is pulled. pulumi-kubernetes waits 10 minutes for a Deployment by default.
    node_provisioning_seconds: int = 0
    image_pull_seconds: int = 0
    # Resources the pods need at admission, e.g. the Pod Identity association: a pod admitted before it exists gets
    # no credentials injected, and IMDS is closed to pods (hop limit 1), so it could never read its weights.
    wait_for: list = field(default_factory=list)
    # The stack's Prometheus (MonitoringStack.prometheus_url): KEDA's triggers query it. None renders no autoscaler and
    # the fleet stays at min_replicas.
    prometheus_url: Optional[str] = None
    # What installs the custom resources' definitions (the KEDA and Prometheus operator releases): the ScaledObject and the
    # PodMonitor are created after them.
    custom_resource_dependencies: list = field(default_factory=list)

    def __post_init__(self):
        if not self.node_selector:
            raise ValueError("node_selector: a GPU workload must select the GPU pools' label (the node pools' gpu_node_selector)")
        if self.node_provisioning_seconds < 0 or self.image_pull_seconds < 0:
            raise ValueError("node_provisioning_seconds/image_pull_seconds: cannot be negative")
        if self.min_replicas < 2 and not self.allow_single_replica:
            raise ValueError(f"min_replicas: {self.min_replicas} leaves no failover; keep at least 2 or set allow_single_replica")
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas: {self.max_replicas} is below min_replicas {self.min_replicas}")
        if self.startup_budget_seconds < 60:
            raise ValueError(f"startup_budget_seconds: {self.startup_budget_seconds} s cannot cover a model download and load")
        if self.spec.engine == "tgi" and self.spec.model_dir in self.spec.args and not self.model_volume_claim \
                and self.spec.fetch is None:
            raise ValueError(f"model_volume_claim: TGI reads the weights from {self.spec.model_dir} and cannot stream them "
                             "from a bucket; give a volume pre-filled with them, or a spec whose fetch copies them there")
        if self.spec.fetch is not None and not self.model_volume_claim:
            fetch = self.spec.fetch.image.rsplit("/", 1)[-1]
            if "@sha256:" not in self.spec.fetch.image and (":" not in fetch or fetch.endswith(":latest")):
                raise ValueError(f"spec.fetch.image: {self.spec.fetch.image!r} is not pinned; give an exact release tag or an "
                                 "@sha256 digest")
        image = self.spec.image.rsplit("/", 1)[-1]
        if "@sha256:" not in self.spec.image and (":" not in image or image.endswith(":latest")):
            raise ValueError(f"spec.image: {self.spec.image!r} is not pinned; give an exact release tag or an @sha256 digest")


def max_num_seqs(spec: EngineSpec) -> int:
    """The engine's concurrent-sequence limit, read from its arguments (vLLM --max-num-seqs; TGI admits twice its
    batch through --max-concurrent-requests, so half of that)."""
    for flag, divisor in (("--max-num-seqs", 1), ("--max-concurrent-requests", 2)):
        if flag in spec.args:
            return max(1, int(spec.args[spec.args.index(flag) + 1]) // divisor)
    return 1


def model_path(spec: EngineSpec) -> str:
    """Where the model volume is mounted: the engine's model dir, or /models when the engine streams from a bucket."""
    return spec.model_dir if spec.model_dir.startswith("/") else "/models"


def grace_period_seconds(args: ModelServerArgs) -> int:
    """Longer than the preStop sleep plus the engine's own drain, with a margin for process exit."""
    return args.prestop_sleep_seconds + args.spec.shutdown_timeout_seconds + 15


def rollout_wait_seconds(args: ModelServerArgs) -> tuple[int, int]:
    """How long `pulumi up` waits for the Deployment: (create, update).

    Create: the replicas start in parallel, each after a node is provisioned and the image pulled, then its startup
    budget. Update: the rolling update surges one replica at a time and waits for it to be ready before the next,
    so up to max_replicas of those in a row (the autoscaler may have scaled the fleet to its ceiling).
    """
    one = args.node_provisioning_seconds + args.image_pull_seconds + startup_probe_seconds(args)
    return one, one * args.max_replicas


def startup_failure_threshold(args: ModelServerArgs) -> int:
    return math.ceil(args.startup_budget_seconds / PROBE_PERIOD_SECONDS)


def startup_probe_seconds(args: ModelServerArgs) -> int:
    """How long the startup probe really lets a replica load: the budget rounded up to whole probe periods."""
    return PROBE_PERIOD_SECONDS * startup_failure_threshold(args)


def fallback_replicas(args: ModelServerArgs) -> int:
    """Replicas KEDA holds while it cannot read Prometheus: the fleet the plan sized for the peak, since a blind
    autoscaler must not leave a peak under-served (it costs the peak fleet only while the metrics are missing)."""
    return args.max_replicas


class ModelServer(pulumi.ComponentResource):
    service_url: pulumi.Output[str]
    deployment_name: pulumi.Output[str]
    namespace: pulumi.Output[str]  # resolves once the namespace exists, so dependants are ordered after it
    max_num_seqs: int  # concurrent sequences one replica serves (the engine's limit), for the gateway's overflow

    def __init__(self, name: str, args: ModelServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:ModelServer", name, None, opts)
        spec = args.spec
        self.max_num_seqs = max_num_seqs(spec)
        app = {"app.kubernetes.io/name": args.name, "app.kubernetes.io/component": "model-server",
               "app.kubernetes.io/part-of": "llm-hosting", "llm-hosting/engine": spec.engine}
        labels = {**args.labels, **app}
        depends = []
        self.namespace = pulumi.Output.from_input(args.namespace)
        if args.create_namespace:
            ns = k8s.core.v1.Namespace(f"{name}-ns", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace, labels={"pod-security.kubernetes.io/enforce": "restricted",
                                             "pod-security.kubernetes.io/enforce-version": "latest"}),
                opts=pulumi.ResourceOptions(parent=self))
            depends.append(ns)
            self.namespace = ns.metadata.name
        child = pulumi.ResourceOptions(parent=self, depends_on=depends)
        meta = lambda n: k8s.meta.v1.ObjectMetaArgs(name=n, namespace=args.namespace, labels=labels)  # noqa: E731

        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace, labels=labels,
                                                             annotations=args.service_account_annotations),
            automount_service_account_token=False, opts=child)

        env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(spec.env.items())]
        env += [k8s.core.v1.EnvVarArgs(name=k, value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)))
            for k, (secret, key) in sorted(spec.secret_env.items())]
        mounts = [k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=model_path(spec)),
                  k8s.core.v1.VolumeMountArgs(name="cache", mount_path="/cache"),
                  k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")]
        model_volume = (k8s.core.v1.VolumeArgs(name="model-cache", persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                            claim_name=args.model_volume_claim, read_only=True)) if args.model_volume_claim else
                        k8s.core.v1.VolumeArgs(name="model-cache", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                            size_limit=f"{args.cache_size_gib}Gi")))
        volumes = [model_volume,
                   k8s.core.v1.VolumeArgs(name="cache", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="20Gi")),
                   k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="4Gi"))]
        if spec.needs_shm:
            # NCCL exchanges tensors through /dev/shm; the container default (64 MiB) breaks tensor parallelism.
            mounts.append(k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"))
            volumes.append(k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit=f"{args.shm_size_gib}Gi")))

        def http_probe(path: str, period: int, failures: int, timeout: int = 5) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
                                         period_seconds=period, failure_threshold=failures, timeout_seconds=timeout)

        security = k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, allow_privilege_escalation=False,
            read_only_root_filesystem=spec.read_only_root, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))
        gpus = str(args.gpus_per_replica)
        pinned_by_digest = "@sha256:" in spec.image
        # A pre-filled volume claim already holds the weights; otherwise an engine that cannot read the bucket has them
        # copied into the model volume by an init container, as the pod's own identity, before it starts.
        fetch = spec.fetch if not args.model_volume_claim else None
        all_by_digest = pinned_by_digest and (fetch is None or "@sha256:" in fetch.image)
        waivers = ([] if all_by_digest else [WAIVE_TAG_PINNED]) + ([WAIVE_SECRET_ENV] if spec.secret_env else [])
        init_containers = [k8s.core.v1.ContainerArgs(
            name=fetch.name,
            image=fetch.image,
            image_pull_policy="IfNotPresent" if "@sha256:" in fetch.image else "Always",
            command=list(fetch.command),
            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(fetch.env.items())],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": str(fetch.cpu), "memory": f"{fetch.memory_gib}Gi"},
                limits={"cpu": str(fetch.cpu), "memory": f"{fetch.memory_gib}Gi"}),
            # The CLI writes only to the model volume and /tmp: it runs with a read-only root whatever the engine needs.
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_non_root=True, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, allow_privilege_escalation=False,
                read_only_root_filesystem=True, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=fetch.target_dir),
                           k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        )] if fetch is not None else None
        container = k8s.core.v1.ContainerArgs(
            name=spec.engine,
            image=spec.image,
            # A digest is immutable, so a node's cached copy is the image. A tag can be re-pushed: Always makes the
            # kubelet resolve it at the registry on each start (unchanged layers are not downloaded again), so every
            # replica runs the same build.
            image_pull_policy="IfNotPresent" if pinned_by_digest else "Always",
            command=spec.command or None,
            args=spec.args,
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=spec.port)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"nvidia.com/gpu": gpus, "cpu": str(args.cpu), "memory": f"{args.memory_gib}Gi"},
                limits={"nvidia.com/gpu": gpus, "cpu": str(args.cpu), "memory": f"{args.memory_gib}Gi"}),
            # The startup budget covers download + load + warm-up; liveness and readiness wait for it.
            startup_probe=http_probe(spec.health_path, PROBE_PERIOD_SECONDS, startup_failure_threshold(args)),
            readiness_probe=http_probe(spec.ready_path, 5, 3),
            liveness_probe=http_probe(spec.health_path, 10, 3),
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=args.prestop_sleep_seconds))),
            security_context=security,
            volume_mounts=mounts,
        )
        pod_labels = {**labels}
        create_wait, update_wait = rollout_wait_seconds(args)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace, labels=labels,
                                                annotations=checkov_waivers(*waivers) or None),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.min_replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=app),
                # Never take a serving replica away before its replacement is ready: GPUs are scarce, so surge one.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_unavailable=0, max_surge=1)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=args.name,
                        automount_service_account_token=False,
                        termination_grace_period_seconds=grace_period_seconds(args),
                        node_selector=dict(args.node_selector),
                        tolerations=[GPU_TOLERATION],
                        affinity=k8s.core.v1.AffinityArgs(
                            # Prefer the on-demand pool: the floor then survives a spot reclaim.
                            node_affinity=k8s.core.v1.NodeAffinityArgs(preferred_during_scheduling_ignored_during_execution=[
                                k8s.core.v1.PreferredSchedulingTermArgs(weight=100, preference=k8s.core.v1.NodeSelectorTermArgs(
                                    match_expressions=[k8s.core.v1.NodeSelectorRequirementArgs(key=k, operator="In", values=[v])
                                                       for k, v in sorted(args.preferred_node_labels.items())]))]
                            ) if args.preferred_node_labels else None,
                            pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(preferred_during_scheduling_ignored_during_execution=[
                                k8s.core.v1.WeightedPodAffinityTermArgs(weight=100, pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                                    topology_key="kubernetes.io/hostname",
                                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=app)))])),
                        # Replicas in different zones: a zone outage leaves one serving.
                        topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                            max_skew=1, topology_key=ZONE_KEY, when_unsatisfiable="DoNotSchedule",
                            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=app))],
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True, run_as_user=RUN_AS_USER, fs_group=RUN_AS_USER,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        init_containers=init_containers,
                        containers=[container],
                        volumes=volumes,
                    ),
                ),
            ),
            # The autoscaler owns the replica count after creation. The wait covers node provisioning, image pull and
            # the startup budget, so `pulumi up` does not give up on a replica that is still loading its model.
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends + [sa, *args.wait_for], ignore_changes=["spec.replicas"],
                                        custom_timeouts=pulumi.CustomTimeouts(create=f"{create_wait}s", update=f"{update_wait}s")),
        )
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta(args.name),
            spec=k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=app, ports=[k8s.core.v1.ServicePortArgs(
                name="http", port=8000, target_port="http", protocol="TCP")]),
            opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(args.name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                # One replica at a time, whatever the fleet's size: a node drain or upgrade never takes more than one
                # replica's capacity (a static minAvailable of min-1 would let a drain empty a scaled-out fleet).
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=app)),
            opts=child)
        self.scaled_object_name = None
        if args.prometheus_url:
            crs = pulumi.ResourceOptions(parent=self, depends_on=depends + [deployment, *args.custom_resource_dependencies])
            k8s.apiextensions.CustomResource(
                f"{name}-podmonitor", api_version=MONITOR_API_VERSION, kind="PodMonitor", metadata=meta(args.name),
                spec=pod_monitor_spec(app, spec.metrics_path), opts=crs)
            scaler = scaled_object(
                name=args.name, namespace=args.namespace, deployment=args.name, spec=spec, min_replicas=args.min_replicas,
                max_replicas=args.max_replicas, prometheus_url=args.prometheus_url,
                queue_target_per_replica=args.queue_target_per_replica, fallback_replicas=fallback_replicas(args),
                labels=labels)
            # KEDA owns the Deployment's HPA (keda-hpa-<name>) and so its replica count between min and max.
            k8s.apiextensions.CustomResource(
                f"{name}-scaledobject", api_version=scaler["apiVersion"], kind=scaler["kind"], metadata=meta(args.name),
                spec=scaler["spec"], opts=crs)
            self.scaled_object_name = args.name
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta(args.name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=app),
                policy_types=["Ingress"],
                # Only pods of this namespace (the gateway) and the monitoring namespace (Prometheus, which the stack
                # deploys there) reach the engine.
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                           k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                               match_labels={"kubernetes.io/metadata.name": "monitoring"}))],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port="http", protocol="TCP")])]),
            opts=child)
        self.service_url = service.metadata.apply(lambda m: f"http://{m.name}.{m.namespace}.svc.cluster.local:8000/v1")
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"service_url": self.service_url, "deployment_name": self.deployment_name})
