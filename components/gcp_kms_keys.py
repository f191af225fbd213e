"""Customer-managed Cloud KMS keys, one per location, usable by the given service agents only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp


@dataclass(frozen=True)
class GcpKmsKeysArgs:
    key_ring: str
    key_name: str
    locations: list[str]
    encrypter_members: list[pulumi.Input[str]] = field(default_factory=list)  # e.g. a service agent's member string
    project: Optional[str] = None
    rotation_period: str = "7776000s"  # 90 days
    destroy_scheduled_duration: str = "2592000s"  # 30 days to undo a mistaken destroy
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)


class GcpKmsKeys(pulumi.ComponentResource):
    key_ids: pulumi.Output[dict]
    grants: list[pulumi.Resource]

    def __init__(self, name: str, args: GcpKmsKeysArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpKmsKeys", name, None, opts)
        keys = {}
        self.grants = []
        for loc in args.locations:
            # Key rings and keys cannot be deleted in Cloud KMS; protect keeps Pulumi from trying.
            ring = gcp.kms.KeyRing(f"{name}-ring-{loc}", name=args.key_ring, location=loc, project=args.project,
                                   opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
            key = gcp.kms.CryptoKey(
                f"{name}-key-{loc}",
                name=args.key_name,
                key_ring=ring.id,
                purpose="ENCRYPT_DECRYPT",
                rotation_period=args.rotation_period,
                destroy_scheduled_duration=args.destroy_scheduled_duration,
                labels=args.labels,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            for i, member in enumerate(args.encrypter_members):
                self.grants.append(gcp.kms.CryptoKeyIAMMember(
                    f"{name}-grant-{loc}-{i}", crypto_key_id=key.id,
                    role="roles/cloudkms.cryptoKeyEncrypterDecrypter", member=member,
                    opts=pulumi.ResourceOptions(parent=self)))
            keys[loc] = key.id
        self.key_ids = pulumi.Output.from_input(keys)
        self.register_outputs({"key_ids": self.key_ids})
