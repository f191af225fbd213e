"""cluster-autoscaler for an EKS cluster's managed node groups: spot first, the on-demand floor as the fallback.

EKS does not resize managed node groups by itself; without this the GPU groups stay at their desired size and the
capacity between minimum and maximum never comes. EKS tags the Auto Scaling group of every managed node group with
`k8s.io/cluster-autoscaler/enabled` and `k8s.io/cluster-autoscaler/<cluster>` (value `owned`), which is what the
autoscaler discovers groups by and what its IAM role is scoped to: it may only resize and shrink groups of THIS
cluster. For a group at zero nodes (spot) the autoscaler reads the group's labels and taints with
eks:DescribeNodegroup, so pods selecting the GPU labels and tolerating the GPU taint scale it up from nothing.

Choice of group (the `priority` expander, highest number first):
  spot groups       50   cheaper; tried first for replicas above the on-demand floor
  on-demand groups  10   the fallback when spot capacity is short
  anything else      1   (the system pool) only when nothing above fits
A spot group whose instances do not arrive within `max_node_provision_time` is marked as failed and backed off, so
the next priority (on-demand) is tried; a rejected spot request surfaces sooner, through the group's scaling
activities (autoscaling:DescribeScalingActivities).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .eks_pod_identity import EksPodIdentity, EksPodIdentityArgs
from .helm import chart_release
from .versions import VERSIONS, ComponentVersions

CHART = "cluster-autoscaler"
NAMESPACE = "kube-system"  # system-cluster-critical pods belong there
SERVICE_ACCOUNT = "cluster-autoscaler"
PUBLIC_IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
# Priority expander levels (higher wins).
SPOT_PRIORITY = 50
ON_DEMAND_PRIORITY = 10
OTHER_PRIORITY = 1
# EKS names a managed node group's Auto Scaling group eks-<node group name>-<uuid>; the expander matches those names.
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
# Actions the autoscaler needs that AWS only authorises on "*" (Describe*/Get* have no resource-level permissions).
DISCOVERY_ACTIONS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
]
SCALING_ACTIONS = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]


def asg_pattern(group: str) -> str:
    """The expander's regular expression for the Auto Scaling group of managed node group `group`."""
    return f"^eks-{group}-.+$"


def autoscaler_statements(cluster_name: str, region: str, account: str, partition: str) -> list[dict]:
    return [
        {"Sid": "DiscoverGroups", "Effect": "Allow", "Action": list(DISCOVERY_ACTIONS), "Resource": "*"},
        {
            # Only groups EKS tagged as this cluster's, in this region and account.
            "Sid": "ScaleThisClustersGroups", "Effect": "Allow", "Action": list(SCALING_ACTIONS),
            "Resource": f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
            "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
        },
        {
            # Labels and taints of a group at zero nodes, for scale-from-zero (node group ARNs end in /<name>/<uuid>).
            "Sid": "ReadThisClustersNodegroups", "Effect": "Allow", "Action": "eks:DescribeNodegroup",
            "Resource": f"arn:{partition}:eks:{region}:{account}:nodegroup/{cluster_name}/*/*",
        },
    ]


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    stack: str
    cluster_name: pulumi.Input[str]
    region: str
    node_selector: dict[str, str]  # the system pool: the autoscaler must not run on nodes it may remove
    spot_node_groups: list[str] = field(default_factory=list)  # managed node group names, e.g. ["gpu-spot"]
    on_demand_node_groups: list[str] = field(default_factory=list)  # e.g. ["gpu-on-demand"]
    registry: Optional[str] = None  # air-gapped: chart and image from this registry
    versions: ComponentVersions = VERSIONS
    # Longer than a GPU node normally takes to join (NVIDIA AMI boot, kubelet, device plugin), short enough that a
    # spot group without capacity is given up on and on-demand is tried while the request still matters.
    max_node_provision_time: str = "10m"
    # An idle GPU node goes after this long unneeded (plus a scan): about 10-15 minutes of GPU cost at most.
    scale_down_unneeded_time: str = "10m"
    # A node whose requested share is below this is a removal candidate. On a GPU node the autoscaler counts GPU
    # requests only, so a node holding a replica (loading or serving, it requests all its GPUs) is at 100% and stays.
    scale_down_utilization_threshold: float = 0.5
    replicas: int = 2  # leader election: the second takes over in seconds if the node of the first goes
    # What the release must wait for: the system node group (Helm waits for the Deployment to be ready, which it
    # cannot be before a node selected by node_selector exists).
    wait_for: list = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.spot_node_groups and not self.on_demand_node_groups:
            raise ValueError("spot_node_groups/on_demand_node_groups: name at least one managed node group to scale")
        for name in (*self.spot_node_groups, *self.on_demand_node_groups):
            if not _GROUP_NAME.match(name):
                raise ValueError(f"node groups: {name!r} is not a managed node group name (letters, digits, - and _)")
        overlap = set(self.spot_node_groups) & set(self.on_demand_node_groups)
        if overlap:
            raise ValueError(f"node groups: {sorted(overlap)} listed as both spot and on-demand")
        if not self.node_selector:
            raise ValueError("node_selector: pin the autoscaler to the system pool, or it may evict itself")
        tag_minor = ".".join(self.versions.cluster_autoscaler_tag.lstrip("v").split(".")[:2])
        if tag_minor != self.versions.eks_version:
            # The autoscaler simulates the scheduler of its own Kubernetes minor; another minor mis-predicts.
            raise ValueError(f"versions.cluster_autoscaler_tag: {self.versions.cluster_autoscaler_tag} does not match "
                             f"the cluster's Kubernetes {self.versions.eks_version}; use a v{self.versions.eks_version}.x "
                             "release")
        if not 0 < self.scale_down_utilization_threshold <= 1:
            raise ValueError(f"scale_down_utilization_threshold: {self.scale_down_utilization_threshold} must be in (0, 1]")
        if self.replicas < 1:
            raise ValueError(f"replicas: {self.replicas} must be at least 1")


