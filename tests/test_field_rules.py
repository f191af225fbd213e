"""Every value rule a component or the engine enforces is also a field rule of the stack config or the profile.

A hand edit the README invites (a single replica, a SageMaker timeout, a VPC range, a bigger model, a public API
server, the spot fleet) is refused by the loader, before the program registers anything, with the stack key as the
user wrote it; never by a component's ValueError naming a Python argument. A profile value the model or the cloud
cannot take is refused at `llmhost plan` with the profile field. The `protect` opt-out is a profile field, carried
into the stack file and the policy config by the same plan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, edit_stack, set_section
from planner.profile import Profile, load_profile
from planner.stackgen import profile_field, valid_stack_name


def _both(*edits):
    def edit(config):
        for e in edits:
            e(config)
    return edit


def _internet(**endpoint):
    values = {"audience": "internet", "domain": "llm.example.com", "publicZone": "Z0123456789ABCDEFGHIJ", **endpoint}
    return set_section("endpoint", **values)


# (id, stack, hand edit, the stack key refused, what the refusal says): each raised a component's ValueError (a
# traceback, after resources were registered) or was silently built before these rules.
STACK_VALUE_CASES = [
    # managed fleet
    ("sagemaker-single-instance", "healthcare-hipaa", set_section("managed", minReplicas=1, onDemandReplicas=1),
     "llm-hosting:managed.minReplicas", "use 2 or more, or set managed.allowSingleInstance: true"),
    ("vertex-single-replica", "us-vertex-support", set_section("managed", minReplicas=1, onDemandReplicas=1),
     "llm-hosting:managed.minReplicas", "set managed.allowSingleInstance: true"),
    ("sagemaker-startup-timeout-short", "healthcare-hipaa", set_section("managed", startupTimeoutSeconds=30),
     "llm-hosting:managed.startupTimeoutSeconds", "30 is outside SageMaker's range of 60..3600 seconds"),
    ("sagemaker-download-timeout-long", "healthcare-hipaa", set_section("managed", downloadTimeoutSeconds=4000),
     "llm-hosting:managed.downloadTimeoutSeconds", "4000 is outside SageMaker's range of 60..3600 seconds"),
    ("managed-on-demand-above-max", "healthcare-hipaa", set_section("managed", onDemandReplicas=5),
     "llm-hosting:managed.onDemandReplicas", "5 is above managed.maxReplicas (2)"),
    # self-hosted fleet
    ("eks-single-replica", "tgi-fine-tuned-eks", set_section("selfHosted", minReplicas=1, onDemandReplicas=1, maxReplicas=1),
     "llm-hosting:selfHosted.minReplicas", "1 leaves no replica serving"),
    ("gke-single-replica", "realtime-captions", set_section("selfHosted", minReplicas=1),
     "llm-hosting:selfHosted.minReplicas", "use 2 or more"),
    ("spot-types-empty-eks", "realtime-npc", set_section("selfHosted", spotInstanceTypes=[]),
     "llm-hosting:selfHosted.spotInstanceTypes", "no spot node group for the 9 spot replicas"),
    ("spot-types-empty-gke", "realtime-captions", set_section("selfHosted", spotInstanceTypes=[]),
     "llm-hosting:selfHosted.spotInstanceTypes", "no spot node group for the 14 spot replicas"),
    ("spot-above-max", "realtime-npc", set_section("selfHosted", spotReplicas=40),
     "llm-hosting:selfHosted.spotReplicas", "40 is above selfHosted.maxReplicas (11)"),
    ("on-demand-above-max", "realtime-npc", set_section("selfHosted", onDemandReplicas=40),
     "llm-hosting:selfHosted.onDemandReplicas", "40 is above selfHosted.maxReplicas (11)"),
    ("on-demand-below-floor", "realtime-npc", set_section("selfHosted", onDemandReplicas=1, spotReplicas=10),
     "llm-hosting:selfHosted.onDemandReplicas", "1 is below selfHosted.minReplicas (2)"),
    ("split-above-the-peak", "realtime-npc", set_section("selfHosted", spotReplicas=10),
     "llm-hosting:selfHosted.spotReplicas", "(2 + 10) is above maxReplicas (11), the peak fleet they split; set spotReplicas: 9"),
    ("odd-tensor-parallel", "eu-sovereign-airgapped", set_section("selfHosted", gpusPerReplica=3),
     "llm-hosting:selfHosted.gpusPerReplica", "use one of 1, 2, 4, 8"),
    ("startup-budget-too-short", "realtime-npc", set_section("selfHosted", startupTimeoutSeconds=10),
     "llm-hosting:selfHosted.startupTimeoutSeconds", "cannot cover a model download and load"),
    ("eks-api-server-open-to-all", "realtime-npc", set_section("selfHosted", publicAccessCidrs=["0.0.0.0/0"]),
     "llm-hosting:selfHosted.publicAccessCidrs[0]", "opens the cluster's API server to the whole internet"),
    ("gke-api-server-open-to-all", "realtime-captions", set_section("selfHosted", publicAccessCidrs=["0.0.0.0/0"]),
     "llm-hosting:selfHosted.publicAccessCidrs[0]", "opens the cluster's API server to the whole internet"),
    ("api-server-cidr-malformed", "realtime-npc", set_section("selfHosted", publicAccessCidrs=["203.0.113.0/24", "1.2.3.4/40"]),
     "llm-hosting:selfHosted.publicAccessCidrs[1]", "'1.2.3.4/40' is not an IPv4 network in CIDR notation"),
    # model
    ("size-class-unknown", "eu-sovereign-airgapped", set_section("model", sizeClass="1t"),
     "llm-hosting:model.sizeClass", "'1t' is not a size class in the catalog; valid: 8b, 70b, moe-47b, 405b"),
    ("size-class-405b-does-not-fit", "eu-sovereign-airgapped", set_section("model", sizeClass="405b"),
     "llm-hosting:selfHosted.gpusPerReplica", "405b in fp8 needs"),
    ("context-above-the-model-vllm", "realtime-npc", set_section("model", maxContextTokens=1_000_000),
     "llm-hosting:model.maxContextTokens", "1000000 is above the 131072 tokens 8b models are trained for"),
    ("context-above-the-model-sagemaker", "healthcare-hipaa", set_section("model", maxContextTokens=1_000_000),
     "llm-hosting:model.maxContextTokens", "above the 131072 tokens 70b models are trained for"),
    ("context-above-the-model-vertex", "us-vertex-support", set_section("model", maxContextTokens=1_000_000),
     "llm-hosting:model.maxContextTokens", "above the 131072 tokens 8b models are trained for"),
    ("context-too-short-for-tgi", "tgi-fine-tuned-eks", set_section("model", maxContextTokens=1),
     "llm-hosting:model.maxContextTokens", "TGI needs room for at least one input and one output token"),
    # network ranges
    ("vpc-cidr-malformed", "startup-api", set_section("vpc", cidr="10.0.0.0/33"),
     "llm-hosting:vpc.cidr", "'10.0.0.0/33' is not an IPv4 network in CIDR notation"),
    ("vpc-cidr-host-bits", "startup-api", set_section("vpc", cidr="10.0.0.1/16"),
     "llm-hosting:vpc.cidr", "has host bits set"),
    ("vpc-cidr-ipv6", "startup-api", set_section("vpc", cidr="fd00::/48"),
     "llm-hosting:vpc.cidr", "is IPv6"),
    ("vpc-cidr-too-small", "startup-api", set_section("vpc", cidr="10.0.0.0/26"),
     "llm-hosting:vpc.cidr", "10.0.0.0/26 is too small for 3 availability zones"),
    ("vpc-cidr-too-small-for-zones", "eu-sovereign-airgapped", set_section("vpc", cidr="10.0.0.0/22", azCount=6),
     "llm-hosting:vpc.cidr", "is too small for 6 availability zones"),
    ("gke-subnet-malformed", "realtime-captions", set_section("vpc", cidr="10.0.0.0/8x"),
     "llm-hosting:vpc.cidr", "is not an IPv4 network in CIDR notation"),
    ("gke-pods-overlap-subnet", "realtime-captions", set_section("vpc", podsCidr="10.0.0.0/16"),
     "llm-hosting:vpc.podsCidr", "overlaps vpc.cidr (10.0.0.0/16)"),
    ("gke-services-malformed", "realtime-captions", set_section("vpc", servicesCidr="nope"),
     "llm-hosting:vpc.servicesCidr", "'nope' is not an IPv4 network"),
    ("gcp-subnet-over-proxy-only", "eu-residency-api", set_section("vpc", cidr="10.26.0.0/16"),
     "llm-hosting:vpc.cidr", "overlaps 10.26.0.0/23, the proxy-only subnet"),
    ("gke-one-zone", "realtime-captions", set_section("vpc", zones=["us-central1-a"]),
     "llm-hosting:vpc.zones", "span at least two zones of us-central1"),
    # versions
    ("serving-image-unpinned", "realtime-npc", lambda c: c.update({"llm-hosting:versions": {"vllm_tag": "latest"}}),
     "llm-hosting:versions.vllm_tag", "'latest' is not pinned"),
    ("gateway-image-unpinned", "startup-api", lambda c: c.update({"llm-hosting:versions": {"litellm_tag": "latest"}}),
     "llm-hosting:versions.litellm_tag", "'latest' is not pinned"),
    ("serving-release-without-queue-metric", "tgi-fine-tuned-eks",
     lambda c: c.update({"llm-hosting:versions": {"tgi_tag": "2.0.0"}}),
     "llm-hosting:versions.tgi_tag", "tgi release '2.0.0' is not in the queue-metric table"),
    ("autoscaler-of-another-kubernetes", "realtime-npc", lambda c: c.update({"llm-hosting:versions": {"eks_version": "1.32"}}),
     "llm-hosting:versions.eks_version", "set versions.cluster_autoscaler_tag to a v1.32.x release"),
    # endpoint and observability
    ("endpoint-cidr-malformed", "startup-api", _internet(allowedCidrs=["203.0.113.0/24x"]),
     "llm-hosting:endpoint.allowedCidrs[0]", "is not an IPv4 CIDR"),
    ("endpoint-zone-not-route53", "startup-api", _internet(publicZone="example-com"),
     "llm-hosting:endpoint.publicZone", "'example-com' is not a Route 53 hosted zone id"),
    ("gcp-log-retention-beyond-cloud-logging", "realtime-captions", set_section("observability", logRetentionDays=3653),
     "llm-hosting:observability.logRetentionDays", "beyond the 3650 days a Cloud Logging bucket keeps logs"),
]


@pytest.mark.parametrize("stack,edit,key,message", [c[1:] for c in STACK_VALUE_CASES], ids=[c[0] for c in STACK_VALUE_CASES])
def test_hand_edit_a_component_would_refuse_is_refused_by_the_loader(cli, project, stack, edit, key, message):
    edit_stack(project, stack, edit)
    result = cli("preview", "--stack", stack, "--project-dir", str(project), "--skip-policies")
    assert result.exit_code == 2, result.output
    assert f"error: stacks/Pulumi.{stack}.yaml: {key}: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert "=True" not in result.stderr, "a stack key, never a Python argument"
    assert "_" not in key.split(":", 1)[1] or key.split(":", 1)[1].startswith("versions."), key
    assert result.stdout == "", "nothing may be registered (no resource tree) for a refused config"


@pytest.mark.parametrize("stack", ["healthcare-hipaa", "us-vertex-support"])
def test_single_instance_opt_out_is_the_stack_key_the_refusal_names(cli, project, stack):
    """The refusal's way out works: with managed.allowSingleInstance the same edit builds."""
    edit_stack(project, stack, set_section("managed", minReplicas=1, onDemandReplicas=2, allowSingleInstance=True))
    result = cli("preview", "--stack", stack, "--project-dir", str(project), "--skip-policies")
    assert result.exit_code == 0, result.output


