"""The program imports what the stack builds: one cloud's stack never loads the other cloud's SDK, and only a stack
with a cluster loads Kubernetes resource modules. Each case runs in a fresh interpreter, since the test process has
long since imported everything.

The SDKs register every submodule lazily (pulumi's lazy_import puts a placeholder in sys.modules that loads on first
use), so "loaded" below means a module whose code ran, not a placeholder.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from preview.harness import run_preview
results = [run_preview({root!r}, stack) for stack in {stacks!r}]
loaded = sorted(m for m, mod in list(sys.modules.items())
                if m.startswith("pulumi_") and mod is not None and type(mod).__name__ != "_LazyModule")
print(json.dumps({{"loaded": loaded, "inventory": results[-1].inventory(), "outputs": results[-1].outputs}}))
"""


def preview_in_fresh_interpreter(*stacks: str) -> dict:
    """Preview `stacks` in order in one new interpreter: the SDK modules loaded, and the last stack's inventory."""
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), stacks=list(stacks))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def kubernetes_resource_modules(loaded: list[str]) -> list[str]:
    """Loaded pulumi_kubernetes API modules (core.v1, apps.v1, helm.v3, ...), not the package's own plumbing."""
    return [m for m in loaded if m.startswith("pulumi_kubernetes.") and m.count(".") == 2 and m.split(".")[2][:1] == "v"]


@pytest.mark.parametrize("stack, cloud, cluster", [
    ("startup-api", "aws", False),
    ("burst-hybrid", "aws", True),  # the largest AWS example: EKS, plus the API tier
    ("eu-residency-api", "gcp", False),
    ("eu-airgapped-gke", "gcp", True),  # the largest GCP example
])
def test_a_stack_loads_its_own_cloud_sdk_only(stack, cloud, cluster):
    loaded = preview_in_fresh_interpreter(stack)["loaded"]
    own, other = ("pulumi_aws", "pulumi_gcp") if cloud == "aws" else ("pulumi_gcp", "pulumi_aws")
    assert own in loaded
    assert not [m for m in loaded if m.split(".")[0] == other], f"{stack} ({cloud}) loaded {other}"
    k8s = kubernetes_resource_modules(loaded)
    if cluster:
        assert "pulumi_kubernetes.core.v1" in k8s and "pulumi_kubernetes.apps.v1" in k8s, k8s
    else:
        assert not k8s, f"{stack} has no cluster but loaded {k8s}"


def test_stacks_of_both_clouds_in_one_process_build_what_each_builds_alone():
    # What the test suite and a notebook do: the second stack's imports are already cached, the other cloud's too.
    alone = preview_in_fresh_interpreter("eu-airgapped-gke")
    after_others = preview_in_fresh_interpreter("burst-hybrid", "eu-airgapped-gke")
    assert {m.split(".")[0] for m in after_others["loaded"]} >= {"pulumi_aws", "pulumi_gcp"}
    assert after_others["inventory"] == alone["inventory"]
    assert after_others["outputs"] == alone["outputs"]
