"""BAS-006: no bucket grants access to everyone while public-access blocking is off."""

from __future__ import annotations

import json

from ...props import UNKNOWN, truthy
from ...rulekit import Rule, StackContext, stack_policy

S3_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
S3_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
GCS_BUCKET = "gcp:storage/bucket:Bucket"
GCS_BINDING = "gcp:storage/bucketIAMBinding:BucketIAMBinding"
GCS_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
GCS_POLICY = "gcp:storage/bucketIAMPolicy:BucketIAMPolicy"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")

RULE = Rule(
    id="BAS-006-no-public-bucket-policy",
    title="No public bucket policy without public-access blocking",
    area="baseline",
    kind="stack",
    description="Outside public-data stacks, no bucket policy or IAM grant names everyone (\"*\", allUsers, "
                "allAuthenticatedUsers) while the bucket's public-access blocking is off.",
    checks="AWS: an `aws:s3/bucketPolicy` whose policy has an Allow statement for principal \"*\" (or {\"AWS\": \"*\"}) "
           "without a Condition, on a bucket that no `aws:s3/bucketPublicAccessBlock` (nor an account-level block) "
           "covers with `blockPublicPolicy` and `restrictPublicBuckets`. GCP: a `gcp:storage/bucketIAMBinding`, "
           "`bucketIAMMember` or `bucketIAMPolicy` granting allUsers or allAuthenticatedUsers on a bucket whose "
           "`publicAccessPrevention` is not `enforced`.",
    why="A bucket readable by anyone publishes whatever lands in it (weights, prompts, logs); public-access blocking is "
        "the guard that keeps one wrong statement from doing that.",
    severity="critical",
    controls=("FedRAMP AC-3", "CIS AWS 2.1.5", "AWS FSBP S3.8", "CIS GCP 5.1", "HIPAA 164.312(a)(1)", "GDPR art. 32"),
    remediation="Grant the readers by role or account instead of \"*\"/allUsers, and turn blocking on: an "
                "`aws.s3.BucketPublicAccessBlock` with all four flags true, or `public_access_prevention=\"enforced\"` "
                "on the GCS bucket. A stack that really publishes content is planned with classification public.",
    applies_to=(S3_POLICY, S3_BLOCK, ACCOUNT_BLOCK, GCS_BUCKET, GCS_BINDING, GCS_MEMBER, GCS_POLICY),
    limits="Organisation policies and account-level blocks made outside the program are not seen; a public-principal "
           "statement with any Condition is taken as not public.",
)


def _doc(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _everyone(principal) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def _public_statements(policy) -> list[int]:
    statements = (policy or {}).get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    return [i for i, s in enumerate(statements) if isinstance(s, dict) and s.get("Effect") == "Allow"
            and _everyone(s.get("Principal")) and not s.get("Condition")]


def check(ctx: StackContext) -> None:
    classification = ctx.config["classification"]
    if classification == "public":
        ctx.not_applicable("the stack's classification is public: its buckets may publish content")
    by_urn = {r.urn: r for r in ctx.resources}
    blocked_buckets, blocked_deps, account_blocked = set(), set(), False
    for r in ctx.resources:
        if r.type in (S3_BLOCK, ACCOUNT_BLOCK):
            if truthy(ctx.get(r, "blockPublicPolicy")) is True and truthy(ctx.get(r, "restrictPublicBuckets")) is True:
                if r.type == ACCOUNT_BLOCK:
                    account_blocked = True
                else:
                    blocked_buckets.add(ctx.get(r, "bucket"))
                    blocked_deps.update(d for d in r.dependency_urns if d in by_urn)
    gcs = {}
    for r in ctx.resources:
        if r.type == GCS_BUCKET:
            gcs[r.props.get("name") if isinstance(r.props, dict) else None] = r
            gcs[r.urn] = r
    for r in ctx.resources:
        if r.type == S3_POLICY:
            policy = ctx.get(r, "policy", "the bucket policy")
            if policy is UNKNOWN:
                continue
            public = _public_statements(_doc(policy))
            if not public:
                continue
            bucket = ctx.get(r, "bucket", "the bucket")
            covered = account_blocked or (bucket is not UNKNOWN and bucket in blocked_buckets) or any(
                d in blocked_deps for d in r.dependency_urns if by_urn.get(d) and by_urn[d].type.startswith("aws:s3/"))
            if not covered:
                where = ", ".join(f"Statement[{i}]" for i in public)
                ctx.violation(f"{where} allows principal \"*\" on bucket {bucket} and no public-access block "
                              "(blockPublicPolicy, restrictPublicBuckets) covers it", r.urn)
        elif r.type in (GCS_BINDING, GCS_MEMBER, GCS_POLICY):
            if r.type == GCS_POLICY:
                doc = _doc(ctx.get(r, "policyData", "the IAM policy"))
                members = [m for b in (doc or {}).get("bindings") or [] if isinstance(b, dict)
                           for m in b.get("members") or []]
            elif r.type == GCS_BINDING:
                members = ctx.get(r, "members", "the members")
                members = members if isinstance(members, list) else []
            else:
                members = [ctx.get(r, "member", "the member")]
            public = [m for m in members if m in PUBLIC_MEMBERS]
            if not public:
                continue
            name = ctx.get(r, "bucket", "the bucket")
            bucket = gcs.get(name) or next((by_urn[d] for d in r.dependency_urns
                                            if by_urn.get(d) and by_urn[d].type == GCS_BUCKET), None)
            prevention = ctx.get(bucket, "publicAccessPrevention") if bucket is not None else None
            if prevention is UNKNOWN or prevention == "enforced":
                continue
            state = f"is {prevention}" if prevention else ("is not set (inherited)" if bucket is not None
                                                            else "cannot be seen (the bucket is not in the stack)")
            ctx.violation(f"grants {', '.join(public)} on bucket {name}, and its publicAccessPrevention {state}", r.urn)


POLICY = stack_policy(RULE, check)
