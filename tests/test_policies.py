"""The policy pack as a whole: its manifest, metadata, config schema, exceptions register, catalogue, and the
real pack entry point (built in-process and served over gRPC the way the Pulumi CLI talks to it).

Per-rule behaviour is in test_policy_rules.py; the kit's stacks, broken variants and a tutorial program are in
test_policy_stacks.py.
"""

from __future__ import annotations

import datetime as dt
import json
import runpy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from policies import config as pconfig
from policies.catalogue import render_markdown, render_text
from policies.config import PolicyConfigError, policy_config, validate_config
from policies.engine import check_resource, evaluate, load_policy_config
from policies.exceptions import ExceptionsError, load_exceptions, parse_exceptions
from policies.rulekit import FRAMEWORKS, PACK_NAME, PACK_VERSION
from policies.rules import POLICIES, RULES

# The pack's manifest: exact ids, levels, severities and kinds. Changing one is a reviewed decision.
MANIFEST = [
    ("RES-001-region-allowlist", "mandatory", "critical", "resource"),
    ("RES-002-provider-region", "mandatory", "critical", "stack"),
    ("BND-001-no-third-party-api", "mandatory", "critical", "resource"),
    ("BND-002-private-cluster-endpoint", "mandatory", "high", "resource"),
    ("BND-003-no-public-load-balancer", "mandatory", "high", "resource"),
    ("BND-004-sagemaker-network-isolation", "mandatory", "high", "resource"),
    ("BND-005-vertex-private-service-connect", "mandatory", "high", "resource"),
    ("BND-006-no-nodeport-services", "mandatory", "high", "resource"),
    ("AIR-001-no-internet-gateways", "mandatory", "critical", "resource"),
    ("AIR-002-no-internet-routes", "mandatory", "critical", "resource"),
    ("AIR-003-private-registry-images", "mandatory", "high", "resource"),
    ("AIR-004-hub-offline-serving", "mandatory", "medium", "resource"),
    ("ENC-001-cmk-secrets", "mandatory", "high", "resource"),
    ("ENC-002-cmk-volumes", "mandatory", "high", "resource"),
    ("ENC-003-cmk-buckets", "mandatory", "high", "stack"),
    ("ENC-004-cmk-log-groups", "mandatory", "medium", "resource"),
    ("ENC-005-cmk-endpoints", "mandatory", "high", "resource"),
    ("ENC-006-cmk-cluster-secrets", "mandatory", "high", "resource"),
    ("ENC-007-key-rotation", "mandatory", "medium", "resource"),
    ("ENC-008-key-deletion-window", "mandatory", "medium", "resource"),
    ("ENC-009-tls-listeners", "mandatory", "high", "resource"),
    ("ENC-010-cmk-registries", "mandatory", "medium", "resource"),
    ("BAS-001-no-full-access-policies", "mandatory", "high", "resource"),
    ("BAS-002-imdsv2-nodes", "mandatory", "high", "resource"),
    ("BAS-003-no-plaintext-secret-env", "mandatory", "high", "resource"),
    ("BAS-004-protect-stateful", "mandatory", "medium", "stack"),
    ("BAS-005-no-open-ingress", "mandatory", "high", "stack"),
    ("BAS-006-no-public-bucket-policy", "mandatory", "critical", "stack"),
    ("BAS-007-no-public-ips", "mandatory", "high", "resource"),
    ("BAS-008-control-plane-audit-logs", "mandatory", "high", "resource"),
    ("LNK-001-pods-schedulable", "mandatory", "high", "stack"),
    ("LNK-002-replicas-fit", "mandatory", "medium", "stack"),
    ("LNK-003-node-pools-scaled", "mandatory", "medium", "stack"),
    ("LNK-004-metric-sources", "mandatory", "medium", "stack"),
    ("LNK-005-model-fits-gpu", "mandatory", "high", "stack"),
    ("LNK-006-rollout-wait", "mandatory", "medium", "stack"),
    ("LNK-007-endpoint-reachable", "advisory", "high", "stack"),
]

