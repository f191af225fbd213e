"""Each consumer's gateway key on AWS: generated, kept as a Pulumi secret, stored in Secrets Manager under the stack's
consumer-keys KMS key, readable only by that consumer's IAM role."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs
from .consumer_keys import Consumer, check_consumers, generated_key, secret_document


@dataclass(frozen=True)
class AwsConsumerKeysArgs:
    stack: str
    region: str
    consumers: list[Consumer]
    endpoint_url: pulumi.Input[str]  # the gateway's base URL, written into each secret beside the key
    model: str  # the public model name clients send
    protect: bool = True
    recovery_window_in_days: int = 30
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_consumers(self.consumers)


class AwsConsumerKeys(pulumi.ComponentResource):
    keys: dict[str, pulumi.Output[str]]  # consumer -> its key (a Pulumi secret), for the gateway
    secret_arns: dict[str, pulumi.Output[str]]  # consumer -> the Secrets Manager secret its application reads
    # consumer -> the secret's current version id: a runtime that pins it (ECS valueFrom) restarts on a rotation
    version_ids: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AwsConsumerKeysArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsConsumerKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-consumer-keys",
            description=f"llm-hosting {args.stack}: encrypts the gateway keys of the stack's consumers",
            protect=args.protect, tags=args.tags), opts=child)
        self.keys, self.secret_arns, self.version_ids = {}, {}, {}
        for consumer in args.consumers:
            value = generated_key(f"{name}-{consumer.name}-key", consumer, self)
            secret = aws.secretsmanager.Secret(
                f"{name}-{consumer.name}",
                name=f"llm-hosting/{args.stack}/consumers/{consumer.name}",
                description=f"Gateway key of consumer {consumer.name} (base_url, api_key, model) for stack {args.stack}",
                kms_key_id=key.key_arn, recovery_window_in_days=args.recovery_window_in_days,
                tags={**args.tags, "llm-hosting/consumer": consumer.name},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
            version = aws.secretsmanager.SecretVersion(
                f"{name}-{consumer.name}-version", secret_id=secret.id,
                secret_string=secret_document(value, args.endpoint_url, args.model),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_string"]))
            if consumer.reader:
                document = pulumi.Output.all(secret.arn, key.key_arn).apply(lambda a: json.dumps({
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Sid": "ReadOwnGatewayKey", "Effect": "Allow",
                         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": a[0]},
                        # Decrypt only through Secrets Manager, so the key decrypts nothing else for this role.
                        {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": a[1],
                         "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{args.region}.amazonaws.com"}}},
                    ]}))
                aws.iam.RolePolicy(f"{name}-{consumer.name}-read", role=consumer.reader,
                                   name=f"llm-hosting-{args.stack}-read-{consumer.name}-key", policy=document, opts=child)
            self.keys[consumer.name] = value
            self.secret_arns[consumer.name] = secret.arn
            self.version_ids[consumer.name] = version.version_id
        self.kms_key_arn = key.key_arn
        self.register_outputs({"secret_arns": self.secret_arns, "kms_key_arn": self.kms_key_arn})
