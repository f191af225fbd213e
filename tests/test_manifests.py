"""Every Kubernetes object the kit renders, checked by two outside tools, offline.

* kubernetes-validate (1.37.0, PyPI): each manifest against the OpenAPI schema of Kubernetes 1.33 (the kit's EKS
  version; GKE's REGULAR channel is on the same minor), in strict mode, so an unknown field (a typo such as
  `resource:` for `resources:`) is an error rather than something the API server silently drops.
* checkov (3.3.30, PyPI): its Kubernetes checks, `--skip-download` so nothing is fetched. No check may fail; a check
  that cannot hold for this workload is waived on the object itself with `checkov.io/skipN: CKV_K8S_xx=<reason>`,
  and every waiver must carry a reason (they are listed in the test output: run with `-s` or read `-rA`).

The objects come from the offline preview of every stack under stacks/ (every resource whose type starts with
`kubernetes:`, identical manifests once) plus TGI model servers rendered directly, since no stack runs TGI today.
Masked secret values ("[secret]" where a Secret holds its data) are replaced by a dummy mapping so the schema check
still means something.

Both tools run as separate programs from their own virtualenvs under .tools/ (tests/tools.py), so their pins never
touch the kit's environment. Without network the first install fails: the tests are then skipped with the reason,
except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml

from tests.conftest import ROOT
from tests.tools import ToolInstallError, tool_bin

KUBERNETES_VERSION = "1.33.0"  # components/versions.py eks_version; GKE REGULAR is on 1.33 as well
KUBERNETES_VALIDATE = ("kubernetes-validate==1.37.0",)
CHECKOV = ("checkov==3.3.30",)
MASK = "[secret]"
DUMMY_SECRET_DATA = {"MASKED_IN_PREVIEW": "ZHVtbXk="}  # base64 "dummy": valid for data and stringData alike

# API groups served by every cluster (kubernetes-validate has their schemas); anything else is a custom resource.
BUILTIN_GROUP = re.compile(r"^(core|apps|batch|policy|autoscaling|[a-z0-9-]+\.k8s\.io)/v[0-9a-z]+$")
NOT_OBJECTS = ("pulumi:providers:kubernetes",)
HELM_RELEASES = ("kubernetes:helm.sh/v3:Release",)
# Custom resources whose CRD is not among ../shared/schemas, each with where its shape is checked instead.
NO_PUBLISHED_SCHEMA = {
    "networking.gke.io/v1/HealthCheckPolicy": "GKE installs this CRD itself and does not publish it; "
                                              "tests/test_gcp_private_endpoint.py checks the fields the kit sets",
}

SKIP_PREFIXES = ("checkov.io/skip", "bridgecrew.io/skip", "cortex.io/skip")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


# -- collecting what the kit renders ---------------------------------------------------------------------------------

def stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def is_builtin_object(resource) -> bool:
    """A Kubernetes object with a built-in schema: `kubernetes:<group>/<version>:<Kind>` of a built-in group."""
    if not resource.type.startswith("kubernetes:") or resource.type in NOT_OBJECTS or not resource.custom:
        return False
    parts = resource.type.split(":")
    if len(parts) != 3:
        return False
    return bool(BUILTIN_GROUP.match(parts[1]))


def unmask(manifest: dict) -> dict:
    """The manifest with masked Secret contents replaced by a dummy mapping (a mask is a string, not a map)."""
    m = copy.deepcopy(manifest)
    if m.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if m.get(key) == MASK:
                m[key] = dict(DUMMY_SECRET_DATA)
            elif isinstance(m.get(key), dict):
                m[key] = {k: ("ZHVtbXk=" if v == MASK else v) for k, v in m[key].items()}
    return m


def _tgi_servers() -> list[tuple[str, Any]]:
    """TGI model servers: a hub model on one GPU (gated, token from a Secret), and a sharded one whose weights (from
    object storage) are pre-filled into a volume claim mounted at /models, the way TGI reads them (serving/tgi.py)."""
    from components.versions import VERSIONS
    from planner.catalog import load_catalog
    from planner.sizing import pod_size, startup_budget, weights_gb
    from preview.harness import run_program
    from serving.engine import EngineInputs
    from components.node_labels import gpu_node_selector
    from serving.model_server import ModelServer, ModelServerArgs
    from serving.tgi import tgi_spec

    catalog = load_catalog()
    out = []
    variants = [
        ("tgi-hub-1gpu", dict(size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge", weights_uri=None,
                              hub_token_secret="hf-token", registry=None, airgapped=False, claim=None)),
        ("tgi-prefilled-2gpu-airgapped", dict(size_class="70b", gpu="L40S", gpus=2, instance="g6e.12xlarge",
                                              weights_uri="s3://weights/llama-3.1-70b/", hub_token_secret=None,
                                              registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror",
                                              airgapped=True, claim="llama-70b-weights")),
    ]
    for label, v in variants:
        inputs = EngineInputs(model_id=f"meta-llama/Llama-3.1-{v['size_class'].upper()}-Instruct",
                              size_class=v["size_class"], gpu=v["gpu"], gpus_per_replica=v["gpus"],
                              max_context_tokens=8192, image=VERSIONS.tgi_serving_image(v["registry"]),
                              weights_uri=v["weights_uri"], airgapped=v["airgapped"],
                              hub_token_secret=v["hub_token_secret"], kv_cache_tokens=30400)
        spec = tgi_spec(inputs, catalog)
        precision = "fp8" if catalog.gpus[v["gpu"]].supports_fp8 else "fp16"
        weights = weights_gb(catalog, v["size_class"], precision)
        size = pod_size(catalog, "aws", v["instance"], v["gpus"], weights)
        args = ModelServerArgs(name="tgi", spec=spec, min_replicas=2, max_replicas=4, gpus_per_replica=v["gpus"],
                               node_selector=gpu_node_selector(v["gpu"]),
                               startup_budget_seconds=startup_budget(catalog, weights).total_seconds,
                               cpu=size.cpu, memory_gib=size.memory_gib, cache_size_gib=size.cache_gib,
                               model_volume_claim=v["claim"], labels={"llm-hosting/stack": label})
        out.append((label, run_program(lambda a=args: ModelServer("tgi", a), "llm-hosting", label,
                                       {"aws:region": "us-east-1"})))
    return out


class Rendered:
    def __init__(self):
        self.manifests: list[tuple[str, dict]] = []  # (file stem, manifest), deduplicated
        self.sources: dict[str, list[str]] = {}  # file stem -> "<stack>/<resource name>" that rendered it
        self.skipped: list[str] = []  # kubernetes: resources left out (neither built-in nor a CRD the kit knows)
        self.custom: list[tuple[str, dict]] = []  # ("<stack>/<resource name>", custom resource) checked against its CRD
        self.seconds = 0.0


@lru_cache(maxsize=None)
def rendered() -> Rendered:
    from preview.harness import run_preview

    started = time.monotonic()
    out = Rendered()
    by_digest: dict[str, str] = {}
    results = [(s, run_preview(ROOT, s)) for s in stacks()] + _tgi_servers()
    for label, result in results:
        for r in result.resources:
            if not r.type.startswith("kubernetes:") or r.type in NOT_OBJECTS or r.type in HELM_RELEASES:
                continue  # Helm releases: their values are checked against the charts' own (tests/test_charts.py)
            if not is_builtin_object(r):
                if r.custom and len(r.type.split(":")) == 3:
                    out.custom.append((f"{label}/{r.name}", custom_resource(r)))
                else:
                    out.skipped.append(f"{label}/{r.name} ({r.type})")
                continue
            manifest = unmask(r.inputs)
            digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:10]
            if digest not in by_digest:
                meta = manifest.get("metadata", {})
                stem = "-".join(str(x) for x in (manifest.get("kind", "Unknown").lower(), meta.get("namespace", "_"),
                                                 meta.get("name", r.name), digest))
                by_digest[digest] = stem
                out.manifests.append((stem, manifest))
                out.sources[stem] = []
            out.sources[by_digest[digest]].append(f"{label}/{r.name}")
    out.seconds = time.monotonic() - started
    return out


def custom_resource(resource) -> dict:
    """The object a `kubernetes.apiextensions.CustomResource` sends: apiVersion and kind from its type token."""
    _, group_version, kind = resource.type.split(":")
    return {"apiVersion": group_version, "kind": kind, **{k: v for k, v in unmask(resource.inputs).items()
                                                           if k not in ("apiVersion", "kind")}}


def write_manifests(directory: Path, manifests: Iterable[tuple[str, dict]]) -> list[Path]:
    """One YAML file per object; the file stem names the object."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, manifest in manifests:
        path = directory / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=200))
        paths.append(path)
    return paths


