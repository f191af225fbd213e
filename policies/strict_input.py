"""Reading a user's YAML or JSON file strictly: one place for every loader of the kit and of the pack.

It lives in the pack because the pack's own virtualenv (PulumiPolicy.yaml) ships only this directory and PyYAML;
`planner.errors.read_yaml` / `read_json` wrap it for the kit. Needs nothing but the standard library and PyYAML.

What it refuses, each as a `ReadError` naming the line or the key path, before any loader sees the data:
- a path that cannot be read as a file (missing, in a missing directory, a directory, too long, not permitted), a
  file larger than any hand-written input, or bytes that are not UTF-8;
- a key repeated in one mapping or object: YAML and JSON both let the second silently replace the first (a second
  `traffic:` block, a second `"all"`), which is a different document from the one the author reads;
- nesting deeper than any input of the kit needs, and anchors/aliases that expand far beyond the text (the
  "billion laughs" document), or that refer to a value containing them (a cycle): the models, digests and JSON
  dumps downstream walk the expanded value.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from json.decoder import JSONObject
from json.scanner import py_make_scanner
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 2_000_000  # the largest input of the kit (the catalog) is about 0.1 MB
MAX_DEPTH = 64  # levels of nesting; the deepest input of the kit uses about 6
MAX_VALUES = 500_000  # values after expanding aliases; a document that spells out its values stays far below
_MERGE_TAG = "tag:yaml.org,2002:merge"
_KEY_CHARS = 80  # how much of a key a path quotes


class ReadError(ValueError):
    """A file that cannot be read as the kit's input; `problems` are (where, message), `where` a line or key path."""

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{w}: {m}" if w else m for w, m in self.problems))


def _fail(where: str, message: str) -> ReadError:
    return ReadError([(where, message)])


def _os_problem(exc: OSError, path: Path, what: str) -> str:
    code = exc.errno
    if code == errno.ENOENT:
        parent = path.parent
        if str(parent) not in ("", ".") and not os.path.isdir(parent):
            return f"no such {what} file: its directory {_clip_path(str(parent))} does not exist"
        return f"no such {what} file"
    if code == errno.EISDIR:
        return f"is a directory, not a {what} file"
    if code == errno.ENOTDIR:
        return f"no such {what} file: a part of the path is a file, not a directory"
    if code == errno.ENAMETOOLONG:
        return f"the path is too long for the file system ({len(str(path))} characters); give the {what} file's real path"
    if code in (errno.EACCES, errno.EPERM):
        return f"cannot read the {what} file: permission denied"
    if code == errno.ELOOP:
        return f"cannot read the {what} file: its symbolic links form a loop"
    return f"cannot read the {what} file: {exc.strerror or exc}"


def _clip_path(text: str, head: int = 60, tail: int = 100) -> str:
    return text if len(text) <= head + tail + 3 else f"{text[:head]}...{text[-tail:]}"


