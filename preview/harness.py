"""Run `__main__.py` for one stack under Pulumi's mocks and record what it registers.

It does what the CLI would do before the program starts (merge the Pulumi.yaml defaults with the stack file,
hand over config as strings, mark secrets), validates the config with the program's own loader first (so a bad
stack file fails before any resource), and runs as a preview: what the mocks answer is known and `apply` callbacks
run on it, while an output the mocks do not know stays unknown (shown as `[unknown]`), as `pulumi preview` shows it,
instead of turning into a None that callbacks would then act on. `run_foreign` previews a program the kit did not
write, from that program's own stack file.
"""

from __future__ import annotations

import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from planner.catalog import load_regions
from planner.errors import InputError, read_yaml, refuse
from planner.stack_config import PROJECT, load_stack_config
from planner.stackgen import STACK_NAME_RULE, valid_stack_name

SECRET_SIG = "4dabf18193072939515e22adb298388d"
MASK = "[secret]"
UNKNOWN = "[unknown]"  # a value known only after `pulumi up` (an output the cloud assigns), as a real preview shows it
UNKNOWN_SIG = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the Pulumi wire format marks an unknown value


class ProgramRefused(InputError):
    """The program stopped on its config; `registered` counts cloud resources registered before it did."""

    def __init__(self, source, problems, registered: int):
        super().__init__(source, problems)
        self.registered = registered


@dataclass
class Resource:
    type: str
    name: str
    parent: Optional[str]
    custom: bool
    inputs: dict[str, Any]
    options: dict[str, Any]
    urn: str
    dependencies: list[str] = field(default_factory=list)  # URNs this resource waits for (depends_on and inputs)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs, "options": self.options}


@dataclass
class PreviewResult:
    stack: str
    project: str
    resources: list[Resource]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    deploy_warning: Optional[str] = None  # StackConfig.deploy_warning(): what `pulumi up` of this stack needs
    # Multi-language components the program used: the inventory lacks their children, so it is incomplete.
    remote_components: list[str] = field(default_factory=list)

    def inventory(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in sorted(self.resources, key=lambda r: r.name)]

    def by_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Resource:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)


def _mask(value: Any) -> Any:
    """Replace every secret-wrapped value with a mask, recursively."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return MASK
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Numbers arrive as floats from the protobuf Struct; whole numbers become ints again; unknowns are marked."""
    if value == UNKNOWN_SIG:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def project_defaults(root: Path) -> tuple[str, dict[str, Any]]:
    """The project name and its config defaults, keyed the way the CLI keys them."""
    path = root / "Pulumi.yaml"
    doc = read_yaml(path, "project")
    if not isinstance(doc, dict):
        raise refuse(path, "", "the project file is a mapping (name, runtime, config, ...), "
                               f"not {type(doc).__name__ if doc is not None else 'empty'}")
    name = doc.get("name")
    if not name or not isinstance(name, str):
        raise refuse(path, "name", "the project file has no name")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise refuse(path, "config", "is a mapping of config keys to their defaults")
    defaults = {}
    for key, spec in config.items():
        if not isinstance(key, str):
            raise refuse(path, "config", f"keys are config names such as llm-hosting:tier; got {key!r}")
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            defaults[full] = spec["default"]
        elif isinstance(spec, dict) and "value" in spec:
            defaults[full] = spec["value"]
        elif not isinstance(spec, dict):
            defaults[full] = spec
    return name, defaults


