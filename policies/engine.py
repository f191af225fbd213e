"""Run the pack's policies in-process on recorded resources: what `llmhost preview` shows without a cloud.

`evaluate` calls every policy's own `validate` (the objects `policies/__main__.py` hands to PolicyPack) the way
pulumi-policy's analyzer does: props wrapped in `unknown_checking_proxy`, the provider (default or explicit) as a
`PolicyProviderResource`, the policy's config entry with schema defaults, enforcement levels resolved like the
engine (`all`, then the policy's entry), resource policies once per resource and stack policies once over
`PolicyResource`s. What it adds: violations an approved exception covers are kept and marked instead of dropped,
and "cannot verify" findings are kept as advisory violations.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from . import exceptions as _exceptions
from .config import PolicyConfigError, level_of, validate_config, with_defaults
from .strict_input import ReadError, read_json_file
from .rulekit import PACK_NAME, REPORT_EXCEPTED, STACK_OUTPUTS
from .props import GCP_ZONE
from .rules import BY_ID, POLICIES

PROVIDER_PREFIX = "pulumi:providers:"


@dataclass(frozen=True)
class Violation:
    policy: str
    resource_name: Optional[str]  # None: the stack as a whole
    resource_type: Optional[str]
    message: str
    enforcement: str  # mandatory | advisory
    excepted_by: Optional[_exceptions.PolicyException] = None

    @property
    def cannot_verify(self) -> bool:
        return self.message.startswith("cannot verify")

    @property
    def blocking(self) -> bool:
        return self.enforcement == "mandatory" and self.excepted_by is None

    def line(self) -> str:
        where = f"{self.resource_name} ({self.resource_type})" if self.resource_name else "stack"
        return f"{self.policy} {where}: {self.message}"


@dataclass(frozen=True)
class NotApplicable:
    policy: str
    resource_name: Optional[str]
    reason: str


@dataclass
class Evaluation:
    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)


@dataclass
class _Res:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    options: dict[str, Any]
    parent: Optional[str]  # parent name
    dependencies: list[str] = field(default_factory=list)  # URNs (or names) of what the resource waits for


def _normalise(resources: Iterable[Any], stack: str, project: str) -> list[_Res]:
    out = []
    for r in resources:
        get = r.get if isinstance(r, Mapping) else (lambda k, d=None, _r=r: getattr(_r, k, d))
        typ, name = get("type"), get("name")
        if typ == "pulumi:pulumi:Stack":
            continue
        urn = get("urn") or f"urn:pulumi:{stack}::{project}::{typ}::{name}"
        out.append(_Res(typ, name, urn, dict(get("inputs") or {}), dict(get("options") or {}), get("parent"),
                        list(get("dependencies") or [])))
    return out


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any) -> float:
    """Seconds of a customTimeouts value as the program gave it: a Go duration ("1800s", "30m", "1h30m") or a
    number of seconds (what the Pulumi engine hands an analyzer). 0 for empty or unreadable values, which the engine
    treats as "not set"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return 0.0
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return 0.0
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _opts(r: _Res, urn_of: Mapping[str, str]) -> PolicyResourceOptions:
    o = r.options
    timeouts = o.get("customTimeouts") or {}
    seconds = [duration_seconds(timeouts.get(k)) for k in ("create", "update", "delete")]
    return PolicyResourceOptions(bool(o.get("protect")), list(o.get("ignoreChanges") or []), o.get("deleteBeforeReplace"),
                                 [], PolicyCustomTimeouts(*seconds), list(o.get("additionalSecretOutputs") or []),
                                 urn_of.get(r.parent) if r.parent else None)


# How the offline preview writes a value only known after `pulumi up`, and what the analyzer sends for it.
PREVIEW_UNKNOWN = "[unknown]"


def _unknowns(value: Any) -> Any:
    if value == PREVIEW_UNKNOWN:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {k: _unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknowns(v) for v in value]
    return value


