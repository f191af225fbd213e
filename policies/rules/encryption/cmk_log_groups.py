"""ENC-004: log groups and log buckets are encrypted with a customer-managed key."""

from __future__ import annotations

from ...rulekit import ResourceContext, Rule, applies, resource_policy

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
GCP_LOG_BUCKETS = ("gcp:logging/projectBucketConfig:ProjectBucketConfig",
                   "gcp:logging/organizationBucketConfig:OrganizationBucketConfig",
                   "gcp:logging/folderBucketConfig:FolderBucketConfig")
TYPES = (LOG_GROUP, *GCP_LOG_BUCKETS)

RULE = Rule(
    id="ENC-004-cmk-log-groups",
    title="Log groups use customer-managed keys",
    area="encryption",
    description="CloudWatch log groups and Cloud Logging buckets are encrypted with a customer-managed key.",
    checks="`aws:cloudwatch/logGroup`: `kmsKeyId` is set. `gcp:logging/*BucketConfig`: `cmekSettings.kmsKeyName` is "
           "set.",
    why="Control-plane audit logs, VPC flow logs and endpoint logs can contain prompts, identities and addresses; "
        "they are the evidence an audit relies on and need the same key control as the data.",
    severity="medium",
    controls=("HIPAA 164.312(b)", "HIPAA 164.312(a)(2)(iv)", "FedRAMP AU-9", "FedRAMP SC-28"),
    remediation="Set `kms_key_id` on the log group (the key policy must allow `logs.<region>.amazonaws.com` with "
                "an encryption-context condition, as the kit's keys do) or `cmek_settings` on the log bucket.",
    applies_to=TYPES,
    limits="Log groups a service creates on its own (e.g. EKS's /aws/eks/<name>/cluster when the program does not "
           "create it first) are not resources of the stack and are not seen.",
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type == LOG_GROUP:
        if ctx.peek("kmsKeyId") is None:
            ctx.violation("kmsKeyId is not set: the log group is encrypted with a CloudWatch-managed key")
    elif ctx.peek("cmekSettings.kmsKeyName") is None:
        ctx.violation("cmekSettings.kmsKeyName is not set: the log bucket uses a Google-managed key")


POLICY = resource_policy(RULE, check)
