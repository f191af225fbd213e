"""llm-hosting: read the stack config once, build the tier it names, export the output contract.

Where does a resource come from? The tier's builder below, one component per building block. What to build
comes from `stacks/Pulumi.<stack>.yaml`, which `llmhost plan` writes from a workload profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from components.consumer_keys import Consumer
from components.contract import TierOutputs, aws_tags, gcp_labels
from components.node_labels import system_node_labels
from components.versions import VERSIONS
from planner.catalog import load_catalog, load_regions
from planner.errors import InputError
from planner.sizing import GKE_ACCELERATOR, VERTEX_ACCELERATOR, node_counts, pod_size, weights_gb
from planner.stack_config import GATEWAY_MASTER_KEY, PROJECT, StackConfig, load_stack_config
from planner.stackgen import STACK_NAME_RULE, valid_stack_name
from serving.alerts import AlertContext, prometheus_rule, runbooks
from serving.usage import GROWTH_RETENTION
from serving.dashboard import grafana_dashboard
from serving.engine import QUEUE_TARGET_PER_REPLICA, EngineInputs, EngineSpec
from serving.gateway_config import (PUBLIC_MODEL, Consumer as GatewayConsumer, api_key_env_name, sagemaker_upstream,
                                    stack_routes, vertex_upstream)
from serving.tgi import tgi_spec
from serving.vllm import vllm_spec

stack = pulumi.get_stack()
source = f"stacks/Pulumi.{stack}.yaml"
if not valid_stack_name(stack):
    # The name is part of the resources' names (DNS label, GCP names, AWS's 32 characters): refused before any of them.
    raise pulumi.RunError(f"{source}: the stack name {stack!r} cannot name this stack's resources: use {STACK_NAME_RULE} "
                          "(pulumi stack rename, or llmhost plan --stack)")
try:
    # The engine hands the program its whole config map; the strict loader rejects unknown keys in it.
    cfg: StackConfig = load_stack_config({**get_config_env(), **CONFIG.get()}, source)
except InputError as exc:
    raise pulumi.RunError(exc.render()) from None
versions = VERSIONS.with_overrides(cfg.versions)
catalog = load_catalog(Path(cfg.catalog) if cfg.catalog else None)
GKE_MASTER_CIDR = "172.16.0.0/28"
SERVING_NAMESPACE = "llm-serving"
GATEWAY_REPLICAS = 2
GATEWAY_NAME = "llm-gateway"  # the gateway's Service, which the private endpoint forwards to
ENDPOINT_ZONE = "llm.internal"  # the private DNS zone the endpoint's name lives in (<stack>.llm.internal)

# The components this stack's builder uses, and only those. The SDKs load a module (pulumi_aws.ec2, ...) on first use,
# and loading those takes longer than running the program: so a stack loads none of the other cloud's, and none of
# Kubernetes' without a cluster. The tests are the ones the builders dispatch on: cloud, a cluster or not, then a
# managed endpoint or an API.
CLUSTER = cfg.self_hosted is not None
if cfg.cloud == "aws":
    from components.aws_alert_topic import AwsAlertTopic, AwsAlertTopicArgs
    from components.aws_budget import AwsBudget, AwsBudgetArgs
    from components.aws_consumer_keys import AwsConsumerKeys, AwsConsumerKeysArgs
    from components.aws_network import AwsNetwork, AwsNetworkArgs
    from components.aws_private_endpoint import dns_name as aws_endpoint_host
    if cfg.api is not None:
        from components.aws_api_key_secret import AwsApiKeySecret, AwsApiKeySecretArgs
    if CLUSTER:
        from components.aws_private_endpoint import AwsPrivateEndpoint, AwsPrivateEndpointArgs
        from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
        from components.eks_cluster import EksCluster, EksClusterArgs
        from components.eks_container_logs import EksContainerLogs, EksContainerLogsArgs
        from components.eks_gpu_node_groups import EksGpuNodeGroups, EksGpuNodeGroupsArgs
        from components.eks_pod_identity import EksPodIdentity, EksPodIdentityArgs
        from components.nvidia_device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
    else:
        from components.aws_alb_endpoint import AwsAlbEndpoint, AwsAlbEndpointArgs
        from serving.gateway_ecs import GatewayEcs, GatewayEcsArgs
        if cfg.managed is not None:
            from components.sagemaker_endpoint import SageMakerEndpoint, SageMakerEndpointArgs
else:
    from components.gcp_alert_channel import GcpAlertChannel, GcpAlertChannelArgs
    from components.gcp_budget import GcpBudget, GcpBudgetArgs
    from components.gcp_consumer_keys import GcpConsumerKeys, GcpConsumerKeysArgs
    from components.gcp_network import HEALTH_CHECK_RANGES, GcpNetwork, GcpNetworkArgs
    from components.gcp_private_endpoint import dns_label as gcp_endpoint_label
    if cfg.api is not None:
        from components.gcp_api_key_secret import GcpApiKeySecret, GcpApiKeySecretArgs
    if CLUSTER:
        from components.gcp_log_bucket import GcpLogBucket, GcpLogBucketArgs
        from components.gcp_private_endpoint import GcpPrivateEndpoint, GcpPrivateEndpointArgs
        from components.gke_alert_forwarding import GMP_NAMESPACE, GkeAlertForwarding, GkeAlertForwardingArgs
        from components.gke_cluster import GkeCluster, GkeClusterArgs
        from components.gke_gpu_node_pools import GkeGpuNodePools, GkeGpuNodePoolsArgs
        from components.gke_workload_identity import GkeWorkloadIdentity, GkeWorkloadIdentityArgs
    else:
        from components.gcp_image_mirror import GcpImageMirror, GcpImageMirrorArgs
        from components.gcp_serverless_endpoint import GcpServerlessEndpoint, GcpServerlessEndpointArgs
        from serving.gateway_cloud_run import GatewayCloudRun, GatewayCloudRunArgs
        if cfg.managed is not None:
            from components.vertex_endpoint import VertexEndpoint, VertexEndpointArgs
if CLUSTER:
    from components.dcgm_exporter import DcgmExporter, DcgmExporterArgs
    from components.keda import NAMESPACE as KEDA_NAMESPACE, Keda, KedaArgs
    from components.monitoring_stack import MonitoringStack, MonitoringStackArgs
    from serving.gateway_k8s import Gateway, GatewayArgs
    from serving.model_server import ModelServer, ModelServerArgs


def api_key_secret(cfg: StackConfig):
    """The provider key in the cloud's secret store, encrypted with our key: what the gateway reads the API with."""
    api = cfg.api
    key = pulumi.Config().require_secret(api.api_key_config)
    if cfg.cloud == "aws":
        return AwsApiKeySecret("api-key", AwsApiKeySecretArgs(
            stack=stack, provider=api.provider, model=api.model, base_url=api.base_url, api_key=key,
            region=cfg.region, replica_regions=api.replica_regions, consumer_role_name=api.consumer_role_name,
            protect=cfg.protect, tags=aws_tags(stack, cfg.tier, cfg.residency.classification)))
    return GcpApiKeySecret("api-key", GcpApiKeySecretArgs(
        stack=stack, provider=api.provider, model=api.model, base_url=api.base_url, api_key=key,
        locations=[cfg.region, *api.replica_regions], project=cfg.gcp_project, consumer_member=api.consumer_member,
        protect=cfg.protect, labels=gcp_labels(stack, cfg.tier, cfg.residency.classification)))