def _proxy(inputs: Mapping[str, Any]) -> Any:
    return unknown_checking_proxy(_unknowns(copy.deepcopy(dict(inputs))))


def evaluate_detailed(resources: Iterable[Any], config: Mapping[str, Any], provider_regions: Optional[Mapping[str, str]] = None,
                      *, stack: str = "stack", project: str = "project",
                      exceptions: Optional[Iterable[_exceptions.PolicyException]] = None,
                      today: Optional[dt.date] = None, policies: Optional[list] = None,
                      outputs: Optional[Mapping[str, Any]] = None) -> Evaluation:
    """Every violation (and not-applicable reason) of the pack on `resources`.

    `resources`: the preview harness's `Resource`s (type, name, parent name, inputs, options, urn, dependencies) or
    dicts shaped like the JSON inventory (a dict's `dependencies` may name resources instead of URNs).
    `provider_regions`: the region of the default provider per package, e.g. {"aws": "eu-central-1"} (the stack's
    aws:region / gcp:region); packages not listed get no default provider. `exceptions`: defaults to
    policies/exceptions.yaml; `today` decides which are still active. `outputs`: the stack's outputs, which stack
    policies may read here (the Pulumi engine does not show them to a policy).
    """
    problems = validate_config(config)
    if problems:
        raise PolicyConfigError("policy config", problems)
    today = today or dt.date.today()
    exceptions = list(_exceptions.load_exceptions() if exceptions is None else exceptions)
    provider_regions = dict(provider_regions or {})
    items = _normalise(resources, stack, project)
    urn_of = {r.name: r.urn for r in items}
    by_name = {r.name: r for r in items}

    providers: dict[str, PolicyProviderResource] = {}  # resource name -> provider
    defaults: dict[str, PolicyProviderResource] = {}
    for pkg, region in provider_regions.items():
        # A GCP stack configured with gcp:zone alone: its default provider carries the zone, as Pulumi's does.
        key = "zone" if pkg == "gcp" and region and GCP_ZONE.match(region) else "region"
        props = {key: region} if region else {}
        urn = f"urn:pulumi:{stack}::{project}::{PROVIDER_PREFIX}{pkg}::default"
        defaults[pkg] = PolicyProviderResource(f"{PROVIDER_PREFIX}{pkg}", _proxy(props), urn, "default")
    for r in items:
        explicit = r.options.get("provider")
        if explicit and explicit in by_name and by_name[explicit].type.startswith(PROVIDER_PREFIX):
            p = by_name[explicit]
            providers[r.name] = PolicyProviderResource(p.type, _proxy(p.inputs), p.urn, p.name)
        elif not r.type.startswith(PROVIDER_PREFIX) and r.type.split(":", 1)[0] in defaults:
            providers[r.name] = defaults[r.type.split(":", 1)[0]]

    result = Evaluation()
    names = {r.urn: (r.name, r.type) for r in items}
    names.update({p.urn: (p.name, p.resource_type) for p in defaults.values()})

    def add(policy: str, level: str, message: str, urn: Optional[str]) -> None:
        name, typ = names.get(urn, (None, None)) if urn else (None, None)
        exc = _exceptions.find(exceptions, policy, stack, name, today) if level == "mandatory" else None
        result.violations.append(Violation(policy, name, typ, message, level, exc))

    token = REPORT_EXCEPTED.set(True)
    outputs_token = STACK_OUTPUTS.set(_unknowns(copy.deepcopy(dict(outputs))) if outputs is not None else None)
    try:
        for policy in policies if policies is not None else POLICIES:
            level = level_of(policy.name, config, default=policy.enforcement_level.value)
            if level == "disabled":
                continue
            level = "mandatory" if level == "remediate" else level
            entry = config.get(policy.name)
            cfg = with_defaults(policy.name, entry if isinstance(entry, Mapping) else None)
            if isinstance(policy, ResourceValidationPolicy):
                for r in items:
                    args = ResourceValidationArgs(r.type, _proxy(r.inputs), r.urn, r.name, _opts(r, urn_of),
                                                  providers.get(r.name), copy.deepcopy(cfg), {})
                    _run(policy, args, level, r.urn, add, result, r.name)
            elif isinstance(policy, StackValidationPolicy):
                stack_resources = [PolicyResource(r.type, _proxy(r.inputs), r.urn, r.name, _opts(r, urn_of),
                                                  providers.get(r.name), None, [], {}) for r in items]
                by_urn = {pr.urn: pr for pr in stack_resources}
                for r, pr in zip(items, stack_resources):
                    if r.parent and urn_of.get(r.parent) in by_urn:
                        pr.parent = by_urn[urn_of[r.parent]]
                    pr.dependencies = [by_urn[u] for u in (urn_of.get(d, d) for d in r.dependencies) if u in by_urn]
                for p in defaults.values():
                    stack_resources.append(PolicyResource(p.resource_type, p.props, p.urn, p.name,
                                                          PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                                                          None, None, [], {}))
                args = StackValidationArgs(stack_resources, copy.deepcopy(cfg), {})
                _run(policy, args, level, None, add, result, None)
    finally:
        STACK_OUTPUTS.reset(outputs_token)
        REPORT_EXCEPTED.reset(token)
    return result


