"""`llmhost replan`: the decision re-run on observed usage, closing the loop from the stack's metrics to a new plan.

A profile that outgrows its API (a team that can run GPUs, a 70B model) is re-planned on usage that stays below the
volume where the planner's answer changes, crosses it, and falls back below it: the decision changes exactly where the
band the stack's drift alert watches says it does. Nothing is written without --write; bad usage files exit 2 naming
the file and the field, with nothing written.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT
from planner.profile import Profile, load_profile
from planner.rules import decide
from planner.spend import decision_band


def _grower(tmp_path):
    data = load_profile(ROOT / "stacks/profiles/startup-api.yaml").model_dump(mode="json", exclude_none=True)
    data["team"]["ml_ops_capacity"] = "dedicated"
    data["model"].update(size_class="70b", id="meta-llama/Llama-3.3-70B-Instruct")
    data["name"] = "grower"
    path = tmp_path / "grower.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, Profile.model_validate(data)


def _usage(tmp_path, name: str, profile: Profile, daily_requests: float, **extra) -> str:
    t = profile.traffic
    doc = {"window_days": 28, "source": "prometheus", "peak_to_average": t.peak_to_average,
           "classes": [{"name": "all", "daily_requests": daily_requests,
                        "daily_input_tokens": daily_requests * t.avg_input_tokens,
                        "daily_output_tokens": daily_requests * t.avg_output_tokens}], **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def grower(tmp_path, catalog):
    path, profile = _grower(tmp_path)
    d = decide(profile, catalog, "profile")
    band = decision_band(d, catalog, "profile")
    assert d.chosen.tier == "api" and band.upper is not None
    return path, profile, d, band


def test_below_crosses_and_back(cli, project, tmp_path, grower):
    path, profile, d, band = grower
    upper = band.upper.daily_requests
    args = ("--stack", "grower", "--project-dir", str(project))
    plan = cli("plan", str(path), *args)
    assert plan.exit_code == 0, plan.output
    stack_file = project / "stacks" / "Pulumi.grower.yaml"
    before = stack_file.read_text()

    below = cli("replan", str(path), _usage(tmp_path, "below", profile, upper * 0.97), *args)
    assert below.exit_code == 0, below.output
    assert "decision unchanged" in below.stdout and "nothing written" in below.stdout
    assert stack_file.read_text() == before  # never edits a stack without --write

    crossed = cli("replan", str(path), _usage(tmp_path, "crossed", profile, upper * 1.03), *args)
    assert crossed.exit_code == 0, crossed.output
    assert "decision changed" in crossed.stdout
    other = band.upper.reason.split("the planner would choose ", 1)[1].split(" ($", 1)[0]
    assert other.split(":")[0].split(" (")[0] in crossed.stdout  # the tier the band's words name
    assert "to add" in crossed.stdout  # the stack changes, as `llmhost diff` prints them
    assert stack_file.read_text() == before

    wrote = cli("replan", str(path), _usage(tmp_path, "crossed", profile, upper * 1.03), *args, "--write")
    assert wrote.exit_code == 0, wrote.output
    assert "wrote stacks/Pulumi.grower.yaml" in wrote.stdout
    written = yaml.safe_load(stack_file.read_text())["config"]
    assert written["llm-hosting:tier"] != "api"
    assert (project / "stacks" / "grower.costs.svg").exists()

    # Traffic falls back below the band's end: against the re-planned stack, the decision changes back.
    back = cli("replan", str(path), _usage(tmp_path, "back", profile, upper * 0.97), *args)
    assert back.exit_code == 0, back.output
    assert "decision changed" in back.stdout and "api" in back.stdout
    assert "to delete" in back.stdout


def test_replan_on_the_profiles_own_traffic_changes_nothing(cli, project, tmp_path, grower):
    path, profile, d, band = grower
    args = ("--stack", "grower", "--project-dir", str(project))
    assert cli("plan", str(path), *args).exit_code == 0
    same = cli("replan", str(path), _usage(tmp_path, "same", profile, profile.traffic.daily_requests), *args)
    assert same.exit_code == 0, same.output
    assert "decision unchanged" in same.stdout
    assert "grower: no changes" in same.stdout and "set its traffic" not in same.stdout


def test_classes_carry_their_shares(cli, project, tmp_path):
    """A profile with workloads: the observed requests per class become its shares."""
    path = ROOT / "stacks/profiles/tiered-sensitivity.yaml"
    profile = load_profile(path)
    t = profile.traffic
    classes = [{"name": w.name, "daily_requests": t.daily_requests * (0.9 if i == 0 else 0.1 / (len(profile.workloads) - 1)),
                "daily_input_tokens": t.daily_requests * t.avg_input_tokens,
                "daily_output_tokens": t.daily_requests * t.avg_output_tokens}
               for i, w in enumerate(profile.workloads)]
    usage = tmp_path / "u.yaml"
    usage.write_text(yaml.safe_dump({"window_days": 7, "peak_to_average": t.peak_to_average, "classes": classes}))
    from planner.usage import load_usage, observed_profile

    observed = observed_profile(profile, load_usage(usage), usage)
    assert observed.workloads[0].share_percent == pytest.approx(90.0, abs=0.01)
    assert sum(w.share_percent for w in observed.workloads) == pytest.approx(100.0, abs=0.01)
    assert observed.traffic.daily_requests == t.daily_requests
    result = cli("replan", str(path), str(usage), "--stack", "tiered-sensitivity", "--project-dir", str(project))
    assert result.exit_code == 0, result.output


BAD = [
    ("[1, 2]", "", "a usage file is a mapping"),
    ("window_days: 0\npeak_to_average: 2\nclasses: [{name: all, daily_requests: 1, daily_input_tokens: 1, daily_output_tokens: 1}]",
     "window_days", "greater than or equal to 1"),
    ("window_days: 7\nclasses: [{name: all, daily_requests: 1, daily_input_tokens: 1, daily_output_tokens: 1}]",
     "peak_to_average", "required"),
    ("window_days: 7\npeak_to_average: 2\nclasses: [{name: chat, daily_requests: 1, daily_input_tokens: 1, daily_output_tokens: 1}]",
     "classes[0].name", "not a traffic class of the profile; valid: all"),
    ("window_days: 7\npeak_to_average: 2\nclasses: [{name: all, daily_requests: 100, daily_input_tokens: 5, daily_output_tokens: 500}]",
     "classes[0].daily_input_tokens", "less than one prompt token per request"),
    ("window_days: 7\npeak_to_average: 2\nclasses: [{name: all, daily_requests: -1, daily_input_tokens: 0, daily_output_tokens: 0}]",
     "classes[0].daily_requests", "greater than or equal to 0"),
    ("window_days: 7\npeak_to_average: 2\nclasses: [{name: all, daily_requests: 0, daily_input_tokens: 0, daily_output_tokens: 0}]",
     "classes", "less than one request a day"),
    ("window_days: 7\npeak_to_average: 20\nclasses: [{name: all, daily_requests: 10, daily_input_tokens: 10, daily_output_tokens: 10}]",
     "peak_to_average", "more than a day holds"),
    ("window_days: 7\npeak_to_average: 2\nrequests: 5\nclasses: [{name: all, daily_requests: 10, daily_input_tokens: 10, daily_output_tokens: 10}]",
     "requests", "unknown key; valid keys here: classes"),
    ("window_days: 7\npeak_to_average: 2\nclasses: []", "classes", "at least 1"),
    ("window_days: [7\n", "line", "not valid YAML"),
]


@pytest.mark.parametrize("text, field, message", BAD)
def test_bad_usage_file_exits_2_naming_the_field(cli, project, tmp_path, text, field, message):
    usage = tmp_path / "usage.yaml"
    usage.write_text(text)
    stacks = sorted(p.name for p in (project / "stacks").iterdir())
    result = cli("replan", str(ROOT / "stacks/profiles/startup-api.yaml"), str(usage), "--write",
                 "--stack", "startup-api", "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert str(usage) in result.stderr and field in result.stderr and message in result.stderr
    assert sorted(p.name for p in (project / "stacks").iterdir()) == stacks
    assert (project / "stacks" / "Pulumi.startup-api.yaml").read_text() == \
        (ROOT / "stacks" / "Pulumi.startup-api.yaml").read_text()


def test_missing_usage_file(cli, project, tmp_path):
    result = cli("replan", str(ROOT / "stacks/profiles/startup-api.yaml"), str(tmp_path / "nope.yaml"),
                 "--project-dir", str(project))
    assert result.exit_code == 2 and "no such usage file" in result.stderr


def test_hand_edited_stack_is_not_overwritten_without_force(cli, project, tmp_path):
    stack = project / "stacks" / "Pulumi.startup-api.yaml"
    stack.write_text(stack.read_text().replace("requestsPerMinute:", "requestsPerMinute:  ", 1) + "# edited\n")
    doc = yaml.safe_load(stack.read_text())
    doc["config"]["llm-hosting:protect"] = False
    stack.write_text(yaml.safe_dump(doc))
    profile = load_profile(ROOT / "stacks/profiles/startup-api.yaml")
    result = cli("replan", str(ROOT / "stacks/profiles/startup-api.yaml"),
                 _usage(tmp_path, "u", profile, profile.traffic.daily_requests * 2), "--write",
                 "--stack", "startup-api", "--project-dir", str(project))
    assert result.exit_code == 2 and "edited by hand" in result.stderr