def build_api(cfg: StackConfig) -> TierOutputs:
    """The API tier: applications call the stack's gateway with their own keys; only the gateway holds the provider's."""
    if cfg.cloud == "aws":
        topic = aws_alerts(cfg)  # the budget's and the gateway's drift alarms
        return ecs_front_door(cfg, aws_network(cfg), topic, api=api_key_secret(cfg))
    channel = gcp_alerts(cfg, kms_key_id=None)
    return cloud_run_front_door(cfg, gcp_network(cfg, proxy_only_subnet=True), channel, api=api_key_secret(cfg))


def aws_alerts(cfg: StackConfig) -> AwsAlertTopic:
    """The stack's alert topic, and the budget at the plan's cloud cost that notifies it (where the plan gave one)."""
    tags = aws_tags(stack, cfg.tier, cfg.residency.classification)
    topic = AwsAlertTopic("alerts", AwsAlertTopicArgs(stack=stack, tags=tags, protect=cfg.protect))
    pulumi.export("alerts_topic", topic.topic_arn)
    if cfg.spend is not None:
        budget = AwsBudget("budget", AwsBudgetArgs(
            stack=stack, amount_usd=cfg.spend.cloud_monthly_usd, topic_arn=topic.topic_arn, tags=tags,
            activate_cost_allocation_tag=cfg.spend.activate_cost_allocation_tag, wait_for=topic.grants,
            protect=cfg.protect))
        pulumi.export("budget_name", budget.budget_name)
    return topic


def gcp_alerts(cfg: StackConfig, kms_key_id) -> GcpAlertChannel:
    """The stack's alert channel, and the budget at the plan's cloud cost that publishes to its topic. A GCP budget
    lives on a Cloud Billing account: without spend.billingAccount there is none (the planner warns)."""
    labels = gcp_labels(stack, cfg.tier, cfg.residency.classification)
    budgeted = cfg.spend is not None and cfg.spend.billing_account is not None
    channel = GcpAlertChannel("alerts", GcpAlertChannelArgs(
        stack=stack, project=cfg.gcp_project, region=cfg.region, kms_key_id=kms_key_id, labels=labels,
        protect=cfg.protect, budget_notifications=budgeted))
    pulumi.export("alerts_topic", channel.topic_id)
    if budgeted:
        budget = GcpBudget("budget", GcpBudgetArgs(
            stack=stack, billing_account=cfg.spend.billing_account, amount_usd=cfg.spend.cloud_monthly_usd,
            topic_id=channel.topic_id, project=cfg.gcp_project, labels=labels, wait_for=channel.budget_grants,
            protect=cfg.protect))
        pulumi.export("budget_name", budget.budget_name)
    return channel


def export_spend(cfg: StackConfig) -> None:
    """What the plan said the stack costs a month, beside what was built for it."""
    if cfg.spend is not None:
        s = cfg.spend
        pulumi.export("planned_monthly_cost_usd", {"total": s.planned_monthly_usd, "cloud": s.cloud_monthly_usd,
                                                   "api": s.api_monthly_usd, "staffing": s.staffing_monthly_usd})
        # When to look again: the report's revisit line, and the daily token rates the drift alerts watch.
        d = s.drift
        pulumi.export("revisit", {"when": s.revisit, "daily_tokens_planned_now": d.daily_tokens_now,
                                  "daily_tokens_planned_at_horizon": d.daily_tokens_projected,
                                  "decision_holds_above_daily_tokens": d.lower_daily_tokens,
                                  "decision_holds_below_daily_tokens": d.upper_daily_tokens,
                                  "api_crossover_daily_tokens": d.crossover_daily_tokens})


def aws_network(cfg: StackConfig, private_api_endpoints: tuple[str, ...] = ()) -> AwsNetwork:
    return AwsNetwork("network", AwsNetworkArgs(
        stack=stack, variant=cfg.network, region=cfg.region, cidr=cfg.vpc.cidr, az_count=cfg.vpc.az_count,
        private_api_endpoints=private_api_endpoints if cfg.network != "public" else (),
        protect=cfg.protect, tags=aws_tags(stack, cfg.tier, cfg.residency.classification)))


