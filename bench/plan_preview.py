"""Time `plan` and `preview` for every example stack, next to a bare import of the three provider SDKs.

`plan` is split into the decision itself and the searches over volume it writes beside it (the drift band and the
costs along the horizon, `planner.spend`), printed as a ratio to the decision, both timed in the same run.

Prints figures; asserts nothing. Run with `make bench`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPEAT = 5


def bare_import_seconds() -> list[float]:
    out = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pulumi_aws, pulumi_gcp, pulumi_kubernetes"], check=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    from planner.catalog import load_catalog
    from planner.errors import InputError
    from planner.profile import load_profile
    from planner.rules import decide
    from planner.spend import decision_band, horizon_costs
    from planner.stackgen import write_stack
    from preview.harness import run_preview

    catalog = load_catalog()
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
            d_ms, s_ms = statistics.median(decide_ms), statistics.median(search_ms)
            print(f"{profile.stem:<24} {decision.tier:<12} {statistics.median(plan_ms):>17.1f} {d_ms:>10.1f} {s_ms:>12.1f} "
                  f"{s_ms / d_ms:>6.1f} {preview_ms[0]:>19.1f} {statistics.median(preview_ms):>20.1f} {resources:>10}")
    imports = bare_import_seconds()
    print(f"\nbare `import pulumi_aws, pulumi_gcp, pulumi_kubernetes` in a fresh interpreter: "
          f"median {statistics.median(imports) * 1000:.0f} ms over {len(imports)} runs")


if __name__ == "__main__":
    main()