def _write_profile(tmp_path: Path, example: str, edit) -> Path:
    data = yaml.safe_load((ROOT / "stacks/profiles" / f"{example}.yaml").read_text())
    edit(data)
    path = tmp_path / f"{example}-edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


PROFILE_VALUE_CASES = [
    ("context-above-the-model", "realtime-npc", lambda d: d["model"].update(max_context_tokens=1_000_000),
     "model.max_context_tokens", "1000000 is above the 131072 tokens 8b models are trained for"),
    ("gcp-without-project", "us-vertex-support", lambda d: d.pop("gcp_project"),
     "gcp_project", "is required for cloud: gcp"),
    ("gcp-api-without-project", "eu-residency-api", lambda d: d.pop("gcp_project"),
     "gcp_project", "is required for cloud: gcp"),
    ("endpoint-cidr-malformed", "startup-api",
     lambda d: d.update(endpoint={"audience": "internet", "domain": "llm.example.com", "public_zone": "Z0123456789ABCDEFGHIJ",
                                  "allowed_cidrs": ["203.0.113.0/24", "203.0.113.7/24"]}),
     "endpoint.allowed_cidrs[1]", "'203.0.113.7/24' is not an IPv4 CIDR"),
    ("protect-not-a-boolean", "startup-api", lambda d: d.update(protect="sometimes"), "protect", "valid boolean"),
]