def sagemaker_tier(cfg: StackConfig) -> tuple[AwsNetwork, SageMakerEndpoint, AwsAlertTopic]:
    m, model = cfg.managed, cfg.model
    # Invocations of a private endpoint stay inside the VPC, not out through the NAT.
    net = aws_network(cfg, private_api_endpoints=("sagemaker.runtime",))
    tags = aws_tags(stack, cfg.tier, cfg.residency.classification)
    topic = aws_alerts(cfg)
    endpoint = SageMakerEndpoint("sagemaker", SageMakerEndpointArgs(
        stack=stack, region=cfg.region, model_id=model.id, image_uri=versions.sagemaker_image(cfg.region, cfg.registry),
        weights_uri=model.weights_uri, instance_type=m.instance_type, gpus_per_replica=m.gpus_per_replica,
        precision=m.precision, max_context_tokens=model.max_context_tokens, min_instances=m.min_replicas, max_instances=m.max_replicas,
        target_invocations_per_instance=m.target_invocations_per_instance,
        target_concurrent_requests_per_instance=m.target_concurrent_requests, alarm_topic_arn=topic.topic_arn,
        latency_sla_ms=cfg.observability.ttft_p95_ms, dashboard=True,
        startup_timeout_seconds=m.startup_timeout_seconds, download_timeout_seconds=m.download_timeout_seconds,
        subnet_ids=net.private_subnet_ids, security_group_ids=[net.workload_security_group_id],
        airgapped=cfg.network == "airgapped", allow_single_instance=m.allow_single_instance,
        protect=cfg.protect, tags=tags))
    # For operators and SigV4 callers of the endpoint itself; applications call the gateway.
    pulumi.export("sagemaker_endpoint_name", endpoint.endpoint_name)
    return net, endpoint, topic


def build_managed(cfg: StackConfig) -> TierOutputs:
    net, endpoint, topic = sagemaker_tier(cfg)
    return ecs_front_door(cfg, net, topic, sagemaker=endpoint)


