"""Managed tier on AWS: an open-weight LLM on a SageMaker real-time endpoint (LMI container, vLLM backend).

Weights come uncompressed from an in-region S3 prefix, the container runs network-isolated in our subnets, the
execution role can read exactly that prefix, its own key, its own log group and its own image repository, and
every update is a blue/green canary that rolls back on 5XX errors or p95 latency. Callers sign requests with IAM
(sagemaker:InvokeEndpoint): there is no API key to hold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs
from .contract import TierOutputs

VARIANT = "primary"  # blue/green requires the same variant name in every config, so it never changes
# SageMaker's own bounds for ContainerStartupHealthCheckTimeoutInSeconds and ModelDataDownloadTimeoutInSeconds.
TIMEOUT_RANGE = (60, 3600)
# Families whose instances have local NVMe instance storage. CreateEndpointConfig refuses a KmsKeyId for them ("If
# you specify a value for KmsKeyId when using any nitro-based instances with local storage, the call to
# CreateEndpointConfig fails"), and their local storage is encrypted by a hardware module on the instance. A family
# missing here gets the CMK, so a new instance-store family fails loudly at CreateEndpointConfig instead of an
# EBS family silently losing our key.
INSTANCE_STORE_FAMILIES = frozenset({
    "c5d", "c6gd", "c6id", "m5d", "m6gd", "m6id", "r5d", "r6gd", "r6id", "x2iedn",
    "g4dn", "g5", "g6", "g6e", "gr6", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200",
    "trn1", "trn1n", "trn2",
})
# The account-form ECR URI SageMaker pulls from: <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest].
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
                       r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?$")
# SageMaker endpoint names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# Namespace the serving instances publish their per-instance metrics (GPU, memory, disk) to with the role.
INSTANCE_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"
# Blue/green timings. The canary bakes long enough for several alarm periods; the old fleet is kept a while after
# the full shift so a late alarm can still roll back without re-provisioning GPUs.
CANARY_BAKE_SECONDS = 600
TERMINATION_WAIT_SECONDS = 600
PROVISIONING_MARGIN_SECONDS = 1800  # getting GPU instances and pulling a multi-GB image, on top of our timeouts
# Target tracking: scale out quickly, scale in slowly. An instance removed too early costs a full model download
# and load (minutes) to bring back, while extra minutes of an idle instance cost little.
SCALE_OUT_COOLDOWN_SECONDS = 300
SCALE_IN_COOLDOWN_SECONDS = 1800
# Target tracking metrics. The concurrency one is what AWS recommends for LLM endpoints: SageMaker emits
# ConcurrentRequestsPerModel every 10 s (InvocationsPerInstance once a minute), it counts requests queued in the
# container, and a streamed response counts until its last token, so it follows an LLM's real load where a
# per-minute request count does not. It is a real-time endpoint metric: the variant has one model (no inference
# components) and the endpoint is neither serverless nor asynchronous, which is how this component deploys it; with
# one model copy per instance, "per model" is "per instance". It scales in no faster than the standard metric.
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
CONCURRENCY_METRIC = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
# Alerting: the fleet at its maximum for this long means target tracking wants more than it may have.
AT_MAX_PERIOD_SECONDS = 300
AT_MAX_PERIODS = 3
SLA_PERIODS = 5  # one-minute periods of p95 above the SLA before anyone is paged


def instance_family(instance_type: str) -> str:
    """`ml.g6e.12xlarge` -> `g6e`."""
    return instance_type.split(".")[1] if instance_type.count(".") >= 2 else ""


def has_instance_store(instance_type: str) -> bool:
    return instance_family(instance_type) in INSTANCE_STORE_FAMILIES


def instance_gpu_count(instance_type: str) -> Optional[int]:
    """GPUs of a SageMaker instance type (`ml.<type>` is EC2's `<type>` hardware) from the kit catalog, or None if unknown."""
    from planner.catalog import load_catalog  # pure data, no Pulumi import

    shape = load_catalog().instance_shapes.aws.get(instance_type.removeprefix("ml."))
    return shape.gpu_count if shape else None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> (`bucket`, `a/b/`)."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


@dataclass(frozen=True)
class SageMakerEndpointArgs:
    stack: str
    region: str
    model_id: str  # e.g. meta-llama/Llama-3.1-70B-Instruct (served-model name)
    image_uri: str  # the LMI/vLLM serving image in the stack's region (VERSIONS.sagemaker_image)
    weights_uri: str  # s3://bucket/prefix/ (uncompressed weights, in-region)
    instance_type: str  # e.g. ml.g6e.12xlarge
    gpus_per_replica: int  # tensor-parallel degree: all of the instance's GPUs (one model copy per instance)
    precision: Literal["fp16", "fp8"]  # weights and KV cache as the stack's memory fit assumed them
    max_context_tokens: int
    min_instances: int  # >= 2 unless the caller explicitly sets allow_single_instance
    max_instances: int
    target_invocations_per_instance: float  # per minute, for target tracking
    startup_timeout_seconds: int  # container start-up health check, sized to the model by the caller
    download_timeout_seconds: int
    subnet_ids: pulumi.Input[list[str]]
    security_group_ids: pulumi.Input[list[str]]
    airgapped: bool = False
    allow_single_instance: bool = False
    latency_alarm_ms: int = 30000  # p95 ModelLatency that triggers rollback
    # The stack's alert topic (AwsAlertTopic.topic_arn): every alarm notifies it on ALARM and OK, and the
    # instances-at-maximum alarm is created. None: the alarms only guard deployments.
    alarm_topic_arn: Optional[pulumi.Input[str]] = None
    # Concurrent requests per instance to hold (target tracking on CONCURRENCY_METRIC); None keeps
    # target_invocations_per_instance on the per-minute invocations metric.
    target_concurrent_requests_per_instance: Optional[float] = None
    latency_sla_ms: Optional[int] = None  # p95 ModelLatency promised to callers: above it for 5 minutes alerts
    dashboard: bool = False  # a CloudWatch dashboard of the endpoint (traffic, latency, errors, capacity, GPUs)
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        endpoint = f"llm-hosting-{self.stack}"
        if not ENDPOINT_NAME.match(endpoint):
            raise ValueError(f"stack: the endpoint name {endpoint!r} must be 1-63 letters, digits and hyphens "
                             "(SageMaker endpoint names), so the stack name must be too")
        if not self.region:
            raise ValueError("region: the stack's AWS region is required, e.g. us-east-1")
        if not self.model_id:
            raise ValueError("model_id: the served-model name is required, e.g. meta-llama/Llama-3.1-70B-Instruct")
        self._validate_image()
        bucket, prefix = split_s3_uri(self.weights_uri) if self.weights_uri.startswith("s3://") else ("", "")
        if not self.weights_uri.startswith("s3://") or not bucket:
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not an S3 URI; give the in-region prefix holding "
                             "the uncompressed weights, e.g. s3://my-bucket/llama-3.1-70b/")
        if not self.weights_uri.endswith("/"):
            # An S3Prefix model data source names a key prefix, which SageMaker requires to end with "/".
            raise ValueError(f"weights_uri: {self.weights_uri!r} must end with '/' (a key prefix, e.g. "
                             f"{self.weights_uri}/)")
        if not self.instance_type.startswith("ml.") or not instance_family(self.instance_type):
            raise ValueError(f"instance_type: {self.instance_type!r} is not a SageMaker instance type; valid types "
                             "look like ml.<family>.<size>, e.g. ml.g6e.12xlarge")
        if self.gpus_per_replica < 1:
            raise ValueError(f"gpus_per_replica: {self.gpus_per_replica} must be at least 1 (the tensor-parallel degree)")
        gpus = instance_gpu_count(self.instance_type)
        if gpus is not None and self.gpus_per_replica != gpus:
            # SageMaker bills the whole instance and places one model copy on it: a smaller degree leaves GPUs idle.
            raise ValueError(f"gpus_per_replica: {self.gpus_per_replica} differs from the {gpus} GPU(s) of {self.instance_type}; "
                             f"the endpoint serves one model copy per instance on all of them, so use {gpus}")
        if self.precision not in ("fp16", "fp8"):
            raise ValueError(f"precision: {self.precision!r} must be fp16 or fp8 (the precision the memory fit assumed)")
        if self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens: {self.max_context_tokens} must be at least 1")
        if self.min_instances < 1:
            raise ValueError(f"min_instances: {self.min_instances} must be at least 1")
        if self.min_instances < 2 and not self.allow_single_instance:
            raise ValueError(f"min_instances: {self.min_instances} leaves no replica during an instance failure or "
                             "a canary; use 2 or more, or set allow_single_instance=True to accept that")
        if self.max_instances < self.min_instances:
            raise ValueError(f"max_instances: {self.max_instances} must be >= min_instances ({self.min_instances})")
        if self.target_invocations_per_instance <= 0:
            raise ValueError(f"target_invocations_per_instance: {self.target_invocations_per_instance} must be > 0 "
                             "(invocations per instance per minute)")
        low, high = TIMEOUT_RANGE
        for name in ("startup_timeout_seconds", "download_timeout_seconds"):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: {value} is outside SageMaker's range of {low}..{high} seconds")
        if self.latency_alarm_ms <= 0:
            raise ValueError(f"latency_alarm_ms: {self.latency_alarm_ms} must be > 0")
        if self.target_concurrent_requests_per_instance is not None and self.target_concurrent_requests_per_instance <= 0:
            raise ValueError(f"target_concurrent_requests_per_instance: {self.target_concurrent_requests_per_instance} "
                             "must be > 0 (concurrent requests per instance, e.g. the engine's batch size)")
        if self.latency_sla_ms is not None and self.latency_sla_ms <= 0:
            raise ValueError(f"latency_sla_ms: {self.latency_sla_ms} must be > 0")

    def _validate_image(self) -> None:
        match = ECR_IMAGE.match(self.image_uri)
        ok = bool(match) and match.group("region") == self.region
        if ok:
            return
        expected = f"<12-digit account>.dkr.ecr.{self.region}.amazonaws.com/<repository>:<tag>"
        if self.airgapped:
            raise ValueError(f"image_uri: {self.image_uri!r} is refused for an air-gapped stack; it must be an ECR "
                             f"image in the stack's region ({expected}), e.g. the in-account mirror, never a public "
                             "registry (docker.io, public.ecr.aws, ghcr.io, nvcr.io) or another region")
        # Without a VPC registry (ImageConfig) SageMaker pulls only from ECR, and only in the endpoint's region.
        raise ValueError(f"image_uri: {self.image_uri!r} is not an ECR image in the stack's region; SageMaker pulls "
                         f"the serving image from ECR in the endpoint's region ({expected})")

    @property
    def endpoint_name(self) -> str:
        return f"llm-hosting-{self.stack}"

    @property
    def image_repository(self) -> tuple[str, str, str]:
        """(account, region, repository) of the image."""
        match = ECR_IMAGE.match(self.image_uri)
        return match.group("account"), match.group("region"), match.group("repository")


