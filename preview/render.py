"""Print a preview as a resource tree with the inputs that matter."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from .harness import PreviewResult

# Inputs worth a line in the tree; the full set is in `--json`.
INTERESTING = ("name", "secretId", "region", "location", "kmsKeyId", "kmsKeyName", "replicas", "replication",
               "enableKeyRotation", "deletionWindowInDays", "multiRegion", "rotationPeriod", "recoveryWindowInDays",
               "secretString", "secretData", "role", "member", "policyArn", "accountId", "deletionProtection", "service",
               "description")


def _short(value: Any, limit: int = 110) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_tree(result: PreviewResult, console: Console) -> None:
    tree = Tree(f"[bold]{result.project}[/bold] / stack [bold]{result.stack}[/bold] ({len(result.resources)} resources, offline preview)")
    nodes = {None: tree}
    for r in result.resources:
        label = f"[cyan]{r.type}[/cyan] {r.name}" + (" [yellow](protect)[/yellow]" if r.options.get("protect") else "")
        node = nodes.get(r.parent, tree).add(label)
        nodes[r.name] = node
        for key in INTERESTING:
            if key in r.inputs and key != "name" or (key == "name" and "name" in r.inputs and r.custom):
                node.add(f"[dim]{key}[/dim] = {escape(_short(r.inputs[key]))}")
    console.print(tree)
    if result.outputs:
        console.print("[bold]outputs[/bold]")
        for k, v in result.outputs.items():
            console.print(f"  {k}: {escape(_short(v, 140))}")
    for key in result.placeholders:
        console.print(f"[yellow]note[/yellow]: {key} is a secret the offline preview cannot decrypt or was not set; a placeholder "
                      f"stood in. Before `pulumi up`: pulumi config set --secret {key} <value> --stack {result.stack}")
    for w in result.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(w)}")
