"""Dedicated virtualenvs for tools the tests run as separate programs (the LiteLLM proxy, ...).

A tool gets its own venv under `<repo>/.tools/<name>` (git-ignored), built with one `pip install` of exact pins so
its dependency tree never touches the project's. A marker file, written only after the install succeeded and
holding the requirement list, makes later calls reuse it; a changed pin or an interrupted install rebuilds it.
An exclusive file lock serialises parallel test processes (pytest-xdist workers, a bench run beside the tests).

    bin_dir = tool_bin("litellm", LITELLM_PROXY)   # -> <repo>/.tools/litellm/bin
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = ROOT / ".tools"
MARKER = ".installed"

# The gateway release the kit deploys (components/versions.py: litellm_tag main-v1.106.2), from PyPI.
LITELLM_PROXY = ("litellm[proxy]==1.106.2",)


class ToolInstallError(RuntimeError):
    pass


def _expected(requirements: Sequence[str]) -> str:
    return "\n".join(requirements) + "\n"


@contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ToolInstallError(f"timed out after {timeout:.0f} s waiting for {path} (another install running?)")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _complete(venv: Path, requirements: Sequence[str]) -> bool:
    marker = venv / MARKER
    try:
        return marker.read_text() == _expected(requirements) and (venv / "bin" / "python").exists()
    except OSError:
        return False


def tool_bin(name: str, requirements: Sequence[str], install_timeout: float = 1200.0) -> Path:
    """The `bin` directory of the tool's venv, creating it (one pip install of `requirements`) if needed."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"tool name {name!r} must be a plain directory name")
    if not requirements or any("==" not in r for r in requirements):
        raise ValueError(f"requirements {list(requirements)!r} must all be exact pins (name==version)")
    venv = TOOLS_DIR / name
    if _complete(venv, requirements):
        return venv / "bin"
    with _locked(TOOLS_DIR / f"{name}.lock", timeout=install_timeout):
        if _complete(venv, requirements):  # another process finished it while we waited
            return venv / "bin"
        if venv.exists():  # a half-built or outdated venv: start over
            shutil.rmtree(venv)
        started = time.monotonic()
        _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
              "--quiet", *requirements], timeout=install_timeout)
        tmp = venv / f"{MARKER}.tmp"
        tmp.write_text(_expected(requirements))
        os.replace(tmp, venv / MARKER)
        print(f"tools: installed {' '.join(requirements)} into {venv} in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
    return venv / "bin"


def _run(cmd: list[str], timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolInstallError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise ToolInstallError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")


def litellm_bin() -> Path:
    """The `litellm` executable of the pinned proxy release."""
    return tool_bin("litellm", LITELLM_PROXY) / "litellm"


if __name__ == "__main__":  # warm the cache: python tests/tools.py
    print(litellm_bin())
