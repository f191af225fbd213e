"""GCP tiers from the stack files: bad combinations are refused before anything is registered."""

from __future__ import annotations


import pytest

from conftest import ROOT, edit_stack as _edit, set_section as _set
from preview.harness import run_preview


CASES = [
    ("zone-outside-allowed-regions", "eu-airgapped-gke", _set("vpc", zones=["europe-west4-a", "us-central1-a"]),
     "llm-hosting:vpc.zones[1]", "zone 'us-central1-a' is outside residency.allowedRegions (europe-west4); use zones of "
     "europe-west4, e.g. europe-west4-a, europe-west4-b, europe-west4-c"),
    ("zone-of-another-allowed-region", "us-vertex-support", _set("vpc", zones=["us-east4-a"]),
     "llm-hosting:vpc.zones[0]", "zone 'us-east4-a' is not in the stack's region us-central1"),
    ("accelerator-not-in-region", "eu-airgapped-gke", _set("selfHosted", instanceType="a2-ultragpu-8g", gpu="A100-80GB"),
     "llm-hosting:selfHosted.instanceType", "'a2-ultragpu-8g' is not in the catalog's compute instances in europe-west4; "
     "available: a2-highgpu-1g, a2-ultragpu-1g, a3-highgpu-1g, a3-highgpu-2g, a3-highgpu-4g, a3-highgpu-8g, "
     "g2-standard-12, g2-standard-16, g2-standard-24, g2-standard-32, g2-standard-4, g2-standard-48, g2-standard-8, "
     "g2-standard-96"),
    ("vertex-machine-not-in-region", "us-vertex-support", _set("managed", instanceType="a3-highgpu-1g", gpu="H100"),
     "llm-hosting:managed.instanceType", "'a3-highgpu-1g' is not in the catalog's vertex instances in us-central1"),
    ("airgapped-public-registry", "eu-airgapped-gke", lambda c: c.update({"llm-hosting:registry": "docker.io/vllm"}),
     "llm-hosting:registry", "'docker.io/vllm' is not a private registry in europe-west4; expected "
     "europe-west4-docker.pkg.dev/<project>/<repository> (an air-gapped stack cannot reach a public registry)"),
    ("airgapped-multi-region-registry", "eu-airgapped-gke",
     lambda c: c.update({"llm-hosting:registry": "europe-docker.pkg.dev/agency-llm-sovereign/llm-mirror"}),
     "llm-hosting:registry", "is not a private registry in europe-west4"),
    ("private-vertex-without-registry", "us-vertex-support", lambda c: c.pop("llm-hosting:registry"),
     "llm-hosting:registry", "a private Vertex AI endpoint serves the vLLM image from Artifact Registry in us-central1"),
    ("weights-from-s3", "realtime-captions", _set("model", weightsUri="s3://bucket/model/"),
     "llm-hosting:model.weightsUri", "weights of this gcp stack come from an in-region gs:// location"),
    ("vertex-with-bucket-weights", "us-vertex-support", _set("model", weightsUri="gs://bank-support-llm-weights/llama/"),
     "llm-hosting:model.weightsUri", "Vertex AI through pulumi-gcp cannot load weights from a GCS prefix"),
    ("model-does-not-fit", "realtime-captions", _set("model", sizeClass="70b", id="meta-llama/Llama-3.1-70B-Instruct"),
     "llm-hosting:selfHosted.gpusPerReplica", "70b in fp8 needs"),
]


@pytest.mark.parametrize("stack,edit,field,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_combination_is_refused_before_any_resource(cli, project, stack, edit, field, message):
    _edit(project, stack, edit)
    result = cli("preview", "--stack", stack, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: stacks/Pulumi.{stack}.yaml: {field}: " in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_zones_from_the_stack_reach_the_node_pools(project):
    _edit(project, "realtime-captions", _set("vpc", zones=["us-central1-b", "us-central1-c"]))
    result = run_preview(project, "realtime-captions")
    pools = result.by_type("gcp:container/nodePool:NodePool")
    assert pools and all(p.inputs["nodeLocations"] == ["us-central1-b", "us-central1-c"] for p in pools)


def test_access_policy_adds_a_perimeter(project):
    _edit(project, "eu-airgapped-gke", _set("vpc", accessPolicyId="123456789"))
    result = run_preview(project, "eu-airgapped-gke")
    (perimeter,) = result.by_type("gcp:accesscontextmanager/servicePerimeter:ServicePerimeter")
    assert perimeter.inputs["parent"] == "accessPolicies/123456789"
    assert "aiplatform.googleapis.com" in perimeter.inputs["status"]["restrictedServices"]


def test_airgapped_gke_nodes_may_reach_the_control_plane():
    """The deny-all egress of the air-gapped network keeps the private control plane's range reachable."""
    result = run_preview(ROOT, "eu-airgapped-gke")
    cluster = result.named("gke-cluster").inputs["privateClusterConfig"]["masterIpv4CidrBlock"]
    egress = [f for f in result.by_type("gcp:compute/firewall:Firewall")
              if f.inputs.get("direction") == "EGRESS" and f.inputs.get("allows")]
    assert any(cluster in f.inputs.get("destinationRanges", []) for f in egress)


def test_gcp_contract_outputs():
    vertex = run_preview(ROOT, "us-vertex-support").outputs
    # Applications call the gateway with their own key; the Vertex AI endpoint itself is for operators.
    assert vertex["tier"] == "managed" and vertex["api_key_secret"].startswith(
        "Secret Manager secret llm-hosting-us-vertex-support-consumer-<consumer>, one per consumer (app)")
    assert vertex["endpoint_url"] == "https://us-vertex-support.llm.internal/v1" and vertex["model"] == "llm"
    assert vertex["vertex_endpoint_name"].startswith("projects/") and "/locations/us-central1/endpoints/" in \
        vertex["vertex_endpoint_name"]
    gke = run_preview(ROOT, "realtime-captions").outputs
    assert gke["kubeconfig"] == "[secret]" and gke["tier"] == "self-hosted"


@pytest.mark.parametrize("profile", ["eu-airgapped-gke", "fine-tuned"])
def test_planner_rules_out_vertex_where_it_cannot_load_our_weights(catalog, profile):
    from planner.profile import load_profile
    from planner.rules import decide

    decision = decide(load_profile(ROOT / "stacks/profiles" / f"{profile}.yaml"), catalog)
    vertex = next(c for c in decision.candidates if c.tier == "managed")
    assert not vertex.feasible
    assert any(r.startswith("P1 provider gap: Vertex AI through pulumi-gcp cannot load weights from a GCS prefix") for r in vertex.reasons)
