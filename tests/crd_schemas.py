"""Offline validation of custom resources against the real CRDs in ROOT.parent / "shared" / "schemas".

`validate_custom_resource(cr)` returns the problems the API server would report for a custom resource the kit
renders (a ScaledObject, a PrometheusRule, a PodMonitoring...), or an empty list:
- everything JSON Schema checks in the CRD's openAPIV3Schema (types, required, enum, pattern, bounds), with
  `jsonschema.Draft202012Validator`; and
- unknown fields, which JSON Schema lets through (CRDs rarely say `additionalProperties: false`) but the API server
  prunes or, under strict field validation, rejects: a typo such as `maxReplicaCont` would silently do nothing.

What it cannot check, as the API server would: CEL rules (`x-kubernetes-validations`), list-type uniqueness,
defaults, and `format` (Go durations such as `30s` are not ISO durations, so no format checker is used).

The KEDA CRDs are patched when installed (RFC 6902 ops in `keda/crds/patches/<kind>_patch.yaml`); the patches are
applied here so the schema is the installed one. Go's regex dialect allows a flag group after `^`
(PrometheusRule's `^(?i)(abort|warn)?$`), which Python's `re` rejects; such flags are moved to the front.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"

_FLAG_GROUP = re.compile(r"\(\?([imsU]+)\)")


class UnknownCustomResource(LookupError):
    """No CRD under the shared schemas defines this apiVersion/kind."""


def _load(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 4x faster on the big CRDs
    return yaml.load(path.read_text(), Loader=loader)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _apply_patch(doc: Any, ops: list[dict]) -> Any:
    """The RFC 6902 ops the KEDA patches use: add (including `/-` to append) and remove."""
    for op in ops:
        *parents, last = _pointer(op["path"])
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "add":
            if isinstance(target, list) and last == "-":
                target.append(op["value"])
            elif isinstance(target, list):
                target.insert(int(last), op["value"])
            else:
                target[last] = op["value"]
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        else:
            raise ValueError(f"unsupported JSON-Patch op {op['op']!r} in a CRD patch")
    return doc


def _python_pattern(pattern: str) -> str:
    """A Go RE2 pattern Python's `re` accepts: inline flag groups hoisted to the front (they apply to the rest of
    the pattern in both dialects; the only such pattern here follows `^`)."""
    try:
        re.compile(pattern)
        return pattern
    except re.error:
        flags = "".join(sorted(set("".join(_FLAG_GROUP.findall(pattern))) - {"U"}))
        fixed = (f"(?{flags})" if flags else "") + _FLAG_GROUP.sub("", pattern)
        re.compile(fixed)  # still failing: let the error name the pattern
        return fixed


def _fix_patterns(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: (_python_pattern(v) if k == "pattern" and isinstance(v, str) else _fix_patterns(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_fix_patterns(v) for v in schema]
    return schema


@lru_cache(maxsize=1)
def _crds() -> dict[tuple[str, str], dict]:
    """(group, kind) -> the CRD as installed (patches applied)."""
    if not SCHEMAS.is_dir():
        raise FileNotFoundError(f"{SCHEMAS} is missing: the shared schemas must sit beside the repository")
    found: dict[tuple[str, str], dict] = {}
    by_dir: dict[Path, list[dict]] = {}
    for path in sorted(SCHEMAS.glob("*/crds/**/*.yaml")):
        if path.parent.name == "patches":
            continue
        doc = _load(path)
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        found[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
        by_dir.setdefault(path.parent, []).append(doc)
    for patch in sorted(SCHEMAS.glob("*/crds/patches/*_patch.yaml")):
        singular = patch.stem.removesuffix("_patch")
        targets = [d for d in by_dir.get(patch.parent.parent, []) if d["spec"]["names"].get("singular") == singular]
        if len(targets) != 1:
            raise LookupError(f"{patch}: no single CRD with singular name {singular!r} beside it to patch")
        _apply_patch(targets[0], _load(patch) or [])
    return found


def crd_for(api_version: str, kind: str) -> dict:
    """The CRD that defines `kind` in `api_version`'s group; UnknownCustomResource if none does."""
    group, _, version = api_version.rpartition("/")
    crd = _crds().get((group, kind))
    if crd is None:
        known = ", ".join(sorted(f"{g}/{k}" for g, k in _crds()))
        raise UnknownCustomResource(f"no CRD for {kind} in {api_version!r} under {SCHEMAS} (known: {known})")
    if version not in {v["name"] for v in crd["spec"]["versions"]}:
        served = ", ".join(v["name"] for v in crd["spec"]["versions"])
        raise UnknownCustomResource(f"{group}/{kind} has no version {version!r} (the CRD serves {served})")
    return crd


@lru_cache(maxsize=None)
def _schema(api_version: str, kind: str) -> dict:
    version = api_version.rpartition("/")[2]
    crd = crd_for(api_version, kind)
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return _fix_patterns(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))


@lru_cache(maxsize=None)
def _validator(api_version: str, kind: str):
    from jsonschema import Draft202012Validator

    # No format checker: `format: duration` would then demand ISO 8601 and reject Go durations such as 30s.
    return Draft202012Validator(_schema(api_version, kind))


def _where(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(root)"


def unknown_fields(value: Any, schema: dict, path: tuple = ()) -> Iterator[str]:
    """Fields of `value` that `schema` does not declare, where it does not allow extra ones."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                yield from unknown_fields(item, props[key], path + (key,))
            elif isinstance(extra, dict):
                yield from unknown_fields(item, extra, path + (key,))
            elif props is not None and extra is not True:
                yield f"{_where(path + (key,))}: unknown field {key!r} (the schema has {', '.join(sorted(props)) or 'no fields'})"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], path + (i,))
    for branch in ("allOf",):  # every branch applies; anyOf/oneOf here are int-or-string leaves
        for sub in schema.get(branch, []):
            yield from unknown_fields(value, sub, path)


def validate_custom_resource(cr: dict) -> list[str]:
    """Problems with `cr` against its CRD (schema violations, then unknown fields); empty when valid."""
    api_version, kind = cr.get("apiVersion"), cr.get("kind")
    if not api_version or not kind:
        return ["(root): apiVersion and kind are required"]
    name = (cr.get("metadata") or {}).get("name", "<unnamed>")
    validator = _validator(api_version, kind)
    problems = [f"{kind} {name}: {_where(e.absolute_path)}: {e.message}"
                for e in sorted(validator.iter_errors(cr), key=lambda e: [str(p) for p in e.absolute_path])]
    problems += [f"{kind} {name}: {p}" for p in unknown_fields(cr, _schema(api_version, kind))]
    return problems
