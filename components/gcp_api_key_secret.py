"""API tier on GCP: the provider key in Secret Manager, replicated only to allowed locations, under CMEK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .contract import TierOutputs
from .gcp_kms_keys import GcpKmsKeys, GcpKmsKeysArgs


@dataclass(frozen=True)
class GcpApiKeySecretArgs:
    stack: str
    provider: str
    model: str
    base_url: str
    api_key: pulumi.Input[str]  # a Pulumi secret
    locations: list[str]  # user-managed replication: only the regions the residency list allows
    project: Optional[str] = None  # defaults to the provider's gcp:project
    consumer_member: Optional[str] = None  # extra IAM member granted read access, e.g. serviceAccount:app@...
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)


class GcpApiKeySecret(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]
    reader_email: pulumi.Output[str]
    contract: TierOutputs

    def __init__(self, name: str, args: GcpApiKeySecretArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpApiKeySecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Secret Manager encrypts with CMEK through its service agent, which must hold the key in each location.
        agent = gcp.projects.ServiceIdentity(f"{name}-sm-agent", service="secretmanager.googleapis.com",
                                             project=args.project, opts=child)
        keys = GcpKmsKeys(f"{name}-cmek", GcpKmsKeysArgs(
            key_ring=f"llm-hosting-{args.stack}", key_name="api-keys", locations=args.locations,
            encrypter_members=[agent.member], project=args.project, protect=args.protect, labels=args.labels,
        ), opts=child)
        secret = gcp.secretmanager.Secret(
            f"{name}-secret",
            secret_id=f"llm-hosting-{args.stack}-{args.provider}-api-key",
            project=args.project,
            replication=gcp.secretmanager.SecretReplicationArgs(
                user_managed=gcp.secretmanager.SecretReplicationUserManagedArgs(replicas=[
                    gcp.secretmanager.SecretReplicationUserManagedReplicaArgs(
                        location=loc,
                        customer_managed_encryption=gcp.secretmanager.SecretReplicationUserManagedReplicaCustomerManagedEncryptionArgs(
                            kms_key_name=keys.key_ids[loc]))
                    for loc in args.locations])),
            annotations={"base-url": args.base_url, "model": args.model},
            labels=args.labels,
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=keys.grants),
        )
        gcp.secretmanager.SecretVersion(
            f"{name}-version",
            secret=secret.id,
            secret_data=pulumi.Output.secret(args.api_key),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_data"]),
        )
        # A dedicated identity that can read this one secret and nothing else; workloads run as it.
        reader = gcp.serviceaccount.Account(
            f"{name}-reader",
            account_id=f"llm-{args.stack}-reader"[:30].rstrip("-"),
            display_name=f"Reads the {args.provider} API key of llm-hosting stack {args.stack}",
            project=args.project,
            opts=child,
        )
        members = [reader.member] + ([args.consumer_member] if args.consumer_member else [])
        for i, member in enumerate(members):
            gcp.secretmanager.SecretIamMember(f"{name}-accessor-{i}", project=secret.project, secret_id=secret.secret_id,
                                              role="roles/secretmanager.secretAccessor", member=member, opts=child)
        self.secret_name = secret.name
        self.reader_email = reader.email
        self.contract = TierOutputs(endpoint_url=args.base_url, api_key_secret=secret.name, model=args.model, tier="api")
        self.register_outputs({"secret_name": self.secret_name, "reader_email": self.reader_email})
