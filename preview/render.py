"""Print a preview as a resource tree with the inputs that matter."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text
from rich.tree import Tree

from .harness import PreviewResult

# Inputs worth a line in the tree; the full set is in `--json`.
INTERESTING = ("name", "secretId", "region", "location", "kmsKeyId", "kmsKeyName", "replicas", "replication",
               "enableKeyRotation", "deletionWindowInDays", "multiRegion", "rotationPeriod", "recoveryWindowInDays",
               "secretString", "secretData", "role", "member", "policyArn", "accountId", "deletionProtection", "service",
               "description")


def _short(value: Any, limit: int = 110) -> str:
    """One line of at most `limit` characters: a multi-line value (a PEM certificate) is folded onto one line."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_tree(result: PreviewResult, console: Console) -> None:
    """The tree, the outputs and the notes, laid out for `console.width`: rich wraps the tree's lines inside its
    guides, values are cut to what two lines hold, and the commands a note asks for are printed on their own line."""
    limit = max(40, min(140, 2 * console.width - 20))
    # A multi-language component's children are not in the inventory: the headline must not read as complete.
    incomplete = (f", [yellow]incomplete: {len(result.remote_components)} multi-language component(s) not expanded[/yellow]"
                  if result.remote_components else "")
    tree = Tree(f"[bold]{result.project}[/bold] / stack [bold]{result.stack}[/bold] ({len(result.resources)} resources, "
                f"offline preview{incomplete})")
    nodes = {None: tree}
    for r in result.resources:
        label = f"[cyan]{r.type}[/cyan] {escape(r.name)}" + (" [yellow](protect)[/yellow]" if r.options.get("protect") else "")
        node = nodes.get(r.parent, tree).add(label)
        nodes[r.name] = node
        for key in INTERESTING:
            if key in r.inputs and key != "name" or (key == "name" and "name" in r.inputs and r.custom):
                node.add(f"[dim]{key}[/dim] = {escape(_short(r.inputs[key], limit))}")
    console.print(tree)
    if result.outputs:
        console.print("[bold]outputs[/bold]")
        for k, v in result.outputs.items():
            console.print(Padding(Text(f"{k}: {_short(v, limit)}"), (0, 0, 0, 2)))
    for key in result.placeholders:
        console.print(Text.assemble(("note", "yellow"), f": {key} is a secret the offline preview cannot decrypt or was not "
                                    "set; a placeholder stood in. Before `pulumi up`, set it:"))
        # Never wrapped: a command split over two lines pastes as two.
        console.print(Text(f"  pulumi config set --secret {key} <value> --stack {result.stack}"), soft_wrap=True)
    for w in result.warnings:
        console.print(Text.assemble(("warning", "yellow"), f": {w}"))
