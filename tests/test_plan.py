"""`llmhost plan`: every example plans, the checked-in stacks are what the planner writes, hand edits are kept safe."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import PROFILES, ROOT
from planner.stack_config import load_stack_config

EXPECTED = {
    "startup-api": ("api", None, "public", "groq"),
    "eu-residency-api": ("api", None, "public", "openai"),
    "healthcare-hipaa": ("managed", None, "private", "sagemaker"),
    "eu-confidential-vertex": ("managed", None, "private", "vertex"),
    "eu-sovereign-airgapped": ("self-hosted", None, "airgapped", "eks"),
    "fine-tuned": ("self-hosted", None, "private", "gke"),
    "tiered-sensitivity": ("hybrid", "tiered-by-sensitivity", "private", "eks"),
    "burst-hybrid": ("hybrid", "burst-overflow", "private", "eks"),
    "realtime-npc": ("self-hosted", None, "public", "eks"),
    "eu-airgapped-gke": ("self-hosted", None, "airgapped", "gke"),
    "us-vertex-support": ("managed", None, "private", "vertex"),
    "realtime-captions": ("self-hosted", None, "public", "gke"),
    "tgi-fine-tuned-eks": ("self-hosted", None, "private", "eks"),
    "tiered-managed-hybrid": ("hybrid", "tiered-by-sensitivity", "private", "sagemaker"),
}


def test_examples_cover_every_tier_and_both_clouds():
    assert {p.stem for p in PROFILES} == set(EXPECTED)
    tiers = {v[0] for v in EXPECTED.values()}
    assert tiers == {"api", "managed", "self-hosted", "hybrid"}
    clouds = {yaml.safe_load(p.read_text())["cloud"] for p in PROFILES}
    assert clouds == {"aws", "gcp"}


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_example_plans_to_its_checked_in_stack(cli, project, profile):
    stack = profile.stem
    result = cli("plan", f"stacks/profiles/{profile.name}", "--stack", stack, "--json", cwd=project)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    tier, pattern, network, provider = EXPECTED[stack]
    assert (decision["tier"], decision["pattern"], decision["network"], decision["provider"]) == (tier, pattern, network, provider)
    for key in ("tier", "pattern", "network", "cloud", "region", "provider", "candidates", "crossover", "reasons"):
        assert key in decision
    for cand in decision["candidates"]:
        assert {"tier", "monthly_cost_usd", "feasible", "reasons"} <= set(cand)
        assert cand["feasible"] or cand["reasons"], f"an infeasible candidate must say why: {cand['label']}"
    # The files in the repository are exactly what the planner writes today.
    for name in (f"Pulumi.{stack}.yaml", f"{stack}.policy-config.json", f"{stack}.decision.md"):
        assert (project / "stacks" / name).read_text() == (ROOT / "stacks" / name).read_text(), f"stacks/{name} is stale: re-plan"


def test_stack_file_holds_config_under_the_project_namespace(project, cli):
    cli("plan", "stacks/profiles/eu-residency-api.yaml", "--stack", "eu", cwd=project)
    doc = yaml.safe_load((project / "stacks/Pulumi.eu.yaml").read_text())
    keys = set(doc["config"])
    assert {"gcp:region", "gcp:project"} <= keys
    assert all(k.startswith("llm-hosting:") for k in keys - {"gcp:region", "gcp:project"})
    cfg = load_stack_config(doc["config"], "Pulumi.eu.yaml")
    assert cfg.region == "europe-west4" and cfg.api.replica_regions == ["europe-west1"]
    assert cfg.api.base_url == "https://eu.api.openai.com/v1"
    policy = json.loads((project / "stacks/eu.policy-config.json").read_text())
    assert policy["all"] == "mandatory"
    assert policy["RES-001-region-allowlist"] == {"allowedRegions": ["europe-west4", "europe-west1"]}
    assert policy["BND-001-no-third-party-api"]["classification"] == "internal"


def test_report_explains_the_decision(project, cli):
    cli("plan", "stacks/profiles/healthcare-hipaa.yaml", "--stack", "hc", cwd=project)
    report = (project / "stacks/hc.decision.md").read_text()
    for heading in ("## Recommendation", "## Rules that fired", "## Numbers used", "## Capacity", "## Candidates",
                    "## Crossover against each API option", "## What would change the answer"):
        assert heading in report
    assert "H2 boundary: regulated data never leaves the organisation's cloud boundary (hipaa)" in report
    assert "O1 ops: self-hosting needs a dedicated ML-ops team" in report
    assert "with team.ml_ops_capacity: dedicated, self-hosting would be allowed at $" in report


def test_summary_table_is_printed(project, cli):
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "s", cwd=project)
    assert result.exit_code == 0
    assert "s: api, network public, aws us-east-1" in result.stdout
    assert "wrote stacks/Pulumi.s.yaml" in result.stdout and "wrote stacks/s.decision.md" in result.stdout


def test_hand_edited_stack_is_not_overwritten_without_force(project, cli):
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["llm-hosting:network"] = "private"
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "startup-api", cwd=project)
    assert result.exit_code == 2
    assert "stacks/Pulumi.startup-api.yaml: config: was edited by hand since llmhost generated it" in result.stderr
    assert yaml.safe_load(path.read_text())["config"]["llm-hosting:network"] == "private", "the edit must survive"
    forced = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "startup-api", "--force", cwd=project)
    assert forced.exit_code == 0
    assert yaml.safe_load(path.read_text())["config"]["llm-hosting:network"] == "public"


def test_hand_written_stack_without_marker_is_refused(project, cli):
    (project / "stacks/Pulumi.mine.yaml").write_text("config:\n  aws:region: us-east-1\n")
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "mine", cwd=project)
    assert result.exit_code == 2
    assert "llm-hosting:generatedBy: is missing, so the file was written by hand; pass --force" in result.stderr


def test_replan_keeps_the_encrypted_key_and_secrets_provider(project, cli):
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    # What `pulumi stack init --secrets-provider` and `pulumi config set --secret` add to the file.
    doc["secretsprovider"] = "awskms://alias/llm-hosting-state?region=us-east-1"
    doc["encryptedkey"] = "AQICAHh0ZXN0"
    doc["config"]["llm-hosting:groqApiKey"] = {"secure": "v1:abc123"}
    path.write_text(yaml.safe_dump(doc))
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "startup-api", cwd=project)
    assert result.exit_code == 0, result.stderr
    again = yaml.safe_load(path.read_text())
    assert again["config"]["llm-hosting:groqApiKey"] == {"secure": "v1:abc123"}
    assert again["secretsprovider"] == "awskms://alias/llm-hosting-state?region=us-east-1"
    assert again["encryptedkey"] == "AQICAHh0ZXN0"


def test_own_catalog_changes_the_answer(project, cli, tmp_path):
    """--catalog: a user's prices drive the decision (here: without Groq, Together serves the startup)."""
    data = yaml.safe_load((ROOT / "planner/catalog.yaml").read_text())
    data["api_models"] = [m for m in data["api_models"] if m["provider"] != "groq"]
    own = tmp_path / "catalog.yaml"
    own.write_text(yaml.safe_dump(data))
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "c", "--catalog", str(own), "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["provider"] == "together"
    assert f"--catalog {own}" in (project / "stacks/Pulumi.c.yaml").read_text()