def _as_config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _read_stack(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file, read strictly (repeated keys, encoding, size; planner.errors.read_yaml),
    with `secure:` values left as they are."""
    doc = read_yaml(path, "stack", missing="no such stack file; create it with `llmhost plan PROFILE --stack NAME`")
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise refuse(path, "config", "a stack file is a mapping with a `config:` mapping")
    values = dict(doc.get("config") or {})
    keys = [k for k in values if not isinstance(k, str)]
    if keys:
        raise refuse(path, "config", f"keys are strings such as llm-hosting:tier; got {keys[0]!r}")
    return values


def load_config(root: Path, stack: str) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """Merged config (defaults, then the stack file), the secret keys, and placeholders used for secrets."""
    project, defaults = project_defaults(root)
    stack_file = root / "stacks" / f"Pulumi.{stack}.yaml"
    if not valid_stack_name(stack):
        raise refuse(f"stacks/Pulumi.{stack}.yaml", "--stack", f"{stack!r} cannot name this stack's resources: use "
                                                             f"{STACK_NAME_RULE}")
    values = _read_stack(stack_file)
    merged = {**defaults, **values}
    secret_keys, placeholders = [], []
    for key, value in list(merged.items()):
        if isinstance(value, dict) and set(value) == {"secure"}:
            # The secrets provider is not reachable offline: stand in a placeholder, still marked secret.
            merged[key] = f"preview-placeholder-for-{key}"
            secret_keys.append(key)
            placeholders.append(key)
    rel = f"stacks/Pulumi.{stack}.yaml"
    cfg = load_stack_config(merged, rel)
    for name in cfg.required_secrets():
        key = f"{PROJECT}:{name}"
        if key not in merged:
            merged[key] = f"preview-placeholder-for-{key}"
            secret_keys.append(key)
            placeholders.append(key)
        elif key not in secret_keys:
            raise refuse(rel, key, "is stored in plain text; set it with `pulumi config set --secret` so it is encrypted")
    return project, merged, secret_keys, placeholders


def run_program(program: Callable[[], None], project: str, stack: str, config: dict[str, Any],
                secret_keys: Optional[list[str]] = None) -> PreviewResult:
    """Run `program` under the recording mocks with `config` (namespaced keys) and return what it registered.

    Raises pulumi.RunError (or whatever the program raises) unchanged; `run_preview` turns a RunError into a refusal.
    """
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings
    from pulumi.runtime.sync_await import _sync_await

    from .mocks import PreviewMocks, kubernetes_autonamed

    regions = load_regions()
    zones = {r: regions.zones(c, r) for c in ("aws", "gcp") for r in regions.for_cloud(c).regions}
    mocks = PreviewMocks(config.get("aws:region"), config.get("gcp:region"), config.get("gcp:project"), zones)

    rows: list[Resource] = []
    names_by_urn: dict[str, str] = {}
    remote: list[str] = []

    class Capture(pmocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            names_by_urn[response.urn] = request.name
            if request.type.startswith("pulumi:providers:"):
                mocks.provider_regions[response.urn] = raw.get("region")
            options = {}
            if request.protect:
                options["protect"] = True
            if request.retainOnDelete:
                options["retainOnDelete"] = True
            if request.additionalSecretOutputs:
                options["additionalSecretOutputs"] = sorted(set(request.additionalSecretOutputs))
            if request.ignoreChanges:
                options["ignoreChanges"] = sorted(request.ignoreChanges)
            # How long the engine waits for the resource (e.g. a Deployment's rollout), as the program set it.
            timeouts = {k: getattr(request.customTimeouts, k) for k in ("create", "update", "delete")
                        if request.HasField("customTimeouts") and getattr(request.customTimeouts, k)}
            if timeouts:
                options["customTimeouts"] = timeouts
            # Aliases the program declares (a rename keeps its old name); the SDK's own type-migration aliases are noise.
            declared = [json_format.MessageToDict(a) for a in request.aliases]
            declared = [a for a in declared if "urn" in a or "name" in a.get("spec", {})]
            if declared:
                options["aliases"] = declared
            if request.provider:  # explicit providers only; a reference is "<urn>::<id>"
                urn = request.provider.rsplit("::", 1)[0]
                options["provider"] = names_by_urn.get(urn, urn)
            if request.remote:
                # A multi-language component (awsx, eks, ...) builds its children inside its own plugin, which the
                # offline preview does not run: they are missing from the inventory, and the policies cannot see them.
                remote.append(f"{request.name} is a multi-language component ({request.type}): its plugin creates "
                              "its resources, which this offline preview cannot run, so they are missing from the "
                              "inventory and no policy checked them")
            inputs = _plain(_mask(raw))
            if request.custom and request.type.startswith("kubernetes:"):
                inputs = kubernetes_autonamed(request.type, request.name, inputs)  # as the provider's check fills it in
            rows.append(Resource(
                type=request.type, name=request.name,
                parent=names_by_urn.get(request.parent) if request.parent else None,
                custom=bool(request.custom), inputs=inputs, options=options, urn=response.urn,
                dependencies=list(request.dependencies)))
            return response

    log = logging.getLogger("llmhost.preview")
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    handler = Collect()
    log.addHandler(handler)
    log.propagate = False
    monitor = Capture(mocks)
    psettings.ROOT.set(None)  # a fresh root stack per run, so outputs of an earlier run never leak in
    pmocks.set_mocks(mocks, project=project, stack=stack, preview=True, logger=log, monitor=monitor)
    pulumi.runtime.set_all_config({k: _as_config_string(v) for k, v in config.items()}, secret_keys or [])
    try:
        pulumi.runtime.test(program)()
    except BaseException as exc:
        exc.registered = len([r for r in rows if r.custom])  # type: ignore[attr-defined]
        raise
    finally:
        log.removeHandler(handler)

    outputs = {}
    stack_resource = psettings.get_root_resource()
    for key, value in (getattr(stack_resource, "outputs", None) or {}).items():
        out = pulumi.Output.from_input(value)
        resolved = _sync_await(out.future())
        if not _sync_await(out.is_known()):
            outputs[key] = UNKNOWN
        else:
            outputs[key] = MASK if _sync_await(out.is_secret()) else _plain(resolved)
    return PreviewResult(stack, project, rows, outputs, warnings + remote, remote_components=remote)


def run_preview(root: Path, stack: str) -> PreviewResult:
    import pulumi

    root = Path(root).resolve()
    project, merged, secret_keys, placeholders = load_config(root, stack)
    main = root / "__main__.py"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def program():
        runpy.run_path(str(main), run_name="__main__")

    try:
        result = run_program(program, project, stack, merged, secret_keys)
    except pulumi.RunError as exc:
        # The program refused its config (as it would under `pulumi up`): report it as bad input.
        message = str(exc)
        source = f"stacks/Pulumi.{stack}.yaml"
        if message.startswith(source + ": "):
            message = message[len(source) + 2:]
        raise ProgramRefused(source, [("", message)], registered=getattr(exc, "registered", 0)) from None
    result.placeholders = placeholders
    result.deploy_warning = load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml").deploy_warning()
    return result


def run_foreign(root: Path, stack: str) -> PreviewResult:
    """Preview a Pulumi program the kit did not write: its Pulumi.yaml defaults and its own stack file
    (Pulumi.<stack>.yaml beside Pulumi.yaml, where the CLI keeps it, else under stacks/), without the kit's config
    loader, which only knows the kit's keys. Encrypted values get marked placeholders, as in `run_preview`."""
    import pulumi

    root = Path(root).resolve()
    project, defaults = project_defaults(root)
    if not valid_stack_name(stack):
        raise refuse(f"Pulumi.{stack}.yaml", "--stack", f"{stack!r} is not a stack name: use {STACK_NAME_RULE}")
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists() and (root / "stacks" / stack_file.name).exists():
        stack_file = root / "stacks" / stack_file.name
    merged = {**defaults, **_read_stack(stack_file)}
    secret_keys, placeholders = [], []
    for key, value in list(merged.items()):
        if isinstance(value, dict) and set(value) == {"secure"}:
            merged[key] = f"preview-placeholder-for-{key}"
            secret_keys.append(key)
            placeholders.append(key)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def program():
        runpy.run_path(str(root / "__main__.py"), run_name="__main__")

    try:
        result = run_program(program, project, stack, merged, secret_keys)
    except pulumi.RunError as exc:
        raise ProgramRefused(stack_file.name, [("", str(exc))], registered=getattr(exc, "registered", 0)) from None
    result.placeholders = placeholders
    return result
