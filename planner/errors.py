"""One error type for every bad input, so the CLI can print it and exit 2 without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from policies.strict_input import ReadError, read_text
from policies.strict_input import load_json as _load_json
from policies.strict_input import load_yaml as _load_yaml

# A refusal fits a screen: at most this many problems, each line clipped, however large the input was.
MAX_PROBLEMS = 20
MAX_FIELD_CHARS = 120
MAX_MESSAGE_CHARS = 600
MAX_SOURCE_CHARS = 160


def clip(text: str, limit: int = 200) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def quote(value: Any, limit: int = 200) -> str:
    """repr() of a user's value for a message, at most about `limit` characters of it."""
    return clip(repr(value), limit)


def _clip_source(text: str) -> str:
    # A path's end (the file name) says the most; keep its start too, so it is still recognisable.
    keep = MAX_SOURCE_CHARS // 2
    return text if len(text) <= MAX_SOURCE_CHARS else f"{text[:keep]}...{text[-keep:]}"


class InputError(Exception):
    """A profile, catalog, stack config or command argument that cannot be used.

    Every problem names the file and the field it is about, and what would be valid.
    """

    def __init__(self, source: str | Path, problems: Iterable[tuple[str, str]]):
        self.source = str(source)
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        source = _clip_source(self.source)
        lines, shown = [], set()
        for field, message in self.problems[:MAX_PROBLEMS]:
            where = f"{source}: {clip(field, MAX_FIELD_CHARS)}" if field else source
            if message in shown and ";" in message:
                # The same long message for many fields (e.g. every unknown key): say what is wrong, not again what is valid.
                lines.append(f"{where}: {clip(message.split(';', 1)[0], MAX_MESSAGE_CHARS)} (as above)")
            else:
                lines.append(f"{where}: {clip(message, MAX_MESSAGE_CHARS)}")
            shown.add(message)
        more = len(self.problems) - MAX_PROBLEMS
        if more > 0:
            lines.append(f"{source}: ... and {more} more problem(s) not shown; fix these and run again to see them")
        return "\n".join(lines)


def refuse(source: str | Path, field: str, message: str) -> InputError:
    return InputError(source, [(field, message)])


def read_yaml(path: Path, what: str, missing: str | None = None) -> Any:
    """Read a YAML document strictly (policies/strict_input.py): an unreadable path, bytes that are not UTF-8, a
    syntax error, a repeated key, deep nesting or exploding aliases become an InputError naming the file.
    `missing` replaces the no-such-file message (to say how to create the file)."""
    try:
        return _load_yaml(read_text(path, what, missing))
    except ReadError as exc:
        raise InputError(path, exc.problems) from None


def read_json(path: Path, what: str, missing: str | None = None) -> Any:
    """read_yaml's twin for JSON (a repeated key in an object is refused, naming its key path and lines)."""
    try:
        return _load_json(read_text(path, what, missing))
    except ReadError as exc:
        raise InputError(path, exc.problems) from None


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk a model class along an error location to the model that holds the last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside Optional[...] / list[...] / dict[str, ...] annotations, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def from_validation_error(source: str | Path, exc: ValidationError, model: type[BaseModel],
                          prefix: str = "") -> InputError:
    """Turn pydantic's errors into file + field + what-is-valid messages."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        field = _field_path(loc)
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(model, loc)
            valid = sorted(f.alias or name for name, f in owner.model_fields.items()) if owner else []
            message = "unknown key" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
        elif kind == "missing":
            message = "is required but missing"
        else:
            message = err["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if kind not in ("value_error", "assertion_error") and "input" in err and not isinstance(err["input"], (dict, list)):
                message += f" (got {quote(err['input'])})"
        problems.append((field, message))
    return InputError(source, problems)
