"""The shared helper every rule is built with: metadata a reviewer can read, and one way to run a check.

A rule file declares a `Rule` (id, title, what it checks, why, severity, control ids, remediation, the resource
types it covers) and a check function, and calls `resource_policy(rule, check)` or `stack_policy(rule, check)`.
The helper fills every metadata field pulumi-policy 1.21.0 offers (description, enforcement level, config schema,
display name, severity, framework, tags, remediation steps, url) and wraps the check so that:

- the policy's config entry is validated against its schema (an unknown key or a bad value fails the run);
- a rule that does not apply says why (`ctx.not_applicable(reason)`, pulumi-policy's `not_applicable`);
- a value unknown during preview is reported as "cannot verify <field>" (the engine shows it as an advisory
  "can't run policy ... during preview" diagnostic) after every known field has been checked, never passed
  silently; the same check runs again with known values during `pulumi up`. A fact a policy needs that its config
  does not carry (a config older than the facts `llmhost plan` writes) is reported the same way (`ctx.unplanned`);
- an approved, unexpired exception in policies/exceptions.yaml for (policy, stack, resource) suppresses that
  resource's violations in the pack (`llmhost preview` lists them as excepted instead).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from . import exceptions as _exceptions
from .config import SCHEMAS, PolicyConfigError, validate_policy_config, with_defaults
from .props import UNKNOWN, get, plain

PACK_NAME = "llmhost-policies"
PACK_VERSION = "1.0.0"  # keep equal to PulumiPolicy.yaml's version (a test checks)
DOCS = "docs/policies.md"  # the catalogue in this repository; rule urls point at their section

AREAS = {
    "residency": "Residency: data and the things that hold it stay in the allowed regions",
    "boundary": "Boundary: confidential and regulated data never leaves the private network",
    "airgap": "Air-gap: an air-gapped stack has no path to the internet",
    "encryption": "Encryption: customer-managed keys, rotated, with a deletion window",
    "baseline": "Baseline: least privilege, hardened nodes, no plain-text secrets, protected state",
    "links": "Links: the parts of a stack agree with each other the way the scheduler, the autoscalers, the engine, "
             "`pulumi up` and the clients will read them",
}

# Control-id prefix -> (framework name, version) for PolicyComplianceFramework. The ids in each rule are the kit's
# mapping; a compliance reviewer confirms them against the framework version their audit uses.
FRAMEWORKS = {
    "GDPR": ("GDPR", "Regulation (EU) 2016/679"),
    "HIPAA": ("HIPAA Security Rule", "45 CFR Part 164 Subpart C"),
    "FedRAMP": ("FedRAMP (NIST SP 800-53)", "Rev. 5"),
    "CIS AWS": ("CIS Amazon Web Services Foundations Benchmark", "1.5.0"),
    "CIS EKS": ("CIS Amazon EKS Benchmark", "1.1.0"),
    "CIS GKE": ("CIS Google Kubernetes Engine (GKE) Benchmark", "1.4.0"),
    "CIS GCP": ("CIS Google Cloud Platform Foundation Benchmark", "2.0.0"),
    "AWS FSBP": ("AWS Foundational Security Best Practices", "1.0.0"),
    "PCI DSS": ("PCI DSS", "4.0"),
}
SEVERITIES = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}
LEVELS = {"advisory": EnforcementLevel.ADVISORY, "mandatory": EnforcementLevel.MANDATORY,
          "remediate": EnforcementLevel.REMEDIATE, "disabled": EnforcementLevel.DISABLED}


def framework_of(control: str) -> tuple[str, str, str]:
    """(framework name, version, reference) of a control id like "HIPAA 164.312(a)(2)(iv)"."""
    for prefix in sorted(FRAMEWORKS, key=len, reverse=True):
        if control.startswith(prefix + " "):
            name, version = FRAMEWORKS[prefix]
            return name, version, control[len(prefix) + 1:]
    raise ValueError(f"control {control!r} names no known framework ({', '.join(FRAMEWORKS)})")


@dataclass(frozen=True)
class Rule:
    """What a reviewer reads about one policy; the catalogue and the PulumiPolicy metadata both come from here."""

    id: str  # stable, e.g. RES-001-region-allowlist; also the policy name and the config key
    title: str  # a short statement of what must hold
    area: str  # residency | boundary | airgap | encryption | baseline | links
    description: str  # one line (pulumi-policy's description, shown with every violation)
    checks: str  # what exactly is inspected, resource by resource
    why: str  # the risk, in a reviewer's words
    severity: str  # low | medium | high | critical
    controls: tuple[str, ...]  # control ids, primary first: "GDPR art. 44", "FedRAMP SC-7", ...
    remediation: str  # what to change to comply
    applies_to: tuple[str, ...]  # resource type tokens (or "all resources")
    level: str = "mandatory"
    kind: str = "resource"  # resource | stack
    limits: str = ""  # what the rule does not see, stated rather than implied

    def __post_init__(self):
        assert self.id in SCHEMAS, f"{self.id} has no config schema in policies/config.py"
        assert self.area in AREAS, self.area
        assert self.severity in SEVERITIES, self.severity
        assert self.level in LEVELS, self.level
        assert self.kind in ("resource", "stack"), self.kind
        assert self.controls, f"{self.id} maps to no framework control"
        for c in self.controls:
            framework_of(c)

    @property
    def anchor(self) -> str:
        return self.id.lower()

    @property
    def url(self) -> str:
        return f"{DOCS}#{self.anchor}"

    @property
    def tags(self) -> list[str]:
        families = []
        for c in self.controls:
            prefix = next(p for p in sorted(FRAMEWORKS, key=len, reverse=True) if c.startswith(p + " "))
            tag = prefix.lower().replace(" ", "-")
            if tag not in families:
                families.append(tag)
        return [self.area, *families]

    @property
    def framework(self) -> PolicyComplianceFramework:
        name, version, reference = framework_of(self.controls[0])
        return PolicyComplianceFramework(name=name, version=version, reference=reference,
                                         specification="; ".join(self.controls))

    @property
    def config_schema(self) -> PolicyConfigSchema:
        schema = SCHEMAS[self.id]
        return PolicyConfigSchema(properties={k: dict(v) for k, v in schema["properties"].items()},
                                  required=list(schema["required"]) or None)

    def metadata(self) -> dict[str, Any]:
        """The keyword arguments every pulumi-policy Policy takes, all filled."""
        return dict(name=self.id, description=self.description, enforcement_level=LEVELS[self.level],
                    config_schema=self.config_schema, display_name=self.title, severity=SEVERITIES[self.severity],
                    framework=self.framework, tags=self.tags, remediation_steps=self.remediation, url=self.url)


class CannotVerify(UnknownValueError):
    """Raised after a check when some field it needs is unknown during preview, or a fact it needs is missing from the
    policy config; pulumi-policy reports it as an advisory "can't run policy during preview" diagnostic carrying this
    message."""

    def __init__(self, fields: list[tuple[str, str]], unplanned: Optional[list[tuple[str, str]]] = None):
        Exception.__init__(self)
        self.unknown_type_sentinel = UNKNOWN_STRING_VALUE
        self.props = [p for p, _ in fields]
        parts = []
        if fields:
            what = "; ".join(f"{p} ({w})" if w else p for p, w in fields)
            parts.append(f"cannot verify {what}: the value is only known once `pulumi up` has created what it depends "
                         "on, and the policy checks it again then")
        if unplanned:
            what = "; ".join(f"{p} ({w})" if w else p for p, w in unplanned)
            parts.append(f"cannot verify {what}: the policy config lacks the catalog facts `llmhost plan` writes for "
                         "this policy; re-plan the stack")
        self.message = ". ".join(parts)


class _NotApplicable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Set by the offline engine: report excepted violations too (it marks them) instead of dropping them.
REPORT_EXCEPTED: contextvars.ContextVar[bool] = contextvars.ContextVar("llmhost_report_excepted", default=False)
# Set by the offline engine when it has them: the stack's outputs. A stack policy under the Pulumi engine does not
# see outputs, so a rule that reads them also works without them (from what the resources render).
STACK_OUTPUTS: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("llmhost_stack_outputs", default=None)


@functools.lru_cache(maxsize=1)
def _pack_exceptions() -> tuple:
    return tuple(_exceptions.load_exceptions())


def _excepted(policy: str, resource: Optional[str]) -> bool:
    """True when the pack runs under the Pulumi engine and an active exception covers this finding."""
    if REPORT_EXCEPTED.get():
        return False
    stack = os.environ.get("PULUMI_STACK")  # the engine sets it for analyzers
    if not stack or not resource:
        return False
    return _exceptions.find(_pack_exceptions(), policy, stack, resource, dt.date.today()) is not None


def rule_config(rule: Rule, raw: Any) -> dict[str, Any]:
    """The policy's config with schema defaults applied; a wrong entry fails the run, naming policy and key."""
    entry = plain(raw) or {}
    problems = validate_policy_config(rule.id, entry)
    if problems:
        raise PolicyConfigError("policy pack config", problems)
    return with_defaults(rule.id, entry)


