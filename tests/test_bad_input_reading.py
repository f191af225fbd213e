"""How input files are read and how a refusal is printed: every file a user hands the kit (profile, stack file,
catalog, usage file, Pulumi.yaml, policy config, exceptions register) is read strictly in one place
(policies/strict_input.py, wrapped by planner.errors.read_yaml / read_json), so an unreadable path, bytes that are
not UTF-8, a repeated key, deep nesting or exploding aliases exit 2 with one line naming the file, never a traceback.
`llmhost preview` validates the pack's inputs before it runs the program, and a refusal fits a screen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from planner.errors import MAX_PROBLEMS, InputError
from policies.config import policy_config, validate_config, validate_for_stack
from policies.exceptions import ExceptionsError, load_exceptions
from policies.strict_input import ReadError, load_json, load_yaml

PROFILE = (ROOT / "stacks/profiles/startup-api.yaml").read_text()
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
NESTED = "traffic: " + "[" * 3000 + "]" * 3000 + "\n"
# Eight levels of ten aliases each: a 1 KB document that a naive reader expands to 10^8 values.
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))


def _refused(result, *needles: str) -> str:
    """Exit 2, a one-line-per-problem `error:` message holding every needle, no traceback, no stdout."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


def _plan(cli, project, profile: Path | str, *extra: str):
    return cli("plan", str(profile), "--stack", "bad", "--project-dir", str(project), *extra)


def _nothing_planned(project: Path) -> None:
    assert not list((project / "stacks").glob("bad.*")) and not (project / "stacks" / "Pulumi.bad.yaml").exists()


# --- class 1: what used to be a traceback is a refusal naming the file ---------------------------------------------

@pytest.mark.parametrize("content, needle", [
    (PROFILE.encode().replace(b"startup", b"start\xffup", 1), "line 2, column"),
    (NESTED.encode(), "nested"),
    (LAUGHS.encode(), "anchors and aliases expand to more than"),
    ((PROFILE + "traffic:\n  daily_requests: 1\n").encode(), "traffic: repeated key (first at line "),
], ids=["not-utf8", "deeply-nested", "billion-laughs", "repeated-key"])
def test_a_profile_that_cannot_be_read_is_refused(cli, project, tmp_path, content, needle):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    _refused(_plan(cli, project, path), f"error: {path}: ", needle)
    _nothing_planned(project)


