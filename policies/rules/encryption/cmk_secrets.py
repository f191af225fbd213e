"""ENC-001: secrets are encrypted with a customer-managed key, replicas included."""

from __future__ import annotations

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy

AWS_SECRET = "aws:secretsmanager/secret:Secret"
GCP_SECRET = "gcp:secretmanager/secret:Secret"
SSM_PARAMETER = "aws:ssm/parameter:Parameter"
TYPES = (AWS_SECRET, GCP_SECRET, SSM_PARAMETER)
AWS_MANAGED = ("alias/aws/secretsmanager", "alias/aws/ssm")

RULE = Rule(
    id="ENC-001-cmk-secrets",
    title="Secrets use customer-managed keys, replicas included",
    area="encryption",
    description="Secrets Manager secrets, SecureString parameters and Secret Manager secrets are encrypted with a "
                "customer-managed key in every region they are stored.",
    checks="`aws:secretsmanager/secret`: `kmsKeyId` is set (not `alias/aws/secretsmanager`) and so is every "
           "`replicas[].kmsKeyId`. `aws:ssm/parameter` of type SecureString: `keyId` is set (not `alias/aws/ssm`). "
           "`gcp:secretmanager/secret`: `replication.auto.customerManagedEncryption.kmsKeyName`, or "
           "`customerManagedEncryption.kmsKeyName` on every `replication.userManaged.replicas[]`.",
    why="With a provider-managed key anyone with read access to the secret service can decrypt, and the key can "
        "neither be revoked nor audited by the organisation; a customer-managed key adds a separately controlled "
        "decrypt permission, an audit trail, and crypto-shredding.",
    severity="high",
    controls=("HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-28", "FedRAMP SC-12", "GDPR art. 32"),
    remediation="Create a KMS key (multi-region with replicas where the secret replicates; one Cloud KMS key per "
                "replica location on GCP) and set it on the secret and on each replica. The kit's API tier does this.",
    applies_to=TYPES,
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type == AWS_SECRET:
        key = ctx.peek("kmsKeyId")
        if key is None or key in AWS_MANAGED:
            ctx.violation("kmsKeyId is not set: the secret is encrypted with the AWS-managed key aws/secretsmanager")
        for path, replica in ctx.items("replicas", "the secret's replicas"):
            if not isinstance(replica, dict):
                continue
            rkey = ctx.peek(f"{path}.kmsKeyId")
            if rkey is None or rkey in AWS_MANAGED:
                region = replica.get("region")
                ctx.violation(f"{path}.kmsKeyId is not set: the {region} replica uses the AWS-managed key "
                              "aws/secretsmanager")
    elif ctx.type == SSM_PARAMETER:
        kind = ctx.get("type", "the parameter type")
        if kind == "SecureString":
            key = ctx.peek("keyId")
            if key is None or key in AWS_MANAGED:
                ctx.violation("keyId is not set: the SecureString is encrypted with the AWS-managed key aws/ssm")
        elif kind is not UNKNOWN:
            ctx.not_applicable(f"a {kind} parameter is not encrypted at all; only SecureString parameters hold secrets")
    else:
        replication = ctx.get("replication", "the replication policy")
        if replication is UNKNOWN:
            return
        if not isinstance(replication, dict) or not replication:
            ctx.violation("replication is not set: the secret uses a Google-managed key")
            return
        if "auto" in replication:
            if ctx.peek("replication.auto.customerManagedEncryption.kmsKeyName") is None:
                ctx.violation("replication.auto.customerManagedEncryption is not set: the secret uses a "
                              "Google-managed key")
        for path, replica in ctx.items("replication.userManaged.replicas", "the secret's replicas"):
            if ctx.peek(f"{path}.customerManagedEncryption.kmsKeyName") is None:
                where = replica.get("location") if isinstance(replica, dict) else "?"
                ctx.violation(f"{path}.customerManagedEncryption is not set: the {where} replica uses a "
                              "Google-managed key")


POLICY = resource_policy(RULE, check)
