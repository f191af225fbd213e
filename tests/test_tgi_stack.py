"""Choosing TGI in the profile: the engine reaches the stack, managed endpoints are ruled out, and a TGI pod whose
weights are in a bucket gets an init container that copies them into its model volume as the pod's own identity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from components.versions import VERSIONS
from planner.errors import InputError
from planner.profile import Profile, load_profile
from planner.rules import decide
from planner.stack_config import load_stack_config
from planner.stackgen import stack_config_from
from preview.harness import run_program
from serving.model_server import ModelServer
from serving.tgi import PREFILLED_MODEL_DIR
from test_model_server import CONFIG, make_args
from test_rules import profile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "stacks" / "profiles" / "tgi-fine-tuned-eks.yaml"
MIRROR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror"


def test_engine_defaults_to_vllm_and_is_documented():
    field = Profile.model_fields["model"].annotation.__args__[0].model_fields["engine"]
    assert field.default == "vllm" and "tgi" in field.description
    with pytest.raises(Exception, match="engine"):
        Profile.model_validate({**profile(model="8b"), "model": {"id": "a/b", "size_class": "8b", "engine": "triton"}})


def test_example_profile_plans_a_tgi_stack(catalog):
    p = load_profile(EXAMPLE)
    assert p.model.engine == "tgi"
    d = decide(p, catalog)
    cfg = stack_config_from(d, str(EXAMPLE), catalog)
    assert (cfg.tier, cfg.self_hosted.cluster, cfg.self_hosted.engine) == ("self-hosted", "eks", "tgi")
    assert cfg.model.weights_uri.startswith("s3://") and cfg.self_hosted.model_volume_claim is None
    assert cfg.network == "private"
    # The generated stack in the repository says the same.
    import yaml

    stack_file = ROOT / "stacks" / "Pulumi.tgi-fine-tuned-eks.yaml"
    written = load_stack_config(yaml.safe_load(stack_file.read_text())["config"], str(stack_file))
    assert written.self_hosted.engine == "tgi"
    # Managed endpoints run their own vLLM container: TGI rules them out, naming the field.
    (managed,) = [c for c in d.candidates if c.tier == "managed"]
    assert not managed.feasible and any(r.startswith("E1 engine: model.engine tgi") for r in managed.reasons)


def test_default_engine_is_written_as_vllm(catalog):
    d = decide(Profile.model_validate(profile(model="8b", team="dedicated", sensitivity="confidential",
                                              latency_sla_ms=80, quality="small")), catalog)
    assert d.tier == "self-hosted"
    assert stack_config_from(d, "p.yaml", catalog).self_hosted.engine == "vllm"


def test_tgi_where_only_a_managed_endpoint_could_serve_is_refused_naming_the_engine(catalog):
    d = profile(model="70b", sensitivity="regulated", regulations=["hipaa"], team="limited", latency_sla_ms=1000)
    d["model"]["engine"] = "tgi"
    with pytest.raises(InputError) as e:
        decide(Profile.model_validate(d), catalog)
    fields = [f for f, _ in e.value.problems]
    assert "model.engine" in fields
    assert any("vllm instead of tgi would make a tier feasible" in m for f, m in e.value.problems if f == "model.engine")


def _stack(**self_hosted) -> dict:
    return {"aws:region": "us-east-1", "llm-hosting:tier": "self-hosted", "llm-hosting:cloud": "aws",
            "llm-hosting:network": "private",
            "llm-hosting:residency": {"allowedRegions": ["us-east-1"], "classification": "confidential"},
            "llm-hosting:model": {"id": "a/b", "sizeClass": "8b", "weightsUri": "s3://bucket/b/"},
            "llm-hosting:observability": {"ttftP95Ms": 800},
            "llm-hosting:consumers": [{"name": "app", "requestsPerMinute": 60, "tokensPerMinute": 60000}],
            "llm-hosting:selfHosted": {"instanceType": "g6.xlarge", "gpu": "L4", "gpusPerReplica": 1, "precision": "fp8",
                                       "minReplicas": 2, "maxReplicas": 2, "onDemandReplicas": 2, "cluster": "eks",
                                       "engine": "tgi", **self_hosted}}


def test_stack_config_accepts_tgi_from_a_bucket_and_refuses_two_sources():
    assert load_stack_config(_stack(), "t").self_hosted.engine == "tgi"
    with pytest.raises(InputError) as e:
        load_stack_config(_stack(modelVolumeClaim="weights"), "t")
    assert [f for f, _ in e.value.problems] == ["llm-hosting:selfHosted.modelVolumeClaim"]


def _init(result) -> list[dict]:
    return result.named("tgi-deployment").inputs["spec"]["template"]["spec"].get("initContainers") or []


@pytest.mark.parametrize("airgapped", [False, True], ids=["upstream", "mirrored"])
def test_tgi_pod_copies_s3_weights_before_the_engine_starts(catalog, airgapped):
    args = make_args(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge",
                     weights_uri="s3://weights/llama-8b", airgapped=airgapped)
    result = run_program(lambda: ModelServer("tgi", args), "llm-hosting", "t", CONFIG)
    (init,) = _init(result)
    assert init["command"] == ["aws", "s3", "sync", "s3://weights/llama-8b/", PREFILLED_MODEL_DIR, "--no-progress",
                               "--only-show-errors"]
    assert init["image"] == VERSIONS.weights_fetch_image("aws", MIRROR if airgapped else None)
    assert init["image"].startswith(MIRROR if airgapped else "docker.io/amazon/aws-cli:")
    env = {e["name"]: e["value"] for e in init["env"]}
    # Credentials come from the pod's identity only (Pod Identity), never the node's instance profile.
    assert env["AWS_EC2_METADATA_DISABLED"] == "true" and "AWS_ACCESS_KEY_ID" not in env
    assert env.get("AWS_REGION") == ("us-east-1" if airgapped else None)
    sc = init["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert init["resources"]["limits"] == init["resources"]["requests"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {"model-cache": PREFILLED_MODEL_DIR, "tmp": "/tmp"}
    pod = result.named("tgi-deployment").inputs["spec"]["template"]["spec"]
    # The engine reads the same volume, and the pod runs as the service account the identity is bound to (the engine's
    # name: __main__.py binds Pod Identity / Workload Identity to it).
    (engine,) = pod["containers"]
    assert {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}["model-cache"] == PREFILLED_MODEL_DIR
    assert engine["args"][engine["args"].index("--model-id") + 1] == PREFILLED_MODEL_DIR
    assert pod["serviceAccountName"] == "tgi"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["model-cache"]


def test_tgi_pod_copies_gcs_weights_with_the_cloud_sdk(catalog):
    args = make_args(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge",
                     weights_uri="gs://weights/llama-8b/")
    (init,) = _init(run_program(lambda: ModelServer("tgi", args), "llm-hosting", "t", CONFIG))
    assert init["command"] == ["gcloud", "storage", "rsync", "--recursive", "gs://weights/llama-8b/", PREFILLED_MODEL_DIR]
    assert init["image"] == VERSIONS.weights_fetch_image("gcp", None)
    assert {e["name"]: e["value"] for e in init["env"]}["CLOUDSDK_CONFIG"].startswith("/tmp/")


def test_no_init_container_for_hub_weights_a_claim_or_vllm(catalog):
    hub = make_args(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge", weights_uri=None)
    claim = make_args(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge",
                      weights_uri="s3://weights/llama-8b/", claim="llama-8b-weights")
    for args in (hub, claim):
        assert _init(run_program(lambda a=args: ModelServer("tgi", a), "llm-hosting", "t", CONFIG)) == []
    assert make_args(catalog).spec.fetch is None  # vLLM streams from the bucket itself


def test_the_program_binds_the_pod_identity_for_every_engine():
    # eks_serving and gke_serving create the weights reader whenever the stack has weights in a bucket, not for vLLM
    # alone: TGI's init container reads the bucket as the same service account.
    tree = ast.parse((ROOT / "__main__.py").read_text())
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("eks_serving", "gke_serving")):
        conditions = [ast.unparse(n.test) for n in ast.walk(fn) if isinstance(n, ast.If)]
        assert "model.weights_uri" in conditions, (fn.name, conditions)
        assert not any("engine" in c for c in conditions), (fn.name, conditions)
