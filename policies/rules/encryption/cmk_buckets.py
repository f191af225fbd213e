"""ENC-003: object storage buckets encrypt with a customer-managed key by default."""

from __future__ import annotations

import re

from ...props import UNKNOWN, get
from ...rulekit import Rule, StackContext, stack_policy

AWS_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
AWS_SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
           "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
GCS = "gcp:storage/bucket:Bucket"
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")

RULE = Rule(
    id="ENC-003-cmk-buckets",
    title="Buckets encrypt with customer-managed keys",
    area="encryption",
    kind="stack",
    description="S3 and Cloud Storage buckets the stack creates encrypt new objects with a customer-managed key "
                "by default.",
    checks="Once per stack, because S3 encryption is a separate resource: each S3 bucket has a "
           "`BucketServerSideEncryptionConfiguration` (matched by bucket name, id or dependency) or an inline "
           "`serverSideEncryptionConfiguration` whose rule uses `aws:kms`/`aws:kms:dsse` with a `kmsMasterKeyId`. "
           "Each `gcp:storage/bucket` has `encryption.defaultKmsKeyName`.",
    why="Buckets hold model weights, fine-tuning data, logs and captured prompts; S3's default SSE-S3 and Google's "
        "default keys cannot be revoked or audited by the organisation.",
    severity="high",
    controls=("HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-28", "CIS AWS 2.1.1", "GDPR art. 32"),
    remediation="Add `aws.s3.BucketServerSideEncryptionConfiguration` with `sse_algorithm=\"aws:kms\"` and "
                "`kms_master_key_id` (and `bucket_key_enabled=True`), or `encryption.default_kms_key_name` on GCS.",
    applies_to=(*AWS_BUCKETS, *AWS_SSE, GCS),
    limits="Buckets that exist outside the stack (e.g. the weights bucket a kit stack reads) are not seen; their "
           "encryption is the owning stack's responsibility.",
)


def _kms_rule(rules) -> tuple[bool, bool]:
    """(uses a customer-managed KMS key, unknown) for an SSE rule list."""
    if rules is UNKNOWN:
        return False, True
    for r in rules if isinstance(rules, list) else []:
        default = r.get("applyServerSideEncryptionByDefault") if isinstance(r, dict) else None
        if not isinstance(default, dict):
            continue
        algo, key = default.get("sseAlgorithm"), default.get("kmsMasterKeyId")  # an unknown key is a key of the stack
        if algo is UNKNOWN:
            return False, True
        if algo in KMS_ALGORITHMS and key:
            return True, False
    return False, False


def check(ctx: StackContext) -> None:
    buckets = [r for r in ctx.resources if r.type in AWS_BUCKETS or r.type == GCS]
    if not buckets:
        ctx.not_applicable("the stack creates no bucket")
    sse = [r for r in ctx.resources if r.type in AWS_SSE]
    for b in buckets:
        if b.type == GCS:
            if get(b.props, "encryption.defaultKmsKeyName") is None:
                ctx.violation("encryption.defaultKmsKeyName is not set: objects use a Google-managed key", b.urn)
            continue
        inline, unknown = _kms_rule(get(b.props, "serverSideEncryptionConfiguration.rules"))
        if inline:
            continue
        ids = {v for v in (get(b.props, "bucket"), get(b.props, "id")) if isinstance(v, str)}
        autonamed = re.compile(re.escape(b.name) + r"-[0-9a-f]{7}$")
        matched, undecided = False, unknown
        for s in sse:
            target = get(s.props, "bucket")
            if target is UNKNOWN and b.urn not in s.dependency_urns:
                undecided = True
                continue
            if b.urn in s.dependency_urns or target in ids or (isinstance(target, str) and autonamed.match(target)):
                ok, u = _kms_rule(get(s.props, "rules"))
                matched = matched or ok
                undecided = undecided or u
                if not ok and not u:
                    ctx.violation(f"{s.name} does not use aws:kms with a kmsMasterKeyId: objects use an "
                                  "Amazon-managed key", b.urn)
                    matched = True  # reported against the configuration; not again as missing
        if not matched:
            if undecided:
                ctx.cannot_verify(f"{b.name} encryption", "which configuration applies to the bucket")
            else:
                ctx.violation("has no server-side encryption configuration with a customer-managed KMS key: objects "
                              "use SSE-S3", b.urn)


POLICY = stack_policy(RULE, check)