class _Ctx:
    def __init__(self, rule: Rule, config: dict[str, Any]):
        self.rule = rule
        self.config = config
        self.violations: list[tuple[str, Optional[str]]] = []  # (message, urn)
        self.unknown: list[tuple[str, str]] = []
        self.missing: list[tuple[str, str]] = []  # checks the policy config has no facts for

    def violation(self, message: str, urn: Optional[str] = None) -> None:
        self.violations.append((message, urn))

    def cannot_verify(self, path: str, what: str = "") -> None:
        if (path, what) not in self.unknown:
            self.unknown.append((path, what))

    def unplanned(self, path: str, what: str = "") -> None:
        """A check the policy config carries no facts for (an older config, or facts not from `llmhost plan`)."""
        if (path, what) not in self.missing:
            self.missing.append((path, what))

    def not_applicable(self, reason: str) -> None:
        raise _NotApplicable(reason)


class ResourceContext(_Ctx):
    """One resource: its type, name, plain props (unknowns as UNKNOWN), options and provider."""

    def __init__(self, rule: Rule, config: dict[str, Any], args: ResourceValidationArgs):
        super().__init__(rule, config)
        self.type = args.resource_type
        self.name = args.name
        self.urn = args.urn
        self.props = plain(args.props)
        self.opts = args.opts
        self.provider = args.provider
        self.provider_props = plain(args.provider.props) if args.provider is not None else {}

    def get(self, path: str, what: str = "") -> Any:
        """The value at `path`; an unknown one is recorded as "cannot verify" and returned as UNKNOWN."""
        value = get(self.props, path)
        if value is UNKNOWN:
            self.cannot_verify(path, what)
        return value

    def peek(self, path: str) -> Any:
        """The value at `path` without recording an unknown: for presence checks. An unknown value is an output of
        another resource of the stack (a key ARN, a subnet id), so "is it set" is decided even before `pulumi up`."""
        return get(self.props, path)

    def items(self, path: str, what: str = "") -> list[tuple[str, Any]]:
        value = self.get(path, what)
        if not isinstance(value, list):
            return []
        return [(f"{path}[{i}]", v) for i, v in enumerate(value)]