def test_a_profile_that_is_not_utf8_says_so(cli, project, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(PROFILE.replace("startup", "caf\u00e9", 1).encode("latin-1"))
    _refused(_plan(cli, project, path), "is not UTF-8 text (byte 0xe9); save the profile file as UTF-8")


@pytest.mark.parametrize("make, needle", [
    (lambda tmp: tmp, "is a directory, not a profile file"),
    (lambda tmp: tmp / ("x" * 5000 + ".yaml"), "the path is too long for the file system"),
    (lambda tmp: tmp / "no-such-dir" / "p.yaml", "no such profile file: its directory"),
    (lambda tmp: tmp / "a-file" / "p.yaml", "a part of the path is a file, not a directory"),
], ids=["directory", "too-long", "missing-directory", "file-as-directory"])
def test_a_profile_path_that_cannot_be_a_file_is_refused(cli, project, tmp_path, make, needle):
    (tmp_path / "a-file").write_text("x")
    path = make(tmp_path)
    stderr = _refused(_plan(cli, project, path), needle)
    assert len(stderr) < 1000, "a long path is shortened in the message"
    _nothing_planned(project)


def test_a_catalog_with_a_repeated_key_is_refused(cli, project, tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text((ROOT / "planner" / "catalog.yaml").read_text() + "\napi_models: []\n")
    _refused(_plan(cli, project, ROOT / "stacks/profiles/startup-api.yaml", "--catalog", str(path)),
             f"error: {path}: api_models: repeated key (first at line ")


def test_a_usage_file_with_a_repeated_key_is_refused(tmp_path):
    from planner.usage import load_usage

    path = tmp_path / "usage.yaml"
    path.write_text("window_days: 7\npeak_to_average: 3\nwindow_days: 70\nclasses: []\n")
    with pytest.raises(InputError) as err:
        load_usage(path)
    assert err.value.render() == (f"{path}: window_days: repeated key (first at line 1, again at line 3); the second "
                                  "would silently replace the first, so keep one")


def _preview(cli, project, stack="startup-api", *extra):
    return cli("preview", "--stack", stack, "--project-dir", str(project), *extra)


@pytest.mark.parametrize("edit, needle", [
    (lambda p: p.write_bytes(p.read_bytes().replace(b"llm-hosting:tier", b"llm-hosting:t\xe9er", 1)),
     "is not UTF-8 text (byte 0xe9)"),
    (lambda p: p.write_text(p.read_text() + "  llm-hosting:tier: managed\n"),
     "config.llm-hosting:tier: repeated key (first at line "),
    (lambda p: (p.unlink(), p.mkdir()), "is a directory, not a stack file"),
    (lambda p: p.write_text("config:\n  llm-hosting:x: " + "{a: " * 200 + "1" + "}" * 200 + "\n"), "nested"),
], ids=["not-utf8", "repeated-key", "directory", "deeply-nested"])
def test_a_stack_file_that_cannot_be_read_is_refused_before_anything_runs(cli, project, edit, needle):
    edit(project / "stacks" / "Pulumi.startup-api.yaml")
    result = _preview(cli, project)
    _refused(result, "stacks/Pulumi.startup-api.yaml: ", needle)
    assert result.stdout == ""


@pytest.mark.parametrize("text, needle", [
    ("- name: llm-hosting\n- runtime: python\n", "the project file is a mapping (name, runtime, config, ...), not list"),
    ("llm-hosting\n", "the project file is a mapping (name, runtime, config, ...), not str"),
    ("name: llm-hosting\nruntime: python\nname: other\n", "name: repeated key (first at line 1, again at line 3)"),
    ("name: llm-hosting\nconfig: [a, b]\n", "config: is a mapping of config keys to their defaults"),
], ids=["list", "scalar", "repeated-key", "config-list"])
def test_a_project_file_that_is_not_a_mapping_is_refused(cli, project, text, needle):
    (project / "Pulumi.yaml").write_text(text)
    result = _preview(cli, project, "startup-api", "--skip-policies")
    _refused(result, "Pulumi.yaml: ", needle)
    assert result.stdout == ""


# --- class 3: the pack's inputs are refused before the program runs, prints or writes -----------------------------

def _policy_file(project: Path, stack: str = "startup-api") -> Path:
    return project / "stacks" / f"{stack}.policy-config.json"


def _set_policy(project: Path, change, stack: str = "startup-api") -> None:
    path = _policy_file(project, stack)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


LATE_CASES = [
    ("all-disabled", lambda d: d.update({"all": "disabled"}),
     "all: 'disabled' would switch off every policy of the pack", "policies/exceptions.yaml"),
    ("unknown-policy", lambda d: d.update({"RES-009-anywhere": {}}),
     "RES-009-anywhere: not a policy of this pack; its policies are RES-001-region-allowlist", None),
    ("bad-level", lambda d: d["ENC-001-cmk-secrets"].update({"enforcementLevel": "strict"}),
     "ENC-001-cmk-secrets.enforcementLevel: 'strict' is not one of advisory, mandatory, remediate, disabled", None),
    ("bad-all-level", lambda d: d.update({"all": "always"}), "all: 'always' is not an enforcement level", None),
    ("regions-wider-than-residency", lambda d: d["RES-001-region-allowlist"].update(
        {"allowedRegions": ["us-east-1", "eu-west-1"]}),
     "RES-001-region-allowlist.allowedRegions: 'eu-west-1' is outside the stack's residency "
     "(llm-hosting:residency.allowedRegions: us-east-1, us-west-2)", None),
    ("classification-below-the-stack", lambda d: d["BND-002-private-cluster-endpoint"].update(
        {"classification": "public"}),
     "BND-002-private-cluster-endpoint.classification: 'public' is below the stack's classification 'internal'", None),
]


@pytest.mark.parametrize("change, needle, also", [c[1:] for c in LATE_CASES], ids=[c[0] for c in LATE_CASES])
def test_a_bad_policy_config_is_refused_before_the_tree_or_the_inventory(cli, project, tmp_path, change, needle, also):
    _set_policy(project, change)
    out = tmp_path / "inventory.json"
    result = _preview(cli, project, "startup-api", "--json", str(out))
    stderr = _refused(result, "error: stacks/startup-api.policy-config.json: " + needle, *([also] if also else []))
    assert result.stdout == "", "no tree may be printed before the policy config is refused"
    assert not out.exists(), "no inventory may be written before the policy config is refused"
    assert len(stderr.splitlines()) <= MAX_PROBLEMS + 1


@pytest.mark.parametrize("raw, needle", [
    ('{"all": "mandatory",\n "all": "disabled"}', "all: repeated key (at lines 1, 2)"),
    (b'{"all": "mandatory", "x": "\xff"}', "is not UTF-8 text"),
    ('{"all": ' * 3000 + "1" + "}" * 3000, "nested too deeply"),
], ids=["repeated-all", "not-utf8", "deeply-nested"])
def test_a_policy_config_that_cannot_be_read_is_refused_before_the_tree(cli, project, raw, needle):
    path = _policy_file(project)
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw)
    result = _preview(cli, project)
    _refused(result, "error: stacks/startup-api.policy-config.json: ", needle)
    assert result.stdout == ""


def test_a_repeated_key_deep_in_a_policy_config_is_named_by_its_path(project):
    from policies.config import PolicyConfigError
    from policies.engine import load_policy_config

    path = _policy_file(project)
    text = path.read_text().replace('"allowedRegions": [', '"allowedRegions": ["eu-west-1"], "allowedRegions": [', 1)
    path.write_text(text)
    with pytest.raises(PolicyConfigError) as err:
        load_policy_config(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"allowedRegions": ["eu-west-1"]' in t)
    assert err.value.problems == [f"RES-001-region-allowlist.allowedRegions: repeated key (more than once on line {line}); "
                                  "the second would silently replace the first, so keep one"]


def test_an_older_facts_file_wider_than_the_stack_is_refused(project):
    from planner.stack_config import load_stack_config
    from policies.config import PolicyConfigError
    from policies.engine import load_policy_config
    from preview.harness import load_config

    path = _policy_file(project)
    path.write_text(json.dumps({"llmhost-stack-facts": {"allowedRegions": ["us-east-1", "ap-south-1"],
                                                        "classification": "internal", "network": "public"}}))
    _, merged, _, _ = load_config(project, "startup-api")
    with pytest.raises(PolicyConfigError) as err:
        load_policy_config(path, load_stack_config(merged, "stacks/Pulumi.startup-api.yaml"))
    assert err.value.source == "stacks/startup-api.policy-config.json"
    assert err.value.problems[0].startswith("RES-001-region-allowlist.allowedRegions: 'ap-south-1' is outside the "
                                            "stack's residency")


@pytest.mark.parametrize("name, needle", [
    ("no-such-dir/inventory.json", "--json: its directory does not exist"),
    ("j" * 300 + ".json", "--json: the file name is longer than the file system allows"),
], ids=["missing-directory", "name-too-long"])
def test_an_inventory_that_cannot_be_written_is_refused_before_the_program_runs(cli, project, tmp_path, name, needle):
    out = tmp_path / name
    result = _preview(cli, project, "startup-api", "--json", str(out))
    _refused(result, needle)
    assert result.stdout == ""


@pytest.mark.parametrize("stack", STACKS)
def test_the_generated_policy_config_of_every_stack_passes_the_stack_checks(stack):
    """A config `llmhost plan` writes from the stack can never be refused for being wider than the stack."""
    from planner.stack_config import load_stack_config
    from planner.stackgen import policy_facts
    from policies.config import facts_from_stack_config
    from policies.engine import load_policy_inputs
    from preview.harness import load_config

    _, merged, _, _ = load_config(ROOT, stack)
    cfg = load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")
    generated = policy_config(policy_facts(cfg))
    assert validate_config(generated) == [] and validate_for_stack(generated, facts_from_stack_config(cfg)) == []
    assert load_policy_inputs(ROOT, stack).source == f"stacks/{stack}.policy-config.json"


def test_a_narrower_policy_config_is_accepted():
    facts = {"allowedRegions": ["eu-central-1", "eu-west-1"], "classification": "internal", "network": "private"}
    cfg = policy_config({**facts, "allowedRegions": ["eu-central-1"], "classification": "regulated",
                         "network": "airgapped", "registry": "registry.example.com/mirror"})
    assert validate_for_stack(cfg, facts) == []
    assert validate_for_stack(policy_config({**facts, "network": "public"}), facts) == [
        f"{p}.network: 'public' is more open than the stack's network 'private' (llm-hosting:network); the air-gap "
        "policies would check less than the stack promises"
        for p in ("AIR-001-no-internet-gateways", "AIR-002-no-internet-routes", "AIR-003-private-registry-images",
                  "AIR-004-hub-offline-serving", "BAS-007-no-public-ips",
                  "LNK-007-endpoint-reachable")]


# --- class 4: repeated keys in the exceptions register, and its reading --------------------------------------------

GOOD_EXCEPTION = """exceptions:
  - policy: ENC-004-cmk-log-groups
    stack: dev
    resource: audit-logs
    reason: The log group is recreated by the migration next sprint. It holds no prompts meanwhile.
    approvedBy: Jane Doe (security)
    approved: 2026-11-01
    expires: 2027-01-31
"""


@pytest.mark.parametrize("content, needle", [
    (GOOD_EXCEPTION + "    resource: everything\n", "exceptions[0].resource: repeated key (first at line 4, again at line 9)"),
    (GOOD_EXCEPTION + "exceptions: []\n", "exceptions: repeated key (first at line 1, again at line 9)"),
    (GOOD_EXCEPTION.replace("Jane Doe", "Jos\u00e9").encode("latin-1"), "line 6, column 20: is not UTF-8 text (byte 0xe9)"),
    ("exceptions:\n  - " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
], ids=["repeated-field", "repeated-list", "not-utf8", "deeply-nested"])
def test_an_exceptions_register_that_cannot_be_read_is_refused(tmp_path, content, needle):
    path = tmp_path / "exceptions.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ExceptionsError) as err:
        load_exceptions(path)
    assert any(needle in p for p in err.value.problems), err.value.problems
    assert err.value.source == str(path)


def test_an_exceptions_register_path_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(ExceptionsError) as err:
        load_exceptions(tmp_path)
    assert err.value.problems == ["is a directory, not a policy exceptions file"]
    assert load_exceptions(tmp_path / "none.yaml") == [], "no register means no exceptions"


# --- the reader itself -----------------------------------------------------------------------------------------------

def test_merge_keys_may_be_overridden_and_repeats_inside_lists_are_named_by_path():
    assert load_yaml("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n") == {"base": {"x": 1, "y": 2}, "m": {"x": 3, "y": 2}}
    with pytest.raises(ReadError) as err:
        load_yaml("workloads:\n  - name: a\n    name: b\n")
    assert [w for w, _ in err.value.problems] == ["workloads[0].name"]
    with pytest.raises(ReadError) as err:
        load_yaml("a: &a [1, *a]\n")
    assert "refers to a value that contains it" in err.value.problems[0][1]
    with pytest.raises(ReadError) as err:
        load_json('{"a": [{"k": 1}, {"k": 1, "j": {"k": 2}, "k": 3}]}')
    assert err.value.problems[0][0] == "a[1].k"
    assert load_json('{"k": {"k": 1}}') == {"k": {"k": 1}}
    with pytest.raises(ReadError):
        load_json('{"a": NaN}')


# --- class 5: a refusal fits a screen, whatever the input ----------------------------------------------------------

def test_a_10_mb_profile_gets_a_short_refusal(cli, project, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(PROFILE + "notes: " + "x" * 10_000_000 + "\n")
    stderr = _refused(_plan(cli, project, path), "is 10.0 MB; a profile file is at most 2.0 MB")
    assert len(stderr) < 4096


def test_a_profile_with_thousands_of_problems_shows_the_first_ones_and_counts_the_rest(cli, project, tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(PROFILE + "".join(f"unknown_key_{i}: {i}\n" for i in range(5000)))
    stderr = _refused(_plan(cli, project, path), f"error: {path}: ... and ")
    lines = stderr.splitlines()
    assert len(lines) == MAX_PROBLEMS + 1 and "more problem(s) not shown" in lines[-1]
    assert len(stderr) < 6144
    assert lines[1].endswith("unknown_key_1: unknown key (as above)")


def test_a_huge_value_is_quoted_only_in_part(cli, project, tmp_path):
    data = yaml.safe_load(PROFILE)
    data["data_sensitivity"] = "y" * 1_000_000
    path = tmp_path / "value.yaml"
    path.write_text(yaml.safe_dump(data, width=10**9))
    stderr = _refused(_plan(cli, project, path), "data_sensitivity: ", "more characters)")
    assert len(stderr) < 2048


def test_render_caps_problems_and_clips_each_line():
    err = InputError("f.yaml", [(f"k{i}" * 200, "v" * 10_000) for i in range(1000)])
    lines = err.render().splitlines()
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1] == f"f.yaml: ... and {1000 - MAX_PROBLEMS} more problem(s) not shown; fix these and run again to see them"
    assert all(len(line) < 900 for line in lines)  # path + field (120) + message (MAX_MESSAGE_CHARS)
    assert InputError("f.yaml", [("a", "b")]).render() == "f.yaml: a: b"
