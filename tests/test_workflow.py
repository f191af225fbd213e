""".github/workflows/preview.yml: valid against GitHub's workflow schema (offline), and shaped as promised.

The schema check runs `check-jsonschema --builtin-schema vendor.github-workflows`, which bundles SchemaStore's
github-workflow schema, from its own pinned tool virtualenv (tests/tools.py), so nothing is fetched at check time.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
CHECK_JSONSCHEMA = ("check-jsonschema==0.39.0",)
CLOUD, OFFLINE, CHANGES = "preview-cloud", "preview-offline", "changes"


# -- the schema checker, in its own venv -----------------------------------------------------------------------------
def _own_tool_bin(name: str, requirements: Sequence[str]) -> Path:
    """Stand-in for tests/tools.py: <repo>/.tools/<name>, one pinned pip install, reused once complete."""
    venv = ROOT / ".tools" / name
    marker = venv / ".installed"
    want = "\n".join(requirements) + "\n"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not (marker.exists() and marker.read_text() == want):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
                            "--disable-pip-version-check", *requirements], check=True, capture_output=True, timeout=900)
            marker.write_text(want)
    return venv / "bin"


@pytest.fixture(scope="session")
def check_jsonschema() -> Path:
    try:
        from tests.tools import tool_bin
    except ImportError:
        tool_bin = _own_tool_bin
    try:
        exe = tool_bin("check-jsonschema", CHECK_JSONSCHEMA) / "check-jsonschema"
    except Exception as exc:  # an install that cannot happen is a failure, not a skip: the check is the point
        pytest.fail(f"cannot install {CHECK_JSONSCHEMA[0]} into .tools/check-jsonschema: {exc}")
    assert exe.exists(), exe
    return exe


def schema_check(exe: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_workflow_matches_the_github_workflow_schema(check_jsonschema):
    proc = schema_check(check_jsonschema, WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


BREAKAGES = {
    # A job without runs-on (and not a reusable-workflow call) is not a job.
    "runs-on missing": ("    name: Tests and offline preview diff (no credentials)\n    runs-on: ubuntu-latest\n",
                        "    name: Tests and offline preview diff (no credentials)\n",
                        "$.jobs['preview-offline']: 'runs-on' is a required property"),
    # Steps allow no keys beyond the documented ones.
    "unknown step key": ("      - name: Tests\n        run: bash .ci/run\n",
                         "      - name: Tests\n        run: bash .ci/run\n        retry: 3\n",
                         "Additional properties are not allowed ('retry' was unexpected)"),
    # Permission levels are read, write or none (id-token: write or none).
    "bad permission level": ("      id-token: write       # OIDC", "      id-token: always       # OIDC",
                             "permissions['id-token']: 'always' is not one of"),
}


@pytest.mark.parametrize("what", sorted(BREAKAGES))
def test_a_broken_copy_fails_the_schema(check_jsonschema, tmp_path, what):
    old, new, reason = BREAKAGES[what]
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, f"the anchor for {what!r} is no longer in the workflow; update the test"
    broken = tmp_path / "preview.yml"
    broken.write_text(text.replace(old, new))
    proc = schema_check(check_jsonschema, broken)
    assert proc.returncode == 1, f"{what}: the schema accepted a broken workflow\n{proc.stdout}{proc.stderr}"
    assert "Schema validation errors were encountered" in proc.stdout + proc.stderr
    assert reason in proc.stdout, proc.stdout


# -- structure -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wf() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]


def runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def every_step() -> Iterator[tuple[str, dict]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    for name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def test_trigger_is_pull_request_on_the_code_that_builds_stacks(wf):
    on = wf.get("on", wf.get(True))  # PyYAML reads a bare `on` key as True
    assert set(on) == {"pull_request"}
    paths = on["pull_request"]["paths"]
    for p in ("stacks/**", "components/**", "serving/**", "policies/**", "planner/**", "__main__.py", "Pulumi.yaml",
              "pyproject.toml"):
        assert p in paths


def test_least_privilege_per_job(wf):
    assert wf["permissions"] == {}  # nothing by default
    jobs = wf["jobs"]
    assert set(jobs) == {CHANGES, CLOUD, OFFLINE}
    assert jobs[CHANGES]["permissions"] == {"contents": "read"}
    assert jobs[CLOUD]["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert jobs[OFFLINE]["permissions"] == {"contents": "read", "pull-requests": "write"}
    for name, job in jobs.items():
        granted = job["permissions"]
        if granted.get("id-token") == "write":
            assert name == CLOUD
        if granted.get("pull-requests") == "write":  # only jobs that post a comment
            assert uses(job, "actions/github-script") or any(
                s["with"].get("comment-on-pr") is True for s in uses(job, "pulumi/actions"))


def test_no_static_cloud_keys_anywhere():
    text = WORKFLOW.read_text()
    for needle in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "AWS_SESSION_TOKEN", "credentials_json", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS",
                   "secrets."):
        assert needle not in text, needle


def test_passphrase_is_never_set(wf):
    envs = [wf.get("env", {})] + [j.get("env", {}) for j in wf["jobs"].values()]
    envs += [s.get("env", {}) for _, s in every_step()] + [s.get("with", {}) for _, s in every_step()]
    assert all("PULUMI_CONFIG_PASSPHRASE" not in e for e in envs)
    assert "PULUMI_CONFIG_PASSPHRASE=" not in WORKFLOW.read_text()


def test_changes_job_outputs_a_matrix_the_cloud_job_uses(wf):
    changes, cloud = wf["jobs"][CHANGES], wf["jobs"][CLOUD]
    assert set(changes["outputs"]) == {"matrix", "any"}
    assert uses(changes, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    assert cloud["needs"] == CHANGES
    assert cloud["strategy"]["matrix"] == "${{ fromJSON(needs.changes.outputs.matrix) }}"
    assert cloud["strategy"]["fail-fast"] is False
    assert "needs.changes.outputs.any == 'true'" in cloud["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in cloud["if"]


def test_cloud_job_uses_oidc_per_cloud_and_pulumi_actions_v7(wf):
    cloud = wf["jobs"][CLOUD]
    assert uses(cloud, "actions/setup-python")[0]["with"]["python-version"] == "3.11"
    assert "make install" in runs(cloud)

    [aws] = uses(cloud, "aws-actions/configure-aws-credentials")
    assert "matrix.cloud == 'aws'" in aws["if"]
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    assert aws["with"]["aws-region"] == "${{ matrix.region }}"
    [gcp] = uses(cloud, "google-github-actions/auth")
    assert "matrix.cloud == 'gcp'" in gcp["if"]
    assert set(gcp["with"]) == {"workload_identity_provider", "service_account"}
    assert all(v.startswith("${{ vars.") for v in gcp["with"].values())

    [pulumi] = uses(cloud, "pulumi/actions")
    assert pulumi["uses"] == "pulumi/actions@v7"
    w = pulumi["with"]
    assert w["command"] == "preview"
    assert w["stack-name"] == "${{ matrix.stack }}"
    assert w["comment-on-pr"] is True and w["diff"] is True
    assert w["policyPacks"] == "policies"
    assert w["policyPackConfigs"] == "stacks/${{ matrix.stack }}.policy-config.json"
    assert w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert w["secrets-provider"] == "${{ vars.PULUMI_SECRETS_PROVIDER }}"
    # Credentials come before the preview; nothing cloud-facing runs before the offline gate.
    order = [s.get("uses", "").split("@")[0] or s.get("id", s.get("name")) for s in steps(cloud)]
    assert order.index("gate") < order.index("aws-actions/configure-aws-credentials") < order.index("pulumi/actions")
    assert order.index("google-github-actions/auth") < order.index("pulumi/actions")


def test_offline_job_has_no_credentials_and_diffs_every_stack(wf):
    offline = wf["jobs"][OFFLINE]
    assert "id-token" not in offline["permissions"]
    assert not uses(offline, "aws-actions/configure-aws-credentials") and not uses(offline, "google-github-actions/auth")
    assert not uses(offline, "pulumi/actions")
    assert uses(offline, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    script = runs(offline)
    assert re.search(r"^bash \.ci/run$", script, re.M)
    assert "llmhost preview --stack" in script and "--json" in script
    assert "llmhost diff" in script
    assert "git worktree add" in script and "$BASE_SHA" in script
    assert offline["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    [comment] = uses(offline, "actions/github-script")
    assert "preview-diff/comment.md" in comment["with"]["script"]


PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def test_every_action_is_pinned_consistently():
    refs = [step["uses"] for _, step in every_step() if "uses" in step]
    assert len(refs) >= 8
    for ref in refs:
        assert PINNED.match(ref), f"{ref} is not pinned to a version tag or a full commit SHA"
    kinds = {"sha" if re.search(r"@[0-9a-f]{40}$", r) else "tag" for r in refs}
    assert len(kinds) == 1, f"mixed pinning styles: {refs}"
    by_action: dict[str, set[str]] = {}
    for ref in refs:
        action, version = ref.split("@")
        by_action.setdefault(action, set()).add(version)
    assert all(len(v) == 1 for v in by_action.values()), by_action  # one version of each action


def test_run_scripts_are_valid_bash():
    bash = shutil.which("bash")
    if not bash:
        pytest.skip("bash not installed")
    for job, step in every_step():
        if "run" not in step:
            continue
        script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
        proc = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True)
        assert proc.returncode == 0, f"{job} / {step.get('name')}: {proc.stderr}"


# -- the changes job's script, run for real against the stack files ------------------------------------------------
def _run_changes(tmp_path: Path, changed: list[str]) -> tuple[dict, bool]:
    import json

    if not shutil.which("jq") or not shutil.which("bash"):
        pytest.skip("the changes job needs bash and jq (both on GitHub's ubuntu runners)")
    [step] = [s for s in yaml.safe_load(WORKFLOW.read_text())["jobs"][CHANGES]["steps"] if s.get("id") == "stacks"]
    assert "${{" not in step["run"], "PR-controlled values must reach the script through env, not expressions"
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "stacks", work / "stacks")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (tmp_path / "changed.txt").write_text("".join(f"{c}\n" for c in changed))
    git = fake_bin / "git"  # stands in for `git diff --name-only BASE HEAD`
    git.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "diff --name-only base-sha" ] || exit 64\ncat "{tmp_path / "changed.txt"}"\n')
    git.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "BASE_SHA": "base-sha",
           "GITHUB_OUTPUT": str(output)}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return json.loads(values["matrix"]), values["any"] == "true"


def _cloud_of(stack: str) -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    cloud = config["llm-hosting:cloud"]
    return cloud, config.get(f"{cloud}:region", "")


def test_changed_stack_files_select_their_stacks(tmp_path):
    matrix, any_ = _run_changes(tmp_path, ["stacks/Pulumi.healthcare-hipaa.yaml", "stacks/healthcare-hipaa.decision.md",
                                           "stacks/eu-residency-api.policy-config.json", "README.md"])
    assert any_
    assert matrix == {"include": [
        {"stack": "eu-residency-api", "cloud": "gcp", "region": "europe-west4"},
        {"stack": "healthcare-hipaa", "cloud": "aws", "region": "us-east-1"},
    ]}


def test_shared_code_selects_every_stack_with_its_cloud(tmp_path):
    matrix, any_ = _run_changes(tmp_path, ["components/aws_network.py", "stacks/Pulumi.startup-api.yaml"])
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    assert any_ and [row["stack"] for row in matrix["include"]] == stacks
    for row in matrix["include"]:
        assert (row["cloud"], row["region"]) == _cloud_of(row["stack"])
    assert {row["cloud"] for row in matrix["include"]} == {"aws", "gcp"}


def test_no_stack_changes_means_no_cloud_job(tmp_path):
    matrix, any_ = _run_changes(tmp_path, ["tests/test_diff.py", "preview/diff.py", "stacks/profiles/startup-api.yaml",
                                           "stacks/Pulumi.deleted-stack.yaml"])
    assert matrix == {"include": []} and not any_


# -- the offline job's diff step, run for real on a few stacks -------------------------------------------------------
def _project_copy(dst: Path, stacks: dict[str, str]) -> None:
    """A project with only the given stacks: {name: name of the checked-in stack file to copy}."""
    (dst / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dst / name)
    for name, source in stacks.items():
        shutil.copy(ROOT / "stacks" / f"Pulumi.{source}.yaml", dst / "stacks" / f"Pulumi.{name}.yaml")


def _llmhost_wrapper(path: Path) -> Path:
    """An `llmhost` that runs the kit's own CLI."""
    real = Path(sys.executable).parent / "llmhost"
    path.write_text(f"#!/bin/sh\nexec \"{real}\" \"$@\"\n")
    path.chmod(0o755)
    return path


