"""Each consumer's gateway key on GCP: generated, kept as a Pulumi secret, stored in Secret Manager in the stack's
region under a CMEK key, readable only by that consumer's IAM member."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .consumer_keys import Consumer, check_consumers, generated_key, secret_document
from .gcp_kms_keys import GcpKmsKeys, GcpKmsKeysArgs


@dataclass(frozen=True)
class GcpConsumerKeysArgs:
    stack: str
    region: str  # the secrets are replicated here only
    consumers: list[Consumer]
    endpoint_url: pulumi.Input[str]
    model: str
    project: Optional[str] = None
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_consumers(self.consumers)


class GcpConsumerKeys(pulumi.ComponentResource):
    keys: dict[str, pulumi.Output[str]]
    secret_names: dict[str, pulumi.Output[str]]
    versions: dict[str, pulumi.Output[str]]  # consumer -> its secret's current version number
    kms_key_id: pulumi.Output[str]  # the CMEK key of the secrets; other secrets of the stack's gateway reuse it

    def __init__(self, name: str, args: GcpConsumerKeysArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpConsumerKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Secret Manager encrypts with CMEK through its service agent, which must hold the key.
        agent = gcp.projects.ServiceIdentity(f"{name}-sm-agent", service="secretmanager.googleapis.com",
                                             project=args.project, opts=child)
        # Its own key ring: a hybrid's API key ring (llm-hosting-<stack>) exists beside it, and key rings are never deleted.
        keys = GcpKmsKeys(f"{name}-cmek", GcpKmsKeysArgs(
            key_ring=f"llm-hosting-{args.stack}-consumers", key_name="consumer-keys", locations=[args.region],
            encrypter_members=[agent.member], project=args.project, protect=args.protect, labels=args.labels), opts=child)
        self.keys, self.secret_names, self.versions = {}, {}, {}
        for consumer in args.consumers:
            value = generated_key(f"{name}-{consumer.name}-key", consumer, self)
            secret = gcp.secretmanager.Secret(
                f"{name}-{consumer.name}",
                secret_id=f"llm-hosting-{args.stack}-consumer-{consumer.name}",
                project=args.project,
                replication=gcp.secretmanager.SecretReplicationArgs(
                    user_managed=gcp.secretmanager.SecretReplicationUserManagedArgs(replicas=[
                        gcp.secretmanager.SecretReplicationUserManagedReplicaArgs(
                            location=args.region,
                            customer_managed_encryption=gcp.secretmanager.SecretReplicationUserManagedReplicaCustomerManagedEncryptionArgs(
                                kms_key_name=keys.key_ids[args.region]))])),
                labels={**args.labels, "llm-hosting-consumer": consumer.name},
                deletion_protection=args.protect,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=keys.grants))
            version = gcp.secretmanager.SecretVersion(
                f"{name}-{consumer.name}-version", secret=secret.id,
                secret_data=secret_document(value, args.endpoint_url, args.model),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_data"]))
            if consumer.reader:
                gcp.secretmanager.SecretIamMember(
                    f"{name}-{consumer.name}-accessor", project=secret.project, secret_id=secret.secret_id,
                    role="roles/secretmanager.secretAccessor", member=consumer.reader, opts=child)
            self.keys[consumer.name] = value
            self.secret_names[consumer.name] = secret.name
            # The version number (the last segment of projects/.../secrets/<id>/versions/<n>): a runtime that pins it
            # (a Cloud Run secret variable) makes a new revision when the key is rotated.
            self.versions[consumer.name] = version.version
        # Known only once the Secret Manager agent holds the key, so a secret encrypted with it never races the grant.
        self.kms_key_id = pulumi.Output.all(keys.key_ids[args.region], *[g.id for g in keys.grants]).apply(lambda v: v[0])
        self.register_outputs({"secret_names": self.secret_names, "kms_key_id": self.kms_key_id})