def test_every_stack_and_the_tgi_server_render_kubernetes_objects():
    r = rendered()
    kinds = sorted({m["kind"] for _, m in r.manifests})
    print(f"\n{len(r.manifests)} distinct manifests ({sum(len(v) for v in r.sources.values())} rendered) from "
          f"{len(stacks())} stacks + TGI in {r.seconds:.1f} s; kinds: {', '.join(kinds)}")
    assert not r.skipped, f"custom resources not covered by the schema check: {r.skipped}"
    assert {"Deployment", "DaemonSet", "Service", "Namespace", "ServiceAccount", "PodDisruptionBudget",
            "NetworkPolicy", "ConfigMap", "Secret"} <= set(kinds)
    engines = {m["spec"]["template"]["spec"]["containers"][0]["name"] for _, m in r.manifests if m["kind"] == "Deployment"}
    assert {"vllm", "tgi", "litellm"} <= engines
    for _, m in r.manifests:
        assert m.get("apiVersion") and m.get("kind") and m.get("metadata", {}).get("name"), m
        assert MASK not in json.dumps(m.get("data", {})) + json.dumps(m.get("stringData", {}))


def test_every_custom_resource_of_every_stack_is_valid_against_its_crd():
    """ScaledObjects, PodMonitors, PrometheusRules and GMP PodMonitorings, against the real CRDs at the pinned versions
    (../shared/schemas, see its README): types, required fields, enums and unknown fields."""
    from crd_schemas import validate_custom_resource

    r = rendered()
    kinds = {cr["kind"] for _, cr in r.custom}
    assert {"ScaledObject", "PodMonitor", "PrometheusRule", "PodMonitoring"} <= kinds, kinds
    checked = [(where, cr) for where, cr in r.custom if f"{cr['apiVersion']}/{cr['kind']}" not in NO_PUBLISHED_SCHEMA]
    problems = [f"{where}: {p}" for where, cr in checked for p in validate_custom_resource(cr)]
    assert problems == []
    print(f"\n{len(r.custom)} custom resources valid against their CRDs ({', '.join(sorted(kinds))})")


