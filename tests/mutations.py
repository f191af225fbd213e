"""Mutated input files and command lines, and the README's bad-input promise as a check on one CLI run.

A mutation is what a person does to a file by hand or by accident: delete a key, add one that does not exist, give
a value the wrong type or an absurd size, repeat a key, save in the wrong encoding, cut the file short, or point
the command at a directory. The documents are written back as text by `emit_yaml` / `emit_json` (not by a YAML or
JSON library), so a repeated key is really in the file, as it would be after a hand edit.

`verdict` holds one run to the promise: exit 0 or 2 (1 only for a policy verdict of `preview`), no traceback, a
refusal naming the file and a field, nothing written and nothing registered on a refusal, and a screenful of
output at most. It returns the classes of the broken promises, so the test can assert none and a measurement can
count them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from hypothesis import assume
from hypothesis import strategies as st

# A refusal has to fit a terminal: this many lines and bytes of stderr at most.
MAX_LINES = 60
MAX_BYTES = 8 * 1024

VALUE_KINDS = ("delete-key", "unknown-key", "retype", "number", "string", "list", "plausible")
TEXT_KINDS = ("duplicate-key", "not-utf8", "truncated", "directory", "empty", "deep-nesting", "flood")
# Mutations after which the file is bad whatever it held: the run has to refuse it (exit 2).
MUST_REFUSE = {"unknown-key", "duplicate-key", "directory", "deep-nesting", "flood"}
# Mutations of the file as a whole: the refusal names the file; a field is named when there is one to name.
FILE_LEVEL = {"not-utf8", "truncated", "directory", "empty", "deep-nesting"}

LONG = "x" * 10_000
STRINGS = ("", " ", LONG, "Ünïcødé-区域-🚀", "\x00\x07\x1b[31mred", "two\nlines", "../../etc/passwd")
NUMBERS = (0, -1, 10**12, 10**30, 1e308, math.nan, math.inf, -math.inf, 0.5)
OTHER_TYPES = ("text", 7, 2.5, True, None, [], {}, ["a"], {"k": 1})
# Wrong but plausible values in the kit's own vocabulary: what a hand edit that follows the README looks like.
PLAUSIBLE = ("0.0.0.0/0", "10.0.0.0/33", "10.0.0.0", "405b", "us-east-1", "europe-west4", "fp16", "hybrid",
             "disabled", "advisory", "true", 1, 2, 59, 3601, 100, 99.999)


class Pairs(list):
    """A mapping written as (key, value) pairs, so a key can appear twice in the emitted text."""


class Raw(str):
    """Text emitted verbatim (a value no library would write, e.g. a thousand nested brackets)."""


# ---- writing documents back as text -------------------------------------------------------------------------

def _scalar_yaml(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=math.inf)
    return text[:-len("\n...\n")] if text.endswith("\n...\n") else text.rstrip("\n")


def _items(node: Any) -> list[tuple[Any, Any]]:
    return list(node) if isinstance(node, Pairs) else list(node.items())


def emit_yaml(node: Any, indent: int = 0) -> str:
    """Block-style YAML for `node` (dicts, Pairs, lists, scalars), one key or item per line."""
    pad = " " * indent
    if isinstance(node, (dict, Pairs)) and _items(node):
        out = []
        for key, value in _items(node):
            head = f"{pad}{_scalar_yaml(key)}:"
            if isinstance(value, (dict, Pairs, list)) and len(value):
                out.append(head + "\n" + emit_yaml(value, indent + 2))
            else:
                out.append(f"{head} {_scalar_yaml(value) if not isinstance(value, (dict, list)) else '{}' if isinstance(value, dict) else '[]'}")
        return "\n".join(out)
    if isinstance(node, list) and node:
        out = []
        for item in node:
            if isinstance(item, (dict, Pairs, list)) and len(item):
                out.append(f"{pad}-\n" + emit_yaml(item, indent + 2))
            else:
                out.append(f"{pad}- {_scalar_yaml(item) if not isinstance(item, (dict, list)) else '{}' if isinstance(item, dict) else '[]'}")
        return "\n".join(out)
    if isinstance(node, (dict, Pairs)):
        return pad + "{}"
    if isinstance(node, list):
        return pad + "[]"
    return pad + _scalar_yaml(node)


def emit_json(node: Any, indent: int = 0) -> str:
    """JSON for `node`; Pairs keep their repeated keys, NaN and Infinity are written as Python's json writes them."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(node, Raw):
        return str(node)
    if isinstance(node, (dict, Pairs)):
        if not _items(node):
            return "{}"
        body = ",\n".join(f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {emit_json(v, indent + 2)}" for k, v in _items(node))
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(node, list):
        if not node:
            return "[]"
        return "[\n" + ",\n".join(inner + emit_json(v, indent + 2) for v in node) + "\n" + pad + "]"
    return json.dumps(node, ensure_ascii=False)


def emit(node: Any, fmt: str) -> str:
    return (emit_yaml(node) if fmt == "yaml" else emit_json(node)) + "\n"


# ---- paths into a document ----------------------------------------------------------------------------------

DocPath = tuple  # keys and list indices from the document's root


def node_paths(doc: Any, prefix: DocPath = ()) -> list[DocPath]:
    """Every node's path, the root's () first."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += node_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += node_paths(v, prefix + (i,))
    return out


def get_at(doc: Any, path: DocPath) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def replace_at(doc: Any, path: DocPath, value: Any) -> Any:
    """A copy of `doc` with the node at `path` replaced (the root when path is ())."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, list):
        return [replace_at(v, rest, value) if i == head else v for i, v in enumerate(doc)]
    return {k: (replace_at(v, rest, value) if k == head else v) for k, v in doc.items()}


def delete_at(doc: Any, path: DocPath) -> Any:
    parent = get_at(doc, path[:-1])
    if isinstance(parent, list):
        new = [v for i, v in enumerate(parent) if i != path[-1]]
    else:
        new = {k: v for k, v in parent.items() if k != path[-1]}
    return replace_at(doc, path[:-1], new)


def field_name(path: DocPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list))


