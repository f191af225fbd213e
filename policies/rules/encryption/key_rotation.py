"""ENC-007: customer-managed keys rotate automatically."""

from __future__ import annotations

import re

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy

AWS_KEY = "aws:kms/key:Key"
GCP_KEY = "gcp:kms/cryptoKey:CryptoKey"

RULE = Rule(
    id="ENC-007-key-rotation",
    title="Customer-managed keys rotate automatically",
    area="encryption",
    description="Symmetric KMS keys and Cloud KMS encryption keys rotate automatically, at least every "
                "`maxRotationDays` (default 365).",
    checks="`aws:kms/key` (symmetric encryption keys): `enableKeyRotation` is true and `rotationPeriodInDays` "
           "(365 when not set) is at most `maxRotationDays`. `gcp:kms/cryptoKey` with purpose ENCRYPT_DECRYPT: "
           "`rotationPeriod` is set and at most `maxRotationDays`. Asymmetric, HMAC and other-purpose keys cannot "
           "rotate automatically and are not applicable; multi-Region replica keys follow their primary.",
    why="Rotation limits how much data one key version protects and how long a leaked version stays useful; it is "
        "an explicit requirement of FedRAMP key management and PCI DSS.",
    severity="medium",
    controls=("FedRAMP SC-12", "CIS AWS 3.8", "PCI DSS 3.7.4", "HIPAA 164.312(a)(2)(iv)"),
    remediation="Set `enable_key_rotation=True` (and `rotation_period_in_days`) on AWS keys, `rotation_period` "
                "(e.g. \"7776000s\", 90 days) on Cloud KMS keys.",
    applies_to=(AWS_KEY, GCP_KEY),
)


def _days(duration) -> float | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(duration))
    return float(m.group(1)) / 86400 if m else None


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, (AWS_KEY, GCP_KEY))
    limit = ctx.config["maxRotationDays"]
    if ctx.type == AWS_KEY:
        spec = ctx.get("customerMasterKeySpec") or ctx.get("keySpec") or "SYMMETRIC_DEFAULT"
        if spec is UNKNOWN:
            return
        if spec != "SYMMETRIC_DEFAULT":
            ctx.not_applicable(f"AWS rotates only symmetric encryption keys automatically; this key is {spec}")
        enabled = ctx.get("enableKeyRotation", "whether rotation is on")
        if enabled is not UNKNOWN and truthy(enabled) is not True:
            ctx.violation("enableKeyRotation is not true: the key material is never rotated")
            return
        period = ctx.get("rotationPeriodInDays", "the rotation period")
        if isinstance(period, (int, float)) and period > limit:
            ctx.violation(f"rotationPeriodInDays is {period:g}, above the allowed {limit}")
        return
    purpose = ctx.get("purpose", "the key purpose") or "ENCRYPT_DECRYPT"
    if purpose is UNKNOWN:
        return
    if purpose != "ENCRYPT_DECRYPT":
        ctx.not_applicable(f"Cloud KMS rotates only ENCRYPT_DECRYPT keys automatically; this key is {purpose}")
    period = ctx.get("rotationPeriod", "the rotation period")
    if period is None:
        ctx.violation("rotationPeriod is not set: the key version is never rotated")
    elif period is not UNKNOWN:
        days = _days(period)
        if days is None:
            ctx.violation(f"rotationPeriod {period!r} is not a duration in seconds like \"7776000s\"")
        elif days > limit:
            ctx.violation(f"rotationPeriod is {period} ({days:g} days), above the allowed {limit} days")


POLICY = resource_policy(RULE, check)