def ecs_front_door(cfg: StackConfig, net: AwsNetwork, alerts: AwsAlertTopic,
                   sagemaker: Optional[SageMakerEndpoint] = None, api: Optional[AwsApiKeySecret] = None) -> TierOutputs:
    """Where there is no cluster (API and SageMaker tiers, hybrids on SageMaker): the same gateway on ECS on Fargate,
    behind an internal ALB with the stack's private certificate and name. It signs SageMaker calls as its task role,
    which may invoke this endpoint and nothing else, and reads the provider key from Secrets Manager."""
    tags = aws_tags(stack, cfg.tier, cfg.residency.classification)
    keys = consumer_keys(cfg)
    endpoint = AwsAlbEndpoint("endpoint", AwsAlbEndpointArgs(
        stack=stack, region=cfg.region, vpc_id=net.vpc_id, vpc_cidr=net.vpc_cidr, subnet_ids=net.private_subnet_ids,
        **aws_exposure(cfg, net), zone_name=ENDPOINT_ZONE, tags=tags, protect=cfg.protect))
    limits = gateway_limits(cfg)
    statements = []
    if sagemaker is not None:
        routes = sagemaker.endpoint_name.apply(
            lambda n: stack_routes(cfg, managed=sagemaker_upstream(n, cfg.region), consumers=limits))
        # Streaming completions use InvokeEndpointWithResponseStream; both on this endpoint only.
        statements = [sagemaker.endpoint_arn.apply(lambda arn: {
            "Sid": "InvokeThisEndpoint", "Effect": "Allow",
            "Action": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"], "Resource": arn})]
    else:
        routes = stack_routes(cfg, consumers=limits)
    GatewayEcs("gateway", GatewayEcsArgs(
        stack=stack, region=cfg.region, routes=routes, image=versions.gateway_image(cfg.registry),
        master_key=pulumi.Config().require_secret(GATEWAY_MASTER_KEY),
        api_key_secrets={api_key_env_name(cfg.api.provider): api.secret_arn} if api is not None else {},
        consumer_key_secrets=keys.secret_arns, consumer_key_versions=keys.version_ids,
        secret_kms_key_arns=[keys.kms_key_arn] + ([api.kms_key_arn] if api is not None else []),
        kms_key_arn=net.kms_key_arn,  # the network's key admits CloudWatch Logs: the gateway's log group uses it too
        vpc_id=net.vpc_id, subnet_ids=net.private_subnet_ids, load_balancer_security_group_id=endpoint.security_group_id,
        target_group_arn=endpoint.target_group_arn, listener_arn=endpoint.listener_arn, task_role_statements=statements,
        log_retention_days=cfg.observability.log_retention_days if cfg.observability else 30,
        # The usage lines become CloudWatch metrics; the plan's drift thresholds alarm on them to the stack's topic.
        drift=cfg.spend.drift if cfg.spend else None, alarm_topic_arn=alerts.topic_arn,
        tags=tags, protect=cfg.protect))
    return gateway_contract(cfg, endpoint, keys)


def engine_spec(cfg: StackConfig) -> EngineSpec:
    """The serving engine's container, args and pinned metric names: what the pods run and what the scaler reads."""
    s, model = cfg.self_hosted, cfg.model
    image = (versions.tgi_serving_image if s.engine == "tgi" else versions.vllm_serving_image)(cfg.registry)
    inputs = EngineInputs(model_id=model.id, size_class=model.size_class, gpu=s.gpu, gpus_per_replica=s.gpus_per_replica,
                          max_context_tokens=model.max_context_tokens, image=image, weights_uri=model.weights_uri,
                          airgapped=cfg.network == "airgapped", kv_cache_tokens=model.kv_cache_tokens,
                          # Burst overflow: a full replica refuses at once, and the gateway sends that request to the API.
                          shed_when_full=cfg.pattern == "burst-overflow", precision=s.precision)
    return (tgi_spec if s.engine == "tgi" else vllm_spec)(inputs, catalog)


def alert_context(cfg: StackConfig) -> AlertContext:
    """What the alerts and the dashboard watch: this stack's engine, its SLA, its fleet range and its gateway."""
    s = cfg.self_hosted
    return AlertContext(
        stack=stack, namespace=SERVING_NAMESPACE, deployment=s.engine, spec=engine_spec(cfg),
        ttft_p95_ms=cfg.observability.ttft_p95_ms, queue_target_per_replica=QUEUE_TARGET_PER_REPLICA,
        max_replicas=s.max_replicas, hpa_name=f"keda-hpa-{s.engine}",
        gateway=GATEWAY_NAME,  # every cluster tier serves through the gateway
        overflow=cfg.pattern == "burst-overflow",
        usage=True, drift=cfg.spend.drift if cfg.spend else None)


def replica_hourly_usd(cfg: StackConfig) -> float:
    """One serving replica's share of its instance's on-demand price in the stack's region (the dashboard's cost line)."""
    s = cfg.self_hosted
    instance = next(i for i in catalog.instances_in(cfg.cloud, cfg.region, "compute") if i.instance_type == s.instance_type)
    gpus = catalog.instance_shapes.for_cloud(cfg.cloud)[s.instance_type].gpu_count
    return instance.on_demand_hourly * s.gpus_per_replica / gpus


@dataclass
class ClusterWatch:
    """The monitoring and autoscaling chain on a cluster: what the model server's scaler and monitors need."""
    prometheus_url: str
    custom_resource_dependencies: list  # the releases that install the CRDs (the Prometheus operator, KEDA)
    system_nodes: list  # what controllers running as pods wait for (the EKS system node group; GKE has its own pool)


def cluster_addons(cfg: StackConfig, cluster, nodes, ctx: AlertContext, sns_topic_arn=None) -> tuple[MonitoringStack, Keda]:
    """Prometheus (with the stack's alert rules and dashboard), KEDA and the GPU exporter, on the cluster's system pool."""
    opts = pulumi.ResourceOptions(provider=cluster.provider)
    dashboard = json.dumps(grafana_dashboard(ctx, usd_per_replica_hour=replica_hourly_usd(cfg)), sort_keys=True)
    monitoring = MonitoringStack("monitoring", MonitoringStackArgs(
        stack=stack, cloud=cfg.cloud, region=cfg.region, registry=cfg.registry, versions=versions,
        node_selector=system_node_labels("system"), sns_topic_arn=sns_topic_arn,
        # The growth alert compares a day with the same day a month earlier: the recorded series must outlive that.
        prometheus_retention=GROWTH_RETENTION if ctx.drift is not None else "15d",
        # The scaler reads it; on GKE the managed collectors scrape its firing alerts to forward them.
        prometheus_readers=[KEDA_NAMESPACE] + ([GMP_NAMESPACE] if cfg.cloud == "gcp" else []),
        dashboards={f"llm-hosting-{stack}": dashboard},
        rules={f"llm-hosting-{stack}": prometheus_rule(ctx, name=f"llm-hosting-{stack}", labels={"llm-hosting/stack": stack})}),
        opts=opts)
    keda = Keda("keda", KedaArgs(registry=cfg.registry, versions=versions, node_selector=system_node_labels("system")),
                opts=opts)
    DcgmExporter("dcgm-exporter", DcgmExporterArgs(
        cloud=cfg.cloud, registry=cfg.registry, versions=versions, gpu_node_selector=nodes.gpu_node_selector,
        service_monitor_crds=monitoring.release), opts=opts)  # its ServiceMonitor waits for the operator's CRDs
    return monitoring, keda


def eks_watch(cfg: StackConfig, cluster: EksCluster, nodes: EksGpuNodeGroups) -> ClusterWatch:
    """EKS: alerts to an SNS topic, node groups scaled by cluster-autoscaler, container logs to CloudWatch Logs."""
    tags = aws_tags(stack, cfg.tier, cfg.residency.classification)
    topic = aws_alerts(cfg)
    monitoring, keda = cluster_addons(cfg, cluster, nodes, alert_context(cfg), sns_topic_arn=topic.topic_arn)
    # Alertmanager publishes with SigV4 as its own service account: sns:Publish on this topic and the key it encrypts with.
    EksPodIdentity("alertmanager", EksPodIdentityArgs(
        stack=stack, cluster_name=cluster.cluster_name, namespace="monitoring",
        service_account=monitoring.alertmanager_service_account, statements=topic.publish_statements, tags=tags))
    # Pending GPU pods get nodes from the spot groups first, then the on-demand group, within each group's maximum.
    ClusterAutoscaler("cluster-autoscaler", ClusterAutoscalerArgs(
        stack=stack, cluster_name=cluster.cluster_name, region=cfg.region, registry=cfg.registry, versions=versions,
        node_selector=system_node_labels("system"), spot_node_groups=nodes.spot_group_names,
        on_demand_node_groups=nodes.on_demand_group_names, wait_for=[nodes.system_node_group], tags=tags),
        opts=pulumi.ResourceOptions(provider=cluster.provider))
    EksContainerLogs("container-logs", EksContainerLogsArgs(
        stack=stack, cluster_name=cluster.cluster_name, region=cfg.region, kms_key_arn=cluster.kms_key_arn,
        retention_days=cfg.observability.log_retention_days, addon_version=versions.cloudwatch_observability_addon,
        wait_for=[nodes.system_node_group], tags=tags, protect=cfg.protect))
    return ClusterWatch(monitoring.prometheus_url, [monitoring.release, keda.release], [nodes.system_node_group])


def gke_watch(cfg: StackConfig, cluster: GkeCluster, nodes: GkeGpuNodePools) -> ClusterWatch:
    """GKE: firing alerts forwarded to Cloud Monitoring and a Pub/Sub channel; workload logs to an in-region bucket.
    The pools' own autoscaling (GKE's cluster autoscaler) scales the nodes."""
    labels = gcp_labels(stack, cfg.tier, cfg.residency.classification)
    channel = gcp_alerts(cfg, kms_key_id=cluster.kms_key_id)
    ctx = alert_context(cfg)
    monitoring, keda = cluster_addons(cfg, cluster, nodes, ctx)
    GkeAlertForwarding("alert-forwarding", GkeAlertForwardingArgs(
        stack=stack, project=cfg.gcp_project, cluster_name=cluster.cluster_name,
        prometheus_pod_labels=monitoring.prometheus_pod_labels, notification_channels=[channel.channel_name],
        runbooks=runbooks(ctx)), opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[monitoring.release]))
    GcpLogBucket("logs", GcpLogBucketArgs(
        stack=stack, project=cfg.gcp_project, region=cfg.region, kms_key_id=cluster.kms_key_id,
        retention_days=cfg.observability.log_retention_days, cluster_name=cluster.cluster_name, labels=labels,
        protect=cfg.protect))
    return ClusterWatch(monitoring.prometheus_url, [monitoring.release, keda.release], [])


def build_serving(cfg: StackConfig, provider, nodes, watch: ClusterWatch, identity_annotations=None, wait_for=()) -> ModelServer:
    """The vLLM/TGI workload on the cluster the tier just built, through that cluster's kubernetes.Provider.

    `nodes` is the node-pool component: the pods select what it labels. `watch` is the cluster's monitoring chain: KEDA
    scales the pods on what its Prometheus scrapes. `wait_for` holds what the pods need at admission (the Pod Identity
    association)."""
    s, model = cfg.self_hosted, cfg.model
    weights = weights_gb(catalog, model.size_class, s.precision)
    spec = engine_spec(cfg)
    size = pod_size(catalog, cfg.cloud, s.instance_type, s.gpus_per_replica, weights)
    return ModelServer("model-server", ModelServerArgs(
        name=s.engine, spec=spec, min_replicas=s.min_replicas, max_replicas=s.max_replicas, gpus_per_replica=s.gpus_per_replica,
        node_selector=nodes.gpu_node_selector, preferred_node_labels=nodes.preferred_node_labels,
        startup_budget_seconds=s.startup_timeout_seconds, cpu=size.cpu, memory_gib=size.memory_gib,
        node_provisioning_seconds=catalog.serving.gpu_node_provisioning_seconds,
        image_pull_seconds=catalog.serving.image_pull_seconds, wait_for=list(wait_for),
        cache_size_gib=size.cache_gib, namespace=SERVING_NAMESPACE, service_account_annotations=identity_annotations or {},
        model_volume_claim=s.model_volume_claim, labels={"llm-hosting/stack": stack},
        prometheus_url=watch.prometheus_url, custom_resource_dependencies=watch.custom_resource_dependencies),
        opts=pulumi.ResourceOptions(provider=provider))


def eks_serving(cfg: StackConfig) -> tuple[EksCluster, ModelServer, ClusterWatch, AwsNetwork]:
    s, model = cfg.self_hosted, cfg.model
    tags = aws_tags(stack, cfg.tier, cfg.residency.classification)
    net = aws_network(cfg)
    cluster = EksCluster("eks", EksClusterArgs(
        stack=stack, region=cfg.region, variant=cfg.network, version=versions.eks_version,
        subnet_ids=net.private_subnet_ids, public_access_cidrs=s.public_access_cidrs, admin_role_arns=s.admin_role_arns,
        protect=cfg.protect, tags=tags))
    counts = node_counts(catalog, cfg.cloud, s.instance_type, s.gpus_per_replica, s.min_replicas, s.on_demand_replicas,
                         s.spot_replicas, zones=cfg.vpc.az_count)  # node groups span the VPC's private subnets
    nodes = EksGpuNodeGroups("gpu-nodes", EksGpuNodeGroupsArgs(
        stack=stack, cluster_name=cluster.cluster_name, subnet_ids=net.private_subnet_ids, kms_key_arn=cluster.kms_key_arn,
        gpu=s.gpu, instance_type=s.instance_type, on_demand_min_nodes=counts.on_demand_min,
        on_demand_max_nodes=counts.on_demand_max, spot_instance_types=s.spot_instance_types, spot_max_nodes=counts.spot_max,
        root_volume_gb=s.root_volume_gb, system_instance_type=s.system_instance_type or "m6i.large", tags=tags))
    cluster.add_node_addons([nodes.system_node_group])  # coredns runs as pods: it waits for nodes that can run it
    NvidiaDevicePlugin("nvidia-device-plugin", NvidiaDevicePluginArgs(image=versions.device_plugin_image(cfg.registry)),
                       opts=pulumi.ResourceOptions(provider=cluster.provider))
    wait_for = []
    if model.weights_uri:
        # vLLM streams the weights from S3, TGI's init container copies them, as the pod's own identity (Pod Identity),
        # never node credentials.
        wait_for.append(EksPodIdentity("weights-reader", EksPodIdentityArgs(
            stack=stack, cluster_name=cluster.cluster_name, namespace=SERVING_NAMESPACE, service_account=s.engine,
            weights_uri=model.weights_uri, tags=tags)).association)
    watch = eks_watch(cfg, cluster, nodes)
    return cluster, build_serving(cfg, cluster.provider, nodes, watch, wait_for=wait_for), watch, net


def endpoint_url(cfg: StackConfig) -> str:
    """`https://<stack>.llm.internal/v1`, or `https://<domain>/v1` for an internet audience: fixed in advance, so the
    consumers' secrets can carry it before the endpoint exists."""
    if cfg.endpoint.audience == "internet":
        return f"https://{cfg.endpoint.domain}/v1"
    host = aws_endpoint_host(stack, ENDPOINT_ZONE) if cfg.cloud == "aws" else f"{gcp_endpoint_label(stack)}.{ENDPOINT_ZONE}"
    return f"https://{host}/v1"


def aws_exposure(cfg: StackConfig, net: AwsNetwork) -> dict:
    """The AWS endpoint's audience as the endpoint components take it. VPC (default): an internal ALB in the private
    subnets for clients in the VPC, a certificate from the stack's private CA (or the organisation's, when the stack
    names one). Internet (public network, data neither confidential nor regulated; StackConfig checks): an
    internet-facing ALB in the public subnets under the team's domain, with an ACM public certificate."""
    e = cfg.endpoint
    if e.audience == "internet":
        return {"internet_facing": True, "domain": e.domain, "public_zone_id": e.public_zone,
                "public_subnet_ids": net.public_subnet_ids, "client_cidrs": list(e.allowed_cidrs) or ["0.0.0.0/0"]}
    return {"client_cidrs": [net.vpc_cidr], "certificate_authority_arn": e.certificate_authority_arn}


def gcp_exposure(cfg: StackConfig) -> dict:
    """The GCP endpoint's audience: a regional internal Application Load Balancer (default), or a regional external
    one under the team's domain with a Google-managed certificate (TLS still ends in the region)."""
    e = cfg.endpoint
    return {"internet_facing": True, "domain": e.domain, "public_zone": e.public_zone} if e.audience == "internet" else {}


def consumer_keys(cfg: StackConfig):
    """Each consumer's generated key, as a Pulumi secret and in the cloud's secret store with its read policy."""
    tags, labels = aws_tags(stack, cfg.tier, cfg.residency.classification), gcp_labels(stack, cfg.tier, cfg.residency.classification)
    consumers = [Consumer(c.name, c.rotation, c.role_name or c.member) for c in cfg.consumers]
    if cfg.cloud == "aws":
        return AwsConsumerKeys("consumer-keys", AwsConsumerKeysArgs(
            stack=stack, region=cfg.region, consumers=consumers, endpoint_url=endpoint_url(cfg), model=PUBLIC_MODEL,
            protect=cfg.protect, tags=tags))
    return GcpConsumerKeys("consumer-keys", GcpConsumerKeysArgs(
        stack=stack, region=cfg.region, consumers=consumers, endpoint_url=endpoint_url(cfg), model=PUBLIC_MODEL,
        project=cfg.gcp_project, protect=cfg.protect, labels=labels))


def gateway_limits(cfg: StackConfig) -> list[GatewayConsumer]:
    return [GatewayConsumer(c.name, c.requests_per_minute, c.tokens_per_minute) for c in cfg.consumers]


def gateway_contract(cfg: StackConfig, endpoint, keys) -> TierOutputs:
    """The contract of every tier: the private HTTPS endpoint, where each consumer's key lives, the model to send.
    Clients trust the stack's private CA, and each application reads its own secret (base_url, api_key, model)."""
    secrets = keys.secret_arns if cfg.cloud == "aws" else keys.secret_names
    pulumi.export("ca_certificate", endpoint.ca_certificate)
    pulumi.export("consumer_key_secrets", secrets)
    # None for an internet audience: its certificate is publicly trusted.
    where = (f"Secrets Manager secret llm-hosting/{stack}/consumers/<consumer>" if cfg.cloud == "aws" else
             f"Secret Manager secret llm-hosting-{stack}-consumer-<consumer>")
    return TierOutputs(endpoint_url=endpoint.url,
                       api_key_secret=f"{where}, one per consumer ({', '.join(c.name for c in cfg.consumers)}): JSON "
                                      "with base_url, api_key and model; see the consumer_key_secrets output",
                       model=PUBLIC_MODEL, tier=cfg.tier)


def front_door(cfg: StackConfig, cluster, server: ModelServer, watch: ClusterWatch, net) -> TierOutputs:
    """The gateway in front of the cluster's tiers, its consumers' keys, and the private HTTPS endpoint applications in
    the VPC call: the stack's contract on every cluster tier.

    Order: the consumer keys are generated first (their secrets carry the endpoint's URL, a name fixed in advance),
    the gateway takes them, and the load balancer is created in front of the gateway's Service."""
    tags, labels = aws_tags(stack, cfg.tier, cfg.residency.classification), gcp_labels(stack, cfg.tier, cfg.residency.classification)
    keys = consumer_keys(cfg)
    config = pulumi.Config()
    limits = gateway_limits(cfg)
    api_keys = {api_key_env_name(cfg.api.provider): config.require_secret(cfg.api.api_key_config)} if cfg.api else {}
    # Burst overflow keys off the running replicas themselves: each one refuses what it cannot hold (shed_when_full in
    # build_serving), and the gateway sends a refused request to the API at once (stack_routes).
    # The NetworkPolicy admits the load balancer's own sources: the ALB's nodes sit in the VPC's private subnets; the
    # internal Application Load Balancer connects from the proxy-only subnet and is health-checked from Google's ranges.
    sources = [net.vpc_cidr] if cfg.cloud == "aws" else [net.proxy_only_cidr, *HEALTH_CHECK_RANGES]
    gateway = Gateway("gateway", GatewayArgs(
        routes=server.service_url.apply(lambda u: stack_routes(cfg, self_hosted_url=u, consumers=limits)),
        load_balancer_sources=sources,
        replicas=GATEWAY_REPLICAS, image=versions.gateway_image(cfg.registry), api_keys=api_keys,
        master_key=config.require_secret(GATEWAY_MASTER_KEY), consumer_keys=keys.keys, namespace=server.namespace,
        labels={"llm-hosting/stack": stack}, pod_monitor=True,
        custom_resource_dependencies=watch.custom_resource_dependencies), opts=pulumi.ResourceOptions(provider=cluster.provider))
    if cfg.cloud == "aws":
        endpoint = AwsPrivateEndpoint("endpoint", AwsPrivateEndpointArgs(
            stack=stack, cluster_name=cluster.cluster_name, region=cfg.region, vpc_id=net.vpc_id,
            subnet_ids=net.private_subnet_ids, **aws_exposure(cfg, net), registry=cfg.registry, versions=versions,
            namespace=SERVING_NAMESPACE, service_name=GATEWAY_NAME, zone_name=ENDPOINT_ZONE,
            node_selector=system_node_labels("system"), wait_for=[*watch.system_nodes, gateway], tags=tags,
            protect=cfg.protect), opts=pulumi.ResourceOptions(provider=cluster.provider))
    else:
        endpoint = GcpPrivateEndpoint("endpoint", GcpPrivateEndpointArgs(
            stack=stack, project=cfg.gcp_project, region=cfg.region, network=net.network_self_link,
            subnetwork=net.subnet_self_link, proxy_only_cidr=net.proxy_only_cidr, namespace=gateway.namespace,
            service_name=GATEWAY_NAME, zone_name=ENDPOINT_ZONE, labels=labels, protect=cfg.protect,
            **gcp_exposure(cfg)), opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[gateway]))
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("cluster_name", cluster.cluster_name)
    return gateway_contract(cfg, endpoint, keys)


def build_self_hosted(cfg: StackConfig) -> TierOutputs:
    return front_door(cfg, *eks_serving(cfg))


def gcp_network(cfg: StackConfig, control_plane_cidr=None, psc_service_classes=(), proxy_only_subnet=False) -> GcpNetwork:
    defaults = GcpNetworkArgs.__dataclass_fields__
    return GcpNetwork("network", GcpNetworkArgs(
        stack=stack, variant=cfg.network, region=cfg.region, project=cfg.gcp_project, subnet_cidr=cfg.vpc.cidr,
        pods_cidr=cfg.vpc.pods_cidr or defaults["pods_cidr"].default,
        services_cidr=cfg.vpc.services_cidr or defaults["services_cidr"].default,
        access_policy_id=cfg.vpc.access_policy_id, control_plane_cidr=control_plane_cidr,
        psc_service_classes=psc_service_classes, proxy_only_subnet=proxy_only_subnet, protect=cfg.protect,
        labels=gcp_labels(stack, cfg.tier, cfg.residency.classification)))


def vertex_tier(cfg: StackConfig) -> tuple[GcpNetwork, VertexEndpoint, GcpAlertChannel]:
    m, model = cfg.managed, cfg.model
    private = cfg.network != "public"
    # PSC automation creates the endpoint's forwarding rule only under the network's policy for Vertex AI's class.
    service_class = VertexEndpoint.psc_service_class
    # The gateway's internal Application Load Balancer connects from a proxy-only subnet.
    net = gcp_network(cfg, psc_service_classes=(service_class,) if private else (), proxy_only_subnet=True)
    token = pulumi.Config().require_secret(model.hugging_face_token_config) if model.hugging_face_token_config else None
    channel = gcp_alerts(cfg, kms_key_id=None)  # no key of its own in the region: the channel makes one
    endpoint = VertexEndpoint("vertex", VertexEndpointArgs(
        stack=stack, region=cfg.region, project=cfg.gcp_project, model_id=model.id,
        image_uri=versions.vllm_serving_image(cfg.registry), weights_uri=model.weights_uri, machine_type=m.instance_type,
        accelerator_type=VERTEX_ACCELERATOR[m.gpu], accelerator_count=catalog.instance_shapes.gcp[m.instance_type].gpu_count,
        min_replicas=m.min_replicas, max_replicas=m.max_replicas, max_context_tokens=model.max_context_tokens,
        precision=m.precision, network_variant=cfg.network, network=net.network_self_link if private else None,
        service_connection_policy=net.service_connection_policies.get(service_class),
        accept_eula=bool(model.accept_eula), hugging_face_token=token,
        allow_single_replica=m.allow_single_instance, protect=cfg.protect,
        notification_channels=[channel.channel_name], latency_alert_ms=cfg.observability.ttft_p95_ms,
        labels=gcp_labels(stack, cfg.tier, cfg.residency.classification)))
    # For operators and direct callers with Google credentials; applications call the gateway.
    pulumi.export("vertex_endpoint_name", endpoint.endpoint_name)
    return net, endpoint, channel


def build_managed_gcp(cfg: StackConfig) -> TierOutputs:
    net, endpoint, channel = vertex_tier(cfg)
    return cloud_run_front_door(cfg, net, channel, vertex=endpoint)


def cloud_run_front_door(cfg: StackConfig, net: GcpNetwork, alerts: GcpAlertChannel,
                         vertex: Optional[VertexEndpoint] = None, api: Optional[GcpApiKeySecret] = None) -> TierOutputs:
    """Where there is no cluster (API and Vertex AI tiers, hybrids on Vertex AI): the same gateway on Cloud Run,
    reachable only through a regional internal Application Load Balancer with the stack's private certificate and
    name. Its service account may call this Vertex AI endpoint's predict and nothing else, and read its secrets."""
    labels = gcp_labels(stack, cfg.tier, cfg.residency.classification)
    keys = consumer_keys(cfg)
    if cfg.registry:
        image = versions.gateway_image(cfg.registry)
    else:  # Cloud Run pulls only from Artifact Registry (or Docker Hub): a remote repository mirrors ghcr.io
        mirror = GcpImageMirror("image-mirror", GcpImageMirrorArgs(
            stack=stack, region=cfg.region, kms_key_id=keys.kms_key_id, project=cfg.gcp_project, labels=labels,
            protect=cfg.protect))
        image = mirror.image(versions.gateway_image(None))
    limits = gateway_limits(cfg)
    if vertex is not None:
        routes = pulumi.Output.all(vertex.contract.endpoint_url, vertex.endpoint_id, vertex.endpoint_name).apply(
            lambda a: stack_routes(cfg, managed=vertex_upstream(a[0], a[1], a[2].split("/")[1], cfg.region),
                                   consumers=limits))
    else:
        routes = stack_routes(cfg, consumers=limits)
    gateway = GatewayCloudRun("gateway", GatewayCloudRunArgs(
        stack=stack, project=cfg.gcp_project, region=cfg.region, routes=routes, image=image,
        master_key=pulumi.Config().require_secret(GATEWAY_MASTER_KEY),
        api_key_secrets={api_key_env_name(cfg.api.provider): api.secret_name} if api is not None else {},
        consumer_key_secrets=keys.secret_names, consumer_key_versions=keys.versions, kms_key_id=keys.kms_key_id,
        network=net.network_self_link, subnetwork=net.subnet_self_link,
        vertex_endpoint=vertex.endpoint_name if vertex is not None else None,
        labels=labels, protect=cfg.protect, secrets_ready=[keys] + ([api] if api is not None else []),
        # The usage lines become log-based metrics; the plan's drift thresholds alert on them to the stack's channel.
        drift=cfg.spend.drift if cfg.spend else None, notification_channels=[alerts.channel_name]))
    endpoint = GcpServerlessEndpoint("endpoint", GcpServerlessEndpointArgs(
        stack=stack, project=cfg.gcp_project, region=cfg.region, network=net.network_self_link,
        subnetwork=net.subnet_self_link, cloud_run_service=gateway.service_name,
        wait_for=[net],  # the proxy-only subnet must exist before the forwarding rule
        zone_name=ENDPOINT_ZONE, labels=labels, protect=cfg.protect, **gcp_exposure(cfg)))
    return gateway_contract(cfg, endpoint, keys)


def gke_serving(cfg: StackConfig) -> tuple[GkeCluster, ModelServer, ClusterWatch, GcpNetwork]:
    s, model = cfg.self_hosted, cfg.model
    labels = gcp_labels(stack, cfg.tier, cfg.residency.classification)
    # The internal Application Load Balancer in front of the gateway connects from a proxy-only subnet.
    net = gcp_network(cfg, control_plane_cidr=GKE_MASTER_CIDR, proxy_only_subnet=True)
    cluster = GkeCluster("gke", GkeClusterArgs(
        stack=stack, region=cfg.region, project=cfg.gcp_project, variant=cfg.network, network=net.network_self_link,
        subnetwork=net.subnet_self_link, pods_range_name=net.pods_range_name, services_range_name=net.services_range_name,
        master_ipv4_cidr=GKE_MASTER_CIDR, master_authorized_cidrs=s.public_access_cidrs,
        dns_endpoint=s.control_plane_dns_endpoint, protect=cfg.protect, labels=labels))
    zones = cfg.vpc.zones or load_regions().zones("gcp", cfg.region)[:cfg.vpc.az_count]
    counts = node_counts(catalog, cfg.cloud, s.instance_type, s.gpus_per_replica, s.min_replicas, s.on_demand_replicas,
                         s.spot_replicas, zones=len(zones))
    nodes = GkeGpuNodePools("gpu-nodes", GkeGpuNodePoolsArgs(
        stack=stack, region=cfg.region, project=cfg.gcp_project, cluster=cluster.cluster_id, zones=zones,
        machine_type=s.instance_type, gpu=s.gpu, accelerator_type=GKE_ACCELERATOR[s.gpu],
        accelerator_count=catalog.instance_shapes.gcp[s.instance_type].gpu_count,
        on_demand_min_nodes=counts.on_demand_min, on_demand_max_nodes=counts.on_demand_max, spot_max_nodes=counts.spot_max,
        kms_key_id=cluster.kms_key_id, boot_disk_gb=s.root_volume_gb, system_machine_type=s.system_instance_type or "e2-standard-4",
        protect=cfg.protect, labels=labels))
    # GKE installs the NVIDIA driver and device plugin itself (gpu_driver_installation_config).
    annotations, wait_for = None, []
    if model.weights_uri:
        # vLLM streams the weights from GCS, TGI's init container copies them, as the pod's own Google identity
        # (Workload Identity).
        identity = GkeWorkloadIdentity("weights-reader", GkeWorkloadIdentityArgs(
            stack=stack, project=cfg.gcp_project, namespace=SERVING_NAMESPACE, service_account=s.engine,
            weights_uri=model.weights_uri, workload_pool=cluster.workload_pool))
        annotations, wait_for = identity.annotations, [identity.binding]
    watch = gke_watch(cfg, cluster, nodes)
    return cluster, build_serving(cfg, cluster.provider, nodes, watch, annotations, wait_for), watch, net


def build_self_hosted_gcp(cfg: StackConfig) -> TierOutputs:
    return front_door(cfg, *gke_serving(cfg))


def build_hybrid(cfg: StackConfig) -> TierOutputs:
    """The in-boundary tier plus the API tier, behind one gateway that routes by the stack's pattern: in the cluster of
    a self-hosted tier, on ECS on Fargate or Cloud Run beside a managed endpoint."""
    unbuilt = cfg.unbuilt()  # the same predicate the planner drops candidates by
    if unbuilt:
        raise pulumi.RunError(f"{source}: {PROJECT}:{unbuilt[0]}: {unbuilt[1]}")
    if cfg.self_hosted is not None:
        serving = (eks_serving if cfg.cloud == "aws" else gke_serving)(cfg)
        api_key_secret(cfg)  # the provider key in the cloud's secret store, encrypted with our key, for other consumers too
        return front_door(cfg, *serving)
    if cfg.cloud == "aws":
        net, endpoint, topic = sagemaker_tier(cfg)
        return ecs_front_door(cfg, net, topic, sagemaker=endpoint, api=api_key_secret(cfg))
    net, endpoint, channel = vertex_tier(cfg)
    return cloud_run_front_door(cfg, net, channel, vertex=endpoint, api=api_key_secret(cfg))


BUILDERS = {("api", "aws"): build_api, ("api", "gcp"): build_api,
            ("managed", "aws"): build_managed, ("self-hosted", "aws"): build_self_hosted,
            ("managed", "gcp"): build_managed_gcp, ("self-hosted", "gcp"): build_self_hosted_gcp,
            ("hybrid", "aws"): build_hybrid, ("hybrid", "gcp"): build_hybrid}

if (cfg.tier, cfg.cloud) not in BUILDERS:
    raise pulumi.RunError(
        f"{source}: llm-hosting:tier: tier {cfg.tier!r} on {cfg.cloud} is not built by this version of the kit yet; "
        f"tiers built: {', '.join(f'{t} ({c})' for t, c in BUILDERS)}")

BUILDERS[(cfg.tier, cfg.cloud)](cfg).export()
export_spend(cfg)