def test_no_object_lands_in_the_default_namespace():
    for stem, m in rendered().manifests:
        if m["kind"] != "Namespace":
            assert m["metadata"].get("namespace") not in (None, "", "default"), f"{stem}: no namespace (default)"


# -- the tools --------------------------------------------------------------------------------------------------------

def _tool(name: str, requirements: tuple[str, ...]) -> Path:
    try:
        return tool_bin(name, requirements)
    except (ToolInstallError, OSError) as exc:
        message = f"cannot install {' '.join(requirements)} into .tools/{name} (no network to PyPI?): {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def kubernetes_validate_python() -> Path:
    return _tool("kubernetes-validate", KUBERNETES_VALIDATE) / "python"


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    return _tool("checkov", CHECKOV) / "checkov"


# -- kubernetes-validate ---------------------------------------------------------------------------------------------

# Runs inside the tool's venv. Reports every file, and every schema error in it (the CLI prints only the first and
# lets a missing schema, i.e. a wrong apiVersion or kind, pass with a warning: here that is an error too).
VALIDATE_DRIVER = r'''
import json, sys
import yaml
import jsonschema
import kubernetes_validate
from kubernetes_validate import utils

version, paths = sys.argv[1], sys.argv[2:]
report = {}
for path in paths:
    problems = []
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
    except Exception as exc:
        report[path] = ["cannot parse: %s" % exc]
        continue
    if len(docs) != 1:
        problems.append("expected one object, found %d" % len(docs))
    for doc in docs:
        try:
            utils.validate(doc, version, strict=True)
        except utils.ValidationError as first:
            problems.append("%s: %s" % (".".join(str(p) for p in first.path) or "<root>", first.message))
        except utils.SchemaNotFoundError as exc:
            problems.append(exc.message)
        except Exception as exc:
            problems.append("%s: %s" % (type(exc).__name__, getattr(exc, "message", "") or exc))
    report[path] = problems
json.dump({"tool": kubernetes_validate.__version__ if hasattr(kubernetes_validate, "__version__") else "",
           "report": report}, sys.stdout)
'''