def execution_policy(args: SageMakerEndpointArgs, partition: str, account: str, key_arn: str, log_group_arn: str,
                     subnet_ids: list[str], security_group_ids: list[str]) -> dict:
    bucket, prefix = split_s3_uri(args.weights_uri)
    image_account, image_region, repository = args.image_repository
    ec2 = f"arn:{partition}:ec2:{args.region}:{account}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadWeights", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
        {"Sid": "ListWeights", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:{partition}:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        {"Sid": "UseOwnKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn},
        {"Sid": "WriteOwnLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"]},
        {"Sid": "PullServingImage", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
         "Resource": f"arn:{partition}:ecr:{image_region}:{image_account}:repository/{repository}"},
        # AWS only grants the registry login token on "*"; the pull itself is limited to one repository above.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        # VPC mode: SageMaker attaches the instances to our subnets through ENIs it creates with this role. Creation
        # is limited to our subnets and security groups, and every ENI action to ENIs of this account and region.
        {"Sid": "VpcCreateInterfaces", "Effect": "Allow", "Action": "ec2:CreateNetworkInterface",
         "Resource": [f"{ec2}:network-interface/*", *[f"{ec2}:subnet/{s}" for s in subnet_ids],
                      *[f"{ec2}:security-group/{g}" for g in security_group_ids]]},
        {"Sid": "VpcManageInterfaces", "Effect": "Allow",
         "Action": ["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission"],
         "Resource": f"{ec2}:network-interface/*"},
        # EC2 Describe* actions support no resource-level permissions: AWS only allows them on "*".
        {"Sid": "VpcDescribe", "Effect": "Allow",
         "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
         "Resource": "*"},
        # PutMetricData has no resource ARN (AWS only allows "*"); the namespace condition is what scopes it.
        {"Sid": "InstanceMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": INSTANCE_METRICS_NAMESPACE}}},
    ]}


