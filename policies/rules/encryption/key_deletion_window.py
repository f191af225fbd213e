"""ENC-008: deleting a customer-managed key waits long enough to be noticed and cancelled."""

from __future__ import annotations

import re

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy

AWS_KEYS = ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey")
GCP_KEY = "gcp:kms/cryptoKey:CryptoKey"
AWS_MAX_WINDOW = 30  # KMS accepts 7-30 days

RULE = Rule(
    id="ENC-008-key-deletion-window",
    title="Key deletion waits at least the minimum window",
    area="encryption",
    description="KMS keys keep a deletion window, and Cloud KMS key versions a destroy-scheduled duration, of at "
                "least `minDeletionWindowDays` (default 30).",
    checks="`aws:kms/key` and `aws:kms/replicaKey`: `deletionWindowInDays` (30 when not set) is at least "
           "min(`minDeletionWindowDays`, 30). `gcp:kms/cryptoKey`: `destroyScheduledDuration` (30 days when not set) "
           "is at least `minDeletionWindowDays`.",
    why="Deleting a key destroys every secret, volume and log it encrypts. A long window leaves time to notice an "
        "accidental or malicious deletion and cancel it before the data is unrecoverable.",
    severity="medium",
    controls=("FedRAMP SC-12", "FedRAMP CP-9", "HIPAA 164.308(a)(7)(ii)(A)"),
    remediation="Set `deletion_window_in_days=30` on AWS keys and `destroy_scheduled_duration=\"2592000s\"` (or "
                "longer) on Cloud KMS keys.",
    applies_to=(*AWS_KEYS, GCP_KEY),
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, (*AWS_KEYS, GCP_KEY))
    minimum = ctx.config["minDeletionWindowDays"]
    if ctx.type in AWS_KEYS:
        required = min(minimum, AWS_MAX_WINDOW)
        window = ctx.get("deletionWindowInDays", "the deletion window")
        if isinstance(window, (int, float)) and window < required:
            ctx.violation(f"deletionWindowInDays is {window:g}, below the required {required}: a deleted key and "
                          f"everything it encrypts are gone after {window:g} days")
        return
    duration = ctx.get("destroyScheduledDuration", "the destroy-scheduled duration")
    if duration is UNKNOWN:
        return
    if duration is None:
        if minimum > 30:
            ctx.violation(f"destroyScheduledDuration is not set, so Cloud KMS uses 30 days, below the required "
                          f"{minimum} days")
        return
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(duration))
    if not m:
        ctx.violation(f"destroyScheduledDuration {duration!r} is not a duration in seconds like \"2592000s\"")
        return
    days = float(m.group(1)) / 86400
    if days < minimum:
        ctx.violation(f"destroyScheduledDuration is {duration} ({days:g} days), below the required {minimum} days")


POLICY = resource_policy(RULE, check)
