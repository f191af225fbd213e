"""An EKS control plane for GPU serving: KMS envelope encryption, audit logs, access entries, Pod Identity."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# Add-ons that run on every node as DaemonSets (the CNI must be there before a node can become Ready)...
ADDONS = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"]
# ...and those that run as a Deployment: EKS waits for their pods, so they are created once a node group that can
# run them exists (`add_node_addons`), or the add-on sits DEGRADED until `pulumi up` times out.
NODE_ADDONS = ["coredns"]
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class EksClusterArgs:
    stack: str
    region: str
    variant: str  # public | private | airgapped
    version: str
    subnet_ids: pulumi.Input[list[str]]  # private subnets, one per availability zone
    security_group_ids: pulumi.Input[list[str]] = field(default_factory=list)
    public_access_cidrs: list[str] = field(default_factory=list)  # public variant only; empty keeps the endpoint private
    admin_role_arns: list[str] = field(default_factory=list)
    log_retention_days: int = 365
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.variant not in ("public", "private", "airgapped"):
            raise ValueError(f"variant: {self.variant!r} is not one of public, private, airgapped")
        if self.public_access_cidrs and self.variant != "public":
            raise ValueError(f"public_access_cidrs: a {self.variant} cluster has a private-only endpoint")
        if "0.0.0.0/0" in self.public_access_cidrs:
            raise ValueError("public_access_cidrs: 0.0.0.0/0 opens the API server to the internet; name the CIDRs that need it")


class EksCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]  # a Pulumi secret
    provider: k8s.Provider

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:EksCluster", name, None, opts)
        self._prefix, self._tags = name, args.tags
        child = pulumi.ResourceOptions(parent=self)
        cluster_name = f"llm-hosting-{args.stack}"
        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-eks", description=f"llm-hosting {args.stack}: EKS secrets, logs and node volumes",
            cloudwatch_logs_region=args.region, for_autoscaling_ebs=True, protect=args.protect, tags=args.tags,
        ), opts=child)
        # EKS writes control-plane logs to this exact name; creating it first lets us set the key and retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/eks/{cluster_name}/cluster", kms_key_id=key.key_arn,
            retention_in_days=args.log_retention_days, deletion_protection_enabled=args.protect, tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        role = aws.iam.Role(
            f"{name}-role", name=f"{cluster_name}-cluster",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
            tags=args.tags, opts=child)
        attach = aws.iam.RolePolicyAttachment(f"{name}-role-policy", role=role.name,
                                              policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child)
        public = args.variant == "public" and bool(args.public_access_cidrs)
        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            version=args.version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids, security_group_ids=args.security_group_ids,
                endpoint_private_access=True, endpoint_public_access=public,
                public_access_cidrs=args.public_access_cidrs if public else None),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"], provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.key_arn)),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            # Access entries (API mode) instead of the aws-auth ConfigMap. With named admin roles the deploying
            # identity gets no standing admin entry (list it among the admins if it deploys serving/).
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=not args.admin_role_arns),
            deletion_protection=args.protect,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=[log_group, attach]),
        )
        self._cluster = cluster
        for i, arn in enumerate(args.admin_role_arns):
            entry = aws.eks.AccessEntry(f"{name}-admin-{i}", cluster_name=cluster.name, principal_arn=arn, type="STANDARD",
                                        tags=args.tags, opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}-policy", cluster_name=cluster.name, principal_arn=arn, policy_arn=CLUSTER_ADMIN_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]))
        for addon in ADDONS:
            # Pod Identity (eks-pod-identity-agent) gives workloads IAM roles without node credentials; the VPC CNI
            # enforces the workloads' NetworkPolicies (off by default on EKS).
            self._addon(addon, json.dumps({"enableNetworkPolicy": "true"}) if addon == "vpc-cni" else None, [])

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.kms_key_arn = key.key_arn
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority).apply(
            lambda a: kubeconfig(a[0], a[1], a[2]["data"], args.region)))
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child)
        self.register_outputs({"cluster_name": self.cluster_name, "endpoint": self.endpoint,
                               "kms_key_arn": self.kms_key_arn, "kubeconfig": self.kubeconfig})

    def _addon(self, addon: str, configuration: Optional[str], after: list) -> aws.eks.Addon:
        return aws.eks.Addon(f"{self._prefix}-{addon}", cluster_name=self._cluster.name,
                             addon_name=addon, configuration_values=configuration,
                             resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
                             tags=self._tags, opts=pulumi.ResourceOptions(parent=self, depends_on=after))

    def add_node_addons(self, nodes: list) -> list[aws.eks.Addon]:
        """The add-ons that run as pods (`NODE_ADDONS`), after `nodes` (a node group they can run on) exist.

        Their names and parent are the cluster's, as before this ordering existed, so existing stacks keep them.
        """
        return [self._addon(addon, None, list(nodes)) for addon in NODE_ADDONS]


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that gets short-lived tokens from `aws eks get-token`: no static credentials in it."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster_name,
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"]}}}],
    })