@pytest.mark.parametrize("example,edit,field,message", [c[1:] for c in PROFILE_VALUE_CASES],
                         ids=[c[0] for c in PROFILE_VALUE_CASES])
def test_profile_value_is_refused_at_plan_with_the_profile_field(cli, project, tmp_path, example, edit, field, message):
    path = _write_profile(tmp_path, example, edit)
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: {path}: {field}: " in result.stderr, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not list((project / "stacks").glob("*bad*")), "nothing may be written for a refused profile"


def test_profile_context_is_held_to_the_catalog_the_plan_uses(tmp_path, catalog):
    """A catalog of its own (`--catalog`) decides the model's maximum context, not the kit's."""
    path = _write_profile(tmp_path, "realtime-npc", lambda d: d["model"].update(max_context_tokens=200_000))
    spec = catalog.models["8b"]
    longer = catalog.model_copy(update={"models": {**catalog.models, "8b": spec.model_copy(update={"max_context_tokens": 262_144})}})
    assert load_profile(path, longer).model.max_context_tokens == 200_000
    with pytest.raises(Exception, match="model.max_context_tokens"):
        load_profile(path, catalog)


@pytest.mark.parametrize("name,valid", [
    ("startup-api", True), ("x", True), ("a" * 32, True), ("prod-2", True),
    ("eu_prod.2", False), ("A1", False), ("1prod", False), ("prod-", False), ("a" * 33, False), (".", False),
    ("café", False), ("prod١", False), ("ｐｒｏｄ", False), ("a b", False), ("a/b", False), ("", False), ("prod\n", False),
])
def test_stack_names_are_what_the_resources_can_carry(name, valid):
    """The name becomes a DNS label and part of GCP and AWS resource names: ASCII lower case, at most 32."""
    assert valid_stack_name(name) is valid