def expander_priorities(spot: list[str], on_demand: list[str]) -> dict[str, list[str]]:
    priorities = {str(OTHER_PRIORITY): [".*"]}
    if on_demand:
        priorities[str(ON_DEMAND_PRIORITY)] = [asg_pattern(g) for g in on_demand]
    if spot:
        priorities[str(SPOT_PRIORITY)] = [asg_pattern(g) for g in spot]
    return priorities


def chart_values(args: ClusterAutoscalerArgs, cluster_name: str) -> dict:
    """The Helm values; every key exists in the chart's values.yaml (extraArgs keys are the autoscaler's flags)."""
    repository = f"{args.registry.rstrip('/')}/cluster-autoscaler" if args.registry else PUBLIC_IMAGE
    return {
        "cloudProvider": "aws",
        "awsRegion": args.region,
        # The chart's default tags: k8s.io/cluster-autoscaler/enabled and k8s.io/cluster-autoscaler/<clusterName>.
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {"repository": repository, "tag": args.versions.cluster_autoscaler_tag},
        "fullnameOverride": "cluster-autoscaler",
        # A fixed name: the Pod Identity association names this service account.
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
        "replicaCount": args.replicas,
        "nodeSelector": dict(args.node_selector),
        "resources": {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}},
        "extraArgs": {
            "expander": "priority",
            "max-node-provision-time": args.max_node_provision_time,
            # Spreads a scale-up over same-shaped groups (zones); spot and on-demand differ in labels, so never mixed.
            "balance-similar-node-groups": True,
            # Model caches are emptyDir volumes; they must not keep an idle GPU node alive.
            "skip-nodes-with-local-storage": False,
            "scale-down-unneeded-time": args.scale_down_unneeded_time,
            "scale-down-delay-after-add": args.scale_down_unneeded_time,
            "scale-down-utilization-threshold": args.scale_down_utilization_threshold,
        },
        "expanderPriorities": expander_priorities(list(args.spot_node_groups), list(args.on_demand_node_groups)),
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    role_arn: pulumi.Output[str]
    release_name: pulumi.Output[str]
    namespace: str
    service_account: str

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:ClusterAutoscaler", name, None, opts)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        statements = pulumi.Output.all(args.cluster_name, identity.account_id, partition.partition).apply(
            lambda a: autoscaler_statements(a[0], args.region, a[1], a[2]))
        pod_identity = EksPodIdentity(f"{name}-identity", EksPodIdentityArgs(
            stack=args.stack, cluster_name=args.cluster_name, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            statements=[statements[i] for i in range(3)], tags=args.tags), opts=pulumi.ResourceOptions(parent=self))
        release = chart_release(
            f"{name}-release", release="cluster-autoscaler", chart=CHART, version=args.versions.cluster_autoscaler_chart,
            registry=args.registry, namespace=NAMESPACE,
            values=pulumi.Output.from_input(args.cluster_name).apply(lambda c: chart_values(args, c)),
            # Pods admitted before the association exists get no AWS credentials until they restart.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pod_identity.association, *args.wait_for]))
        self.role_arn = pod_identity.role_arn
        self.release_name = release.name
        self.namespace = NAMESPACE
        self.service_account = SERVICE_ACCOUNT
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release_name})