def test_licence_and_hub_token_key_are_carried_from_the_profile(project, cli, tmp_path):
    profile = yaml.safe_load((ROOT / "stacks/profiles/us-vertex-support.yaml").read_text())
    assert profile["model"]["accept_eula"] is True  # an explicit decision in the example, never a planner default
    profile["model"]["hugging_face_token_config"] = "hfToken"
    path = tmp_path / "gated.yaml"
    path.write_text(yaml.safe_dump(profile))
    result = cli("plan", str(path), "--stack", "gated", "--project-dir", str(project))
    assert result.exit_code == 0, result.stderr
    text = (project / "stacks/Pulumi.gated.yaml").read_text()
    model = yaml.safe_load(text)["config"]["llm-hosting:model"]
    assert (model["acceptEula"], model["huggingFaceTokenConfig"]) == (True, "hfToken")
    assert "#   pulumi config set --secret llm-hosting:hfToken <value> --stack gated" in text
    assert "pulumi config set --secret llm-hosting:hfToken <value> --stack gated" in \
        (project / "stacks/gated.decision.md").read_text()


def test_ungated_stacks_do_not_mention_the_licence():
    for profile in PROFILES:
        config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{profile.stem}.yaml").read_text())["config"]
        accepted = yaml.safe_load(profile.read_text()).get("model", {}).get("accept_eula", False)
        assert ("acceptEula" in config.get("llm-hosting:model", {})) == accepted, profile.stem


# Issue 11: a plan is always buildable. The planner applies the stack's checks and the program's build-time refusals
# to every candidate before it chooses, and a refusal names the profile field to change.


def _profile_without(tmp_path, example: str, **changes):
    data = yaml.safe_load((ROOT / "stacks/profiles" / f"{example}.yaml").read_text())
    for key, value in changes.items():
        node, *path = key.split("__")
        target = data
        for part in [node, *path][:-1]:
            target = target[part]
        last = [node, *path][-1]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    path = tmp_path / f"{example}-changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_private_vertex_without_a_registry_is_refused_naming_the_profile_field(cli, project, tmp_path):
    path = _profile_without(tmp_path, "us-vertex-support", private_registry=None)
    result = cli("plan", str(path), "--stack", "noreg", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith(f"error: {path}: private_registry: "))
    assert "-docker.pkg.dev/bank-support-llm/llm-images would make a tier feasible: managed: vertex" in line, line
    assert f"error: {path}: team.ml_ops_capacity: dedicated instead of limited would make a tier feasible" in result.stderr
    assert "llm-hosting:registry" not in result.stderr, "a stack key the profile cannot set"
    assert not (project / "stacks/Pulumi.noreg.yaml").exists()


