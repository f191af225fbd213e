"""ENC-003: object storage buckets encrypt with a customer-managed key by default."""

from __future__ import annotations

import json
import re

from ...config import BOUNDARY_CLASSIFICATIONS
from ...props import UNKNOWN, get
from ...rulekit import Rule, StackContext, stack_policy

AWS_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
AWS_SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
           "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
GCS = "gcp:storage/bucket:Bucket"
AWS_WEBSITES = ("aws:s3/bucketWebsiteConfiguration:BucketWebsiteConfiguration",
                "aws:s3/bucketWebsiteConfigurationV2:BucketWebsiteConfigurationV2")
AWS_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
AWS_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACLS = ("public-read", "public-read-write")
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")

RULE = Rule(
    id="ENC-003-cmk-buckets",
    title="Buckets encrypt with customer-managed keys",
    area="encryption",
    kind="stack",
    description="S3 and Cloud Storage buckets the stack creates encrypt new objects with a customer-managed key by "
                "default, except S3 buckets serving public content (website, public-read policy or ACL) in a public or "
                "internal stack.",
    checks="Once per stack, because S3 encryption is a separate resource: each S3 bucket has a "
           "`BucketServerSideEncryptionConfiguration` (matched by bucket name, id or dependency) or an inline "
           "`serverSideEncryptionConfiguration` whose rule uses `aws:kms`/`aws:kms:dsse` with a `kmsMasterKeyId`. "
           "Each `gcp:storage/bucket` has `encryption.defaultKmsKeyName`. An S3 bucket that serves public content (a "
           "`website` block or `BucketWebsiteConfiguration`, a `public-read` ACL or AllUsers grant, or a policy "
           "allowing `s3:GetObject` to principal `*`) is exempt when the stack's `classification` is public or "
           "internal: S3 refuses anonymous reads of SSE-KMS objects, so a customer-managed key would break the site. "
           "In a confidential or regulated stack such a bucket is still a violation.",
    why="Buckets hold model weights, fine-tuning data, logs and captured prompts; S3's default SSE-S3 and Google's "
        "default keys cannot be revoked or audited by the organisation.",
    severity="high",
    controls=("HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-28", "CIS AWS 2.1.1", "GDPR art. 32"),
    remediation="Add `aws.s3.BucketServerSideEncryptionConfiguration` with `sse_algorithm=\"aws:kms\"` and "
                "`kms_master_key_id` (and `bucket_key_enabled=True`), or `encryption.default_kms_key_name` on GCS.",
    applies_to=(*AWS_BUCKETS, *AWS_SSE, *AWS_WEBSITES, *AWS_ACLS, AWS_POLICY, GCS),
    limits="Buckets that exist outside the stack (e.g. the weights bucket a kit stack reads) are not seen; their "
           "encryption is the owning stack's responsibility. A public Cloud Storage bucket is not exempt: Cloud Storage "
           "decrypts customer-managed-key objects for anonymous readers too.",
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


def _targets(bucket, ids: set, autonamed: re.Pattern, r) -> object:
    """True when resource `r` configures `bucket`, False when not, UNKNOWN when its target is unknown at preview."""
    target = get(r.props, "bucket")
    if bucket.urn in r.dependency_urns or target in ids or (isinstance(target, str) and autonamed.match(target)):
        return True
    return UNKNOWN if target is UNKNOWN else False


def _public_read_policy(policy) -> bool:
    """A bucket policy that lets anyone read objects: Allow, principal `*`, an action covering s3:GetObject."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return False
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    for st in statements if isinstance(statements, list) else [statements]:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        if isinstance(principal, dict):
            principal = principal.get("AWS")
        principals = principal if isinstance(principal, list) else [principal]
        actions = st.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if "*" in principals and any(a in ("s3:GetObject", "s3:Get*", "s3:*", "*") for a in actions):
            return True
    return False


def _public_acl(acl_resource_props) -> bool:
    if get(acl_resource_props, "acl") in PUBLIC_ACLS:
        return True
    grants = get(acl_resource_props, "accessControlPolicy.grants")
    return any(get(g, "grantee.uri") == ALL_USERS and get(g, "permission") in ("READ", "FULL_CONTROL")
               for g in (grants if isinstance(grants, list) else []))


def _public_content(b, related) -> bool:
    """The S3 bucket serves anonymous readers: a website, a public-read ACL or a public-read policy."""
    if isinstance(get(b.props, "website"), dict) or get(b.props, "acl") in PUBLIC_ACLS \
            or _public_read_policy(get(b.props, "policy")):
        return True
    for r in related:
        if r.type in AWS_WEBSITES or (r.type in AWS_ACLS and _public_acl(r.props)) \
                or (r.type == AWS_POLICY and _public_read_policy(get(r.props, "policy"))):
            return True
    return False


def check(ctx: StackContext) -> None:
    buckets = [r for r in ctx.resources if r.type in AWS_BUCKETS or r.type == GCS]
    if not buckets:
        ctx.not_applicable("the stack creates no bucket")
    sse = [r for r in ctx.resources if r.type in AWS_SSE]
    public_config = [r for r in ctx.resources if r.type in (*AWS_WEBSITES, *AWS_ACLS, AWS_POLICY)]
    classification = ctx.config.get("classification")
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
        if _public_content(b, [r for r in public_config if _targets(b, ids, autonamed, r) is True]):
            if classification is None:
                ctx.unplanned(f"{b.name}", "the stack's classification, which decides whether a public-content "
                                           "bucket may skip the customer-managed key")
                continue
            if classification not in BOUNDARY_CLASSIFICATIONS:
                continue  # anonymous readers cannot read SSE-KMS objects; the content is meant to be public
        matched, undecided = False, unknown
        for s in sse:
            hit = _targets(b, ids, autonamed, s)
            if hit is UNKNOWN:
                undecided = True
                continue
            if hit:
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
