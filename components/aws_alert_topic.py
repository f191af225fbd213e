"""The stack's alert topic: one SNS topic, encrypted with its own key, that this account's CloudWatch alarms and budgets
publish to.

Every alarm with an action (SageMaker endpoint alarms, cluster alarms) and Alertmanager's SNS receiver send here, so
the team subscribes once per stack. Subscriptions are the team's, not the stack's (an e-mail subscription needs a
human to confirm it, and on-call tooling changes more often than the stack):

    aws sns subscribe --region <region> --topic-arn "$(pulumi stack output alerts_topic)" \\
        --protocol email --notification-endpoint oncall@example.com
    # or --protocol https --notification-endpoint https://events.pagerduty.com/integration/<key>/enqueue
    # or --protocol lambda / sqs for chat tooling

The stack's budget (AwsBudget) notifies the same topic, so AWS Budgets publishes here too: the topic policy admits
budgets.amazonaws.com for this account's budgets only, as AWS documents for budget notifications to SNS.

The topic has its own customer-managed key rather than sharing the cluster's or the endpoint's: CloudWatch and AWS
Budgets must be able to make data keys with it (the key policy grants cloudwatch.amazonaws.com and
budgets.amazonaws.com kms:GenerateDataKey* and kms:Decrypt), and that grant should not reach the keys that encrypt
secrets, volumes and logs. It also keeps the topic available to a managed (SageMaker) or API tier that has no cluster
key at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs

# The services that publish to the topic (topic policy) with the topic's key (key policy): alarm actions, budget alerts.
CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"
BUDGETS_SERVICE = "budgets.amazonaws.com"
PUBLISHING_SERVICES = (CLOUDWATCH_SERVICE, BUDGETS_SERVICE)


def topic_name(stack: str) -> str:
    return f"llm-hosting-{stack}-alerts"


def topic_policy(topic_arn: str, account_id: str) -> dict:
    partition = topic_arn.split(":")[1]  # arn:<partition>:sns:...: aws, aws-cn or aws-us-gov
    return {"Version": "2012-10-17", "Statement": [
        {
            "Sid": "CloudWatchAlarmsOfThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDWATCH_SERVICE},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            # Confused-deputy guard: only alarms owned by this account may publish.
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
        {
            "Sid": "BudgetsOfThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": BUDGETS_SERVICE},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            # Confused-deputy guard, as AWS documents it for budget notifications: this account's budgets only.
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                          "ArnLike": {"aws:SourceArn": f"arn:{partition}:budgets::{account_id}:*"}},
        },
        {
            # Identities of this account publish through their IAM policies; nobody does it in clear text.
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]}


@dataclass(frozen=True)
class AwsAlertTopicArgs:
    stack: str
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class AwsAlertTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    topic_name: str
    kms_key_arn: pulumi.Output[str]
    publish_statements: list  # IAM statements (Outputs of dicts) for a role that publishes alerts here (Alertmanager)
    grants: list[pulumi.Resource]  # the topic policy, which alarms and budgets need before they can publish

    def __init__(self, name: str, args: AwsAlertTopicArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsAlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-alerts",
            description=f"llm-hosting {args.stack}: encrypts the alert topic's messages",
            publishing_services=list(PUBLISHING_SERVICES), protect=args.protect, tags=args.tags,
        ), opts=child)
        self.topic_name = topic_name(args.stack)
        topic = aws.sns.Topic(
            f"{name}-topic", name=self.topic_name,
            display_name=f"llm-hosting {args.stack} alerts"[:100],
            kms_master_key_id=key.key_arn,
            tags=args.tags, opts=child)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        policy = aws.sns.TopicPolicy(
            f"{name}-policy", arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, identity.account_id).apply(lambda a: json.dumps(topic_policy(a[0], a[1]))),
            opts=child)
        self.topic_arn = topic.arn
        self.kms_key_arn = key.key_arn
        self.grants = [policy]
        # What a publisher needs, and nothing more: publish to this topic and make data keys with its key only.
        self.publish_statements = [
            pulumi.Output.all(topic.arn).apply(lambda a: {"Sid": "PublishAlerts", "Effect": "Allow",
                                                          "Action": "sns:Publish", "Resource": a[0]}),
            pulumi.Output.all(key.key_arn).apply(lambda a: {"Sid": "EncryptAlerts", "Effect": "Allow",
                                                            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                                                            "Resource": a[0]}),
        ]
        self.register_outputs({"topic_arn": self.topic_arn, "kms_key_arn": self.kms_key_arn})