def container_environment(args: SageMakerEndpointArgs) -> dict[str, str]:
    env = {
        # LMI 15's vLLM backend: the async engine behind the container's HTTP front end (the LMI equivalent of
        # OPTION_ROLLING_BATCH=vllm on older LMI releases).
        "OPTION_ASYNC_MODE": "true",
        "OPTION_ROLLING_BATCH": "disable",
        "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
        # SageMaker places the S3 prefix at /opt/ml/model; load from there, never from a hub.
        "OPTION_MODEL_ID": "/opt/ml/model",
        "OPTION_SERVED_MODEL_NAME": args.model_id,
        "TENSOR_PARALLEL_DEGREE": str(args.gpus_per_replica),
        "OPTION_MAX_MODEL_LEN": str(args.max_context_tokens),
        # Exit when the engine dies, so SageMaker replaces the instance instead of serving errors.
        "SERVING_FAIL_FAST": "true",
    }
    if args.precision == "fp8":
        # The weights in S3 are 16-bit; the memory fit counted one byte per parameter and per KV element, so the
        # engine quantises at load time. LMI's vLLM user guide (deepjavalibrary/djl-serving
        # serving/docs/lmi/user_guides/vllm_user_guide.md @00db6305f672246812e8efecc11a44e13a48a66b, "Quantization
        # Support") documents OPTION_QUANTIZE=fp8 for runtime quantisation, and passes other OPTION_<ARG> variables
        # through to vLLM's engine arguments: OPTION_KV_CACHE_DTYPE is vLLM's kv_cache_dtype. At fp16 neither is set
        # and the weights load as they are.
        env.update(OPTION_QUANTIZE="fp8", OPTION_KV_CACHE_DTYPE="fp8")
    if args.airgapped:
        # Nothing may try the Hugging Face Hub (it would hang on timeouts in an isolated network).
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def instance_count_queries(endpoint_name: str, period: int) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """Metric math for the variant's instance count: Invocations / InvocationsPerInstance (sums over the period)."""
    dimensions = {"EndpointName": endpoint_name, "VariantName": VARIANT}

    def metric(id_: str, metric_name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(id=id_, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace="AWS/SageMaker", metric_name=metric_name, dimensions=dimensions, period=period, stat="Sum"))

    return [
        metric("invocations", "Invocations"),
        metric("perinstance", "InvocationsPerInstance"),
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="instances", expression="IF(perinstance > 0, invocations / perinstance, 0)",
            label="Instances (Invocations / InvocationsPerInstance)", return_data=True),
    ]