@dataclass
class StackResource:
    type: str
    name: str
    urn: str
    props: Any
    protect: bool
    provider_type: Optional[str]
    provider_name: Optional[str]
    provider_urn: Optional[str]
    provider_props: Any
    parent_urn: Optional[str]
    dependency_urns: list[str] = field(default_factory=list)
    # How long the engine waits for the resource (the customTimeouts option), in seconds; None when not set.
    custom_timeouts: dict[str, Optional[float]] = field(default_factory=dict)


class StackContext(_Ctx):
    """All resources of the stack, with plain props; violations name the resource by URN.

    `outputs` holds the stack's outputs when the offline engine has them (None under the Pulumi engine)."""

    def __init__(self, rule: Rule, config: dict[str, Any], args: StackValidationArgs):
        super().__init__(rule, config)
        self.resources: list[StackResource] = []
        for r in args.resources:
            prov = r.provider
            timeouts = getattr(r.opts, "custom_timeouts", None)
            self.resources.append(StackResource(
                type=r.resource_type, name=r.name, urn=r.urn, props=plain(r.props), protect=bool(r.opts.protect),
                provider_type=prov.resource_type if prov else None, provider_name=prov.name if prov else None,
                provider_urn=prov.urn if prov else None, provider_props=plain(prov.props) if prov else {},
                parent_urn=r.parent.urn if r.parent is not None else None,
                dependency_urns=[d.urn for d in r.dependencies],
                custom_timeouts={k: (getattr(timeouts, f"{k}_seconds", 0) or None) if timeouts else None
                                 for k in ("create", "update", "delete")}))
        self.outputs: Optional[dict] = STACK_OUTPUTS.get()

    def get(self, resource: StackResource, path: str, what: str = "") -> Any:
        value = get(resource.props, path)
        if value is UNKNOWN:
            self.cannot_verify(f"{resource.name}.{path}", what)
        return value