@pytest.mark.parametrize("name", ["café", "prod١"])
def test_plan_refuses_a_non_ascii_stack_name(cli, project, name):
    result = cli("plan", str(ROOT / "stacks/profiles/startup-api.yaml"), "--stack", name, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"--stack: {name!r} is not a valid stack name" in result.stderr
    assert not (project / "stacks" / f"Pulumi.{name}.yaml").exists()


def _profile(example: str, **changes) -> Profile:
    data = yaml.safe_load((ROOT / "stacks/profiles" / f"{example}.yaml").read_text())
    data.update(changes)
    return Profile.model_validate(data)


# A refusal of a generated stack names the profile field that wrote the key (what to change before re-planning).
PROFILE_FIELD_CASES = [
    ("llm-hosting:managed.minReplicas", "availability_target"),
    ("llm-hosting:managed.allowSingleInstance", "availability_target"),
    ("llm-hosting:selfHosted.minReplicas", "availability_target"),
    ("llm-hosting:managed.onDemandReplicas", "traffic"),
    ("llm-hosting:selfHosted.maxReplicas", "traffic"),
    ("llm-hosting:selfHosted.onDemandReplicas", "traffic"),
    ("llm-hosting:selfHosted.spotReplicas", "allow_spot"),
    ("llm-hosting:selfHosted.spotInstanceTypes", "allow_spot"),
    ("llm-hosting:managed.startupTimeoutSeconds", "model.size_class"),
    ("llm-hosting:selfHosted.gpusPerReplica", "model.size_class"),
    ("llm-hosting:model.maxContextTokens", "model.max_context_tokens"),
    ("llm-hosting:model.sizeClass", "model.size_class"),
    ("llm-hosting:protect", "protect"),
    ("llm-hosting:spend.drift.dailyTokensNow", "traffic.daily_requests"),
    ("llm-hosting:spend.drift.growthMonthlyPercent", "traffic.growth_monthly_percent"),
    ("llm-hosting:spend.drift.upperDailyTokens", "traffic"),
    ("llm-hosting:spend.apiRequestsPerMinute", "traffic"),
    ("llm-hosting:spend.billingAccount", "gcp_billing_account"),
    ("llm-hosting:spend.activateCostAllocationTag", "aws_activate_cost_allocation_tag"),
    ("llm-hosting:consumers[1].roleName", "consumers[1].aws_role_name"),
    ("llm-hosting:consumers[0].member", "consumers[0].gcp_member"),
    ("llm-hosting:consumers[0].name", "consumers[0].name"),
    ("llm-hosting:consumers[2].requestsPerMinute", "consumers[2].share_percent"),
    ("gcp:project", "gcp_project"),
]


@pytest.mark.parametrize("key,field", PROFILE_FIELD_CASES)
def test_generated_stack_refusal_names_the_profile_field(key, field):
    assert profile_field(key, _profile("healthcare-hipaa")) == field


@pytest.mark.parametrize("key", [k for k, _ in PROFILE_FIELD_CASES])
def test_every_mapped_field_is_a_profile_field(key):
    """The audit: each field a refusal names is one the profile has (top-level key, and the nested key below it)."""
    field = profile_field(key, _profile("healthcare-hipaa"))
    head, _, rest = field.partition(".")
    head = head.split("[")[0]
    assert head in Profile.model_fields, field
    if rest:
        inner = Profile.model_fields[head].annotation
        inner = getattr(inner, "__args__", (inner,))[0]  # Optional[...] / list[...]
        assert rest in inner.model_fields, field


def _plan(cli, project, profile: Path, stack: str):
    return cli("plan", str(profile), "--stack", stack, "--project-dir", str(project))


def test_protect_false_is_a_profile_field_carried_into_the_stack_and_the_policy_config(cli, project, tmp_path):
    path = _write_profile(tmp_path, "startup-api", lambda d: d.update(protect=False))
    first = _plan(cli, project, path, "scratch")
    assert first.exit_code == 0, first.output
    config = yaml.safe_load((project / "stacks/Pulumi.scratch.yaml").read_text())["config"]
    assert config["llm-hosting:protect"] is False
    policy = json.loads((project / "stacks/scratch.policy-config.json").read_text())
    assert policy["BAS-004-protect-stateful"].get("enforcementLevel") == "advisory"
    again = _plan(cli, project, path, "scratch")
    assert again.exit_code == 0, again.output  # a re-plan of the same profile is not a hand edit
    preview = cli("preview", "--stack", "scratch", "--project-dir", str(project))
    assert preview.exit_code == 0, preview.output  # the pack reads the opt-out from the same plan
    assert "BAS-004-protect-stateful" in preview.output


def test_protect_defaults_to_true(cli, project, tmp_path):
    path = _write_profile(tmp_path, "startup-api", lambda d: d.pop("protect", None))
    assert _plan(cli, project, path, "kept").exit_code == 0
    config = yaml.safe_load((project / "stacks/Pulumi.kept.yaml").read_text())["config"]
    assert config["llm-hosting:protect"] is True
    policy = json.loads((project / "stacks/kept.policy-config.json").read_text())
    assert "enforcementLevel" not in policy["BAS-004-protect-stateful"]


@pytest.mark.parametrize("name", ["Startup-API", "1st", "a" * 33])
def test_preview_refuses_a_stack_name_its_resources_cannot_carry(cli, project, name):
    """A stack file named by hand (`pulumi stack init Startup-API`): refused before anything is registered, naming the
    rule, rather than failing inside a component that builds a DNS label or an AWS name from it."""
    src = project / "stacks" / "Pulumi.startup-api.yaml"
    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(src.read_text())
    result = cli("preview", "--stack", name, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert f"{name!r} cannot name this stack's resources" in result.stderr


def test_an_average_request_must_fit_the_context(cli, project, tmp_path):
    """1e30 prompt tokens on average: refused at the traffic field, not as 'no tier can serve' naming the model."""
    doc = yaml.safe_load((ROOT / "stacks/profiles/eu-confidential-vertex.yaml").read_text())
    doc["traffic"]["avg_input_tokens"] = 10 ** 30
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", str(path), "--stack", "huge", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert "traffic.avg_input_tokens" in result.stderr and "does not fit" in result.stderr
    assert not (project / "stacks" / "Pulumi.huge.yaml").exists()
