"""Time `plan` and `preview` for every example stack, next to a bare import of the three provider SDKs.

`plan` is split into the decision itself and the searches over volume it writes beside it (the drift band and the
costs along the horizon, `planner.spend`), printed as a ratio to the decision, both timed in the same run.

For the largest stack of each cloud, `preview` is also timed as a person runs it, in a fresh interpreter, against a
fresh interpreter that only imports the provider modules that stack's resources come from (`pulumi_aws.ec2` for
`aws:ec2/vpc:Vpc`, ...): their ratio is what the program costs beyond the SDK modules it cannot do without. The
SDKs load their modules lazily, so the import touches each one to make it load.

Prints figures; asserts nothing. Run with `make bench`.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPEAT = 5
SDKS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "kubernetes": "pulumi_kubernetes", "random": "pulumi_random"}
FRESH_PREVIEW = ("import json, sys; sys.path.insert(0, {root!r}); from preview.harness import run_preview; "
                 "print(json.dumps(sorted({{r.type for r in run_preview({root!r}, {stack!r}).resources}})))")
FRESH_IMPORT = "import importlib; [getattr(importlib.import_module(m), '__all__', None) for m in {modules!r}]"


def bare_import_seconds() -> list[float]:
    out = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pulumi_aws, pulumi_gcp, pulumi_kubernetes"], check=True)
        out.append(time.perf_counter() - t)
    return out


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def sdk_module(type_token: str) -> str | None:
    """The SDK module a resource type comes from: `aws:ec2/vpc:Vpc` -> pulumi_aws.ec2, `kubernetes:apps/v1:Deployment`
    -> pulumi_kubernetes.apps.v1 (a custom resource of another API group -> pulumi_kubernetes.apiextensions),
    `pulumi:providers:aws` -> pulumi_aws. None for the kit's own components."""
    package, module, _ = type_token.split(":", 2)
    if package == "pulumi" and module == "providers":
        return SDKS.get(type_token.rsplit(":", 1)[1])
    if package not in SDKS:
        return None
    base, group = SDKS[package], module.split("/")[0]
    if package == "kubernetes":
        name = f"{base}.{group.split('.')[0]}.{module.split('/')[1]}"
        return name if _module_exists(f"{base}.{group.split('.')[0]}") and _module_exists(name) else f"{base}.apiextensions"
    if group == "index":
        return base
    return next((m for m in (f"{base}.{group}", f"{base}.{group}_") if _module_exists(m)), base)


def _fresh(code: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out


def preview_to_import(stack: str) -> tuple[float, float, list[str]]:
    """Median seconds of a fresh-interpreter preview of `stack` and of a fresh-interpreter import of the provider
    modules its resources come from, run alternately so that load on the machine weighs on both alike."""
    _, out = _fresh(FRESH_PREVIEW.format(root=str(ROOT), stack=stack))
    modules = sorted({m for m in map(sdk_module, json.loads(out.strip().splitlines()[-1])) if m})
    previews, imports = [], []
    for _ in range(REPEAT):
        previews.append(_fresh(FRESH_PREVIEW.format(root=str(ROOT), stack=stack))[0])
        imports.append(_fresh(FRESH_IMPORT.format(modules=modules))[0])
    return statistics.median(previews), statistics.median(imports), modules


def main() -> None:
    from planner.catalog import load_catalog
    from planner.errors import InputError
    from planner.profile import load_profile
    from planner.rules import decide
    from planner.spend import decision_band, horizon_costs
    from planner.stackgen import write_stack
    from preview.harness import run_preview

    catalog = load_catalog()
    largest: dict[str, tuple[int, str]] = {}  # cloud -> (resources, stack)
    print(f"{'stack':<24} {'tier':<12} {'plan ms (median)':>17} {'decide ms':>10} {'searches ms':>12} {'ratio':>6} "
          f"{'preview ms (first)':>19} {'preview ms (median)':>20} {'resources':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for profile in sorted((ROOT / "stacks/profiles").glob("*.yaml")):
            plan_ms, decide_ms, search_ms = [], [], []
            for _ in range(REPEAT):
                t = time.perf_counter()
                decision = decide(load_profile(profile), catalog, str(profile))
                decide_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                decision_band(decision, catalog, str(profile))
                horizon_costs(decision.profile, catalog, str(profile))
                search_ms.append((time.perf_counter() - t) * 1000)
            for _ in range(REPEAT):
                t = time.perf_counter()
                decision = decide(load_profile(profile), catalog, str(profile))
                write_stack(decision, profile.stem, Path(tmp), f"stacks/profiles/{profile.name}", catalog, force=True)
                plan_ms.append((time.perf_counter() - t) * 1000)
            preview_ms, resources = [], "-"
            for _ in range(REPEAT):
                t = time.perf_counter()
                try:
                    result = run_preview(ROOT, profile.stem)
                    resources = str(len(result.resources))
                except InputError:
                    resources = "refused"  # tier not built yet: time to a clean refusal
                preview_ms.append((time.perf_counter() - t) * 1000)
            if resources.isdigit():
                cloud = decision.profile.cloud
                largest[cloud] = max(largest.get(cloud, (0, "")), (int(resources), profile.stem))
            d_ms, s_ms = statistics.median(decide_ms), statistics.median(search_ms)
            print(f"{profile.stem:<24} {decision.tier:<12} {statistics.median(plan_ms):>17.1f} {d_ms:>10.1f} {s_ms:>12.1f} "
                  f"{s_ms / d_ms:>6.1f} {preview_ms[0]:>19.1f} {statistics.median(preview_ms):>20.1f} {resources:>10}")
    imports = bare_import_seconds()
    print(f"\nbare `import pulumi_aws, pulumi_gcp, pulumi_kubernetes` in a fresh interpreter: "
          f"median {statistics.median(imports) * 1000:.0f} ms over {len(imports)} runs")
    print(f"\n{'largest stack':<24} {'cloud':<6} {'resources':>10} {'preview ms (fresh)':>19} "
          f"{'import ms (fresh)':>18} {'ratio':>6}  provider modules imported")
    for cloud, (count, stack) in sorted(largest.items()):
        preview_s, import_s, modules = preview_to_import(stack)
        print(f"{stack:<24} {cloud:<6} {count:>10} {preview_s * 1000:>19.0f} {import_s * 1000:>18.0f} "
              f"{preview_s / import_s:>6.2f}  {len(modules)}: {', '.join(modules)}")
    print("(ratio: median preview over median import, each in a fresh interpreter, "
          f"{REPEAT} runs each, alternating; aim: at most 1.5)")


if __name__ == "__main__":
    main()