def _finish(ctx: _Ctx, report_violation, name_of: Callable[[Optional[str]], Optional[str]]) -> None:
    for message, urn in ctx.violations:
        if not _excepted(ctx.rule.id, name_of(urn)):
            report_violation(message, urn)
    if ctx.unknown or ctx.missing:
        raise CannotVerify(ctx.unknown, ctx.missing)


def resource_policy(rule: Rule, check: Callable[[ResourceContext], None]) -> ResourceValidationPolicy:
    """A ResourceValidationPolicy for `rule` that runs `check` on each resource."""
    assert rule.kind == "resource", rule.id

    def validate(args: ResourceValidationArgs, report_violation) -> None:
        ctx = ResourceContext(rule, rule_config(rule, args.get_config()), args)
        try:
            check(ctx)
        except _NotApplicable as na:
            if ctx.unknown:  # the reason itself rests on something unknown: say so rather than skip
                raise CannotVerify(ctx.unknown) from None
            args.not_applicable(na.reason)
        _finish(ctx, report_violation, lambda urn: ctx.name)

    return ResourceValidationPolicy(validate=validate, **rule.metadata())


def stack_policy(rule: Rule, check: Callable[[StackContext], None]) -> StackValidationPolicy:
    """A StackValidationPolicy for `rule` that runs `check` once over every resource of the stack."""
    assert rule.kind == "stack", rule.id

    def validate(args: StackValidationArgs, report_violation) -> None:
        ctx = StackContext(rule, rule_config(rule, args.get_config()), args)
        try:
            check(ctx)
        except _NotApplicable as na:
            if ctx.unknown or ctx.missing:
                raise CannotVerify(ctx.unknown, ctx.missing) from None
            args.not_applicable(na.reason)
        names = {r.urn: r.name for r in ctx.resources}
        _finish(ctx, report_violation, lambda urn: names.get(urn) if urn else None)

    return StackValidationPolicy(validate=validate, **rule.metadata())


def applies(ctx: _Ctx, resource_type: str, types: Iterable[str]) -> None:
    """Stop with not-applicable unless `resource_type` is one of `types`."""
    if resource_type not in tuple(types):
        ctx.not_applicable(f"{resource_type} is not a resource type this policy checks")