def _run(policy, args, level: str, urn: Optional[str], add, result: Evaluation, name: Optional[str]) -> None:
    def report(message: str, violation_urn: Optional[str] = None) -> None:
        add(policy.name, level, message, urn or violation_urn)

    try:
        policy.validate(args, report)
    except UnknownValueError as e:
        add(policy.name, "advisory", e.message, urn)
    except _NotApplicableError as e:
        result.not_applicable.append(NotApplicable(policy.name, name, e.reason or ""))


def evaluate(resources: list, config: Mapping[str, Any], provider_regions: Optional[Mapping[str, str]] = None,
             **kwargs) -> list[Violation]:
    """The pack's violations on `resources` (see `evaluate_detailed` for the arguments)."""
    return evaluate_detailed(resources, config, provider_regions, **kwargs).violations


def evaluate_preview(result: Any, config: Mapping[str, Any], provider_regions: Optional[Mapping[str, str]] = None,
                     **kwargs) -> list[Violation]:
    """`evaluate` on a preview.harness.PreviewResult, with its stack and project names and its outputs."""
    kwargs.setdefault("outputs", getattr(result, "outputs", None))
    return evaluate(result.resources, config, provider_regions, stack=result.stack, project=result.project, **kwargs)


# --- what `llmhost preview` calls ------------------------------------------------------------------------------

@dataclass
class PolicyReport:
    stack: str
    config_source: str
    violations: list[Violation]
    notes: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.blocking]

    @property
    def exit_code(self) -> int:
        """1 when a mandatory violation is not covered by an active exception, as `pulumi preview` would fail."""
        return 1 if self.blocking else 0

    def render_text(self) -> str:
        lines = [f"policy pack {PACK_NAME} on stack {self.stack} (config: {self.config_source})"]
        lines += [f"  note: {n}" for n in self.notes]
        order = {"mandatory": 0, "advisory": 1}
        for v in sorted(self.violations, key=lambda v: (v.excepted_by is not None, order.get(v.enforcement, 2))):
            if v.excepted_by:
                e = v.excepted_by
                lines.append(f"  excepted   {v.line()}")
                lines.append(f"             exception until {e.expires} approved by {e.approved_by}: {e.reason}")
            else:
                lines.append(f"  {v.enforcement:<10} {v.line()}")
        blocking = len(self.blocking)
        excepted = sum(1 for v in self.violations if v.excepted_by)
        advisory = sum(1 for v in self.violations if v.enforcement == "advisory")
        verdict = "FAIL" if blocking else "pass"
        lines.append(f"  {verdict}: {blocking} mandatory violation(s), {advisory} advisory, {excepted} excepted")
        return "\n".join(lines)


