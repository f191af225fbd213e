"""API tier on AWS: the provider key in Secrets Manager, encrypted with our own KMS key, readable by one role."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs
from .contract import TierOutputs


@dataclass(frozen=True)
class AwsApiKeySecretArgs:
    stack: str
    provider: str  # the API provider, e.g. "openai"
    model: str
    base_url: str  # OpenAI-compatible base URL of the provider endpoint
    api_key: pulumi.Input[str]  # a Pulumi secret, from `pulumi config set --secret`
    region: str  # the primary region (the stack's aws:region)
    replica_regions: list[str] = field(default_factory=list)  # only regions the residency list allows
    consumer_role_name: Optional[str] = None  # attach the read-only policy to this IAM role
    protect: bool = True
    recovery_window_in_days: int = 30  # the longest AWS allows
    tags: dict[str, str] = field(default_factory=dict)


class AwsApiKeySecret(pulumi.ComponentResource):
    secret_arn: pulumi.Output[str]
    read_policy_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    contract: TierOutputs

    def __init__(self, name: str, args: AwsApiKeySecretArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsApiKeySecret", name, None, opts)
        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-api-keys",
            description=f"llm-hosting {args.stack}: encrypts the {args.provider} API key",
            replica_regions=args.replica_regions, protect=args.protect, tags=args.tags,
        ), opts=pulumi.ResourceOptions(parent=self))

        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            name=f"llm-hosting/{args.stack}/{args.provider}-api-key",
            description=f"{args.provider} API key for {args.model} (base URL {args.base_url})",
            kms_key_id=key.key_arn,
            recovery_window_in_days=args.recovery_window_in_days,
            replicas=[aws.secretsmanager.SecretReplicaArgs(region=r, kms_key_id=key.replica_arns[r])
                      for r in args.replica_regions],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-version",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(args.api_key),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_string"]),
        )

        regions = [args.region, *args.replica_regions]
        secret_arns = secret.arn.apply(lambda arn: [arn.replace(f":{args.region}:", f":{r}:") for r in regions])
        key_arns = pulumi.Output.all(key.key_arn, key.replica_arns).apply(lambda a: [a[0], *a[1].values()])
        document = pulumi.Output.all(secret_arns, key_arns).apply(lambda a: json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ReadApiKey", "Effect": "Allow",
                 "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": a[0]},
                # Decrypt only through Secrets Manager, so the key cannot be used to decrypt anything else.
                {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": a[1],
                 "Condition": {"StringEquals": {"kms:ViaService": [f"secretsmanager.{r}.amazonaws.com" for r in regions]}}},
            ],
        }))
        policy = aws.iam.Policy(
            f"{name}-read",
            name=f"llm-hosting-{args.stack}-read-{args.provider}-api-key",
            description=f"Read-only access to the {args.provider} API key of stack {args.stack}",
            policy=document,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.consumer_role_name:
            aws.iam.RolePolicyAttachment(f"{name}-read-attach", role=args.consumer_role_name, policy_arn=policy.arn,
                                         opts=pulumi.ResourceOptions(parent=self))

        self.secret_arn = secret.arn
        self.read_policy_arn = policy.arn
        self.kms_key_arn = key.key_arn
        self.contract = TierOutputs(endpoint_url=args.base_url, api_key_secret=secret.arn, model=args.model, tier="api")
        self.register_outputs({"secret_arn": self.secret_arn, "read_policy_arn": self.read_policy_arn,
                               "kms_key_arn": self.kms_key_arn})
