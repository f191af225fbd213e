"""EKS managed node groups for GPU serving: an on-demand floor, spot above it, and a system pool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .node_labels import ON_DEMAND, PREFERRED_ON_DEMAND, SPOT, gpu_node_labels, gpu_node_selector, system_node_labels

# Node group names (also the `llm-hosting/pool` label and part of the ASG name cluster-autoscaler's expander matches).
ON_DEMAND_GROUP = "gpu-on-demand"
SPOT_GROUP = "gpu-spot"
GPU_TAINT = aws.eks.NodeGroupTaintArgs(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
# AWS-managed policies a node needs; none is a *FullAccess policy.
NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr-read": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
}


@dataclass(frozen=True)
class EksGpuNodeGroupsArgs:
    stack: str
    cluster_name: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]  # private subnets across the zones: managed node groups balance over them
    kms_key_arn: pulumi.Input[str]  # encrypts the root volumes
    gpu: str  # the GPU class, e.g. L40S
    instance_type: str  # the on-demand GPU instance type
    on_demand_min_nodes: int  # the failover floor, on separate nodes
    on_demand_max_nodes: int
    spot_instance_types: list[str] = field(default_factory=list)  # same GPU class; empty = no spot group
    spot_max_nodes: int = 0
    root_volume_gb: int = 200  # images plus two copies of the weights
    system_instance_type: str = "m6i.large"
    ami_type: str = "AL2023_x86_64_NVIDIA"  # NVIDIA driver and container toolkit baked in
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.on_demand_min_nodes < 1 or self.on_demand_max_nodes < self.on_demand_min_nodes:
            raise ValueError(f"on_demand_min_nodes/on_demand_max_nodes: need 1 <= min <= max, got "
                             f"{self.on_demand_min_nodes}/{self.on_demand_max_nodes}")
        if self.spot_max_nodes and not self.spot_instance_types:
            raise ValueError("spot_instance_types: a spot group needs at least one instance type")


class EksGpuNodeGroups(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]
    node_group_names: pulumi.Output[list]
    gpu_node_selector: dict[str, str]  # what GPU workloads select: matches both GPU groups' labels
    preferred_node_labels: dict[str, str]  # the on-demand group's labels, preferred by serving replicas
    system_node_group: aws.eks.NodeGroup  # where cluster add-ons that run as pods (coredns) go
    spot_group_names: list[str]  # node group names by capacity, for cluster-autoscaler's priority expander
    on_demand_group_names: list[str]

    def __init__(self, name: str, args: EksGpuNodeGroupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:EksGpuNodeGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role", name=f"llm-hosting-{args.stack}-nodes",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=args.tags, opts=child)
        attachments = [aws.iam.RolePolicyAttachment(f"{name}-{k}", role=role.name, policy_arn=arn, opts=child)
                       for k, arn in NODE_POLICIES.items()]

        def template(pool: str, volume_gb: int) -> aws.ec2.LaunchTemplate:
            return aws.ec2.LaunchTemplate(
                f"{name}-{pool}-lt",
                description=f"llm-hosting {args.stack} {pool} nodes: IMDSv2 only, encrypted root volume",
                # IMDSv2 only, and a hop limit of 1 so pods cannot reach the node's credentials.
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
                block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=volume_gb, volume_type="gp3", encrypted="true", kms_key_id=args.kms_key_arn,
                        delete_on_termination="true"))],
                tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type="instance", tags={**args.tags, "Name": f"llm-hosting-{args.stack}-{pool}"})],
                tags=args.tags, opts=child)

        def group(pool: str, lt: aws.ec2.LaunchTemplate, instance_types: list[str], capacity: str, min_size: int,
                  max_size: int, gpu: bool) -> aws.eks.NodeGroup:
            labels = system_node_labels(pool)
            if gpu:
                labels = {**gpu_node_labels(pool, args.gpu, SPOT if capacity == "SPOT" else ON_DEMAND),
                          "nvidia.com/gpu.present": "true",
                          # cluster-autoscaler's AWS GPU label: a new GPU node counts as not ready until the device
                          # plugin advertises its GPUs, so pending pods do not make it add more nodes meanwhile.
                          "k8s.amazonaws.com/accelerator": args.gpu}
            return aws.eks.NodeGroup(
                f"{name}-{pool}",
                cluster_name=args.cluster_name,
                node_group_name=f"{pool}",
                node_role_arn=role.arn,
                subnet_ids=args.subnet_ids,
                instance_types=instance_types,
                capacity_type=capacity,
                ami_type=args.ami_type if gpu else "AL2023_x86_64_STANDARD",
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=lt.id, version=lt.latest_version.apply(str)),
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=min_size, desired_size=min_size, max_size=max_size),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
                labels=labels,
                taints=[GPU_TAINT] if gpu else None,
                tags=args.tags,
                # The cluster autoscaler owns desired size after creation.
                opts=pulumi.ResourceOptions(parent=self, depends_on=attachments,
                                            ignore_changes=["scalingConfig.desiredSize"]),
            )

        system_lt = template("system", 50)
        gpu_lt = template("gpu", args.root_volume_gb)
        groups = [
            group("system", system_lt, [args.system_instance_type], "ON_DEMAND", 2, 4, gpu=False),
            group(ON_DEMAND_GROUP, gpu_lt, [args.instance_type], "ON_DEMAND", args.on_demand_min_nodes,
                  args.on_demand_max_nodes, gpu=True),
        ]
        if args.spot_max_nodes:
            groups.append(group(SPOT_GROUP, gpu_lt, list(args.spot_instance_types), "SPOT", 0, args.spot_max_nodes, gpu=True))
        self.gpu_node_selector = gpu_node_selector(args.gpu)
        self.preferred_node_labels = dict(PREFERRED_ON_DEMAND)
        self.system_node_group = groups[0]
        self.spot_group_names = [SPOT_GROUP] if args.spot_max_nodes else []
        self.on_demand_group_names = [ON_DEMAND_GROUP]
        self.node_role_arn = role.arn
        self.node_group_names = pulumi.Output.all(*[g.node_group_name for g in groups])
        self.register_outputs({"node_role_arn": self.node_role_arn, "node_group_names": self.node_group_names})
