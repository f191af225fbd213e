"""Shared fixtures: the project root, a scratch copy of the project, and a CLI runner that keeps stderr apart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.catalog import load_catalog
from planner.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "stacks" / "profiles").glob("*.yaml"))


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project (program, project file, stacks) that a test may write into."""
    dst = tmp_path / "project"
    dst.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "stacks", dst / "stacks")
    return dst


def edit_stack(project: Path, stack: str, edit) -> None:
    """Apply `edit` to the `config:` mapping of a stack file in a project copy (a hand edit, as a user would make)."""
    import yaml

    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc["config"])
    path.write_text(yaml.safe_dump(doc))


def set_section(section: str, **values):
    """An edit that sets keys inside one `llm-hosting:<section>` mapping (creating it if absent)."""
    def edit(config):
        config.setdefault(f"llm-hosting:{section}", {}).update(values)
    return edit


class Cli:
    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args: str, cwd: Path | None = None):
        import os

        old = os.getcwd()
        try:
            if cwd:
                os.chdir(cwd)
            return self.runner.invoke(main, list(args), catch_exceptions=False)
        finally:
            os.chdir(old)


@pytest.fixture
def cli() -> Cli:
    return Cli()