def test_offline_diff_step_end_to_end(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("bash not installed")
    [step] = [s for s in yaml.safe_load(WORKFLOW.read_text())["jobs"][OFFLINE]["steps"] if s.get("id") == "diff"]
    assert "${{" not in step["run"], "PR-controlled values must reach the script through env, not expressions"

    # The base has startup-api, refused-api (a config the program refuses) and old-api (deleted by the PR).
    base_src = tmp_path / "base-src"
    _project_copy(base_src, {"startup-api": "startup-api", "refused-api": "startup-api", "old-api": "eu-residency-api"})
    # The PR adds a replica region to startup-api, deletes old-api and adds new-api.
    work = tmp_path / "work"
    _project_copy(work, {"startup-api": "startup-api", "refused-api": "startup-api", "new-api": "startup-api"})
    for root in (base_src, work):  # an air-gapped stack with an API tier: refused before any resource
        refused = root / "stacks" / "Pulumi.refused-api.yaml"
        doc = yaml.safe_load(refused.read_text())
        doc["config"]["llm-hosting:network"] = "airgapped"
        refused.write_text(yaml.safe_dump(doc, sort_keys=False))
    path = work / "stacks" / "Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["llm-hosting:residency"]["allowedRegions"].append("us-east-2")
    doc["config"]["llm-hosting:api"]["replicaRegions"].append("us-east-2")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    wrapper = _llmhost_wrapper(tmp_path / "llmhost")
    (work / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(wrapper, work / ".venv" / "bin" / "llmhost")

    # Stand-ins for the two commands that need a real checkout: `git worktree` and `make install`.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text(f"""#!/bin/sh
case "$1 $2" in
  "worktree add") [ "$3" = --detach ] && [ "$5" = base-sha ] || exit 64; cp -r "{base_src}" "$4" ;;
  "worktree remove") rm -rf "$4" ;;
  *) exit 64 ;;