EU_AIRGAPPED_FACTS = {"cloud": "aws", "allowedRegions": ["eu-central-1"], "classification": "regulated",
                      "regulations": ["gdpr"], "network": "airgapped", "tier": "self-hosted", "thirdPartyApi": None,
                      "registry": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror"}


def test_manifest_pins_ids_levels_severities_and_kinds():
    from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

    got = []
    for p in POLICIES:
        kind = "stack" if isinstance(p, StackValidationPolicy) else "resource"
        assert isinstance(p, (ResourceValidationPolicy, StackValidationPolicy))
        got.append((p.name, p.enforcement_level.value, p.severity.value, kind))
    assert got == MANIFEST


def test_every_policy_fills_every_metadata_field_and_maps_to_frameworks():
    for rule, p in zip(RULES, POLICIES):
        assert p.name == rule.id
        for attr in ("description", "display_name", "remediation_steps", "url", "config_schema", "tags", "framework"):
            assert getattr(p, attr), f"{p.name} has no {attr}"
        assert p.framework.name and p.framework.version and p.framework.reference and p.framework.specification
        assert p.url == f"docs/policies.md#{p.name.lower()}"
        assert rule.area in p.tags
        assert "\n" not in p.description and len(p.description) < 250, "the description is one line"
        assert rule.checks and rule.why and rule.applies_to
        for control in rule.controls:
            assert any(control.startswith(prefix + " ") for prefix in FRAMEWORKS), control
    # The examples of control ids are all used somewhere.
    controls = {c for r in RULES for c in r.controls}
    assert {"GDPR art. 44", "HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-7", "FedRAMP SC-28"} <= controls
    assert any(c.startswith("CIS AWS ") for c in controls)


def test_one_rule_per_file_under_its_area():
    files = sorted(p.relative_to(ROOT / "policies" / "rules") for p in (ROOT / "policies" / "rules").glob("*/*.py")
                   if p.name != "__init__.py")
    assert len(files) == len(RULES)
    from policies.rules import MODULES

    for m in MODULES:
        area = m.__name__.split(".")[-2]
        assert m.RULE.area == area, m.__name__
        assert m.__file__.endswith(f"rules/{area}/{m.__name__.split('.')[-1]}.py")


def test_pack_files():
    meta = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    assert meta["version"] == PACK_VERSION and meta["description"]
    pins = [l for l in (ROOT / "policies" / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert pins == ["pulumi==3.272.0", "pulumi-policy==1.21.0"]
    project = (ROOT / "pyproject.toml").read_text()
    assert all(f'"{pin}"' in project for pin in pins), "the pack and the kit pin the same SDKs"


def test_main_only_builds_the_pack_and_prints_nothing(monkeypatch, capsys):
    import pulumi_policy

    built = {}

    class Recorder:
        def __init__(self, **kwargs):
            built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", Recorder)
    runpy.run_path(str(ROOT / "policies"), run_name="__main__")
    assert capsys.readouterr().out == "", "printing at import breaks the port handshake"
    assert built["name"] == PACK_NAME
    assert [p.name for p in built["policies"]] == [m[0] for m in MANIFEST]
    assert built["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    main = (ROOT / "policies" / "__main__.py").read_text()
    assert "def " not in main and "print(" not in main


def test_the_real_pack_serves_the_policies_over_grpc():
    """Start `python policies` like the Pulumi CLI does, read the port, and analyze resources over gRPC."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2 as proto
    from pulumi.runtime.proto import analyzer_pb2_grpc

    proc = subprocess.Popen([sys.executable, "-u", "policies"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        import select

        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the pack did not print its port within 60 s"
        port = proc.stdout.readline().strip()
        assert port.isdigit(), proc.stderr.read()
        stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == PACK_NAME and [p.name for p in info.policies] == [m[0] for m in MANIFEST]
        res001 = info.policies[0]
        assert list(res001.configSchema.required) == ["allowedRegions"]
        assert res001.framework.reference == "art. 44" and res001.remediation_steps and res001.url

        request = proto.ConfigureAnalyzerRequest()
        for name, entry in policy_config(EU_AIRGAPPED_FACTS).items():
            if name == "all":
                continue
            cfg = proto.PolicyConfig(enforcementLevel=proto.MANDATORY)
            cfg.properties.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
            request.policyConfig[name].CopyFrom(cfg)
        stub.Configure(request, timeout=30)

        def analyze(typ, name, props):
            s = struct_pb2.Struct()
            s.update(props)
            return stub.Analyze(proto.AnalyzeRequest(type=typ, properties=s, name=name,
                                                     urn=f"urn:pulumi:dev::p::{typ}::{name}"), timeout=30)

        resp = analyze("aws:ec2/natGateway:NatGateway", "nat", {"connectivityType": "public"})
        assert [(d.policyName, d.message.splitlines()[-1], d.enforcementLevel) for d in resp.diagnostics] == [
            ("AIR-001-no-internet-gateways",
             "a NAT gateway (connectivityType public) gives private subnets outbound internet access", proto.MANDATORY)]
        reasons = {n.policy_name: n.reason for n in resp.not_applicable}
        assert reasons["BND-004-sagemaker-network-isolation"] == \
            "aws:ec2/natGateway:NatGateway is not a resource type this policy checks"

        unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's sentinel for a string unknown at preview
        resp = analyze("aws:ec2/subnet:Subnet", "subnet", {"availabilityZone": unknown, "mapPublicIpOnLaunch": True})
        assert [(d.policyName, d.enforcementLevel, d.message.splitlines()[-1].split(" during preview: ")[-1].split(":")[0])
                for d in resp.diagnostics] == [
            ("RES-001-region-allowlist", proto.ADVISORY, "cannot verify availabilityZone (a location)"),
            ("AIR-001-no-internet-gateways", proto.MANDATORY,
             "mapPublicIpOnLaunch is true")]
        resp = analyze("aws:cloudwatch/logGroup:LogGroup", "logs", {"kmsKeyId": unknown})
        assert list(resp.diagnostics) == [], "an unknown key ARN is a key of the stack: set, and checked where it is made"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


# --- config -----------------------------------------------------------------------------------------------------

def test_policy_config_from_facts():
    cfg = policy_config(EU_AIRGAPPED_FACTS)
    assert cfg["all"] == "mandatory"
    assert set(cfg) == {"all", *(m[0] for m in MANIFEST)}
    assert cfg["RES-001-region-allowlist"] == {"allowedRegions": ["eu-central-1"]}
    assert cfg["BND-001-no-third-party-api"] == {"classification": "regulated", "sanctionedApiHosts": []}
    assert cfg["AIR-003-private-registry-images"] == {"network": "airgapped", "registry": EU_AIRGAPPED_FACTS["registry"]}
    assert cfg["ENC-001-cmk-secrets"] == {}
    assert validate_config(json.loads(json.dumps(cfg))) == []
    # A stack that opted out of protect keeps BAS-004 visible but advisory.
    assert policy_config({**EU_AIRGAPPED_FACTS, "protect": False})["BAS-004-protect-stateful"] == {"enforcementLevel": "advisory"}
    # Only a hybrid's gateway may name an API; its host is sanctioned.
    hybrid = policy_config({**EU_AIRGAPPED_FACTS, "network": "private", "classification": "confidential", "tier": "hybrid",
                            "thirdPartyApi": "groq", "thirdPartyApiBaseUrl": "https://api.groq.com/openai/v1"})
    assert hybrid["BND-001-no-third-party-api"]["sanctionedApiHosts"] == ["api.groq.com", "groq.com"]


def test_policy_config_rejects_bad_facts():
    with pytest.raises(PolicyConfigError) as err:
        policy_config({"allowedRegions": [], "classification": "secret", "network": "airgapped", "colour": "red"})
    text = str(err.value)
    assert "colour: unknown fact" in text and "allowedRegions: is required" in text
    with pytest.raises(PolicyConfigError) as err:
        policy_config({"allowedRegions": ["eu-central-1"], "classification": "secret", "network": "airgapped"})
    assert "BND-001-no-third-party-api.classification: 'secret' is not one of public, internal, confidential, regulated" \
        in err.value.problems
    assert "AIR-003-private-registry-images.registry: is required when network is airgapped (images come only from it)" \
        in err.value.problems


def test_a_wrong_policy_config_is_rejected_naming_the_policy_and_key():
    cfg = policy_config(EU_AIRGAPPED_FACTS)
    cfg["RES-001-region-allowlist"] = {"allowRegions": ["eu-central-1"]}
    cfg["BND-002-private-cluster-endpoint"] = {"classification": "secret"}
    cfg["AIR-001-no-internet-gateways"]["enforcementLevel"] = "strict"
    cfg["ENC-007-key-rotation"] = {"maxRotationDays": "ninety"}
    cfg["llmhost-stack-facts"] = {}
    problems = validate_config(cfg)
    assert problems == [
        "RES-001-region-allowlist.allowRegions: unknown key; valid keys: allowedRegions, enforcementLevel",
        "RES-001-region-allowlist.allowedRegions: is required",
        "BND-002-private-cluster-endpoint.classification: 'secret' is not one of public, internal, confidential, regulated",
        "AIR-001-no-internet-gateways.enforcementLevel: 'strict' is not one of advisory, mandatory, remediate, disabled",
        "ENC-007-key-rotation.maxRotationDays: expected integer, got the string 'ninety'",
        "llmhost-stack-facts: not a policy of this pack; its policies are " + ", ".join(m[0] for m in MANIFEST),
    ]
    with pytest.raises(PolicyConfigError) as err:
        evaluate([], cfg)
    assert err.value.problems == problems


def test_the_pack_itself_rejects_a_wrong_entry():
    """The engine lets unknown keys through; each rule checks its own entry and fails the run instead."""
    with pytest.raises(PolicyConfigError) as err:
        check_resource("ENC-004-cmk-log-groups", "aws:cloudwatch/logGroup:LogGroup", {}, {"kmsKey": "x"})
    assert err.value.problems == ["ENC-004-cmk-log-groups.kmsKey: unknown key; valid keys: enforcementLevel"]


def test_schemas_are_declared_to_pulumi_policy():
    for rule, p in zip(RULES, POLICIES):
        schema = pconfig.SCHEMAS[rule.id]
        assert p.config_schema.properties == schema["properties"]
        assert (p.config_schema.required or []) == schema["required"]


def test_load_policy_config_converts_the_older_facts_file(tmp_path):
    old = tmp_path / "x.policy-config.json"
    old.write_text(json.dumps({"all": "mandatory", "llmhost-stack-facts": {k: v for k, v in EU_AIRGAPPED_FACTS.items()
                                                                          if k != "registry"} | {"registry": EU_AIRGAPPED_FACTS["registry"]}}))
    cfg, notes = load_policy_config(old)
    assert cfg == policy_config(EU_AIRGAPPED_FACTS) and "older stack-facts format" in notes[0]
    bad = tmp_path / "bad.policy-config.json"
    bad.write_text(json.dumps({"all": "always"}))
    with pytest.raises(PolicyConfigError) as err:
        load_policy_config(bad)
    assert err.value.problems[0] == "all: 'always' is not an enforcement level (advisory, mandatory, remediate, disabled)"


# --- exceptions -------------------------------------------------------------------------------------------------

GOOD_EXCEPTION = {"policy": "ENC-004-cmk-log-groups", "stack": "dev", "resource": "audit-logs",
                  "reason": "The log group is recreated by the migration next sprint. It holds no prompts meanwhile.",
                  "approvedBy": "Jane Doe (security)", "approved": "2026-11-01", "expires": "2027-01-31"}


def test_checked_in_register_is_valid_and_listed_in_the_catalogue():
    register = load_exceptions()
    assert {(e.policy, e.stack, e.resource) for e in register} == {
        ("ENC-005-cmk-endpoints", "eu-confidential-vertex", "vertex-deployment"),
        ("ENC-005-cmk-endpoints", "us-vertex-support", "vertex-deployment")}
    for e in register:
        assert (e.expires - e.approved).days <= 365


@pytest.mark.parametrize("change, problem", [
    ({"resource": "*"}, "exceptions[0].resource: '*' is a pattern; an exception names exactly one resource"),
    ({"reason": "legacy"}, "exceptions[0].reason: give at least one full sentence (40+ characters) saying why the "
                           "control cannot be met and what mitigates the risk"),
    ({"expires": "2028-01-01"}, "exceptions[0].expires: 2028-01-01 is more than 365 days after approved (2026-11-01); "
                                "renew the exception instead"),
    ({"policy": "ENC-999-anything"}, "exceptions[0].policy: 'ENC-999-anything' is not a policy of this pack"),
    ({"approvedBy": None}, "exceptions[0].approvedBy: is required (no blanket waivers)"),
    ({"scope": "all"}, "exceptions[0].scope: unknown key; valid keys: policy, stack, resource, reason, approvedBy, "
                       "approved, expires, ticket"),
])
def test_a_malformed_exception_is_rejected(change, problem):
    entry = {k: v for k, v in {**GOOD_EXCEPTION, **change}.items() if v is not None}
    with pytest.raises(ExceptionsError) as err:
        parse_exceptions({"exceptions": [entry]})
    assert problem in err.value.problems


def test_an_active_exception_marks_the_violation_and_an_expired_one_is_ignored():
    [exc] = parse_exceptions({"exceptions": [GOOD_EXCEPTION]})
    resources = [{"type": "aws:cloudwatch/logGroup:LogGroup", "name": "audit-logs", "inputs": {"retentionInDays": 7},
                  "options": {"protect": True}}]
    cfg = policy_config({**EU_AIRGAPPED_FACTS, "network": "private"})
    [v] = evaluate(resources, cfg, stack="dev", exceptions=[exc], today=dt.date(2027, 1, 31))
    assert (v.policy, v.resource_name, v.excepted_by, v.blocking) == ("ENC-004-cmk-log-groups", "audit-logs", exc, False)
    [v] = evaluate(resources, cfg, stack="dev", exceptions=[exc], today=dt.date(2027, 2, 1))
    assert (v.excepted_by, v.blocking) == (None, True)
    [v] = evaluate(resources, cfg, stack="prod", exceptions=[exc], today=dt.date(2027, 1, 1))
    assert v.blocking, "an exception covers one stack only"


# --- catalogue --------------------------------------------------------------------------------------------------

def test_docs_policies_md_is_current():
    path = ROOT / "docs" / "policies.md"
    assert path.read_text() == render_markdown(), (
        "docs/policies.md is stale: regenerate it with\n  .venv/bin/python -c \"from policies.catalogue import "
        "render_markdown; open('docs/policies.md', 'w').write(render_markdown())\"")


def test_catalogue_covers_every_policy_and_the_exception_process():
    md, text = render_markdown(), render_text(detail=True)
    for rule in RULES:
        assert f'<a id="{rule.anchor}"></a>' in md and f"### {rule.id}: {rule.title}" in md
        assert rule.id in text and rule.remediation.split()[0] in text
        for field in (rule.checks, rule.why, rule.remediation):
            assert field in md
    assert "## Requesting an exception" in md and "expires" in md and "CODEOWNERS" in md
    assert "| ENC-005-cmk-endpoints | eu-confidential-vertex | vertex-deployment |" in md
    assert "policies/exceptions.yaml" in text


def test_the_pack_honours_the_exceptions_register_under_the_engine(monkeypatch):
    """Under `pulumi preview` (PULUMI_STACK set) an active exception suppresses that one resource's violation."""
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2 as proto
    from pulumi_policy import EnforcementLevel
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    servicer = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, POLICIES, EnforcementLevel.MANDATORY)
    request = proto.ConfigureAnalyzerRequest()
    facts = {**EU_AIRGAPPED_FACTS, "cloud": "gcp", "allowedRegions": ["europe-west4"], "network": "private",
             "classification": "confidential", "registry": None}
    for name, entry in policy_config(facts).items():
        if name != "all":
            cfg = proto.PolicyConfig(enforcementLevel=proto.MANDATORY)
            cfg.properties.update(entry)
            request.policyConfig[name].CopyFrom(cfg)
    servicer.Configure(request, None)
    props = struct_pb2.Struct()
    props.update({"location": "europe-west4",
                  "endpointConfig": {"privateServiceConnectConfig": {"enablePrivateServiceConnect": True}}})
    typ = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"

    def policies_reported(stack):
        monkeypatch.setenv("PULUMI_STACK", stack)
        resp = servicer.Analyze(proto.AnalyzeRequest(type=typ, properties=props, name="vertex-deployment",
                                                     urn=f"urn:pulumi:{stack}::llm-hosting::{typ}::vertex-deployment"), None)
        return [d.policyName for d in resp.diagnostics]

    assert policies_reported("eu-confidential-vertex") == []
    assert policies_reported("another-stack") == ["ENC-005-cmk-endpoints"]


def test_config_and_exceptions_need_no_pulumi_sdk():
    """`llmhost plan` writes policy configs without importing Pulumi: config.py and exceptions.py stay pure."""
    code = ("import sys; import policies.config, policies.exceptions, policies.props; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_policy', 'grpc')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
