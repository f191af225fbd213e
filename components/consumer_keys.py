"""What the consumer-key components of both clouds share: the generated key and what a consumer's secret holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_random as random

KEY_PREFIX = "sk-llmhost-"
KEY_LENGTH = 40  # random characters after the prefix: ~238 bits from [A-Za-z0-9]


@dataclass(frozen=True)
class Consumer:
    """An application with its own gateway key. `rotation` is the only thing that changes its key."""
    name: str
    rotation: int = 1
    reader: Optional[str] = None  # AWS: the IAM role name; GCP: the IAM member, allowed to read the key's secret


def check_consumers(consumers: list[Consumer]) -> None:
    names = [c.name for c in consumers]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"consumers: {names} must be one or more distinct names")


def generated_key(resource_name: str, consumer: Consumer, parent: pulumi.Resource) -> pulumi.Output[str]:
    """A random key for one consumer, kept in the stack's state as a Pulumi secret. It changes only when that
    consumer's `rotation` does (the `keepers`), so rotating one consumer never touches another's key."""
    password = random.RandomPassword(
        resource_name, length=KEY_LENGTH, special=False, keepers={"rotation": str(consumer.rotation)},
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["result"]))
    return pulumi.Output.secret(password.result.apply(lambda r: f"{KEY_PREFIX}{r}"))


def secret_document(key: pulumi.Input[str], endpoint_url: pulumi.Input[str], model: str) -> pulumi.Output[str]:
    """What a consumer reads from its secret: everything an OpenAI client needs (base URL, key, model name)."""
    return pulumi.Output.secret(pulumi.Output.all(key, endpoint_url).apply(
        lambda a: json.dumps({"base_url": a[1], "api_key": a[0], "model": model}, sort_keys=True)))
