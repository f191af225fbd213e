"""A plan is always buildable: whatever profile `llmhost plan` accepts, `llmhost preview` builds what it wrote.

Hypothesis generates profiles across clouds, regions, sensitivities, network needs, traffic shapes, models, latency
SLAs, registries and ops capacity. Each is planned in-process into a scratch project. Every plan must preview
without a refusal, and every refusal must exit 2 naming the profile file and a field of the profile model, never
a stack key the user did not write.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, Cli
from planner.errors import _inner_model
from planner.profile import Profile
from preview.harness import run_preview

# Regions the catalog prices, plus ones it does not (a plan there must be refused, naming the regions).
REGIONS = {"aws": ["us-east-1", "eu-central-1", "eu-west-1", "eu-north-1", "us-west-2", "ap-southeast-2"],
           "gcp": ["us-central1", "europe-west4", "us-east4", "europe-west1", "asia-northeast1"]}
MODELS = {"8b": ["meta-llama/Llama-3.1-8B-Instruct", "acme/support-8b"],
          "70b": ["meta-llama/Llama-3.1-70B-Instruct", "acme/shop-70b"],
          "moe-47b": ["mistralai/Mixtral-8x7B-Instruct-v0.1"]}
SENSITIVITIES = ["public", "internal", "confidential", "regulated"]


def _registry(cloud: str, region: str, project: str) -> str:
    return (f"123456789012.dkr.ecr.{region}.amazonaws.com/llm-mirror" if cloud == "aws"
            else f"{region}-docker.pkg.dev/{project}/llm-images")


@st.composite
def profiles(draw) -> dict[str, Any]:
    cloud = draw(st.sampled_from(["aws", "gcp"]))
    # The home region is mostly one the catalog prices; a second one is sometimes added, priced or not.
    home = draw(st.sampled_from(REGIONS[cloud][:3] * 3 + REGIONS[cloud][3:]))
    other = draw(st.sampled_from([None, None, *REGIONS[cloud]]))
    regions = [home] + ([other] if other and other != home else [])
    sensitivity = draw(st.sampled_from(SENSITIVITIES))
    peak = draw(st.sampled_from([1.0, 1.5, 2.5, 3.0]))
    data: dict[str, Any] = {
        "cloud": cloud,
        "traffic": {"daily_requests": draw(st.sampled_from([800, 20_000, 400_000, 8_000_000])),
                    "avg_input_tokens": draw(st.sampled_from([300, 1000, 4000])),
                    "avg_output_tokens": draw(st.sampled_from([50, 300, 800])),
                    "peak_to_average": peak, "peak_hours_per_day": draw(st.sampled_from([1, 2, 4])),
                    "growth_monthly_percent": draw(st.sampled_from([0, 3, 10])), "horizon_months": 12},
        "latency_sla_ms": draw(st.sampled_from([60, 150, 400, 1500, 1500, 1500])),
        "data_sensitivity": sensitivity,
        "regulations": draw(st.sampled_from([[], ["gdpr"], ["hipaa"], ["pci-dss", "soc2"]])),
        "residency": {"allowed_regions": regions},
        "air_gapped": draw(st.sampled_from([True, False, False])) if sensitivity in ("confidential", "regulated") else False,
        "team": {"ml_ops_capacity": draw(st.sampled_from(["none", "limited", "limited", "dedicated", "dedicated"]))},
        "availability_target": draw(st.sampled_from([99.0, 99.9, 99.95])),
        "allow_spot": draw(st.booleans()),
    }
    project = "acme-llm-prod"
    if cloud == "gcp" and draw(st.booleans()):
        data["gcp_project"] = project
    # A registry in the home region, in another allowed one, or none (an air gap then is refused at the profile).
    registry = draw(st.sampled_from(["home", "home", "last", None]))
    if registry:
        data["private_registry"] = _registry(cloud, regions[0] if registry == "home" else regions[-1], project)
    if draw(st.sampled_from([True, True, True, False])):
        size = draw(st.sampled_from(sorted(MODELS)))
        model: dict[str, Any] = {"id": draw(st.sampled_from(MODELS[size])), "size_class": size,
                                 "max_context_tokens": draw(st.sampled_from([4096, 8192, 32768]))}
        # Weights in our bucket (as a key prefix, or without the trailing slash) or from the hub.
        weights = draw(st.sampled_from(["llama/", "llama/", "llama", None]))
        if weights:
            model["weights_uri"] = f"{'s3' if cloud == 'aws' else 'gs'}://acme-llm-weights/{weights}"
        if draw(st.sampled_from([True, False, False, False])):
            model["fine_tuned"] = True
        if draw(st.booleans()):
            model["accept_eula"] = True
        data["model"] = model
    # Mostly a quality the model reaches, sometimes one it does not (or frontier, which only closed APIs offer).
    fits = "strong-open" if data.get("model", {}).get("size_class") == "70b" else "small"
    data["quality"] = draw(st.sampled_from([fits, fits, fits, "small", "strong-open", "frontier"]))
    if draw(st.sampled_from([True, True, False])):
        # Two traffic classes, neither above the profile's sensitivity: this is how hybrids arise.
        lower = SENSITIVITIES[:SENSITIVITIES.index(sensitivity) + 1]
        share = draw(st.sampled_from([30, 70]))
        data["workloads"] = [
            {"name": "bulk", "share_percent": share, "data_sensitivity": draw(st.sampled_from(["public", "public", *lower]))},
            {"name": "core", "share_percent": 100 - share, "data_sensitivity": sensitivity,
             **({"quality": "frontier"} if draw(st.booleans()) else {})}]
    # The model checks the generated dict the way `llmhost plan` will; invalid ones are refused there too.
    return data


def is_profile_field(path: str) -> bool:
    """Whether `path` (e.g. `residency.allowed_regions[1]`, `workloads[0].quality`) names a field of the profile model."""
    model: Optional[type] = Profile
    for part in re.sub(r"\[\d+\]", "", path).split("."):
        if model is None or part not in model.model_fields:
            return False
        model = _inner_model(model.model_fields[part].annotation)
    return True


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("buildable") / "project"
    dst.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dst / name)
    (dst / "stacks").mkdir()
    return dst


SEEN: dict[str, int] = {}


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=profiles())
def test_every_plan_builds_and_every_refusal_names_a_profile_field(scratch, data):
    path = scratch.parent / "profile.yaml"  # outside the project, so messages name it by its full path
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = Cli()("plan", str(path), "--stack", "gen", "--force", "--project-dir", str(scratch))
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        decision_file = scratch / "stacks" / "gen.decision.md"
        tier = re.search(r"- Tier: \*\*([a-z-]+)\*\*", decision_file.read_text()).group(1)
        SEEN[tier] = SEEN.get(tier, 0) + 1
        run_preview(scratch, "gen")  # raises ProgramRefused (an InputError) if the program refuses the stack
        return
    SEEN["refused"] = SEEN.get("refused", 0) + 1
    lines = result.stderr.splitlines()
    prefix = f"error: {path}: "
    assert lines and all(line.startswith(prefix) for line in lines), result.stderr
    fields = [line[len(prefix):].split(": ", 1)[0] for line in lines]
    assert any(is_profile_field(f) for f in fields), f"the refusal names no profile field:\n{result.stderr}"
    assert not any(f.startswith(("llm-hosting:", "aws:", "gcp:")) for f in fields), result.stderr


def test_the_generated_profiles_reach_every_tier():
    """Read after the property test (same module, in order): the generator is not stuck on refusals."""
    if not SEEN:
        pytest.skip("runs after the property test")
    # At least three of the four tiers (which ones win shifts with catalog prices), and some refusals.
    assert "refused" in SEEN and len(set(SEEN) & {"api", "managed", "self-hosted", "hybrid"}) >= 3, SEEN
    print(f"planned and built, by tier, or refused: {SEEN}")  # shown with -s