def dashboard_body(endpoint_name: str, region: str, max_instances: int) -> dict:
    """One dashboard per endpoint: traffic and errors, latency, concurrency, instances, GPUs."""
    dims = ["EndpointName", endpoint_name, "VariantName", VARIANT]
    ns = "AWS/SageMaker"

    def widget(title: str, metrics: list, x: int, y: int, **extra) -> dict:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": "timeSeries", "period": 60,
                               "metrics": metrics, **extra}}

    return {"widgets": [
        widget("Invocations and errors (per minute)", [
            [ns, "Invocations", *dims, {"stat": "Sum", "label": "Invocations"}],
            [ns, "Invocation4XXErrors", *dims, {"stat": "Sum", "label": "4XX"}],
            [ns, "Invocation5XXErrors", *dims, {"stat": "Sum", "label": "5XX"}],
        ], 0, 0),
        widget("Model latency (ms)", [
            [{"expression": "p50 / 1000", "label": "p50", "id": "l50"}],
            [{"expression": "p95 / 1000", "label": "p95", "id": "l95"}],
            [ns, "ModelLatency", *dims, {"stat": "p50", "id": "p50", "visible": False}],
            [ns, "ModelLatency", *dims, {"stat": "p95", "id": "p95", "visible": False}],
        ], 12, 0),
        widget("Concurrent requests per instance", [
            [ns, "ConcurrentRequestsPerModel", *dims, {"stat": "Maximum", "label": "max"}],
            [ns, "ConcurrentRequestsPerModel", *dims, {"stat": "Average", "label": "average"}],
        ], 0, 6),
        widget("Instances", [
            [{"expression": "IF(perinstance > 0, invocations / perinstance, 0)", "label": "instances", "id": "count"}],
            [ns, "Invocations", *dims, {"stat": "Sum", "id": "invocations", "visible": False}],
            [ns, "InvocationsPerInstance", *dims, {"stat": "Sum", "id": "perinstance", "visible": False}],
        ], 12, 6, annotations={"horizontal": [{"label": "max_instances", "value": max_instances}]}),
        widget("GPU utilisation and memory (%, average over instances)", [
            [INSTANCE_METRICS_NAMESPACE, "GPUUtilization", *dims, {"stat": "Average", "label": "GPU utilisation"}],
            [INSTANCE_METRICS_NAMESPACE, "GPUMemoryUtilization", *dims, {"stat": "Average", "label": "GPU memory"}],
        ], 0, 12),
    ]}


