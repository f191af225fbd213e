"""An IAM role for one Kubernetes service account through EKS Pod Identity, with least-privilege statements.

The statements are the caller's (the cluster autoscaler's scaling rights, the CloudWatch agent's log groups...);
`weights_uri` is a shorthand for the model server's case: read one S3 weights prefix and nothing else.
"""

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
    weights_uri: Optional[str] = None  # s3://bucket/prefix/: read that prefix (the model server's role)
    # IAM policy statements for anything else (dicts, or Outputs of dicts when they name the account or the cluster),
    # each scoped as tightly as the service allows; they go into their own inline policy beside the weights one.
    statements: list[pulumi.Input[dict]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.weights_uri is None and not self.statements:
            raise ValueError("statements: a Pod Identity role needs weights_uri or at least one statement; a role that "
                             "may do nothing is a mistake")
        if self.weights_uri is not None and (not self.weights_uri.startswith("s3://") or not split_s3(self.weights_uri)[0]):
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not an s3://bucket/prefix/ URI")
        for i, statement in enumerate(self.statements):
            if isinstance(statement, pulumi.Output):
                continue  # known at deployment only
            if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny") or \
                    "Action" not in statement or "Resource" not in statement:
                raise ValueError(f"statements[{i}]: an IAM statement needs Effect (Allow or Deny), Action and Resource")


class EksPodIdentity(pulumi.ComponentResource):
    role_arn: pulumi.Output[str]
    # Pods admitted before the association exists get no credentials (the agent's webhook injects them at admission),
    # so workloads using the service account wait for it.
    association: aws.eks.PodIdentityAssociation

    def __init__(self, name: str, args: EksPodIdentityArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:EksPodIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role", name=f"llm-hosting-{args.stack}-{args.service_account}"[:64],
            # Pod Identity: the EKS agent assumes the role for exactly the associated service account.
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
            tags=args.tags, opts=child)
        policies = []
        if args.weights_uri is not None:
            bucket, prefix = split_s3(args.weights_uri)
            policies.append(aws.iam.RolePolicy(f"{name}-weights", role=role.name, policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Sid": "ReadWeights", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
                {"Sid": "ListWeights", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
                 "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
            ]}), opts=child))
        if args.statements:
            document = pulumi.Output.from_input(list(args.statements)).apply(
                lambda statements: json.dumps({"Version": "2012-10-17", "Statement": statements}))
            policies.append(aws.iam.RolePolicy(f"{name}-policy", role=role.name, policy=document, opts=child))
        self.association = aws.eks.PodIdentityAssociation(
            f"{name}-association", cluster_name=args.cluster_name, namespace=args.namespace,
            service_account=args.service_account, role_arn=role.arn, tags=args.tags,
            # Credentials handed out before the permissions exist would fail the pod's first calls.
            opts=pulumi.ResourceOptions(parent=self, depends_on=policies))
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})