def read_text(path: Path | str, what: str, missing: Optional[str] = None, max_bytes: int = MAX_BYTES) -> str:
    """The file's text, decoded as UTF-8 (a leading BOM is dropped). `missing` replaces the no-such-file message."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and missing and os.path.isdir(path.parent or "."):
            raise _fail("", missing) from None
        raise _fail("", _os_problem(exc, path, what)) from None
    except ValueError:  # a NUL byte in the path
        raise _fail("", f"is not a usable path (it contains a NUL character); give the {what} file's path") from None
    if stat.S_ISDIR(info.st_mode):
        raise _fail("", f"is a directory, not a {what} file")
    if not stat.S_ISREG(info.st_mode):
        raise _fail("", f"is not a regular file (a {what} file is read from disk, not from a device or a pipe)")
    if info.st_size > max_bytes:
        raise _fail("", f"is {info.st_size / 1e6:.1f} MB; a {what} file is at most {max_bytes / 1e6:.1f} MB")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise _fail("", _os_problem(exc, path, what)) from None
    if len(data) > max_bytes:
        raise _fail("", f"is more than {max_bytes / 1e6:.1f} MB; a {what} file is at most that")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(f"line {line}, column {column}",
                    f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save the {what} file as UTF-8") from None


# --- YAML ------------------------------------------------------------------------------------------------------

class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing at MAX_DEPTH levels, long before the interpreter's recursion limit (the
    pure-Python parser: libyaml's crashes the process on deep nesting)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """One YAML document, checked for repeated keys, depth and alias expansion before it is constructed."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _check_tree(node)
        if problems:
            raise ReadError(problems)
        return loader.construct_document(node)
    except _TooDeep as exc:
        raise _fail(f"line {exc.line}", f"is nested more than {MAX_DEPTH} levels deep; no input of the kit nests "
                                        "that deep") from None
    except RecursionError:
        raise _fail("", f"is nested too deeply to read (an input of the kit nests at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(where, f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def _key_text(node: Node) -> str:
    text = str(node.value) if isinstance(node, ScalarNode) else "<complex key>"
    return text if len(text) <= _KEY_CHARS else text[:_KEY_CHARS] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_tree(root: Node) -> list[tuple[str, str]]:
    """Repeated keys (every one, by key path and lines); the first depth, cycle or expansion problem stops the walk.

    Iterative, so a deep document fails here with a message rather than deep inside the interpreter."""
    problems: list[tuple[str, str]] = []
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes on the current path: meeting one again is a cycle
    todo: list[tuple[Node, str, int, bool]] = [(root, "", 0, False)]
    while todo:
        node, path, depth, leaving = todo.pop()
        nid = id(node)
        if leaving:
            open_.discard(nid)
            size[nid] = 1 + sum(size[id(c)] for _, c in _children(node, path))
            if size[nid] > MAX_VALUES:
                raise _fail(path or "document", f"its anchors and aliases expand to more than {MAX_VALUES} values; "
                                                "write the repeated values out instead of nesting aliases")
            continue
        if nid in size:
            continue
        if nid in open_:
            raise _fail(path or "document", f"an alias (line {node.start_mark.line + 1}) refers to a value that "
                                            "contains it; a value cannot include itself")
        if depth > MAX_DEPTH:
            raise _fail(f"line {node.start_mark.line + 1}", f"is nested more than {MAX_DEPTH} levels deep; "
                                                            "no input of the kit nests that deep")
        open_.add(nid)
        todo.append((node, path, depth, True))
        children = _children(node, path)
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue  # a merge (<<) may be overridden by the mapping's own keys
                line = key_node.start_mark.line + 1
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    problems.append((_join(path, _key_text(key_node)),
                                     f"repeated key (first at line {seen[ident]}, again at line {line}); the second "
                                     "would silently replace the first, so keep one"))
                else:
                    seen[ident] = line
        for child_path, child in reversed(children):
            todo.append((child, child_path, depth + 1, False))
    return problems


def _children(node: Node, path: str) -> list[tuple[str, Node]]:
    if isinstance(node, MappingNode):
        out: list[tuple[str, Node]] = []
        for key_node, value_node in node.value:
            out.append((path, key_node))
            merged = key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode)
            out.append((path if merged else _join(path, _key_text(key_node)), value_node))
        return out
    if isinstance(node, SequenceNode):
        return [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
    return []


# --- JSON ------------------------------------------------------------------------------------------------------

def load_json(text: str) -> Any:
    """One JSON document, with every repeated key of an object refused by key path and line."""
    objects: list[tuple[int, int, dict]] = []  # (start, end, object) of every object, in the order they close
    repeats: list[tuple[int, int, dict, str]] = []  # (start, end, object, key)

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        start = s_and_end[1] - 1
        keys: list[str] = []

        def pairs_hook(pairs):
            keys.extend(k for k, _ in pairs)
            return dict(pairs)

        obj, end = JSONObject(s_and_end, strict, scan_once, object_hook, pairs_hook, memo)
        if len(obj) != len(keys):
            once: set[str] = set()
            for key in keys:
                if key in once:
                    repeats.append((start, end, obj, key))
                once.add(key)
        objects.append((start, end, obj))
        return obj, end

    decoder = json.JSONDecoder(parse_constant=_NonFinite)
    decoder.parse_object = parse_object
    decoder.scan_once = py_make_scanner(decoder)  # the C scanner would not call parse_object
    try:
        doc = decoder.decode(text)
    except RecursionError:
        raise _fail("", f"is nested too deeply to read (an input of the kit nests at most {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}") from None
    paths, odd = _json_paths(doc)
    if odd:
        raise ReadError([(path, f"{name} is not a JSON number; write a finite number") for path, name in odd])
    if repeats:
        problems = []
        for n, (start, end, obj, key) in enumerate(repeats):
            lines = _key_lines(text, start, end, key, objects) if n < 25 else []  # a refusal shows the first few
            at = (f"at lines {', '.join(map(str, lines))}" if len(set(lines)) > 1 else
                  f"more than once on line {lines[0]}" if lines else "more than once")
            problems.append((_join(paths.get(id(obj), "?"), key[:_KEY_CHARS]),
                             f"repeated key ({at}); the second would silently replace the first, so keep one"))
        raise ReadError(problems)
    return doc


class _NonFinite(str):
    """NaN, Infinity or -Infinity, which Python's json reads as floats though JSON has no such numbers."""


def _json_paths(doc: Any) -> tuple[dict[int, str], list[tuple[str, str]]]:
    """The key path of every object in a decoded document, by identity, and where NaN/Infinity stand; refuses
    nesting deeper than MAX_DEPTH."""
    out: dict[int, str] = {}
    odd: list[tuple[str, str]] = []
    todo = [(doc, "", 0)]
    while todo:
        value, path, depth = todo.pop()
        if isinstance(value, _NonFinite):
            odd.append((path, str(value)))
        if depth > MAX_DEPTH and isinstance(value, (dict, list)):
            raise _fail("", f"is nested more than {MAX_DEPTH} levels deep; no input of the kit nests that deep")
        if isinstance(value, dict):
            out[id(value)] = path
            todo.extend((v, _join(path, str(k)[:_KEY_CHARS]), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    return out, odd


def _key_lines(text: str, start: int, end: int, key: str, objects: list[tuple[int, int, dict]]) -> list[int]:
    """The lines where `key` is a key of the object spanning text[start:end] (not of an object nested in it)."""
    nested = [(s, e) for s, e, _ in objects if start < s and e <= end]
    needle = json.dumps(key, ensure_ascii=False)
    lines, at = [], text.find(needle, start, end)
    while at != -1:
        after = text[at + len(needle):end].lstrip()
        if after.startswith(":") and not any(s <= at < e for s, e in nested):
            lines.append(text.count("\n", 0, at) + 1)
        at = text.find(needle, at + 1, end)
    return lines


# --- files -----------------------------------------------------------------------------------------------------

def read_yaml_file(path: Path | str, what: str, missing: Optional[str] = None) -> Any:
    return load_yaml(read_text(path, what, missing))


def read_json_file(path: Path | str, what: str, missing: Optional[str] = None) -> Any:
    return load_json(read_text(path, what, missing))