class SageMakerEndpoint(pulumi.ComponentResource):
    endpoint_name: pulumi.Output[str]
    endpoint_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    model_name: pulumi.Output[str]
    endpoint_config_name: pulumi.Output[str]
    endpoint_config_kms: str  # "cmk" or "instance-store-hardware"
    contract: TierOutputs

    def __init__(self, name: str, args: SageMakerEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:SageMakerEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        endpoint_name = args.endpoint_name
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))

        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-sagemaker",
            description=f"llm-hosting {args.stack}: encrypts the SageMaker endpoint's volumes and logs",
            cloudwatch_logs_region=args.region, protect=args.protect, tags=args.tags,
        ), opts=child)

        # Created before the endpoint: SageMaker then writes into a group encrypted with our key and kept a year,
        # instead of creating an unencrypted one, and the role can name this exact group.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            kms_key_id=key.key_arn,
            retention_in_days=365,
            tags=args.tags,
            opts=stateful,
        )

        trust = identity.account_id.apply(lambda account: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                # Only SageMaker acting for this account (confused-deputy protection).
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }],
        }))
        role = aws.iam.Role(
            f"{name}-role",
            description=f"SageMaker execution role of the llm-hosting {args.stack} endpoint (least privilege)",
            assume_role_policy=trust,
            tags=args.tags,
            opts=child,
        )
        # Inline only: no managed policy (and never AmazonSageMakerFullAccess) is attached to this role.
        document = pulumi.Output.all(partition.partition, identity.account_id, key.key_arn, log_group.arn,
                                     args.subnet_ids, args.security_group_ids).apply(
            lambda a: json.dumps(execution_policy(args, *a)))
        role_policy = aws.iam.RolePolicy(f"{name}-role-policy", role=role.id, policy=document, opts=child)

        model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=role.arn,
            primary_container=aws.sagemaker.ModelPrimaryContainerArgs(
                image=args.image_uri,
                mode="SingleModel",
                model_data_source=aws.sagemaker.ModelPrimaryContainerModelDataSourceArgs(s3_data_sources=[
                    # Uncompressed weights under a prefix: no tarball to build, and SageMaker copies the files in
                    # parallel instead of downloading and untarring one archive.
                    aws.sagemaker.ModelPrimaryContainerModelDataSourceS3DataSourceArgs(
                        s3_uri=args.weights_uri, s3_data_type="S3Prefix", compression_type="None"),
                ]),
                environment=container_environment(args),
            ),
            vpc_config=aws.sagemaker.ModelVpcConfigArgs(subnets=args.subnet_ids,
                                                        security_group_ids=args.security_group_ids),
            # The container gets no network at all: weights come from S3 and the image from ECR through SageMaker.
            enable_network_isolation=True,
            tags=args.tags,
            # The role must hold its permissions before SageMaker validates and uses it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

        variant = aws.sagemaker.EndpointConfigurationProductionVariantArgs(
            variant_name=VARIANT,
            model_name=model.name,
            instance_type=args.instance_type,
            initial_instance_count=args.min_instances,
            container_startup_health_check_timeout_in_seconds=args.startup_timeout_seconds,
            model_data_download_timeout_in_seconds=args.download_timeout_seconds,
        )
        if has_instance_store(args.instance_type):
            # CreateEndpointConfig fails when KmsKeyId is given for nitro instances with local storage; that storage
            # is encrypted by the instance's hardware module instead.
            self.endpoint_config_kms = "instance-store-hardware"
            config_key = None
        else:
            self.endpoint_config_kms = "cmk"
            config_key = key.key_arn
        # Auto-named and never protected: any change makes a new config, and the endpoint moves to it blue/green.
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            production_variants=[variant],
            kms_key_arn=config_key,
            tags=args.tags,
            opts=child,
        )

        alarm_dimensions = {"EndpointName": endpoint_name, "VariantName": VARIANT}
        # Alarm and recovery both notify: an OK tells the on-call that a page resolved itself.
        actions = [args.alarm_topic_arn] if args.alarm_topic_arn is not None else None
        # Any 5XX in two consecutive minutes: one stray error does not roll back, a broken canary does quickly.
        errors = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx",
            name=f"{endpoint_name}-invocation-5xx",
            alarm_description=f"{endpoint_name}: the model returned 5XX errors in 2 consecutive minutes; "
                              "rolls back a deployment in progress",
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions=alarm_dimensions,
            statistic="Sum",
            period=60,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            treat_missing_data="notBreaching",  # no traffic is not an error
            alarm_actions=actions,
            ok_actions=actions,
            tags=args.tags,
            opts=child,
        )
        # ModelLatency is reported in microseconds.
        latency = aws.cloudwatch.MetricAlarm(
            f"{name}-p95-latency",
            name=f"{endpoint_name}-p95-model-latency",
            alarm_description=f"{endpoint_name}: p95 ModelLatency above {args.latency_alarm_ms} ms for 3 minutes; "
                              "rolls back a deployment in progress",
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions=alarm_dimensions,
            extended_statistic="p95",
            period=60,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator="GreaterThanThreshold",
            threshold=args.latency_alarm_ms * 1000,
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=args.tags,
            opts=child,
        )
        if args.latency_sla_ms is not None:
            # Alerting only, never a rollback: a slow period under load is for people to look at, not a bad release.
            aws.cloudwatch.MetricAlarm(
                f"{name}-latency-sla",
                name=f"{endpoint_name}-p95-latency-above-sla",
                alarm_description=f"{endpoint_name}: p95 ModelLatency above the {args.latency_sla_ms} ms SLA for "
                                  f"{SLA_PERIODS} minutes",
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",
                dimensions=alarm_dimensions,
                extended_statistic="p95",
                period=60,
                evaluation_periods=SLA_PERIODS,
                datapoints_to_alarm=SLA_PERIODS,
                comparison_operator="GreaterThanThreshold",
                threshold=args.latency_sla_ms * 1000,
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                ok_actions=actions,
                tags=args.tags,
                opts=child,
            )
        if actions and args.max_instances > args.min_instances:
            # SageMaker publishes no instance-count metric for a variant, but InvocationsPerInstance adds
            # 1/<instances> per request (API reference, ScalingPolicyMetric), so Invocations / InvocationsPerInstance
            # is the instance count whenever there is traffic. At the maximum for 15 minutes, target tracking wants
            # more than max_instances allows: raise it (quota permitting) or expect queueing.
            aws.cloudwatch.MetricAlarm(
                f"{name}-at-max",
                name=f"{endpoint_name}-instances-at-maximum",
                alarm_description=f"{endpoint_name}: the variant has run at its maximum of {args.max_instances} "
                                  f"instances for {AT_MAX_PERIOD_SECONDS * AT_MAX_PERIODS // 60} minutes; "
                                  "autoscaling cannot add capacity",
                metric_queries=instance_count_queries(endpoint_name, AT_MAX_PERIOD_SECONDS),
                evaluation_periods=AT_MAX_PERIODS,
                datapoints_to_alarm=AT_MAX_PERIODS,
                comparison_operator="GreaterThanThreshold",
                # Half an instance below the maximum: the ratio is exact at a steady count, and a scale-in or
                # scale-out inside the period gives a value between two counts.
                threshold=args.max_instances - 0.5,
                treat_missing_data="notBreaching",  # no traffic: nothing to be short of
                alarm_actions=actions,
                ok_actions=actions,
                tags=args.tags,
                opts=child,
            )

        if args.min_instances >= 2:
            # One instance first: at most 50% of the new fleet, as SageMaker requires of a canary.
            routing = aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgs(
                type="CANARY", wait_interval_in_seconds=CANARY_BAKE_SECONDS,
                canary_size=aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationCanarySizeArgs(
                    type="INSTANCE_COUNT", value=1))
        else:
            # A one-instance fleet cannot hold a canary of <= 50%: shift at once, still baking under the alarms.
            routing = aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgs(
                type="ALL_AT_ONCE", wait_interval_in_seconds=CANARY_BAKE_SECONDS)
        # Green instances must download and load the model before any traffic moves, so the deadline grows with
        # the caller's timeouts (SageMaker allows 600..14400 s).
        max_execution = min(14400, max(600, args.download_timeout_seconds + args.startup_timeout_seconds
                                       + CANARY_BAKE_SECONDS + PROVISIONING_MARGIN_SECONDS))
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            # A fixed name, so the alarms, the log group and the scaling target can name it before it exists.
            name=endpoint_name,
            endpoint_config_name=config.name,
            deployment_config=aws.sagemaker.EndpointDeploymentConfigArgs(
                blue_green_update_policy=aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyArgs(
                    traffic_routing_configuration=routing,
                    termination_wait_in_seconds=TERMINATION_WAIT_SECONDS,
                    maximum_execution_timeout_in_seconds=max_execution,
                ),
                auto_rollback_configuration=aws.sagemaker.EndpointDeploymentConfigAutoRollbackConfigurationArgs(
                    alarms=[aws.sagemaker.EndpointDeploymentConfigAutoRollbackConfigurationAlarmArgs(alarm_name=a.name)
                            for a in (errors, latency)]),
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=[log_group]),
        )

        # Note: SageMaker refuses an UpdateEndpoint that changes the instance type of an auto-scaled variant; such a
        # change needs the scaling policy and target removed first (two `pulumi up`s).
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT}"),
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=args.min_instances,
            max_capacity=args.max_instances,
            tags=args.tags,
            opts=child,
        )
        if args.target_concurrent_requests_per_instance is not None:
            metric, policy_name = CONCURRENCY_METRIC, f"{endpoint_name}-concurrent-requests-per-model"
            target_value = args.target_concurrent_requests_per_instance
        else:
            metric, policy_name = INVOCATIONS_METRIC, f"{endpoint_name}-invocations-per-instance"
            target_value = args.target_invocations_per_instance
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            name=policy_name,
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type=metric),
                target_value=target_value,
                scale_out_cooldown=SCALE_OUT_COOLDOWN_SECONDS,
                scale_in_cooldown=SCALE_IN_COOLDOWN_SECONDS,
            ),
            opts=child,
        )

        if args.dashboard:
            aws.cloudwatch.Dashboard(
                f"{name}-dashboard", dashboard_name=endpoint_name,
                dashboard_body=json.dumps(dashboard_body(endpoint_name, args.region, args.max_instances)), opts=child)

        self.endpoint_name = endpoint.name
        self.endpoint_arn = endpoint.arn
        self.execution_role_arn = role.arn
        self.kms_key_arn = key.key_arn
        self.model_name = model.name
        self.endpoint_config_name = config.name
        # IAM-signed requests replace an API key: callers need sagemaker:InvokeEndpoint on endpoint_arn.
        self.contract = TierOutputs(
            endpoint_url=endpoint.name.apply(
                lambda n: f"https://runtime.sagemaker.{args.region}.amazonaws.com/endpoints/{n}/invocations"),
            api_key_secret="aws-sigv4 (IAM sagemaker:InvokeEndpoint)",
            model=args.model_id,
            tier="managed",
        )
        self.register_outputs({"endpoint_name": self.endpoint_name, "endpoint_arn": self.endpoint_arn,
                               "execution_role_arn": self.execution_role_arn, "kms_key_arn": self.kms_key_arn,
                               "model_name": self.model_name, "endpoint_config_name": self.endpoint_config_name,
                               "endpoint_config_kms": self.endpoint_config_kms})
