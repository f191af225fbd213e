"""The gateway on ECS on Fargate: the LiteLLM proxy of serving/gateway_config.py for AWS stacks without a cluster.

API, SageMaker and hybrid-on-SageMaker stacks have no Kubernetes to run serving/gateway_k8s.py in. `GatewayEcs` runs
the same proxy, on the same rendered config, as an ECS service on Fargate in the stack's private subnets, registered
in the target group of the internal ALB the caller built (components/aws_alb_endpoint.py): cluster (Container
Insights on), log group, execution role, task role, task definition, the tasks' security group and the service.

A task definition has no config volume, so the container's entrypoint is serving/gateway_config.py's bootstrap: it
unpacks config.yaml, the request guard and the consumer authentication from one environment variable (FILES_ENV)
and becomes `litellm`. Keys never enter the task definition: ECS resolves each one from Secrets Manager (`secrets`,
valueFrom an ARN) when it starts a task, with the execution role, which may read exactly those secrets. A config
change changes FILES_ENV and so registers a new task definition revision, which the service rolls out; a rotated key
keeps the same ARN, so it reaches the tasks at their next start (a forced new deployment rolls them all).

The replica count is fixed (no autoscaling): consumer limits are enforced per replica as ceil(limit / replicas), so
the service must run exactly the number of tasks the config was rendered for. More tasks would multiply every
consumer's limit, fewer would divide it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_aws as aws

from components.aws_usage_metrics import AwsUsageMetrics, AwsUsageMetricsArgs, drift_alarms
from planner.stack_config import DriftConfig

from .gateway_config import (BOOTSTRAP_ENTRYPOINT, CONSUMER_KEY_ENV_PREFIX, ECS_TASK_CPU_UNITS, ECS_TASK_MEMORY_MIB,
                             FILES_ENV, KEY_ENV_PATTERN, SERVERLESS_REPLICAS,
                             MASTER_KEY_ENV, PORT, PROXY_ENV, GatewayRoutes, check_consumer_mapping, check_keys,
                             consumer_key_env, packed_files, render_config)

CONTAINER_NAME = "litellm"  # the service's load balancer names this container
RUN_AS_USER = "10001"  # as on Kubernetes: the proxy runs as a non-root user with a read-only root filesystem
TMP_VOLUME = "tmp"  # the task's only writable path (/tmp): unpacked config, LiteLLM's UI copy, HOME
# The JSON key ECS picks out of a consumer's secret, whose value is the document its application reads
# ({base_url, api_key, model}): `<secret arn>:<json key>:<version stage>:<version id>`, empty = AWSCURRENT.
CONSUMER_SECRET_JSON_KEY = "api_key"
# SIGTERM makes LiteLLM's server stop accepting and finish the requests it holds; Fargate's longest grace (120 s)
# lets a long completion end instead of being cut off when a task is replaced. The ALB stops sending new requests to
# the task first (its target deregistration).
STOP_TIMEOUT_SECONDS = 120
# As long as the Kubernetes startup probe allows: LiteLLM starts in ~10-60 s, slower on a cold, small task.
STARTUP_SECONDS = 180
RESERVED_ENV = {MASTER_KEY_ENV, FILES_ENV, *PROXY_ENV}
STACK_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")  # keeps role names within IAM's 64 characters
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
# A key ARN, not an alias: IAM grants key use on key ARNs only, and CloudWatch Logs takes only a key ARN.
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9_-]+$")
# An image in a private ECR registry: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>[:tag|@digest]
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                       r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?:@sha256:[0-9a-f]{64}|:[A-Za-z0-9_.-]+)$")
CPU_MEMORY = {256: (512, 2048), 512: (1024, 4096), 1024: (2048, 8192), 2048: (4096, 16384), 4096: (8192, 30720),
              8192: (16384, 61440), 16384: (32768, 122880)}  # Fargate's vCPU units -> (min, max) memory in MiB


@dataclass(frozen=True)
class GatewayEcsArgs:
    stack: str
    region: str  # the stack's aws:region
    routes: Any  # GatewayRoutes, or a pulumi.Output[GatewayRoutes] when an upstream is known only at deploy time
    image: str  # pinned LiteLLM image: VERSIONS.gateway_image(registry)
    master_key: Any  # pulumi.Input[str], a Pulumi secret: stored in Secrets Manager under kms_key_arn
    # Env var (Upstream.api_key_env) -> ARN of the Secrets Manager secret whose value is the raw provider key
    # (components/aws_api_key_secret.py).
    api_key_secrets: Mapping[str, Any]
    # Consumer name -> ARN of its secret (components/aws_consumer_keys.py); the value is the JSON document its
    # application reads, {base_url, api_key, model}: ECS picks its api_key.
    consumer_key_secrets: Mapping[str, Any]
    secret_kms_key_arns: Sequence[Any]  # the customer keys encrypting those secrets (the execution role decrypts)
    kms_key_arn: Any  # the stack's key: the master-key secret and the log group (its policy must admit CloudWatch Logs)
    vpc_id: Any
    subnet_ids: Any  # pulumi.Input[list[str]]: private subnets, one per availability zone
    load_balancer_security_group_id: Any  # the ALB's security group: the only source admitted to the tasks
    target_group_arn: Any  # the ALB's target group (target type ip) the service registers its tasks in
    # What the proxy itself calls with the task role, as IAM statements (dicts, or Outputs of dicts): e.g.
    # sagemaker:InvokeEndpoint on one endpoint ARN. Empty for an API-only stack (its key comes from the environment).
    task_role_statements: Sequence[Any] = ()
    # Consumer -> the version id of its secret (AwsConsumerKeys.version_ids). Pinned in the task definition, so a
    # rotated key makes a new revision and ECS rolls the tasks onto it; without it, tasks read the current version
    # when they start.
    consumer_key_versions: Mapping[str, Any] = field(default_factory=dict)
    # The ALB listener forwarding to target_group_arn: ECS refuses a target group no listener uses, so the service is
    # ordered after it when given.
    listener_arn: Any = None
    replicas: int = SERVERLESS_REPLICAS  # fixed: consumer limits were rendered per replica for exactly this count
    cpu: int = ECS_TASK_CPU_UNITS  # Fargate CPU units
    memory: int = ECS_TASK_MEMORY_MIB  # MiB
    log_retention_days: int = 30
    cpu_architecture: str = "X86_64"  # or ARM64 (Graviton), if the image has an arm64 variant
    health_check_grace_period_seconds: int = STARTUP_SECONDS  # the ALB's failed checks count only after this
    protect: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)
    # The plan's drift thresholds (spend.drift). Given, the gateway's usage lines become CloudWatch metrics
    # (components/aws_usage_metrics.py) and the thresholds alarms on them, to alarm_topic_arn.
    drift: Optional[DriftConfig] = None
    alarm_topic_arn: Any = None  # the stack's SNS topic (AwsAlertTopic.topic_arn); required when drift has thresholds

    def __post_init__(self):
        if not isinstance(self.stack, str) or not STACK_NAME.match(self.stack):
            raise ValueError(f"stack: {self.stack!r} must be lowercase letters, digits and '-' (1-32 characters)")
        if not isinstance(self.region, str) or not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", self.region):
            raise ValueError(f"region: {self.region!r} is not an AWS region")
        tail = self.image.rsplit("/", 1)[-1]
        if "@sha256:" not in self.image and (":" not in tail or tail.endswith(":latest")):
            raise ValueError(f"image: {self.image!r} is not pinned; give an exact release tag or an @sha256 digest")
        if self.replicas < 2:
            raise ValueError(f"replicas: {self.replicas}; the gateway fronts every tier, so it runs at least 2 "
                             "replicas")
        if self.cpu not in CPU_MEMORY:
            raise ValueError(f"cpu: {self.cpu} is not a Fargate CPU size ({', '.join(map(str, CPU_MEMORY))})")
        low, high = CPU_MEMORY[self.cpu]
        if not low <= self.memory <= high or self.memory % 1024 and self.memory != 512:
            raise ValueError(f"memory: {self.memory} MiB does not go with cpu {self.cpu} on Fargate "
                             f"({low}-{high} MiB in whole GiB)")
        if self.cpu_architecture not in ("X86_64", "ARM64"):
            raise ValueError(f"cpu_architecture: {self.cpu_architecture!r} is not X86_64 or ARM64")
        if self.log_retention_days not in (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                                           2192, 2557, 2922, 3288, 3653):
            raise ValueError(f"log_retention_days: {self.log_retention_days} is not a CloudWatch Logs retention period")
        if self.health_check_grace_period_seconds < 0:
            raise ValueError(f"health_check_grace_period_seconds: {self.health_check_grace_period_seconds} is negative")
        if self.master_key is None or self.master_key == "":
            raise ValueError("master_key: required (a Pulumi secret)")
        check_consumer_mapping("consumer_key_secrets", self.consumer_key_secrets, "secret")
        for consumer, arn in self.consumer_key_secrets.items():
            _check_arn("consumer_key_secrets", consumer, arn, SECRET_ARN, "a Secrets Manager secret ARN")
        for env, arn in self.api_key_secrets.items():
            if not KEY_ENV_PATTERN.match(env) or env in RESERVED_ENV or env.startswith(CONSUMER_KEY_ENV_PREFIX):
                raise ValueError(f"api_key_secrets: {env!r} is not a valid key variable (LLMHOST_[A-Z0-9_]+)")
            _check_arn("api_key_secrets", env, arn, SECRET_ARN, "a Secrets Manager secret ARN")
        if not self.secret_kms_key_arns:
            raise ValueError("secret_kms_key_arns: the keys encrypting the consumer (and provider) key secrets; "
                             "without them the tasks cannot read their keys")
        for i, arn in enumerate(self.secret_kms_key_arns):
            _check_arn("secret_kms_key_arns", str(i), arn, KMS_KEY_ARN, "a KMS key ARN")
        _check_arn("kms_key_arn", "", self.kms_key_arn, KMS_KEY_ARN, "a KMS key ARN")
        for i, statement in enumerate(self.task_role_statements):
            if _is_output(statement):
                continue
            if not isinstance(statement, Mapping) or not {"Effect", "Action", "Resource"} <= set(statement):
                raise ValueError(f"task_role_statements[{i}]: an IAM statement with Effect, Action and Resource")
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a == "*" or (isinstance(a, str) and a.endswith(":*")) for a in actions):
                raise ValueError(f"task_role_statements[{i}]: {statement['Action']!r} grants every action; name the "
                                 "actions the proxy calls")
        if self.drift is not None and not isinstance(self.drift, DriftConfig):
            raise ValueError("drift: a planner.stack_config.DriftConfig (spend.drift)")
        if self.drift is not None and drift_alarms(self.stack, self.drift) and not self.alarm_topic_arn:
            raise ValueError("alarm_topic_arn: the drift alarms need the stack's alert topic (AwsAlertTopic.topic_arn)")
        if isinstance(self.routes, GatewayRoutes):
            _check_keys(self.routes, self)
        elif not _is_output(self.routes):
            raise ValueError("routes: a GatewayRoutes (or an Output of one)")


def _is_output(value: Any) -> bool:
    return isinstance(value, pulumi.Output)


def _check_arn(field_name: str, what: str, arn: Any, pattern: re.Pattern, kind: str) -> None:
    label = f"{field_name}: {what}" if what else field_name
    if _is_output(arn):
        return  # an ARN of a resource this program creates: known at deploy time
    if not isinstance(arn, str) or not pattern.match(arn):
        raise ValueError(f"{label}: {arn!r} is not {kind}")


def _check_keys(routes: GatewayRoutes, args: GatewayEcsArgs) -> None:
    """check_keys, naming this runtime's fields: the secrets deployed are exactly the keys the routes read."""
    try:
        check_keys(routes, args.api_key_secrets, args.consumer_key_secrets)
    except ValueError as exc:
        field_name, _, rest = str(exc).partition(":")
        renamed = {"api_keys": "api_key_secrets", "consumer_keys": "consumer_key_secrets"}.get(field_name, field_name)
        raise ValueError(f"{renamed}:{rest}") from None


