"""Container logs of an EKS cluster into CloudWatch Logs: the amazon-cloudwatch-observability add-on.

The add-on runs Fluent Bit (container, data-plane and host logs) and the CloudWatch agent (Container Insights
performance events) as DaemonSets that tolerate every taint, so GPU nodes are covered too. Both write to
/aws/containerinsights/<cluster>/{application,dataplane,host,performance}. Those groups are created here first, with
the stack's key, a retention and protection; otherwise the agents create them unencrypted and kept for ever.

Permissions: the add-on's service account (`cloudwatch-agent` in `amazon-cloudwatch`) gets a Pod Identity role with
an inline least-privilege policy instead of the AWS-managed CloudWatchAgentServerPolicy. That policy is not a
*FullAccess policy, but it lets the agents create and write to any log group of the account, read SSM parameters and
send X-Ray traces; here they may write to these four groups only (CreateLogGroup on them too: Fluent Bit's
`auto_create_group` then gets "already exists" instead of "access denied"), publish metrics in the
ContainerInsights namespace and read EC2 tags and volumes (Describe* is only grantable on "*").

Configuration is kept to what is needed: container logs on, Container Insights performance logs on, Application
Signals (traces, and the X-Ray rights it would need) off, and the add-on's own GPU metrics off (the cluster's DCGM
exporter already collects them; two exporters would compete for the GPUs' profiling counters).

Air-gapped: EKS pulls the add-on's images from its own regional ECR registry, which the stack reaches through the
ecr.api/ecr.dkr interface endpoints and the S3 gateway endpoint; the agents need the logs, monitoring, ec2, sts
and eks-auth endpoints (components/aws_network.py). On Amazon Linux 2023 nodes the dataplane and host groups stay
mostly empty (AL2023 logs to journald, not /var/log/messages); application and performance logs are unaffected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .aws_network import LOG_RETENTION_DAYS
from .eks_pod_identity import EksPodIdentity, EksPodIdentityArgs

ADDON = "amazon-cloudwatch-observability"
# An EKS 1.33 build of the add-on; check `aws eks describe-addon-versions --addon-name amazon-cloudwatch-observability
# --kubernetes-version 1.33` when the cluster's minor moves. Pinned, because releases change the agents' rights
# (v5.3.0 dropped cluster-wide ConfigMap reads from the agent's ClusterRole).
ADDON_VERSION = "v4.10.3-eksbuild.1"
NAMESPACE = "amazon-cloudwatch"
SERVICE_ACCOUNT = "cloudwatch-agent"  # used by both the agent and Fluent Bit
LOG_KINDS = ("application", "dataplane", "host", "performance")
METRICS_NAMESPACE = "ContainerInsights"


def log_group_name(cluster_name: str, kind: str) -> str:
    return f"/aws/containerinsights/{cluster_name}/{kind}"


def addon_configuration() -> dict:
    return {
        "containerLogs": {"enabled": True},
        # Replaces the add-on's default agent config, which also turns on Application Signals (traces).
        "agent": {"config": {"logs": {"metrics_collected": {"kubernetes": {
            "enhanced_container_insights": True,
            "accelerated_compute_metrics": False,
        }}}}},
    }


def agent_statements(log_group_arns: list[str]) -> list[dict]:
    groups = [r for arn in log_group_arns for r in (arn, f"{arn}:*")]  # the group and its streams
    return [
        {"Sid": "WriteContainerInsightsLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
         "Resource": groups},
        # PutMetricData has no resource ARN (AWS only allows "*"); the namespace condition is what scopes it.
        {"Sid": "ContainerInsightsMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}},
        # EC2 Describe* actions support no resource-level permissions.
        {"Sid": "NodeMetadata", "Effect": "Allow",
         "Action": ["ec2:DescribeInstances", "ec2:DescribeTags", "ec2:DescribeVolumes"], "Resource": "*"},
    ]


@dataclass(frozen=True)
class EksContainerLogsArgs:
    stack: str
    cluster_name: pulumi.Input[str]
    region: str
    kms_key_arn: pulumi.Input[str]  # its policy must let logs.<region>.amazonaws.com use it (the cluster key does)
    retention_days: int = 365
    addon_version: str = ADDON_VERSION
    # Resources the add-on must wait for: it runs a controller Deployment, and EKS reports the add-on DEGRADED
    # (failing `pulumi up`) while no node group can run it.
    wait_for: list = field(default_factory=list)
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"retention_days: {self.retention_days} is not a value CloudWatch Logs accepts "
                             f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
        if not self.addon_version.startswith("v") or "-eksbuild." not in self.addon_version:
            raise ValueError(f"addon_version: {self.addon_version!r} is not an EKS add-on version (vX.Y.Z-eksbuild.N)")


class EksContainerLogs(pulumi.ComponentResource):
    log_group_arns: pulumi.Output[dict]  # kind (application, dataplane, host, performance) -> ARN
    role_arn: pulumi.Output[str]
    addon: aws.eks.Addon

    def __init__(self, name: str, args: EksContainerLogsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:EksContainerLogs", name, None, opts)
        cluster = pulumi.Output.from_input(args.cluster_name)
        groups = {}
        for kind in LOG_KINDS:
            groups[kind] = aws.cloudwatch.LogGroup(
                f"{name}-{kind}",
                name=cluster.apply(lambda c, kind=kind: log_group_name(c, kind)),
                kms_key_id=args.kms_key_arn,
                retention_in_days=args.retention_days,
                deletion_protection_enabled=args.protect,
                tags=args.tags,
                # Logs are evidence: neither a destroy nor a replacement may take them, and a removal from the
                # program leaves them in the account.
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect))
        statements = pulumi.Output.all(*[g.arn for g in groups.values()]).apply(agent_statements)
        identity = EksPodIdentity(f"{name}-identity", EksPodIdentityArgs(
            stack=args.stack, cluster_name=args.cluster_name, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            statements=[statements.apply(lambda s, i=i: s[i]) for i in range(3)], tags=args.tags),
            opts=pulumi.ResourceOptions(parent=self))
        self.addon = aws.eks.Addon(
            f"{name}-addon",
            cluster_name=args.cluster_name,
            addon_name=ADDON,
            addon_version=args.addon_version,
            configuration_values=json.dumps(addon_configuration()),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags=args.tags,
            # The groups exist (with our key) before anything writes, and the credentials before the agents start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*groups.values(), identity.association,
                                                                 *args.wait_for]),
        )
        self.log_group_arns = pulumi.Output.all(**{k: g.arn for k, g in groups.items()})
        self.role_arn = identity.role_arn
        self.register_outputs({"log_group_arns": self.log_group_arns, "role_arn": self.role_arn})
