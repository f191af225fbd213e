"""A customer-managed KMS key with rotation, a deletion window, an alias and in-region replicas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AwsKmsKeyArgs:
    alias: str  # without the "alias/" prefix
    description: str
    replica_regions: list[str] = field(default_factory=list)  # multi-Region replicas, only in allowed regions
    protect: bool = True
    deletion_window_in_days: int = 30  # the longest AWS allows: time to notice a mistaken deletion
    # CloudWatch Logs encrypts a log group only if the key policy lets the regional logs service use the key,
    # scoped by encryption context to this account's log groups in that region.
    cloudwatch_logs_region: Optional[str] = None
    # EBS volumes of Auto Scaling groups (EKS managed node groups) are encrypted by the Auto Scaling service-linked
    # role, which needs the key policy's grant: IAM alone cannot give a service-linked role a customer key.
    for_autoscaling_ebs: bool = False
    # AWS services that publish to an SNS topic (or SQS queue) encrypted with this key, e.g. cloudwatch.amazonaws.com
    # for alarm actions: the publishing service itself must be able to make the data key, and IAM cannot grant a
    # service principal anything, so only the key policy can.
    publishing_services: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def key_policy(account_id: str, partition: str, logs_region: Optional[str], autoscaling_ebs: bool = False,
               publishing_services: tuple[str, ...] = ()) -> dict:
    statements = [{
        # Root-of-account statement: access is then governed by IAM policies, which stay least-privilege.
        "Sid": "EnableIamPolicies",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }]
    if logs_region:
        statements.append({
            "Sid": "AllowCloudWatchLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{logs_region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                      f"arn:{partition}:logs:{logs_region}:{account_id}:log-group:*"}},
        })
    if autoscaling_ebs:
        role = f"arn:{partition}:iam::{account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        statements.append({
            "Sid": "AllowAutoScalingEbsEncryption",
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
        })
        statements.append({
            "Sid": "AllowAutoScalingGrantsForEbs",
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        })
    if publishing_services:
        statements.append({
            # What SNS needs of a publisher to an encrypted topic: a data key to encrypt the message, nothing more.
            # No source condition: AWS does not document one that CloudWatch's publish path sets, and the kit gives
            # such a key to one topic only.
            "Sid": "AllowServicesToPublishEncrypted",
            "Effect": "Allow",
            "Principal": {"Service": sorted(publishing_services)},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
        })
    return {"Version": "2012-10-17", "Statement": statements}


class AwsKmsKey(pulumi.ComponentResource):
    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    replica_arns: pulumi.Output[dict]

    def __init__(self, name: str, args: AwsKmsKeyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsKmsKey", name, None, opts)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # Root-of-account statement only: access is then governed by IAM policies, which stay least-privilege.
        policy = pulumi.Output.all(identity.account_id, partition.partition).apply(
            lambda a: json.dumps(key_policy(a[0], a[1], args.cloudwatch_logs_region, args.for_autoscaling_ebs,
                                     tuple(args.publishing_services))))
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self._key = aws.kms.Key(
            f"{name}-key",
            description=args.description,
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.deletion_window_in_days,
            multi_region=bool(args.replica_regions),
            policy=policy,
            tags=args.tags,
            opts=stateful,
        )
        aws.kms.Alias(f"{name}-alias", name=f"alias/{args.alias}", target_key_id=self._key.key_id,
                      opts=pulumi.ResourceOptions(parent=self))
        replicas = {}
        for region in args.replica_regions:
            replica = aws.kms.ReplicaKey(
                f"{name}-replica-{region}",
                region=region,
                primary_key_arn=self._key.arn,
                description=f"{args.description} ({region} replica)",
                deletion_window_in_days=args.deletion_window_in_days,
                policy=policy,
                tags=args.tags,
                opts=stateful,
            )
            replicas[region] = replica.arn
        self.key_arn = self._key.arn
        self.key_id = self._key.key_id
        self.replica_arns = pulumi.Output.from_input(replicas)
        self.register_outputs({"key_arn": self.key_arn, "key_id": self.key_id, "replica_arns": self.replica_arns})
