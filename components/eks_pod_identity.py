"""An IAM role for one Kubernetes service account through EKS Pod Identity, reading one S3 weights prefix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


@dataclass(frozen=True)
class EksPodIdentityArgs:
    stack: str
    cluster_name: pulumi.Input[str]
    namespace: str
    service_account: str
    weights_uri: str  # s3://bucket/prefix/
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.weights_uri.startswith("s3://") or not split_s3(self.weights_uri)[0]:
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not an s3://bucket/prefix/ URI")


class EksPodIdentity(pulumi.ComponentResource):
    role_arn: pulumi.Output[str]
    # Pods admitted before the association exists get no credentials (the agent's webhook injects them at admission),
    # so workloads using the service account wait for it.
    association: aws.eks.PodIdentityAssociation

    def __init__(self, name: str, args: EksPodIdentityArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:EksPodIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket, prefix = split_s3(args.weights_uri)
        role = aws.iam.Role(
            f"{name}-role", name=f"llm-hosting-{args.stack}-{args.service_account}"[:64],
            # Pod Identity: the EKS agent assumes the role for exactly the associated service account.
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
            tags=args.tags, opts=child)
        aws.iam.RolePolicy(f"{name}-weights", role=role.name, policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadWeights", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
            {"Sid": "ListWeights", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        ]}), opts=child)
        self.association = aws.eks.PodIdentityAssociation(
            f"{name}-association", cluster_name=args.cluster_name, namespace=args.namespace,
            service_account=args.service_account, role_arn=role.arn, tags=args.tags, opts=child)
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})
