"""The output contract every tier exports, so callers never care which tier they got."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

STACK_TAG_PREFIX = "llm-hosting"


@dataclass(frozen=True)
class TierOutputs:
    endpoint_url: pulumi.Input[str]  # OpenAI-compatible base URL
    api_key_secret: pulumi.Input[str]  # secret ARN / resource name holding the key, or the auth mode
    model: pulumi.Input[str]
    tier: str

    def export(self) -> None:
        pulumi.export("endpoint_url", self.endpoint_url)
        pulumi.export("api_key_secret", self.api_key_secret)
        pulumi.export("model", self.model)
        pulumi.export("tier", self.tier)


def aws_tags(stack: str, tier: str, classification: str) -> dict[str, str]:
    return {f"{STACK_TAG_PREFIX}:stack": stack, f"{STACK_TAG_PREFIX}:tier": tier,
            f"{STACK_TAG_PREFIX}:classification": classification, "managed-by": "pulumi"}


def gcp_labels(stack: str, tier: str, classification: str) -> dict[str, str]:
    # GCP labels allow only lowercase letters, digits, - and _ (a stack name may also hold dots).
    return {f"{STACK_TAG_PREFIX}-stack": stack.lower().replace(".", "-"), f"{STACK_TAG_PREFIX}-tier": tier,
            f"{STACK_TAG_PREFIX}-classification": classification, "managed-by": "pulumi"}
