"""Dedicated virtualenvs for tools the tests run as separate programs (the LiteLLM proxy, ...).

A tool gets its own venv under `<repo>/.tools/<name>` (git-ignored), built with one `pip install` of exact pins so
its dependency tree never touches the project's. A marker file, written only after the install succeeded and
holding the requirement list, makes later calls reuse it; a changed pin or an interrupted install rebuilds it.
An exclusive file lock serialises parallel test processes (pytest-xdist workers, a bench run beside the tests).

    bin_dir = tool_bin("litellm", LITELLM_PROXY)   # -> <repo>/.tools/litellm/bin

Also here: `LiteLLMProxy`, the pinned proxy as a process on 127.0.0.1 (clean environment with
LITELLM_LOCAL_MODEL_COST_MAP=True, ready on /health/liveliness, stopped by its own pid), and `post_json`.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = ROOT / ".tools"
MARKER = ".installed"

# The gateway release the kit deploys (components/versions.py: litellm_tag main-v1.106.2), from PyPI.
# prometheus-client: the proxy's Prometheus callback (the gateway config turns it on); the release image ships it, the
# PyPI `proxy` extra does not.
LITELLM_PROXY = ("litellm[proxy]==1.106.2", "prometheus-client==0.22.1")
# The same proxy with the Google client its vertex_ai/ provider imports (`vertexai`, google-auth), as the release image
# ships it; a venv of its own so the common one stays small (~100 s more to install).
LITELLM_PROXY_VERTEX = (*LITELLM_PROXY, "google-cloud-aiplatform==2.7.0")


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


def litellm_vertex_bin() -> Path:
    """The pinned proxy with the Google client libraries its vertex_ai/ provider needs."""
    return tool_bin("litellm-vertex", LITELLM_PROXY_VERTEX) / "litellm"


# -- running the proxy ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, seconds: float):
        self.status, self.headers, self.body, self.seconds = status, {k.lower(): v for k, v in headers.items()}, body, seconds

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def model_group(self) -> Optional[str]:
        return self.headers.get("x-litellm-model-group")

    @property
    def attempted_fallbacks(self) -> Optional[int]:
        value = self.headers.get("x-litellm-attempted-fallbacks")
        return int(value) if value not in (None, "", "None") else None

    def __repr__(self) -> str:
        return f"Reply({self.status}, group={self.model_group}, {self.seconds:.3f}s, {self.body[:160]!r})"


def post_json(base: str, path: str, body: Mapping[str, Any], headers: Optional[Mapping[str, str]] = None,
              timeout: float = 30.0, conn: Optional[http.client.HTTPConnection] = None) -> Reply:
    """One POST; a fresh connection unless `conn` (kept alive by the caller) is given."""
    host_port = base.split("://", 1)[1].split("/", 1)[0]
    prefix = "/" + base.split("://", 1)[1].split("/", 1)[1] if "/" in base.split("://", 1)[1] else ""
    own = conn is None
    c = conn or http.client.HTTPConnection(host_port, timeout=timeout)
    data = json.dumps(body).encode()
    started = time.perf_counter()
    try:
        c.request("POST", prefix.rstrip("/") + path, body=data,
                  headers={"Content-Type": "application/json", **dict(headers or {})})
        r = c.getresponse()
        payload = r.read()
        return Reply(r.status, dict(r.getheaders()), payload, time.perf_counter() - started)
    finally:
        if own:
            c.close()


class LiteLLMProxy:
    """The pinned `litellm` proxy on 127.0.0.1, started on a config file, stopped by its own pid."""

    def __init__(self, config_path: Path, env: Mapping[str, str], log_path: Path, port: Optional[int] = None,
                 cwd: Optional[Path] = None, binary: Optional[Path] = None):
        self.binary = binary  # None: litellm_bin()
        self.config_path, self.log_path, self.port = Path(config_path), Path(log_path), port or free_port()
        self.cwd = cwd or self.log_path.parent
        # A clean environment: no proxy variables (loopback only), the offline price map, and the given keys.
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.cwd), "LANG": "C.UTF-8",
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "*", **dict(env)}
        self.process: Optional[subprocess.Popen] = None
        self._log = None
        self.startup_seconds: Optional[float] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 90.0) -> "LiteLLMProxy":
        self._log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(self.binary or litellm_bin()), "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = started + ready_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"litellm exited with {self.process.returncode} before it was ready:\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health/liveliness")
                if c.getresponse().status == 200:
                    c.close()
                    break
                c.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"litellm not ready within {ready_timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LiteLLMProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # warm the cache: python tests/tools.py
    print(litellm_bin())
