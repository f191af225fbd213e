"""`llmhost` as a person uses it: output that fits the terminal, commands to copy on their own line, a dry run, two
profiles compared, the cost today and at the horizon, leaving the home region said, one help style, --version, and
nothing left where the user did not ask for it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from planner.catalog import load_catalog
from planner.cli import DEFAULT_WIDTH, terminal_width
from planner.profile import load_profile
from planner.spend import horizon_costs
from tests.test_rules import profile as profile_dict

WIDTHS = (80, 120)
COMMANDS = ("plan", "replan", "preview", "policies", "compare", "diff")


def assert_fits(text: str, width: int, commands: tuple[str, ...] = ()) -> None:
    """Every line fits `width`, except a command to copy, which stays whole on its own line (indented two)."""
    lines = [line.rstrip() for line in text.splitlines()]
    whole = {f"  {c}" for c in commands}
    for line in lines:
        assert len(line) <= width or line in whole, f"{len(line)} > {width} columns: {line!r}"
    for c in commands:
        assert f"  {c}" in lines, f"not on a line of its own: {c!r}"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def columns(monkeypatch):
    def set_to(width: int) -> None:
        monkeypatch.setenv("COLUMNS", str(width))
    return set_to


# -- the width --------------------------------------------------------------------------------------------------------

def test_width_is_columns_or_a_sane_default_when_not_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "93")
    assert terminal_width() == 93
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() == DEFAULT_WIDTH == 100  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "not-a-number")
    assert terminal_width() == DEFAULT_WIDTH


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_fits_and_prints_the_commands_to_copy_whole(cli, project, columns, width):
    columns(width)
    result = cli("plan", "stacks/profiles/startup-api.yaml", "--stack", "startup-api", cwd=project)
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width, (
        "pulumi config set --secret llm-hosting:groqApiKey <value> --stack startup-api",
        "pulumi config set --secret llm-hosting:gatewayMasterKey <value> --stack startup-api",
        "llmhost preview --stack startup-api"))
    # The warning on stderr is wrapped too, without splitting the README section it names.
    result = cli("plan", "stacks/profiles/fine-tuned.yaml", "--stack", "fine-tuned", "--dry-run", cwd=project)
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width, ("llmhost plan stacks/profiles/fine-tuned.yaml --stack fine-tuned",))
    assert_fits(result.stderr, width)
    assert '"Deploying a private cluster"' in result.stderr


@pytest.mark.parametrize("width", WIDTHS)
def test_replan_fits_and_prints_the_write_command_whole(cli, project, columns, width):
    columns(width)
    result = cli("replan", "stacks/profiles/startup-api.yaml", "stacks/usage/startup-api.yaml", "--stack", "startup-api",
                 cwd=project)
    assert result.exit_code == 0, result.output
    assert "decision unchanged" in result.stdout and "startup-api: 0 to add, 0 to delete" in " ".join(result.stdout.split())
    assert_fits(result.stdout, width, (
        "llmhost replan stacks/profiles/startup-api.yaml stacks/usage/startup-api.yaml --stack startup-api --write",))


@pytest.mark.parametrize("width", WIDTHS)
def test_preview_fits_and_prints_each_secret_command_whole(cli, columns, width):
    columns(width)
    result = cli("preview", "--stack", "eu-residency-api", "--project-dir", str(ROOT))
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width, tuple(
        f"pulumi config set --secret llm-hosting:{key} <value> --stack eu-residency-api"
        for key in ("openaiApiKey", "gatewayMasterKey")))
    assert "pass: 0 mandatory violation(s)" in result.stdout


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("detail", [False, True], ids=["short", "detail"])
def test_policies_fit(cli, columns, width, detail):
    columns(width)
    result = cli("policies", *(["--detail"] if detail else []))
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width)
    assert "RES-001-region-allowlist" in result.stdout


def test_policies_markdown_is_the_document_whatever_the_width(cli, columns):
    from policies.catalogue import render_markdown

    columns(80)
    assert cli("policies", "--markdown").stdout == render_markdown()


# -- plan --dry-run, the costs, the home region ------------------------------------------------------------------------

def test_dry_run_shows_the_decision_and_writes_nothing(cli, project, columns):
    columns(120)
    before = snapshot(project)
    result = cli("plan", "stacks/profiles/burst-hybrid.yaml", "--stack", "new-stack", "--dry-run", cwd=project)
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    out = result.stdout
    assert "new-stack: hybrid (burst-overflow)" in out and "all-in $/month along the growth horizon" in out
    assert "wrote " not in out and "nothing written (--dry-run)" in out
    dry = json.loads(cli("plan", "stacks/profiles/burst-hybrid.yaml", "--stack", "new-stack", "--print-only", "--json",
                         cwd=project).stdout)
    assert snapshot(project) == before and dry["files"] == []
    real = json.loads(cli("plan", "stacks/profiles/burst-hybrid.yaml", "--stack", "new-stack", "--json", cwd=project).stdout)
    assert len(real["files"]) == 4 and {k: v for k, v in real.items() if k != "files"} == \
        {k: v for k, v in dry.items() if k != "files"}


def test_the_table_shows_each_option_today_and_at_the_horizon(cli, project, columns):
    columns(200)  # wide enough for one line per option
    result = cli("plan", "stacks/profiles/burst-hybrid.yaml", "--stack", "b", "--dry-run", cwd=project)
    assert result.exit_code == 0, result.output
    prof = load_profile(project / "stacks/profiles/burst-hybrid.yaml")
    h = horizon_costs(prof, load_catalog(), "stacks/profiles/burst-hybrid.yaml")
    header = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("option") and "today" in line)
    assert f"month {prof.traffic.horizon_months}" in header
    for key, label in (("hybrid (burst-overflow)", "hybrid (burst-overflow): eks"), ("self-hosted (eks)", "self-hosted: eks")):
        row = next(line for line in result.stdout.splitlines() if line.lstrip().startswith(label))
        today, at_horizon = h.series[key][0], h.series[key][-1]
        assert today < at_horizon  # the profile grows: the two columns must differ
        assert re.search(rf"\${today:,.0f}\s+\${at_horizon:,.0f}\s", row), row


def test_a_plan_away_from_the_home_region_says_so_and_why(cli, project, tmp_path, columns):
    columns(100)
    d = profile_dict(cloud="aws", regions=["eu-west-1", "us-east-1"], model="8b", quality="small",
                     sensitivity="confidential", name="away")
    path = tmp_path / "away.yaml"
    path.write_text(yaml.safe_dump(d))
    result = cli("plan", str(path), "--dry-run", "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "not in the home region: runs in us-east-1, not the home region eu-west-1" in text
    assert "more per token than in us-east-1" in text and "Drop us-east-1 from residency.allowed_regions" in text
    doc = json.loads(cli("plan", str(path), "--dry-run", "--json", "--project-dir", str(project)).stdout)
    assert doc["home_region"] == "eu-west-1" and doc["region"] == "us-east-1"
    assert doc["region_note"].startswith("runs in us-east-1, not the home region eu-west-1")
    # At home, nothing is said.
    path.write_text(yaml.safe_dump(profile_dict(cloud="aws", regions=["us-east-1"], model="8b", quality="small",
                                                sensitivity="confidential", name="home")))
    assert "home region" not in cli("plan", str(path), "--dry-run", "--project-dir", str(project)).stdout


# -- compare ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_compare_shows_two_decisions_side_by_side_and_writes_nothing(cli, project, columns, width):
    columns(width)
    before = snapshot(project)
    result = cli("compare", "stacks/profiles/startup-api.yaml", "stacks/profiles/healthcare-hipaa.yaml", cwd=project)
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    assert_fits(result.stdout, width)
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    assert rows["tier"] == ["api", "managed"] and rows["network"] == ["public", "private"]
    assert rows["data_sensitivity"] == ["internal", "regulated"]
    for label in ("serving", "$/month", "why", "profile"):
        assert label in rows
    assert "the decisions differ in tier, network, serving" in result.stdout


def test_compare_json_and_identical_profiles(cli, project):
    result = cli("compare", "stacks/profiles/startup-api.yaml", "stacks/profiles/healthcare-hipaa.yaml", "--json",
                 cwd=project)
    doc = json.loads(result.stdout)
    assert (doc["a"]["tier"], doc["b"]["tier"]) == ("api", "managed")
    assert doc["a"]["profile_file"] == "stacks/profiles/startup-api.yaml" and doc["b"]["profile"] == "healthcare-hipaa"
    assert {"field": "data_sensitivity", "a": "internal", "b": "regulated"} in doc["profile_differences"]
    same = cli("compare", "stacks/profiles/startup-api.yaml", "stacks/profiles/startup-api.yaml", cwd=project)
    assert "the profiles do not differ" in same.stdout and "same tier, pattern, network and region" in same.stdout
    bad = cli("compare", "stacks/profiles/startup-api.yaml", "missing.yaml", cwd=project)
    assert bad.exit_code == 2 and "missing.yaml" in bad.stderr and bad.stdout == ""


# -- preview --json -----------------------------------------------------------------------------------------------------

def test_preview_json_goes_where_the_user_says_and_nowhere_else(cli, project, tmp_path):
    before = snapshot(project)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = cli("preview", "--stack", "startup-api", "--skip-policies", "--json", "inv.json", "--project-dir",
                 str(project), cwd=elsewhere)
    assert result.exit_code == 0, result.output
    assert json.loads((elsewhere / "inv.json").read_text()) and snapshot(project) == before
    # `--json` alone: the inventory on stdout, and no file at all.
    result = cli("preview", "--stack", "startup-api", "--json", "--project-dir", str(project), cwd=elsewhere)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} >= {"api-key"} and "pass:" in result.stderr
    assert snapshot(project) == before and sorted(p.name for p in elsewhere.iterdir()) == ["inv.json"]


def test_gitignore_covers_what_the_commands_leave_behind():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    left = ["startup-api.inventory.json", ".tools/litellm/bin/python", ".venv/bin/llmhost", "preview-diff/new/x.json",
            "llm_hosting.egg-info/PKG-INFO", ".hypothesis/examples/x", "planner/__pycache__/cli.cpython-312.pyc"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *left], cwd=ROOT, capture_output=True, text=True)
    assert sorted(ignored.stdout.split()) == sorted(left)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    wrongly = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input=tracked,
                             capture_output=True, text=True).stdout
    assert wrongly == "", f"tracked files the .gitignore would hide: {wrongly}"


# -- help and version -------------------------------------------------------------------------------------------------

def test_version_is_the_package_version(cli):
    result = cli("--version")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert result.exit_code == 0 and result.stdout == f"llmhost {version(pyproject['name'])}\n"
    assert version(pyproject["name"]) == pyproject["version"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_the_same_help_layout(cli, columns, command):
    columns(80)
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, 80)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Usage: llmhost {command} [OPTIONS]")
    assert lines[1] == "" and lines[2].startswith("  ") and lines[3] == "", "a one-line summary under the usage"
    sections = [line for line in lines if line and not line.startswith(" ")][1:]
    assert sections in (["Options:"], ["Positional arguments:", "Options:"])
    args = re.findall(r"\b([A-Z]+)\b", lines[0].split("[OPTIONS]", 1)[1])
    for arg in args:  # every positional argument has a help line, in the same form as the options
        assert re.search(rf"^  {arg}\s+\S", result.stdout, flags=re.M), arg
    assert re.search(r"^  -h, --help\s+Show this message and exit\.$", result.stdout, flags=re.M)


def test_the_command_list_shows_whole_summaries(cli, columns):
    columns(80)
    from planner.cli import main

    listing = " ".join(cli("--help").stdout.split("Commands:", 1)[1].split())
    assert set(main.commands) == set(COMMANDS) and "..." not in listing
    for name, command in main.commands.items():
        assert f"{name} {command.help.splitlines()[0]}" in listing


def test_diff_keeps_its_usage_and_refuses_like_the_others(cli, tmp_path):
    (tmp_path / "a.json").write_text("[]")
    assert cli("diff", str(tmp_path / "a.json"), str(tmp_path / "a.json")).exit_code == 0
    result = cli("diff", str(tmp_path / "a.json"))
    assert result.exit_code == 2 and "Usage: llmhost diff [OPTIONS] OLD NEW" in result.stderr