def kubernetes_validate(python: Path, paths: list[Path], version: str = KUBERNETES_VERSION) -> dict[str, list[str]]:
    """Schema problems per file (an empty list: the file validated)."""
    proc = subprocess.run([str(python), "-c", VALIDATE_DRIVER, version, *map(str, paths)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"kubernetes-validate driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)["report"]
    assert set(report) == {str(p) for p in paths}
    return report


def test_every_manifest_is_valid_for_kubernetes_1_33_in_strict_mode(kubernetes_validate_python, tmp_path):
    r = rendered()
    paths = write_manifests(tmp_path / "manifests", r.manifests)
    started = time.monotonic()
    report = kubernetes_validate(kubernetes_validate_python, paths)
    errors = {Path(p).stem: problems for p, problems in report.items() if problems}
    print(f"\nkubernetes-validate {KUBERNETES_VALIDATE[0]} (k8s {KUBERNETES_VERSION}, strict): {len(paths)} manifests, "
          f"{len(errors)} with errors, {time.monotonic() - started:.1f} s")
    assert not errors, "\n".join(f"{stem} ({', '.join(r.sources[stem])}): {'; '.join(p)}" for stem, p in errors.items())


def _first(kind: str) -> tuple[str, dict]:
    return next((s, copy.deepcopy(m)) for s, m in rendered().manifests if m["kind"] == kind)


def test_strict_validation_rejects_typos_and_unknown_kinds(kubernetes_validate_python, tmp_path):
    """The check can fail: a typo'd field, a wrong type, a missing required field, an API version that does not exist."""
    _, deployment = _first("Deployment")
    typo_container = copy.deepcopy(deployment)
    c = typo_container["spec"]["template"]["spec"]["containers"][0]
    c["resource"] = c.pop("resources")
    typo_spec = copy.deepcopy(deployment)
    typo_spec["spec"]["replica"] = typo_spec["spec"].pop("replicas")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "2"
    no_name = copy.deepcopy(deployment)
    del no_name["spec"]["template"]["spec"]["containers"][0]["name"]
    _, pdb = _first("PodDisruptionBudget")
    old_api = dict(pdb, apiVersion="policy/v1beta1")  # removed in 1.25
    bad = {"typo-resources": typo_container, "typo-replica": typo_spec, "replicas-string": wrong_type,
           "container-without-name": no_name, "pdb-v1beta1": old_api}
    paths = write_manifests(tmp_path / "bad", bad.items()) + write_manifests(tmp_path / "good", [("ok", deployment)])
    report = {Path(p).stem: problems for p, problems in kubernetes_validate(kubernetes_validate_python, paths).items()}
    assert report.pop("ok") == []
    assert all(report[name] for name in bad), report
    assert "'resource' was unexpected" in report["typo-resources"][0]
    assert "'replica' was unexpected" in report["typo-replica"][0]
    assert "is not of type 'integer'" in report["replicas-string"][0]
    assert "'name' is a required property" in report["container-without-name"][0]
    assert "Couldn't find schema" in report["pdb-v1beta1"][0]


# -- checkov -------------------------------------------------------------------------------------------------------

def run_checkov(checkov: Path, directory: Path) -> list[dict]:
    """checkov's Kubernetes checks on a directory, offline; its JSON report(s) as a list.

    Without `--quiet`: in 3.3.30 it drops skipped checks from the JSON as well as passed ones, and the waivers
    (with the reasons checkov actually read) are wanted in the report.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("BC_API_KEY", "PRISMA_API_URL")}
    env.update(LOG_LEVEL="ERROR", HOME=str(directory.parent), NO_PROXY="*", PYTHONWARNINGS="ignore")
    cmd = [str(checkov), "-d", str(directory), "--framework", "kubernetes", "--compact", "-o", "json",
           "--skip-download"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, env=env,
                          cwd=directory.parent)
    assert proc.returncode in (0, 1), f"checkov failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}") from None
    reports = data if isinstance(data, list) else [data]
    for report in reports:
        if report.get("check_type") not in (None, "kubernetes"):
            raise AssertionError(f"unexpected checkov report type {report.get('check_type')}")
    return reports


def _results(reports: list[dict], kind: str) -> list[dict]:
    return [c for rep in reports for c in rep.get("results", {}).get(kind, [])]


def _where(check: dict) -> str:
    return f"{check.get('resource')} ({Path(check.get('file_path', '')).name})"


def skip_annotations(manifest: dict) -> dict[str, str]:
    """checkov's waivers on an object and its pod template: annotation key -> value."""
    found = {}
    for meta in (manifest.get("metadata") or {}, ((manifest.get("spec") or {}).get("template") or {}).get("metadata") or {}):
        for key, value in (meta.get("annotations") or {}).items():
            if key.startswith(SKIP_PREFIXES):
                found[key] = value
    return found


def test_every_checkov_waiver_names_one_check_and_gives_a_reason():
    """checkov splits `CHECK=reason` on '=' (a second '=' makes it drop the waiver) and accepts no reason at all."""
    for stem, m in rendered().manifests:
        for key, value in skip_annotations(m).items():
            assert value.count("=") == 1, f"{stem}: {key}: {value!r} must be CKV_..=reason with exactly one '='"
            check, reason = value.split("=")
            assert re.fullmatch(r"CKV2?_K8S_\d+", check), f"{stem}: {key}: {check!r} is not a Kubernetes check id"
            assert len(reason.strip()) >= 20, f"{stem}: {key}: waiver of {check} needs a reason"


def test_checkov_kubernetes_checks_pass_or_are_waived_with_a_reason(checkov_bin, tmp_path):
    r = rendered()
    directory = tmp_path / "manifests"
    write_manifests(directory, r.manifests)
    started = time.monotonic()
    reports = run_checkov(checkov_bin, directory)
    seconds = time.monotonic() - started
    failed, skipped = _results(reports, "failed_checks"), _results(reports, "skipped_checks")
    summary = {k: sum(rep.get("summary", {}).get(k, 0) for rep in reports) for k in ("passed", "failed", "skipped")}
    lines = [f"\ncheckov {CHECKOV[0]} on {len(r.manifests)} manifests in {seconds:.1f} s: {summary['passed']} passed, "
             f"{summary['failed']} failed, {summary['skipped']} skipped (waived)"]
    waivers: dict[tuple[str, str], list[str]] = {}
    for c in skipped:
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        waivers.setdefault((c["check_id"], reason), []).append(_where(c))
    for (check, reason), where in sorted(waivers.items()):
        lines.append(f"  waived {check} on {len(where)} object(s): {reason}")
    for c in failed:
        lines.append(f"  FAILED {c['check_id']} {c.get('check_name')}: {_where(c)}")
    print("\n".join(lines))
    assert summary["passed"] > 0, "checkov ran no Kubernetes check (did it parse the manifests?)"
    assert not any(rep.get("summary", {}).get("parsing_errors") for rep in reports), "checkov could not parse a manifest"
    assert len(skipped) == summary["skipped"] and len(failed) == summary["failed"]
    assert not failed, "\n".join(lines)
    for (check, reason), where in waivers.items():
        assert reason and reason != "No comment provided" and len(reason.strip()) >= 20, \
            f"{check} is waived without a reason on {where}"


def test_checkov_flags_an_unhardened_copy(checkov_bin, tmp_path):
    """The scan can fail: the model server stripped of its hardening fails the checks the kit fixed."""
    stem, deployment = next((s, copy.deepcopy(m)) for s, m in rendered().manifests
                            if m["kind"] == "Deployment" and "model-server" in str(m["metadata"].get("labels")))
    pod = deployment["spec"]["template"]["spec"]
    pod.pop("securityContext", None)
    pod.pop("automountServiceAccountToken", None)
    for c in pod["containers"]:
        c.pop("securityContext", None)
        c.pop("livenessProbe", None)
        c["resources"].pop("limits", None)
    deployment["spec"]["template"]["metadata"].pop("annotations", None)
    deployment["metadata"].pop("annotations", None)
    deployment["metadata"]["namespace"] = "default"
    directory = tmp_path / "bad"
    write_manifests(directory, [("unhardened", deployment)])
    failed = {c["check_id"] for c in _results(run_checkov(checkov_bin, directory), "failed_checks")}
    expected = {"CKV_K8S_8", "CKV_K8S_11", "CKV_K8S_13", "CKV_K8S_20", "CKV_K8S_21", "CKV_K8S_23", "CKV_K8S_28",
                "CKV_K8S_29", "CKV_K8S_30", "CKV_K8S_31", "CKV_K8S_37", "CKV_K8S_38", "CKV_K8S_40", "CKV_K8S_43"}
    assert expected <= failed, f"not flagged: {sorted(expected - failed)}; flagged: {sorted(failed)}"
