"""One error type for every bad input, so the CLI can print it and exit 2 without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError


class InputError(Exception):
    """A profile, catalog, stack config or command argument that cannot be used.

    Every problem names the file and the field it is about, and what would be valid.
    """

    def __init__(self, source: str | Path, problems: Iterable[tuple[str, str]]):
        self.source = str(source)
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for field, message in self.problems:
            where = f"{self.source}: {field}" if field else self.source
            lines.append(f"{where}: {message}")
        return "\n".join(lines)


def refuse(source: str | Path, field: str, message: str) -> InputError:
    return InputError(source, [(field, message)])


def read_yaml(path: Path, what: str) -> Any:
    """Read a YAML document, turning a missing file or a syntax error into an InputError."""
    if not path.exists():
        raise refuse(path, "", f"no such {what} file")
    if not path.is_file():
        raise refuse(path, "", f"is not a file (expected a {what} YAML file)")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or str(exc)
        raise refuse(path, at, f"not valid YAML: {problem}") from None


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
                message += f" (got {err['input']!r})"
        problems.append((field, message))
    return InputError(source, problems)