# ---- mutations ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    kind: str
    detail: str  # what was done, for the failure report
    content: Optional[bytes] = field(repr=False)  # the file's new bytes; None: the file is replaced by a directory
    path: DocPath = ()
    near: tuple[str, ...] = ()  # keys inside what was deleted or replaced: a refusal may name one of those instead

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis shows the draw of a failing case
        printer.text(f"Mutation({self.kind}: {self.detail})")

    @property
    def must_refuse(self) -> bool:
        return self.kind in MUST_REFUSE

    @property
    def file_level(self) -> bool:
        return self.kind in FILE_LEVEL or (self.kind == "retype" and not self.path)


@dataclass(frozen=True)
class Doc:
    """One input file to mutate: its parsed document and how unknown keys are spelled where."""
    name: str
    text: str = field(repr=False)
    data: Any = field(repr=False)
    fmt: str  # yaml | json
    # The prefix an unknown key needs at `path` to be the kit's (e.g. `llm-hosting:` directly under a stack's config).
    key_prefix: Callable[[DocPath], str] = field(default=lambda path: "", repr=False)
    # Paths under which an unknown key is the kit's to refuse (a stack file's `aws:` keys belong to the provider).
    strict: Callable[[DocPath], bool] = field(default=lambda path: True, repr=False)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(f"Doc({self.name})")

    @classmethod
    def read(cls, path: Path, **kw) -> "Doc":
        text = path.read_text()
        fmt = "json" if path.suffix == ".json" else "yaml"
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
        return cls(path.name, text, data, fmt, **kw)

    def paths(self, where: Callable[[DocPath, Any], bool]) -> list[DocPath]:
        return [p for p in node_paths(self.data) if where(p, get_at(self.data, p))]

    def write(self, data: Any) -> bytes:
        return emit(data, self.fmt).encode()

    def applicable(self, kind: str) -> bool:
        """Whether the document has a place for a mutation of `kind` (a register without numbers has none for
        `number`)."""
        nodes = [(p, get_at(self.data, p)) for p in node_paths(self.data)]
        values = [v for _, v in nodes]
        if kind in ("delete-key", "retype", "plausible", "deep-nesting"):
            return len(nodes) > 1
        if kind == "number":
            return any(_is_number(v) for v in values)
        if kind in ("string", "not-utf8"):
            return any(isinstance(v, str) for v in values)
        if kind == "list":
            return any(isinstance(v, list) for v in values)
        if kind == "duplicate-key":
            return any(isinstance(v, dict) and v for v in values)
        if kind in ("unknown-key", "flood"):
            return any(isinstance(v, dict) and self.strict(p) for p, v in nodes)
        return True


def _typo(key: str) -> list[str]:
    ns, _, name = key.rpartition(":")
    ns = ns + ":" if ns else ""
    return [ns + name[:-1], ns + name + "s", ns + name.replace("_", "").replace("-", "") + "X", ns + "extra"]


