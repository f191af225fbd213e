"""The README's commands run, and its tables match what the kit does."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROFILES, ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
LLMHOST = str(Path(sys.executable).with_name("llmhost"))


def test_readme_names_one_main_command_and_one_test_command_and_ci_runs_it():
    assert BLOCKS[0].strip() == "make demo"
    assert BLOCKS[1].strip() == "make test"
    assert "make test" in (ROOT / ".ci/run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    assert "llmhost plan stacks/profiles/startup-api.yaml --stack startup-api" in demo
    assert "llmhost preview --stack startup-api" in demo
    assert re.search(r"^test:.*\n\t\$\(BIN\)/python -m pytest\n", makefile, flags=re.M)


HAND_COMMANDS = [line for line in BLOCKS[2].splitlines() if line.startswith(".venv/bin/llmhost")]


@pytest.mark.parametrize("line", HAND_COMMANDS)
def test_readme_llmhost_commands_run(project, line):
    argv = [LLMHOST, *shlex.split(line)[1:]]
    proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    if "--json" in argv and argv[1] == "plan":
        assert json.loads(proc.stdout)["tier"] == "managed"
    if argv[1] == "preview":
        assert "llmhost:index:AwsApiKeySecret api-key" in proc.stdout
        assert json.loads((project / "startup-api.inventory.json").read_text())


def test_readme_example_table_matches_the_stacks():
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (?:aws|gcp) \| ([a-z-]+)[:,]", README, flags=re.M))
    assert set(rows) == {p.stem for p in PROFILES}
    for stack, tier in rows.items():
        config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert config["llm-hosting:tier"] == tier, stack


REPLAN_COMMANDS = [line for block in BLOCKS for line in block.splitlines()
                   if line.startswith("llmhost replan") and "--write" not in line]


def test_readme_replan_example_runs_and_writes_nothing(project):
    """The README's re-plan example, on the example usage file it names: it runs and leaves the stack as it was."""
    assert REPLAN_COMMANDS, "the README shows `llmhost replan` on the example usage file"
    before = {p.name: p.read_text() for p in (project / "stacks").glob("*startup-api*")}
    for line in REPLAN_COMMANDS:
        proc = subprocess.run([LLMHOST, *shlex.split(line)[1:]], cwd=project, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "decision unchanged" in proc.stdout and "nothing written" in proc.stdout
    assert {p.name: p.read_text() for p in (project / "stacks").glob("*startup-api*")} == before