def _build(args: GatewayEcsArgs, routes: GatewayRoutes) -> dict[str, Any]:
    _check_keys(routes, args)
    # Checks every sensitive route before returning; consumer limits split over exactly args.replicas tasks.
    return render_config(routes, replicas=args.replicas)


def ecr_repository(image: str) -> Optional[tuple[str, str, str]]:
    """(account, region, repository) of an image in a private ECR registry; None for any other registry."""
    m = ECR_IMAGE.match(image)
    return (m["account"], m["region"], m["repository"]) if m else None


def execution_policy(image: str, region: str, partition: str, log_group_arn: str, secret_arns: Sequence[str],
                     kms_key_arns: Sequence[str]) -> dict:
    """What ECS itself needs to start a task: write its logs, read its keys, pull its image. Nothing else."""
    statements = [
        # The awslogs driver creates the task's stream in the existing group and writes to it (never creates a group).
        {"Sid": "WriteGatewayLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:log-stream:*"},
        {"Sid": "ReadGatewayKeys", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": sorted(set(secret_arns))},
        # Decrypt only through Secrets Manager, so these keys decrypt nothing else for this role.
        {"Sid": "DecryptKeysViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": sorted(set(kms_key_arns)),
         "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
    ]
    repo = ecr_repository(image)
    if repo:
        account, repo_region, repository = repo
        statements += [
            # AWS only grants the registry login token on "*"; the pull itself is limited to one repository.
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "PullGatewayImage", "Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": f"arn:{partition}:ecr:{repo_region}:{account}:repository/{repository}"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def container_definition(args: GatewayEcsArgs, config: Mapping[str, Any], log_group_name: str,
                         master_key_secret_arn: str, api_key_arns: Mapping[str, str],
                         consumer_arns: Mapping[str, str], consumer_versions: Optional[Mapping[str, str]] = None) -> dict:
    """The `litellm` container: the bootstrap entrypoint, the packed config, and every key by reference only."""
    environment = {**PROXY_ENV, FILES_ENV: packed_files(config)}
    secrets = [{"name": MASTER_KEY_ENV, "valueFrom": master_key_secret_arn},
               *[{"name": env, "valueFrom": api_key_arns[env]} for env in sorted(api_key_arns)],
               # <arn>:<json-key>:<version-stage>:<version-id>; an empty id is the current version.
               *[{"name": consumer_key_env(c),
                  "valueFrom": f"{consumer_arns[c]}:{CONSUMER_SECRET_JSON_KEY}::{(consumer_versions or {}).get(c) or ''}"}
                 for c in sorted(consumer_arns)]]
    liveliness = f"http://127.0.0.1:{PORT}/health/liveliness"
    return {
        "name": CONTAINER_NAME,
        "image": args.image,
        "essential": True,
        # The image's Python runs the bootstrap, which execs `litellm --config ... --port 4000`. Should the image's
        # CMD still follow the overridden entrypoint, it only lands in the bootstrap's sys.argv, which it ignores.
        "entryPoint": list(BOOTSTRAP_ENTRYPOINT),
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "secrets": secrets,
        "portMappings": [{"name": "http", "containerPort": PORT, "protocol": "tcp"}],
        "user": RUN_AS_USER,
        "readonlyRootFilesystem": True,
        "privileged": False,
        "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}],
        # An init process reaps the proxy's worker processes; no capability is needed to serve HTTP on 4000.
        "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
        # ECS replaces a task whose proxy stops answering, even while the ALB still counts it healthy.
        "healthCheck": {"command": ["CMD", "python", "-c",
                                    f"import urllib.request; urllib.request.urlopen({liveliness!r}, timeout=4)"],
                        "interval": 15, "timeout": 5, "retries": 3, "startPeriod": STARTUP_SECONDS},
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": log_group_name, "awslogs-region": args.region, "awslogs-stream-prefix": "gateway",
            # A CloudWatch Logs slowdown must not block the proxy's stdout (and with it every request): buffer up to
            # 25 MB in the agent instead.
            "mode": "non-blocking", "max-buffer-size": "25m"}},
    }


class GatewayEcs(pulumi.ComponentResource):
    """The LiteLLM proxy as an ECS service on Fargate, behind the stack's internal ALB."""

    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]  # the tasks' group
    master_key_secret_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    config: pulumi.Output[dict]  # the rendered LiteLLM config
    usage: Optional[AwsUsageMetrics]  # the usage metrics and drift alarms, when drift was given

    def __init__(self, name: str, args: GatewayEcsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GatewayEcs", name, None, opts)
        if _is_output(args.routes):
            config = args.routes.apply(lambda r: _build(args, r))
        else:  # known now: a bad route fails here, before anything is registered
            rendered = _build(args, args.routes)
            config = pulumi.Output.from_input(None).apply(lambda _: rendered)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        tags = {**dict(args.tags), "llm-hosting/stack": args.stack, "llm-hosting/component": "gateway"}
        prefix = f"llm-hosting-{args.stack}-gateway"
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))

        master_secret = aws.secretsmanager.Secret(
            f"{name}-master-key",
            name=f"llm-hosting/{args.stack}/gateway-master-key",
            description=f"LiteLLM master key of the llm-hosting {args.stack} gateway (operators: admin, metrics)",
            kms_key_id=args.kms_key_arn, recovery_window_in_days=30, tags=tags, opts=stateful)
        aws.secretsmanager.SecretVersion(
            f"{name}-master-key-version", secret_id=master_secret.id,
            secret_string=pulumi.Output.secret(args.master_key),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_string"]))

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/llm-hosting/{args.stack}/gateway",
            kms_key_id=args.kms_key_arn,
            retention_in_days=args.log_retention_days,
            deletion_protection_enabled=args.protect,
            tags=tags, opts=stateful)

        cluster = aws.ecs.Cluster(
            f"{name}-cluster", name=prefix,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            tags=tags, opts=child)

        # Execution role: ECS's own calls to start a task. Inline and least-privilege, instead of the managed
        # AmazonECSTaskExecutionRolePolicy (which reads any secret's parameters and pulls from any repository).
        # The trust policy ECS documents for the execution role, without conditions: the confused-deputy keys are
        # documented for the task role (below), and a condition the execution path does not send would leave every
        # task unable to start. What this role may do is cut down instead (its policy below).
        execution_trust = json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        })
        execution_role = aws.iam.Role(
            f"{name}-execution-role", name=f"{prefix}-execution",
            description=f"ECS task execution role of the llm-hosting {args.stack} gateway: its logs, keys and image",
            assume_role_policy=execution_trust, tags=tags, opts=child)
        secret_arns = [master_secret.arn, *args.api_key_secrets.values(), *args.consumer_key_secrets.values()]
        key_arns = [args.kms_key_arn, *args.secret_kms_key_arns]
        execution_document = pulumi.Output.all(partition.partition, log_group.arn, pulumi.Output.all(*secret_arns),
                                               pulumi.Output.all(*key_arns)).apply(
            lambda a: json.dumps(execution_policy(args.image, args.region, a[0], a[1], a[2], a[3])))
        execution_policy_resource = aws.iam.RolePolicy(
            f"{name}-execution-policy", role=execution_role.id, name=f"{prefix}-execution",
            policy=execution_document, opts=child)

        # Task role: what the proxy calls itself (e.g. SageMaker runtime, signed with this role). No statement, no
        # policy: an API-only gateway reaches its provider with a key and calls nothing in AWS.
        task_trust = pulumi.Output.all(identity.account_id, partition.partition).apply(lambda a: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                           "Action": "sts:AssumeRole",
                           "Condition": {"StringEquals": {"aws:SourceAccount": a[0]},
                                         "ArnLike": {"aws:SourceArn": f"arn:{a[1]}:ecs:{args.region}:{a[0]}:*"}}}],
        }))
        task_role = aws.iam.Role(
            f"{name}-task-role", name=f"{prefix}-task",
            description=f"Task role of the llm-hosting {args.stack} gateway: only the upstream calls it makes",
            assume_role_policy=task_trust, tags=tags, opts=child)
        task_policies = []
        if args.task_role_statements:
            task_document = pulumi.Output.all(*args.task_role_statements).apply(
                lambda statements: json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
            task_policies.append(aws.iam.RolePolicy(
                f"{name}-task-policy", role=task_role.id, name=f"{prefix}-task", policy=task_document, opts=child))

        container = pulumi.Output.all(
            config, log_group.name, master_secret.arn,
            pulumi.Output.all(**dict(args.api_key_secrets)) if args.api_key_secrets else {},
            pulumi.Output.all(**dict(args.consumer_key_secrets)),
            pulumi.Output.all(**dict(args.consumer_key_versions)) if args.consumer_key_versions else {}).apply(
            lambda a: json.dumps([container_definition(args, a[0], a[1], a[2], a[3], a[4], a[5])]))
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task", family=prefix,
            requires_compatibilities=["FARGATE"], network_mode="awsvpc",
            cpu=str(args.cpu), memory=str(args.memory),
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=args.cpu_architecture),
            execution_role_arn=execution_role.arn, task_role_arn=task_role.arn,
            # A task-scoped volume on Fargate's ephemeral storage: the only writable path for the read-only container.
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name=TMP_VOLUME)],
            container_definitions=container,
            tags=tags,
            # The tasks read their keys at start with the execution role: its policy must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution_policy_resource, *task_policies]))

        # Ingress only from the ALB, on the proxy port. Egress HTTPS anywhere: the proxy's upstreams are the API
        # provider (public addresses that change, via the NAT gateway) and AWS APIs (SageMaker runtime, STS;
        # and for ECS itself Secrets Manager, KMS, CloudWatch Logs, ECR and S3 layers), reached through VPC endpoints
        # or the NAT gateway; a security group cannot name them by host. An air-gapped VPC has no route out, so
        # there only the endpoints answer. DNS and the task metadata endpoint are not filtered by security groups.
        security_group = aws.ec2.SecurityGroup(
            f"{name}-tasks-sg", vpc_id=args.vpc_id,
            description=f"llm-hosting {args.stack} gateway tasks: proxy port from the ALB only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=PORT, to_port=PORT, security_groups=[args.load_balancer_security_group_id],
                description="LiteLLM proxy from the gateway's internal ALB")],
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=["0.0.0.0/0"],
                description="HTTPS to the upstreams and AWS APIs (VPC endpoints or NAT)")],
            tags={**tags, "Name": f"{prefix}-tasks"}, opts=child)

        # ECS refuses a target group that no listener forwards to: order the service after the listener.
        target_group_arn = (pulumi.Output.all(args.target_group_arn, args.listener_arn).apply(lambda a: a[0])
                            if args.listener_arn is not None else args.target_group_arn)
        service = aws.ecs.Service(
            f"{name}-service", name=prefix, cluster=cluster.arn, task_definition=task_definition.arn,
            launch_type="FARGATE", platform_version="LATEST",
            # Fixed: the consumer limits in the config are per task, rendered for exactly this many.
            desired_count=args.replicas,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.subnet_ids, security_groups=[security_group.id], assign_public_ip=False),
            load_balancers=[aws.ecs.ServiceLoadBalancerArgs(
                target_group_arn=target_group_arn, container_name=CONTAINER_NAME, container_port=PORT)],
            # A new revision that never turns healthy is rolled back; `pulumi up` then fails instead of leaving a
            # half-deployed gateway. Full capacity throughout: new tasks start before old ones stop.
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            deployment_minimum_healthy_percent=100, deployment_maximum_percent=200,
            wait_for_steady_state=True,
            health_check_grace_period_seconds=args.health_check_grace_period_seconds,
            # Fargate's service scheduler already spreads the tasks over the subnets' availability zones; zone
            # rebalancing moves them back after a zone recovers.
            availability_zone_rebalancing="ENABLED",
            propagate_tags="SERVICE", enable_ecs_managed_tags=True,
            enable_execute_command=False,  # no shell into a process that holds every key
            tags=tags, opts=child)

        # The gateway prints one usage line per completion to stdout, which awslogs ships to this group.
        self.usage = AwsUsageMetrics(f"{name}-usage", AwsUsageMetricsArgs(
            stack=args.stack, log_group_name=log_group.name, log_group_arn=log_group.arn, drift=args.drift,
            alarm_topic_arn=args.alarm_topic_arn, tags=dict(args.tags)),
            opts=child) if args.drift is not None else None

        self.cluster_name = cluster.name
        self.service_name = service.name
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.security_group_id = security_group.id
        self.master_key_secret_arn = master_secret.arn
        self.log_group_name = log_group.name
        self.config = config
        self.register_outputs({
            "cluster_name": self.cluster_name, "service_name": self.service_name, "task_role_arn": self.task_role_arn,
            "execution_role_arn": self.execution_role_arn, "security_group_id": self.security_group_id,
            "master_key_secret_arn": self.master_key_secret_arn, "log_group_name": self.log_group_name,
            "config": self.config})
