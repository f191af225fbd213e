"""Where a GCP stack's alerts go: a CMEK Pub/Sub topic kept in the stack's region, as a Cloud Monitoring channel.

Cloud Monitoring publishes each incident (opened and closed) to the topic as JSON; the on-call tooling subscribes to
it. A topic rather than e-mail or a webhook: the stack never names a person or a third-party URL, nothing leaves the
project, and the subscriber (PagerDuty's Pub/Sub integration, a Cloud Run relay, ...) is the operator's choice.

The stack's budget (GcpBudget) publishes to the same topic. Cloud Billing publishes as a Google-wide system identity,
billing-budget-alert@system.gserviceaccount.com; the Budget API grants it the publisher role on the topic itself when
a budget names the topic, and the component makes the same grant (`budget_notifications`) so the binding is in the
stack's state, visible in review and removed with the stack. Pub/Sub encrypts the messages with the topic's key
through its own service agent, so Cloud Billing needs no grant on the key. Organizations that restrict IAM members to
their own domain (constraints/iam.allowedPolicyMemberDomains) must allow this principal, as Google documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .gcp_kms_keys import GcpKmsKeys, GcpKmsKeysArgs

ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
PUBLISHER = "roles/pubsub.publisher"
# The identity Cloud Monitoring publishes notifications as; Google creates it with the first Pub/Sub channel, so
# it is named from the project number rather than created here.
NOTIFICATION_AGENT = "serviceAccount:service-{number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
# Cloud Billing's identity for budget notifications to Pub/Sub (one for all of Google Cloud, not per project).
BUDGET_NOTIFIER = "serviceAccount:billing-budget-alert@system.gserviceaccount.com"
# An incident not acknowledged within a week is still in the topic for a subscriber that was down.
MESSAGE_RETENTION = "604800s"


def topic_name(stack: str) -> str:
    return f"llm-hosting-{stack}-alerts"


@dataclass(frozen=True)
class GcpAlertChannelArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # messages are stored only here (the stack's residency)
    # A Cloud KMS key in `region` (e.g. GkeCluster.kms_key_id); None = the component makes its own key there.
    kms_key_id: Optional[pulumi.Input[str]]
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True
    budget_notifications: bool = False  # the stack's budget publishes here too: grant Cloud Billing the publisher role

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.region:
            raise ValueError("region: the stack's GCP region is required, e.g. europe-west4")


class GcpAlertChannel(pulumi.ComponentResource):
    topic_id: pulumi.Output[str]  # projects/<project>/topics/llm-hosting-<stack>-alerts
    channel_name: pulumi.Output[str]  # projects/<project>/notificationChannels/<id>: what alert policies name
    kms_key_id: pulumi.Output[str]  # the topic's key (the one given, or the component's own)
    grants: list[pulumi.Resource]  # the key and Cloud Monitoring's publisher grants, which notifications need first
    budget_grants: list[pulumi.Resource]  # Cloud Billing's publisher grant (empty without budget_notifications)

    def __init__(self, name: str, args: GcpAlertChannelArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpAlertChannel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = gcp.organizations.get_project_output(project_id=args.project,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        # Pub/Sub encrypts the topic's messages through its service agent, which must hold the key before the topic
        # is created (creation fails otherwise).
        agent = gcp.projects.ServiceIdentity(f"{name}-pubsub-agent", service="pubsub.googleapis.com",
                                             project=args.project, opts=child)
        if args.kms_key_id is not None:
            key_id = args.kms_key_id
            key_grants: list[pulumi.Resource] = [gcp.kms.CryptoKeyIAMMember(
                f"{name}-key-grant", crypto_key_id=key_id, role=ENCRYPTER, member=agent.member, opts=child)]
        else:
            # A stack without a key of its own in the region (the managed tier) still gets a customer-managed one.
            keys = GcpKmsKeys(f"{name}-cmek", GcpKmsKeysArgs(
                key_ring=f"llm-hosting-{args.stack}-alerts", key_name="alerts", locations=[args.region],
                encrypter_members=[agent.member], project=args.project, protect=args.protect, labels=args.labels,
            ), opts=child)
            key_id, key_grants = keys.key_ids[args.region], keys.grants
        topic = gcp.pubsub.Topic(
            f"{name}-topic",
            name=topic_name(args.stack),
            project=args.project,
            kms_key_name=key_id,
            # Residency: messages are persisted only in the stack's region (which a regional key needs anyway:
            # Pub/Sub refuses a regional CMEK key on a topic that may store elsewhere). Not enforce_in_transit:
            # Cloud Monitoring publishes from Google's own infrastructure, wherever that runs, and enforcing in
            # transit would refuse those publishes; the stored copy is what residency constrains.
            message_storage_policy=gcp.pubsub.TopicMessageStoragePolicyArgs(allowed_persistence_regions=[args.region]),
            message_retention_duration=MESSAGE_RETENTION,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=key_grants),
        )
        publisher = gcp.pubsub.TopicIAMMember(
            f"{name}-publisher", project=args.project, topic=topic.name, role=PUBLISHER,
            member=project.number.apply(lambda n: NOTIFICATION_AGENT.format(number=n)), opts=child)
        channel = gcp.monitoring.NotificationChannel(
            f"{name}-channel",
            project=args.project,
            type="pubsub",
            display_name=f"llm-hosting {args.stack} alerts",
            description=f"Alerts of llm-hosting stack {args.stack}, published to Pub/Sub topic {topic_name(args.stack)}",
            labels={"topic": topic.id},
            user_labels=args.labels,
            # A channel that cannot publish drops notifications silently: it exists only once the grant does.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[publisher]),
        )

        self.topic_id = topic.id
        self.channel_name = channel.name
        self.kms_key_id = pulumi.Output.from_input(key_id)
        self.grants = [*key_grants, publisher]
        self.budget_grants = [gcp.pubsub.TopicIAMMember(
            f"{name}-budget-publisher", project=args.project, topic=topic.name, role=PUBLISHER, member=BUDGET_NOTIFIER,
            opts=child)] if args.budget_notifications else []
        self.register_outputs({"topic_id": self.topic_id, "channel_name": self.channel_name,
                               "kms_key_id": self.kms_key_id})