def load_policy_config(path: Path, stack_config: Any = None) -> tuple[dict[str, Any], list[str]]:
    """A stack's policy config file, validated; an older `llmhost-stack-facts` file is converted (with a note)."""
    from .config import facts_from_stack_config, policy_config, validate_for_stack

    notes: list[str] = []
    if not path.exists() and path.parent.is_dir():
        if stack_config is None:
            raise PolicyConfigError(str(path), ["no such file; re-run `llmhost plan` to write it"])
        notes.append(f"{path.name} does not exist; checked against the stack config's facts (re-run `llmhost plan`)")
        from planner.stackgen import policy_facts  # the kit side: the catalog's link facts as `llmhost plan` writes them

        return policy_config(policy_facts(stack_config)), notes
    source = f"stacks/{path.name}" if path.parent.name == "stacks" else str(path)
    try:
        doc = read_json_file(path, "policy config")
    except ReadError as exc:
        raise PolicyConfigError(source, [f"{w}: {m}" if w else m for w, m in exc.problems]) from None
    legacy = doc.get("llmhost-stack-facts") if isinstance(doc, dict) else None
    if isinstance(legacy, dict):
        facts = {k: v for k, v in legacy.items() if v is not None}
        if stack_config is not None:
            from planner.stackgen import policy_facts

            extra = policy_facts(stack_config)
            for key in ("registry", "protect", "thirdPartyApiBaseUrl", "links"):
                if extra.get(key) is not None:
                    facts.setdefault(key, extra[key])
        notes.append(f"{path.name} holds the older stack-facts format; converted (re-run `llmhost plan` to rewrite it)")
        try:
            converted = policy_config(facts)
        except PolicyConfigError as exc:
            facts_key = exc.source == "stack facts"  # else a problem of the config made from them, named by policy
            raise PolicyConfigError(source, [f"llmhost-stack-facts.{p}" if facts_key else p for p in exc.problems]) from None
        problems = validate_for_stack(converted, facts_from_stack_config(stack_config)) if stack_config else []
        if problems:
            raise PolicyConfigError(source, problems)
        return converted, notes
    problems = validate_config(doc)
    if not problems and stack_config is not None:
        problems = validate_for_stack(doc, facts_from_stack_config(stack_config))
    if problems:
        raise PolicyConfigError(source, problems)
    return doc, notes


@dataclass
class PolicyInputs:
    """What the pack reads besides the inventory, loaded and validated before the program runs."""

    config: dict[str, Any]
    source: str  # where the config came from, for the report
    notes: list[str]
    exceptions: list[Any]
    regions: dict[str, str]  # the default provider region per package (aws:region / gcp:region)


def load_policy_inputs(root: Path, stack: str) -> PolicyInputs:
    """The stack's policy config (stacks/<stack>.policy-config.json, checked against the stack's own residency)
    and the exceptions register, validated. `llmhost preview` calls this before it runs the program, so a bad file
    is refused before anything is printed or written. Raises planner's InputError, naming the file, policy and key."""
    from planner.errors import InputError

    try:
        return _load_policy_inputs(Path(root), stack)
    except (PolicyConfigError, _exceptions.ExceptionsError) as exc:
        raise InputError(exc.source, [tuple(p.split(": ", 1)) if ": " in p else ("", p) for p in exc.problems]) from None


def _load_policy_inputs(root: Path, stack: str, config: Optional[Mapping[str, Any]] = None) -> PolicyInputs:
    from planner.stack_config import load_stack_config
    from preview.harness import load_config

    _, merged, _, _ = load_config(root, stack)
    stack_config = load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")
    regions = {pkg: merged.get(f"{pkg}:region") or merged.get(f"{pkg}:zone") for pkg in ("aws", "gcp")}
    regions = {pkg: where for pkg, where in regions.items() if where}  # gcp:zone stands in when gcp:region is unset
    notes: list[str] = []
    if config is None:
        path = root / "stacks" / f"{stack}.policy-config.json"
        config, notes = load_policy_config(path, stack_config)
        source = f"stacks/{path.name}"
    else:
        problems = validate_config(config)
        if problems:
            raise PolicyConfigError("policy config", problems)
        source = "given"
    return PolicyInputs(dict(config), source, notes, _exceptions.load_exceptions(), regions)


