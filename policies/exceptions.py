"""Policy exceptions: one policy, one stack, one resource, a reason, an approver and an expiry date.

The register is `policies/exceptions.yaml`, shipped inside the pack so `pulumi preview --policy-pack policies`
and `llmhost preview` honour the same entries. There are no blanket waivers: every field is required, the
resource is a Pulumi resource name within one stack, the reason is at least a sentence, and an exception lives
at most 365 days from its approval. An expired exception is ignored (the violation is reported again).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from .config import SCHEMAS
from .strict_input import ReadError, read_yaml_file

EXCEPTIONS_FILE = Path(__file__).resolve().parent / "exceptions.yaml"
FIELDS = ("policy", "stack", "resource", "reason", "approvedBy", "approved", "expires")
OPTIONAL_FIELDS = ("ticket",)
MAX_DAYS = 365
MIN_REASON_CHARS = 40


@dataclass(frozen=True)
class PolicyException:
    policy: str
    stack: str
    resource: str
    reason: str
    approved_by: str
    approved: dt.date
    expires: dt.date
    ticket: Optional[str] = None

    def active(self, today: dt.date) -> bool:
        return today <= self.expires

    def covers(self, policy: str, stack: Optional[str], resource: Optional[str], today: dt.date) -> bool:
        return (self.active(today) and self.policy == policy and self.stack == stack and resource is not None
                and self.resource == resource)


class ExceptionsError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _date(value: Any) -> Optional[dt.date]:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_exceptions(doc: Any, source: str = "policies/exceptions.yaml") -> list[PolicyException]:
    """Validate the register's document ({"exceptions": [...]}) and return its entries; raise naming entry and key."""
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise ExceptionsError(source, ["the file is a mapping with one key, `exceptions`, holding a list of entries"])
    extra = [k for k in doc if k != "exceptions"]
    if extra:
        raise ExceptionsError(source, [f"{str(k)[:80]}: unknown key; the file holds one key, `exceptions`, a list of "
                                       "entries" for k in extra])
    entries = doc.get("exceptions") or []
    if not isinstance(entries, list):
        raise ExceptionsError(source, ["exceptions: expected a list of entries"])
    problems: list[str] = []
    out: list[PolicyException] = []
    seen: set[tuple[str, str, str]] = set()
    for i, entry in enumerate(entries):
        where = f"exceptions[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with {', '.join(FIELDS)}")
            continue
        for key in entry:
            if key not in FIELDS + OPTIONAL_FIELDS:
                problems.append(f"{where}.{key}: unknown key; valid keys: {', '.join(FIELDS + OPTIONAL_FIELDS)}")
        missing = [k for k in FIELDS if entry.get(k) in (None, "")]
        problems += [f"{where}.{k}: is required (no blanket waivers)" for k in missing]
        if missing:
            continue
        policy, stack, resource, reason = (str(entry[k]) for k in ("policy", "stack", "resource", "reason"))
        if policy not in SCHEMAS:
            problems.append(f"{where}.policy: {policy!r} is not a policy of this pack")
        for key, value in (("stack", stack), ("resource", resource)):
            if "*" in value or "?" in value:
                problems.append(f"{where}.{key}: {value!r} is a pattern; an exception names exactly one {key}")
        if len(reason.strip()) < MIN_REASON_CHARS or not re.search(r"[.!?](\s|$)", reason):
            problems.append(f"{where}.reason: give at least one full sentence ({MIN_REASON_CHARS}+ characters) saying "
                            "why the control cannot be met and what mitigates the risk")
        approved, expires = _date(entry["approved"]), _date(entry["expires"])
        if approved is None:
            problems.append(f"{where}.approved: expected a date YYYY-MM-DD, got {entry['approved']!r}")
        if expires is None:
            problems.append(f"{where}.expires: expected a date YYYY-MM-DD, got {entry['expires']!r}")
        if approved and expires:
            if expires < approved:
                problems.append(f"{where}.expires: {expires} is before approved ({approved})")
            elif (expires - approved).days > MAX_DAYS:
                problems.append(f"{where}.expires: {expires} is more than {MAX_DAYS} days after approved ({approved}); "
                                "renew the exception instead")
        key3 = (policy, stack, resource)
        if key3 in seen:
            problems.append(f"{where}: a second exception for {policy} on {stack}/{resource}")
        seen.add(key3)
        if approved and expires:
            out.append(PolicyException(policy, stack, resource, reason.strip(), str(entry["approvedBy"]), approved, expires,
                                       str(entry["ticket"]) if entry.get("ticket") else None))
    if problems:
        raise ExceptionsError(source, problems)
    return out


def load_exceptions(path: Optional[Path] = None) -> list[PolicyException]:
    """The register's entries; no file means no exceptions. Read strictly (strict_input): a repeated key, bytes that
    are not UTF-8, a directory or a path that cannot be read is refused, never read as something else."""
    path = Path(path) if path else EXCEPTIONS_FILE
    try:
        if not path.exists() and path.parent.is_dir():
            return []
    except (OSError, ValueError):
        pass  # read_yaml_file names what is wrong with the path
    try:
        doc = read_yaml_file(path, "policy exceptions")
    except ReadError as exc:
        raise ExceptionsError(str(path), [f"{w}: {m}" if w else m for w, m in exc.problems]) from None
    return parse_exceptions(doc, str(path))


def find(exceptions: Iterable[PolicyException], policy: str, stack: Optional[str], resource: Optional[str],
         today: dt.date) -> Optional[PolicyException]:
    for e in exceptions:
        if e.covers(policy, stack, resource, today):
            return e
    return None


def expired(exceptions: Iterable[PolicyException], today: dt.date, stack: Optional[str] = None) -> list[PolicyException]:
    return [e for e in exceptions if not e.active(today) and (stack is None or e.stack == stack)]