@st.composite
def mutations(draw, doc: Doc, kind: str) -> Mutation:
    """One mutation of `kind` at a place in `doc` that hypothesis chooses."""
    d = doc.data

    def pick(where) -> DocPath:
        candidates = doc.paths(where)
        assume(candidates)
        return draw(st.sampled_from(candidates))

    def done(new: Any, detail: str, path: DocPath) -> Mutation:
        old = get_at(d, path) if path and kind in ("delete-key", "retype") else None
        near = tuple(str(k) for p in node_paths(old) for k in p[-1:] if isinstance(k, str)) if old is not None else ()
        return Mutation(kind, detail, doc.write(new), path, near)

    if kind == "delete-key":
        p = pick(lambda p, v: len(p) > 0)
        return done(delete_at(d, p), f"deleted {field_name(p)}", p)
    if kind == "unknown-key":
        p = pick(lambda p, v: isinstance(v, dict) and doc.strict(p))
        siblings = get_at(d, p)
        pool = [doc.key_prefix(p) + k.rpartition(":")[2] for k in siblings] or ["key"]
        base = draw(st.sampled_from(pool))
        key = draw(st.sampled_from([k for k in _typo(base) if k not in siblings] or [doc.key_prefix(p) + "extraKey"]))
        value = draw(st.sampled_from(("text", 1, True, ["a"], {"k": 1})))
        return done(replace_at(d, p, {**siblings, key: value}), f"added unknown key {field_name(p + (key,))}", p + (key,))
    if kind == "retype":  # the root too: a profile that is a list, a project file that is a string
        p = pick(lambda p, v: True)
        old = get_at(d, p)
        value = draw(st.sampled_from([v for v in OTHER_TYPES if type(v) is not type(old)]))
        return done(replace_at(d, p, value), f"set {field_name(p) or 'the whole document'} to {value!r} (was "
                    f"{type(old).__name__})", p)
    if kind == "number":
        p = pick(lambda p, v: _is_number(v))
        old = get_at(d, p)
        value = draw(st.sampled_from([*NUMBERS, -old]))
        return done(replace_at(d, p, value), f"set {field_name(p)} to {value!r} (was {old!r})", p)
    if kind == "string":
        p = pick(lambda p, v: isinstance(v, str))
        value = draw(st.sampled_from(STRINGS))
        return done(replace_at(d, p, value), f"set {field_name(p)} to {value[:20]!r}{'...' if len(value) > 20 else ''}", p)
    if kind == "list":
        p = pick(lambda p, v: isinstance(v, list))
        old = get_at(d, p)
        value = draw(st.sampled_from([[], old + old[:1]] if old else [[], [None]]))
        return done(replace_at(d, p, value), f"set {field_name(p)} to {'[]' if not value else 'a list with a duplicate'}", p)
    if kind == "plausible":
        p = pick(lambda p, v: len(p) > 0 and _is_scalar(v))
        old = get_at(d, p)
        value = draw(st.sampled_from([v for v in PLAUSIBLE if v != old]))
        return done(replace_at(d, p, value), f"set {field_name(p)} to {value!r} (was {old!r})", p)
    if kind == "duplicate-key":
        p = pick(lambda p, v: isinstance(v, dict) and v)
        mapping = get_at(d, p)
        key = draw(st.sampled_from(sorted(mapping, key=str)))
        old = mapping[key]
        second = draw(st.sampled_from([old, *[v for v in PLAUSIBLE if v != old][:6], {"k": 1}]))
        new = replace_at(d, p, Pairs([*mapping.items(), (key, second)]))
        return done(new, f"repeated the key {field_name(p + (key,))} (second value {str(second)[:30]!r})", p + (key,))
    if kind == "not-utf8":
        raw = doc.text.encode()
        how = draw(st.sampled_from(("latin-1", "byte", "utf-16")))
        if how == "utf-16":
            return Mutation(kind, "saved as UTF-16", doc.text.encode("utf-16"))
        at = draw(st.integers(0, len(raw)))
        if how == "byte":
            return Mutation(kind, f"inserted the byte 0xff at offset {at}", raw[:at] + b"\xff" + raw[at:])
        # A value with an accented letter, saved by an editor in Latin-1.
        p = pick(lambda p, v: isinstance(v, str) and p)
        text = emit(replace_at(d, p, get_at(d, p) + "é"), doc.fmt)
        return Mutation(kind, f"saved in Latin-1 with an accent in {field_name(p)}", text.encode("latin-1", "replace"), p)
    if kind == "truncated":
        raw = doc.text.encode()
        at = draw(st.integers(0, len(raw) - 1))
        return Mutation(kind, f"cut after {at} of {len(raw)} bytes", raw[:at])
    if kind == "directory":
        return Mutation(kind, "a directory instead of the file", None)
    if kind == "empty":
        content = draw(st.sampled_from((b"", b"\n", b"# nothing here\n", b"null\n")))
        return Mutation(kind, f"the file holds only {content!r}", content)
    if kind == "deep-nesting":
        p = pick(lambda p, v: len(p) > 0)
        depth = 1_000  # past PyYAML's and json's recursion limits
        return done(replace_at(d, p, Raw("[" * depth + "]" * depth)), f"{field_name(p)} nested {depth} lists deep", p)
    if kind == "flood":
        p = pick(lambda p, v: isinstance(v, dict) and doc.strict(p))
        many = {f"{doc.key_prefix(p)}unknownKey{i:05d}": i for i in range(5_000)}
        return done(replace_at(d, p, {**get_at(d, p), **many}), f"added 5000 unknown keys under {field_name(p) or 'the root'}",
                    p + (next(iter(many)),))
    raise ValueError(kind)