def test_private_vertex_without_a_registry_loses_to_a_tier_that_builds(cli, project, tmp_path):
    from preview.harness import run_preview

    path = _profile_without(tmp_path, "us-vertex-support", private_registry=None, team__ml_ops_capacity="dedicated")
    result = cli("plan", str(path), "--stack", "noreg", "--json", "--project-dir", str(project))
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["tier"], decision["provider"]) == ("self-hosted", "gke")
    vertex = next(c for c in decision["candidates"] if c["tier"] == "managed")
    assert not vertex["feasible"]
    assert any(r.startswith("B1 build: the stack would be refused: private_registry: a private Vertex AI endpoint")
               for r in vertex["reasons"]), vertex["reasons"]
    run_preview(project, "noreg")


def test_a_hybrid_on_a_managed_endpoint_is_planned_and_built(cli, project, tmp_path):
    """Limited ops rule self-hosting out; the hybrid's in-boundary share is cheapest on SageMaker. With the gateway on
    ECS on Fargate where there is no cluster, the planner chooses that hybrid and the program builds it."""
    from preview.harness import run_preview

    path = _profile_without(tmp_path, "tiered-sensitivity", team__ml_ops_capacity="limited")
    result = cli("plan", str(path), "--stack", "hyb", "--json", "--project-dir", str(project))
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["tier"], decision["provider"]) == ("hybrid", "sagemaker"), decision["label"]
    assert not any("B1 build" in r for c in decision["candidates"] for r in c["reasons"])
    preview = run_preview(project, "hyb")
    [service] = preview.by_type("aws:ecs/service:Service")
    assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
    assert preview.outputs["endpoint_url"] == "https://hyb.llm.internal/v1"
    assert preview.by_type("aws:sagemaker/endpoint:Endpoint")
    assert not preview.by_type("kubernetes:apps/v1:Deployment")


def test_the_program_and_the_planner_share_one_build_predicate():
    from planner.stack_config import unbuilt_refusal

    for tier, boundary in (("hybrid", "self-hosted"), ("hybrid", "managed"), ("managed", None), ("api", None)):
        assert unbuilt_refusal(tier, boundary) is None, (tier, boundary)
    main = (ROOT / "__main__.py").read_text()
    assert "cfg.unbuilt()" in main and "needs a cluster" not in main


@pytest.mark.parametrize("key,field", [
    ("llm-hosting:registry", "private_registry"),
    ("llm-hosting:model.acceptEula", "model.accept_eula"),
    ("llm-hosting:residency.allowedRegions[1]", "residency.allowed_regions[1]"),
    ("gcp:region", "residency.allowed_regions"),
    ("llm-hosting:api.replicaRegions[0]", "residency.allowed_regions"),
    ("llm-hosting:selfHosted.gpusPerReplica", "model.size_class"),
    ("llm-hosting:network", "data_sensitivity"),
])
def test_stack_keys_map_back_to_the_profile_field_that_wrote_them(key, field):
    from planner.profile import load_profile
    from planner.stackgen import profile_field

    assert profile_field(key, load_profile(ROOT / "stacks/profiles/startup-api.yaml")) == field


@pytest.mark.parametrize("example,changes,field,message", [
    ("healthcare-hipaa", {"model__weights_uri": None}, "model.weights_uri",
     "a SageMaker endpoint loads the weights from an in-region S3 prefix"),
    ("healthcare-hipaa", {"model__weights_uri": "s3://acme-health-models/llama-3.1-70b-instruct"}, "model.weights_uri",
     "'s3://acme-health-models/llama-3.1-70b-instruct' must end with '/': SageMaker reads a key prefix"),
    ("eu-sovereign-airgapped", {"model__weights_uri": None}, "model.weights_uri",
     "an air-gapped cluster cannot download meta-llama/Llama-3.1-70B-Instruct from the hub"),
], ids=["sagemaker-without-weights", "sagemaker-weights-not-a-prefix", "airgapped-cluster-without-weights"])
def test_weights_the_program_cannot_load_are_refused_at_plan(cli, project, tmp_path, example, changes, field, message):
    """Found by the property test: these planned, then the program failed in the middle of the build."""
    path = _profile_without(tmp_path, example, **changes)
    result = cli("plan", str(path), "--stack", "w", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"B1 build: the stack would be refused: {field}: {message}" in result.stderr
    assert f"error: {path}: {field}: " in result.stderr, "the relaxation that makes it plan"
    assert not (project / "stacks/Pulumi.w.yaml").exists()
