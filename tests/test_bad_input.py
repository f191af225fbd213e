"""Every kind of bad input gets one clear error naming the file and the field, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, edit_stack, set_section

GOOD = yaml.safe_load((ROOT / "stacks/profiles/startup-api.yaml").read_text())


def _profile(tmp_path: Path, data, name="p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _with(**changes):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        *head, last = dotted.split("__")
        node = data
        for k in head:
            node = node[k]
        if value is _DROP:
            node.pop(last)
        else:
            node[last] = value
    return data


_DROP = object()

PROFILE_CASES = [
    ("unknown-key", _with(traffic__daily_request=5), "traffic.daily_request", "unknown key; valid keys here: avg_input_tokens"),
    ("unknown-top-key", _with(team__size=3), "team.size", "unknown key; valid keys here: ml_ops_capacity"),
    ("wrong-type", _with(traffic__daily_requests="lots"), "traffic.daily_requests", "valid integer"),
    ("negative", _with(traffic__avg_output_tokens=-1), "traffic.avg_output_tokens", "greater than 0"),
    ("missing", _with(latency_sla_ms=_DROP), "latency_sla_ms", "is required but missing"),
    ("bad-enum", _with(data_sensitivity="secret"), "data_sensitivity", "'public', 'internal', 'confidential' or 'regulated'"),
    ("unknown-region", _with(residency__allowed_regions=["us-east-1", "us-middle-1"]), "residency.allowed_regions[1]",
     "'us-middle-1' is not a region of aws; valid aws regions: us-east-1"),
    ("region-of-other-cloud", _with(residency__allowed_regions=["europe-west4"]), "residency.allowed_regions[0]",
     "'europe-west4' is not a region of aws"),
    ("peak-longer-than-day", _with(traffic__peak_to_average=8, traffic__peak_hours_per_day=4), "traffic",
     "more than a day holds"),
    ("shares", _with(workloads=[{"name": "a", "share_percent": 60, "data_sensitivity": "internal"},
                                {"name": "b", "share_percent": 30, "data_sensitivity": "public"}]),
     "workloads", "add up to 90, they must add up to 100"),
    ("workload-above-profile", _with(workloads=[{"name": "a", "share_percent": 100, "data_sensitivity": "regulated"}]),
     "workloads[0].data_sensitivity", "above the profile's data_sensitivity 'internal'"),
    ("contradiction-frontier-regulated", _with(data_sensitivity="regulated", quality="frontier"), "quality",
     "frontier quality is only offered by closed APIs, which this traffic may not use (H2 boundary: regulated data"),
    ("no-model-in-boundary", _with(data_sensitivity="confidential", model=_DROP), "",
     "no tier can serve this profile"),
]


@pytest.mark.parametrize("data,field,message", [c[1:] for c in PROFILE_CASES], ids=[c[0] for c in PROFILE_CASES])
def test_bad_profile_is_refused_with_file_field_and_exit_2(cli, project, tmp_path, data, field, message):
    path = _profile(tmp_path, data)
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: {path}: {field}" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (project / "stacks" / "Pulumi.bad.yaml").exists(), "nothing may be written for a refused profile"


@pytest.mark.parametrize("text,expected", [
    (None, "no such profile file"),
    ("cloud: aws\ntraffic: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "a workload profile is a YAML mapping"),
], ids=["missing-file", "invalid-yaml", "not-a-mapping"])
def test_unreadable_profile(cli, project, tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    if text is not None:
        path.write_text(text)
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2
    assert str(path) in result.stderr and expected in result.stderr


def test_bad_catalog_names_the_row_and_what_is_missing(cli, project, tmp_path):
    data = yaml.safe_load((ROOT / "planner" / "catalog.yaml").read_text())
    del data["api_models"][0]["source"]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("plan", str(ROOT / "stacks/profiles/startup-api.yaml"), "--stack", "x", "--catalog", str(path),
                 "--project-dir", str(project))
    assert result.exit_code == 2
    assert f"{path}: api_models[0]: every number needs a `source`" in result.stderr


def test_catalog_with_unknown_gpu_reference(cli, project, tmp_path):
    data = yaml.safe_load((ROOT / "planner" / "catalog.yaml").read_text())
    data["instances"][3]["gpu"] = "B300"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("plan", str(ROOT / "stacks/profiles/startup-api.yaml"), "--stack", "x", "--catalog", str(path),
                 "--project-dir", str(project))
    assert result.exit_code == 2
    assert "instances[3].gpu 'B300' is not in gpus (A100-40GB, A100-80GB, A10G, H100, H200, L4, L40S, T4)" in result.stderr


def _edit_stack(project: Path, stack: str, edit) -> Path:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc["config"])
    path.write_text(yaml.safe_dump(doc))
    return path


STACK_CASES = [
    ("unknown-key", lambda c: c.update({"llm-hosting:tire": "api"}), "llm-hosting:tire", "unknown key; valid llm-hosting keys: api, catalog, cloud"),
    ("region-outside-residency", lambda c: c.update({"aws:region": "eu-west-1"}), "aws:region",
     "'eu-west-1' is outside residency.allowedRegions (us-east-1, us-west-2)"),
    ("replica-outside-residency", lambda c: c["llm-hosting:api"].update({"replicaRegions": ["eu-central-1"]}),
     "llm-hosting:api.replicaRegions[0]", "'eu-central-1' is outside residency.allowedRegions"),
    ("airgapped-with-api", lambda c: c.update({"llm-hosting:network": "airgapped"}), "llm-hosting:api",
     "an air-gapped stack has no route to a third-party API"),
    ("regulated-to-api", lambda c: c["llm-hosting:residency"].update({"classification": "regulated"}), "llm-hosting:api",
     "regulated data may not be sent to a third-party API"),
    ("wrong-type", lambda c: c.update({"llm-hosting:protect": "sometimes"}), "llm-hosting:protect", "valid boolean"),
    ("bad-tier", lambda c: c.update({"llm-hosting:tier": "serverless"}), "llm-hosting:tier",
     "'api', 'managed', 'self-hosted' or 'hybrid'"),
    ("plaintext-key", lambda c: c.update({"llm-hosting:groqApiKey": "gsk-plaintext"}), "llm-hosting:groqApiKey",
     "is stored in plain text; set it with `pulumi config set --secret`"),
]


@pytest.mark.parametrize("edit,field,message", [c[1:] for c in STACK_CASES], ids=[c[0] for c in STACK_CASES])
def test_bad_stack_config_is_refused_before_any_resource(cli, project, edit, field, message):
    _refused_before_any_resource(cli, project, "startup-api", edit, field, message)


def _refused_before_any_resource(cli, project, stack, edit, field, message):
    _edit_stack(project, stack, edit)
    result = cli("preview", "--stack", stack, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: stacks/Pulumi.{stack}.yaml: {field}: " in result.stderr
    assert message in result.stderr
    assert result.stdout == "", "no resource tree may be printed for a refused config"


def _both(*edits):
    def edit(config):
        for e in edits:
            e(config)
    return edit


# A hand-edited fleet is held to the memory fit at the precision it names, and a managed endpoint to its instance.
FLEET_CASES = [
    ("managed-on-half-the-instance", "healthcare-hipaa", set_section("managed", gpusPerReplica=2),
     "llm-hosting:managed.gpusPerReplica", "ml.g6e.12xlarge has 4 GPU(s) and a managed endpoint serves one model copy "
     "per instance on all of them; set gpusPerReplica: 4"),
    ("managed-fp16-does-not-fit", "healthcare-hipaa",
     _both(set_section("model", kvCacheTokens=100_000), set_section("managed", precision="fp16")),
     "llm-hosting:managed.precision", "70b in fp16 needs 174.0 GB (weights + KV cache for 100000 tokens) but 4 x L40S "
     "offer 168.8 GB; use precision: fp8 (fits on 4 x L40S)"),
    ("managed-fp16-needs-a-bigger-instance", "healthcare-hipaa",
     set_section("managed", instanceType="ml.g5.12xlarge", gpu="A10G", precision="fp16"),
     "llm-hosting:managed.instanceType", "70b in fp16 needs 149.1 GB (weights + KV cache for 24000 tokens) but 4 x A10G "
     "offer 82.4 GB; use instanceType: ml.g5.48xlarge with gpusPerReplica: 8"),
    ("fp8-without-fp8-support", "healthcare-hipaa", set_section("managed", instanceType="ml.g5.12xlarge", gpu="A10G"),
     "llm-hosting:managed.precision", "A10G has no FP8 support, so the engine cannot run the model in fp8 there; "
     "use precision: fp16"),
    ("self-hosted-fp16-does-not-fit", "eu-sovereign-airgapped", set_section("selfHosted", precision="fp16"),
     "llm-hosting:selfHosted.precision", "70b in fp16 needs 151.2 GB (weights + KV cache for 30400 tokens) but 2 x L40S "
     "offer 84.4 GB; use precision: fp8 (fits on 2 x L40S) or gpusPerReplica: 4 on e.g. g6e.12xlarge"),
]


@pytest.mark.parametrize("stack,edit,field,message", [c[1:] for c in FLEET_CASES], ids=[c[0] for c in FLEET_CASES])
def test_fleet_that_cannot_serve_as_configured_is_refused_before_any_resource(cli, project, stack, edit, field, message):
    edit_stack(project, stack, edit)
    result = cli("preview", "--stack", stack, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: stacks/Pulumi.{stack}.yaml: {field}: {message}" in result.stderr
    assert result.stdout == "", "no resource tree may be printed for a refused config"


def test_missing_stack_file(cli, project):
    result = cli("preview", "--stack", "nope", "--project-dir", str(project))
    assert result.exit_code == 2
    assert "stacks/Pulumi.nope.yaml: no such stack file; create it with `llmhost plan PROFILE --stack NAME`" in result.stderr


def test_outside_a_project(cli, tmp_path):
    result = cli("preview", "--stack", "startup-api", cwd=tmp_path)
    assert result.exit_code == 2
    assert "no Pulumi.yaml here or above" in result.stderr


def test_invalid_stack_name(cli, project):
    result = cli("plan", str(ROOT / "stacks/profiles/startup-api.yaml"), "--stack", "a b", "--project-dir", str(project))
    assert result.exit_code == 2
    assert "--stack: 'a b' is not a valid stack name" in result.stderr


def test_console_script_prints_no_traceback(tmp_path):
    """The installed `llmhost` entry point, as a user runs it."""
    bad = _profile(tmp_path, _with(traffic__daily_requests="lots"))
    exe = Path(sys.executable).with_name("llmhost")
    proc = subprocess.run([str(exe), "plan", str(bad), "--stack", "x", "--project-dir", str(ROOT)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}: traffic.daily_requests: Input should be a valid integer")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_model_size_class_names_the_valid_ones(cli, project, tmp_path):
    data = _with(model__size_class="1t")
    path = _profile(tmp_path, data)
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2
    assert f"error: {path}: model.size_class: '1t' is not a size class in the catalog; valid: 8b, 70b, moe-47b, 405b" in result.stderr


def test_gated_model_on_vertex_without_the_licence_is_refused_at_plan(cli, project, tmp_path):
    data = yaml.safe_load((ROOT / "stacks/profiles/us-vertex-support.yaml").read_text())
    del data["model"]["accept_eula"]
    path = _profile(tmp_path, data)
    result = cli("plan", str(path), "--stack", "bad", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert (f"error: {path}: model.accept_eula: meta-llama/Llama-3.1-8B-Instruct is a gated meta-llama model"
            in result.stderr)
    assert "set model.accept_eula: true (the only valid value)" in result.stderr
    assert "Traceback" not in result.output
    assert not (project / "stacks" / "Pulumi.bad.yaml").exists(), "nothing may be written for a refused profile"


VERTEX_STACK_CASES = [
    ("licence-not-accepted", lambda c: c["llm-hosting:model"].pop("acceptEula"), "llm-hosting:model.acceptEula",
     "meta-llama/Llama-3.1-8B-Instruct is a gated meta-llama model"),
    ("licence-declined", lambda c: c["llm-hosting:model"].update({"acceptEula": False}), "llm-hosting:model.acceptEula",
     "set model.acceptEula: true (the only valid value)"),
    ("plaintext-hub-token", lambda c: (c["llm-hosting:model"].update({"huggingFaceTokenConfig": "hfToken"}),
                                       c.update({"llm-hosting:hfToken": "hf_plaintext"})),
     "llm-hosting:hfToken", "is stored in plain text; set it with `pulumi config set --secret`"),
]


@pytest.mark.parametrize("edit,field,message", [c[1:] for c in VERTEX_STACK_CASES], ids=[c[0] for c in VERTEX_STACK_CASES])
def test_bad_vertex_stack_is_refused_before_any_resource(cli, project, edit, field, message):
    _refused_before_any_resource(cli, project, "us-vertex-support", edit, field, message)


def test_hub_token_is_read_only_by_vertex(cli, project):
    _edit_stack(project, "realtime-captions", lambda c: c["llm-hosting:model"].update({"huggingFaceTokenConfig": "hfToken"}))
    result = cli("preview", "--stack", "realtime-captions", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert ("error: stacks/Pulumi.realtime-captions.yaml: llm-hosting:model.huggingFaceTokenConfig: only a Vertex AI "
            "endpoint reads a Hugging Face token") in result.stderr


def test_no_tier_names_the_single_profile_change_that_would_make_one_feasible(cli, project, tmp_path):
    """A TTFT budget no tier meets: the refusal says which profile field, changed how, would plan."""
    path = _profile(tmp_path, _with(latency_sla_ms=60))
    result = cli("plan", str(path), "--stack", "fast", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: {path}: no tier can serve this profile:" in result.stderr
    assert (f"error: {path}: latency_sla_ms: 200 ms instead of 60 ms would make a tier feasible: api: groq "
            "llama-3.3-70b-versatile (hosted-open)") in result.stderr
    assert not (project / "stacks" / "Pulumi.fast.yaml").exists()


def test_no_single_change_still_names_the_fields_that_block(cli, project, tmp_path):
    """Two fields block together (a TTFT budget only a cluster meets, and no ops team to run one): each is named."""
    path = _profile(tmp_path, _with(latency_sla_ms=60, team__ml_ops_capacity="none", residency__allowed_regions=["ap-southeast-2"]))
    result = cli("plan", str(path), "--stack", "fast", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: {path}: latency_sla_ms: rules out " in result.stderr
    assert f"error: {path}: team.ml_ops_capacity: rules out " in result.stderr
    assert "no single profile change makes a tier feasible" in result.stderr