def install(path: Path, mutation: Mutation) -> None:
    """Put the mutated file (or a directory) where the original was."""
    if path.exists() and not path.is_dir():
        path.unlink()
    if mutation.content is None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "placeholder.txt").write_text("a directory where a file belongs\n")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mutation.content)


# ---- the promise ------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under `root`, with a hash of each file's bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


_FIELD = re.compile(r"^(--[\w-]+|line \d+, column \d+|[\w$-][\w:$.\-]*(\[\d+\])*(\.[\w:$\-]+(\[\d+\])*)*)$")


@dataclass
class Run:
    """One CLI run and what it left behind, as `verdict` needs it."""
    exit_code: int
    stdout: str
    stderr: str
    exception: Optional[BaseException]
    wrote: list[str] = field(default_factory=list)  # files created or changed in the project or the cwd
    registered: int = 0  # cloud resources the program registered during the run
    verdict_exit: bool = False  # exit 1 came from the policy pack's verdict
    seconds: float = 0.0
    trace: str = ""  # the innermost frames of an uncaught exception, for the failure report


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def names_file_and_field(stderr: str, sources: tuple[str, ...], need_field: bool) -> tuple[bool, bool]:
    """(a refusal line names one of `sources`, such a line names a field after it). A source `*/stacks/x.yaml` is a
    project file, named by its path in the project or by a longer path ending in it."""
    named = field_named = False
    for line in error_lines(stderr):
        rest = line[len("error: "):]
        for src in sources:
            if src.startswith("*/"):  # a file of the project: its path from the project or from anywhere above
                found = re.match(r"(\S*/)?" + re.escape(src[2:]) + r"(: |$)", rest)
                given = found.group(0).removesuffix(": ") if found else None
            else:
                given = src if rest == src or rest.startswith(src + ": ") else None
            if given is not None:
                named = True
                head = rest[len(given) + 2:].split(": ", 1)
                if len(head) == 2 and _FIELD.match(head[0]):
                    field_named = True
    return named, (field_named or not need_field)


def names_the_mutated_field(stderr: str, path: DocPath, near: tuple[str, ...] = ()) -> bool:
    """Whether a refusal line names the mutated key, a key above it (a stack file's `config` only when it is the key
    mutated) or one inside what was deleted: a refusal about another field, or about a Python argument, sends the
    user to the wrong place."""
    keys = [p for p in path if isinstance(p, str) and (p != "config" or len(path) == 1)] + list(near)
    lines = error_lines(stderr)
    return not keys or any(k in line for line in lines for k in keys)


def verdict(run: Run, *, sources: tuple[str, ...], must_refuse: bool, file_level: bool = False,
            mentions: tuple[str, ...] = (), path: DocPath = (), near: tuple[str, ...] = ()) -> list[str]:
    """The promises `run` broke, as classes: traceback, exit N, accepted, file not named, no field named, wrong field
    named, file written, registered, flood. `sources`: how a refusal may name the file (the path as given on the command line;
    `*/<path in the project>` for a project file). `mentions`: for a command-line mutation, what the refusal must mention instead."""
    broken = []
    if (run.exception is not None and not isinstance(run.exception, SystemExit)) or \
            "Traceback" in run.stdout + run.stderr:
        broken.append("traceback")
    elif run.exit_code == 1 and not run.verdict_exit:
        broken.append("exit 1")
    elif run.exit_code not in (0, 1, 2):
        broken.append(f"exit {run.exit_code}")
    if run.exit_code == 0 and must_refuse:
        broken.append("accepted")
    if len(run.stderr.splitlines()) > MAX_LINES or len(run.stderr.encode()) > MAX_BYTES:
        broken.append("flood")
    if run.exit_code == 2 and "traceback" not in broken:
        if mentions:
            if not any(m in run.stderr for m in mentions):
                broken.append("file not named")
        else:
            named, field_ok = names_file_and_field(run.stderr, sources, not file_level)
            if not named:
                broken.append("file not named")
            elif not field_ok:
                broken.append("no field named")
            elif not file_level and not names_the_mutated_field(run.stderr, path, near):
                broken.append("wrong field named")
        if run.wrote:
            broken.append("file written")
        if run.registered:
            broken.append("registered")
    return broken
