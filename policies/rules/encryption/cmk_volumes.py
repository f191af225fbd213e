"""ENC-002: node and instance volumes are encrypted with a customer-managed key."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
VOLUME = "aws:ebs/volume:Volume"
INSTANCE = "aws:ec2/instance:Instance"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GKE_POOL = "gcp:container/nodePool:NodePool"
GKE = "gcp:container/cluster:Cluster"
GCP_DISK = "gcp:compute/disk:Disk"
TYPES = (LAUNCH_TEMPLATE, VOLUME, INSTANCE, NODE_GROUP, GKE_POOL, GKE, GCP_DISK)

RULE = Rule(
    id="ENC-002-cmk-volumes",
    title="Node and instance volumes use customer-managed keys",
    area="encryption",
    description="Block volumes of nodes and instances (EBS, GKE boot disks, persistent disks) are encrypted with a "
                "customer-managed key.",
    checks="Launch templates: every `blockDeviceMappings[].ebs` has `encrypted` true and a `kmsKeyId` (a template "
           "without mappings leaves the root volume to the AMI). EBS volumes and instance root/EBS devices: "
           "`encrypted` and `kmsKeyId`. EKS node groups: have a launch template (without one the root volumes get no "
           "customer-managed key). GKE node pools (and a cluster's default pool when kept): "
           "`nodeConfig.bootDiskKmsKey`. GCP disks: `diskEncryptionKey.kmsKeySelfLink`.",
    why="Node volumes hold model weights, KV-cache spill, container layers and logs of every request; with a "
        "provider-managed key (or none) the organisation cannot revoke access or prove who decrypted them.",
    severity="high",
    controls=("HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-28", "CIS AWS 2.2.1", "CIS GKE 5.9.1", "GDPR art. 32"),
    remediation="Give node groups a launch template with encrypted, kmsKeyId block device mappings (the kit's EKS "
                "node groups do), `boot_disk_kms_key` on GKE node pools, and `kms_key_id` on volumes.",
    applies_to=TYPES,
)


def _ebs(ctx: ResourceContext, prefix: str) -> None:
    at = f"{prefix}." if prefix else ""
    encrypted = ctx.get(f"{at}encrypted", "whether the volume is encrypted")
    key = ctx.peek(f"{at}kmsKeyId")
    if encrypted is not UNKNOWN and truthy(encrypted) is not True:
        ctx.violation(f"{at}encrypted is not true: the volume is not encrypted")
    elif key is None:
        ctx.violation(f"{at}kmsKeyId is not set: the volume uses the AWS-managed key aws/ebs")


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type == LAUNCH_TEMPLATE:
        mappings = ctx.items("blockDeviceMappings", "the block device mappings")
        if not mappings and ctx.get("blockDeviceMappings") is not UNKNOWN:
            ctx.violation("blockDeviceMappings is not set: the root volume falls back to the AMI's mapping, without a "
                          "customer-managed key")
        for path, m in mappings:
            if isinstance(m, dict) and m.get("ebs") is not None:
                _ebs(ctx, f"{path}.ebs")
    elif ctx.type == VOLUME:
        _ebs(ctx, "")  # top-level encrypted / kmsKeyId
    elif ctx.type == INSTANCE:
        if ctx.get("rootBlockDevice") is None:
            ctx.violation("rootBlockDevice is not set: the root volume falls back to the AMI's mapping, without a "
                          "customer-managed key")
        else:
            _ebs(ctx, "rootBlockDevice")
        for path, _ in ctx.items("ebsBlockDevices", "the EBS devices"):
            _ebs(ctx, path)
    elif ctx.type == NODE_GROUP:
        lt = ctx.peek("launchTemplate")
        if lt is None:
            ctx.violation("launchTemplate is not set: the nodes' root volumes get no customer-managed key")
    elif ctx.type == GCP_DISK:
        if ctx.peek("diskEncryptionKey.kmsKeySelfLink") is None:
            ctx.violation("diskEncryptionKey.kmsKeySelfLink is not set: the disk uses a Google-managed key")
    else:
        if ctx.type == GKE:
            removed = ctx.get("removeDefaultNodePool", "whether the default node pool is removed")
            if removed is UNKNOWN or truthy(removed) is True:
                return
        key = ctx.peek("nodeConfig.bootDiskKmsKey")
        if key is None:
            pool = "the default node pool's" if ctx.type == GKE else "the pool's"
            ctx.violation(f"nodeConfig.bootDiskKmsKey is not set: {pool} boot disks use a Google-managed key")


POLICY = resource_policy(RULE, check)
