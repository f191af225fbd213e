"""Compare an offline preview with an expected inventory file (tests/inventories/<stack>.yaml).

The file has `counts` (resources per type, exact), `values` (per resource name: type, parent, options and the
inputs that matter, compared as a subset; a key ending in `@json` is a JSON string compared parsed) and `outputs`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

INVENTORIES = Path(__file__).parent / "inventories"


def _subset(expected: Any, actual: Any, path: str, problems: list[str]) -> None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path}: expected a mapping, got {actual!r}")
            return
        for key, value in expected.items():
            if key.endswith("@json"):
                raw = actual.get(key[:-5])
                if not isinstance(raw, str):
                    problems.append(f"{path}.{key[:-5]}: expected a JSON string, got {raw!r}")
                    continue
                _subset(value, json.loads(raw), f"{path}.{key[:-5]}", problems)
            elif key not in actual:
                problems.append(f"{path}.{key}: missing (expected {value!r})")
            else:
                _subset(value, actual[key], f"{path}.{key}", problems)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            problems.append(f"{path}: expected {expected!r}, got {actual!r}")
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            _subset(e, a, f"{path}[{i}]", problems)
    elif expected != actual:
        problems.append(f"{path}: expected {expected!r}, got {actual!r}")


def differences(result, expected: dict) -> list[str]:
    problems: list[str] = []
    counts = dict(Counter(r.type for r in result.resources))
    if counts != expected["counts"]:
        for t in sorted(set(counts) | set(expected["counts"])):
            if counts.get(t, 0) != expected["counts"].get(t, 0):
                problems.append(f"counts[{t}]: expected {expected['counts'].get(t, 0)}, got {counts.get(t, 0)}")
    by_name = {r.name: r for r in result.resources}
    for name, want in expected.get("values", {}).items():
        got = by_name.get(name)
        if got is None:
            problems.append(f"{name}: not registered")
            continue
        if got.type != want["type"]:
            problems.append(f"{name}.type: expected {want['type']}, got {got.type}")
        if got.parent != want.get("parent"):
            problems.append(f"{name}.parent: expected {want.get('parent')}, got {got.parent}")
        _subset(want.get("options", {}), got.options, f"{name}.options", problems)
        _subset(want.get("inputs", {}), got.inputs, f"{name}.inputs", problems)
    if "outputs" in expected and result.outputs != expected["outputs"]:
        problems.append(f"outputs: expected {expected['outputs']!r}, got {result.outputs!r}")
    return problems


def load(stack: str) -> dict:
    return yaml.safe_load((INVENTORIES / f"{stack}.yaml").read_text())


def draft(result, header: str) -> str:
    """A first inventory for a stack, written from a preview, to be read and trimmed by a person before it is kept.

    Tags and labels are kept on the resources that carry data (secrets, keys, log groups, endpoints, clusters) and
    dropped elsewhere, where they only repeat; everything else the program sets is listed.
    """
    keep_tags = ("Secret", "Key", "LogGroup", "Endpoint", "Cluster", "NodeGroup", "Vpc")
    values = {}
    for r in sorted(result.resources, key=lambda r: r.name):
        entry: dict[str, Any] = {"type": r.type, "parent": r.parent}
        options = {k: v for k, v in r.options.items() if k in ("protect", "provider", "ignoreChanges", "aliases", "customTimeouts")
                   or (k == "additionalSecretOutputs" and r.type.endswith("SecretVersion"))}
        if options:
            entry["options"] = options
        inputs = {}
        for key, value in sorted(r.inputs.items()):
            if key in ("tags", "labels", "tagsAll") and not r.type.endswith(keep_tags):
                continue
            if key in ("policy", "assumeRolePolicy") and isinstance(value, str) and value.startswith("{"):
                inputs[f"{key}@json"] = json.loads(value)
            else:
                inputs[key] = value
        if inputs:
            entry["inputs"] = inputs
        values[r.name] = entry
    counts = dict(sorted(Counter(r.type for r in result.resources).items()))
    doc = {"stack": result.stack, "counts": counts, "values": values, "outputs": result.outputs}
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool: python tests/inventory.py STACK > draft.yaml
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from preview.harness import run_preview

    print(draft(run_preview(Path(__file__).resolve().parent.parent, sys.argv[1]), ""), end="")