def check_preview(root: Path, result: Any, config: Optional[Mapping[str, Any]] = None,
                  today: Optional[dt.date] = None, inputs: Optional[PolicyInputs] = None) -> PolicyReport:
    """The pack on an offline preview of a kit stack, with the stack's own policy config and provider region.

    Reads stacks/<stack>.policy-config.json (the file `pulumi preview --policy-pack-config` takes) unless `config`
    is given, the provider regions from the stack file, and policies/exceptions.yaml; or takes all of them from
    `inputs` (`load_policy_inputs`, called before the program ran). A wrong config file or exceptions register is
    raised as planner's InputError (the CLI prints it and exits 2), naming policy and key.
    """
    from planner.errors import InputError

    try:
        if inputs is None:
            inputs = _load_policy_inputs(Path(root), result.stack, config)
        return _check_preview(result, inputs, today)
    except (PolicyConfigError, _exceptions.ExceptionsError) as exc:
        raise InputError(exc.source, [tuple(p.split(": ", 1)) if ": " in p else ("", p) for p in exc.problems]) from None


def _check_preview(result: Any, inputs: PolicyInputs, today: Optional[dt.date]) -> PolicyReport:
    today = today or dt.date.today()
    notes = list(inputs.notes)
    # A multi-language component's children are not in the inventory: the verdict covers only what is.
    notes += [f"cannot verify: {w}" for w in getattr(result, "remote_components", [])]
    for e in _exceptions.expired(inputs.exceptions, today, result.stack):
        notes.append(f"exception for {e.policy} on {e.resource} expired on {e.expires}; its violations count again")
    violations = evaluate_preview(result, inputs.config, inputs.regions, exceptions=inputs.exceptions, today=today)
    return PolicyReport(result.stack, inputs.source, violations, notes)


def check_resource(policy_id: str, resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any],
                   name: str = "resource", protect: bool = False,
                   provider: Optional[tuple[str, Mapping[str, Any]]] = None) -> Evaluation:
    """One resource policy on one resource (for tests and for trying a rule): violations and not-applicable."""
    policy = BY_ID[policy_id].POLICY
    if not isinstance(policy, ResourceValidationPolicy):
        raise TypeError(f"{policy_id} is a stack policy; use evaluate_detailed")
    res = {"type": resource_type, "name": name, "inputs": dict(props), "options": {"protect": True} if protect else {}}
    items = [res]
    if provider:
        items.append({"type": provider[0], "name": "explicit-provider", "inputs": dict(provider[1])})
        res["options"]["provider"] = "explicit-provider"
    return evaluate_detailed(items, _minimal(policy_id, config), None, exceptions=[], policies=[policy])


def check_stack(policy_id: str, resources: list[Mapping[str, Any]], config: Mapping[str, Any],
                provider_regions: Optional[Mapping[str, str]] = None,
                outputs: Optional[Mapping[str, Any]] = None) -> Evaluation:
    """One stack policy over `resources` (dicts with type, name, inputs, options, optionally dependencies)."""
    policy = BY_ID[policy_id].POLICY
    if not isinstance(policy, StackValidationPolicy):
        raise TypeError(f"{policy_id} is a resource policy; use check_resource")
    return evaluate_detailed(resources, _minimal(policy_id, config), provider_regions, exceptions=[], policies=[policy],
                             outputs=outputs)


def _minimal(policy_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config valid for validate_config in which only `policy_id`'s entry matters."""
    from .config import SCHEMAS

    filler = {"allowedRegions": ["eu-central-1"], "classification": "internal", "network": "public"}
    out: dict[str, Any] = {"all": "mandatory"}
    for name, schema in SCHEMAS.items():
        out[name] = dict(config) if name == policy_id else {k: filler[k] for k in schema["required"]}
    return out