esac
""")
    (fake_bin / "make").write_text(f"""#!/bin/sh
[ "$1" = -C ] && [ "$3" = install ] || exit 64
mkdir -p "$2/.venv/bin" && cp "{wrapper}" "$2/.venv/bin/llmhost"
""")
    for f in fake_bin.iterdir():
        f.chmod(0o755)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    output, summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "BASE_SHA": "base-sha", "HEAD_SHA": "head-sha1234",
           "GITHUB_WORKSPACE": str(work), "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output),
           "GITHUB_STEP_SUMMARY": str(summary)}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert output.read_text() == "failed=0\n"
    assert not (runner_temp / "base").exists()  # the worktree is removed

    comment = (work / "preview-diff" / "comment.md").read_text()
    assert summary.read_text() == comment
    assert comment.startswith("## Offline preview diff\n")
    assert "on the base (`base-sh`) and on this PR (`head-sh`)" in comment
    sections = {s.split("`", 1)[0]: s for s in comment.split("\n### `")[1:]}
    assert set(sections) == {"refused-api", "new-api", "old-api", "startup-api"}
    assert "**startup-api: 1 to add, 0 to delete, 2 to change (0 replaced; " in sections["startup-api"]
    assert "`api-key-cmk-replica-us-east-2`" in sections["startup-api"]
    refused = "Refused offline on this PR: `error: stacks/Pulumi.refused-api.yaml: llm-hosting:api:"
    assert refused in sections["refused-api"]
    # new-api is a copy of startup-api: everything in startup-api's inventory is added.
    added = sum(yaml.safe_load((Path(__file__).parent / "inventories" / "startup-api.yaml").read_text())["counts"].values())
    assert f"**new-api: {added} to add, 0 to delete, 0 to change" in sections["new-api"]
    removed = sum(yaml.safe_load((Path(__file__).parent / "inventories" / "eu-residency-api.yaml").read_text())["counts"].values())
    assert "DELETE (stateful)" in sections["old-api"] and f"0 to add, {removed} to delete" in sections["old-api"]
    for name in ("startup-api", "new-api"):
        assert (work / "preview-diff" / "new" / f"{name}.json").exists()


def test_llmhost_diff_is_wired(tmp_path, cli):
    (tmp_path / "a.json").write_text("[]")
    result = cli("diff", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--stack", "s")
    assert result.exit_code == 0 and "**s: no changes (0 resources unchanged)**" in result.stdout
    result = cli("diff", str(tmp_path / "missing.json"), str(tmp_path / "a.json"))
    assert result.exit_code == 2
