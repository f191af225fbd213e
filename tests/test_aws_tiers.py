"""AWS tiers from the stack files: bad combinations are refused before anything is registered; sizing is derived."""

from __future__ import annotations


import pytest
import yaml

from conftest import ROOT, edit_stack as _edit, set_section as _set
from components.versions import VERSIONS
from planner.sizing import fit_problem, node_counts, root_volume_gb, same_class_instance_types, startup_budget, weights_gb


CASES = [
    ("airgapped-public-registry", "eu-sovereign-airgapped", lambda c: c.update({"llm-hosting:registry": "docker.io/vllm"}),
     "llm-hosting:registry", "'docker.io/vllm' is not a private registry in eu-central-1; expected "
     "<account>.dkr.ecr.eu-central-1.amazonaws.com/<repository-prefix> (an air-gapped stack cannot reach a public registry)"),
    ("airgapped-registry-other-region", "eu-sovereign-airgapped",
     lambda c: c.update({"llm-hosting:registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-mirror"}),
     "llm-hosting:registry", "is not a private registry in eu-central-1"),
    ("airgapped-without-registry", "eu-sovereign-airgapped", lambda c: c.pop("llm-hosting:registry"),
     "llm-hosting:registry", "an air-gapped stack pulls images only from an in-region private registry; set it, e.g. "
     "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror"),
    ("gpu-not-in-region", "eu-sovereign-airgapped", _set("selfHosted", instanceType="p5.48xlarge", gpu="H100"),
     "llm-hosting:selfHosted.instanceType", "'p5.48xlarge' is not in the catalog's compute instances in eu-central-1; "
     "available: g5.12xlarge, g5.16xlarge, g5.24xlarge, g5.2xlarge, g5.48xlarge, g5.4xlarge, g5.8xlarge, g5.xlarge, "
     "g6.12xlarge, g6.16xlarge, g6.24xlarge, g6.2xlarge, g6.48xlarge, g6.4xlarge, g6.8xlarge, g6.xlarge, g6e.12xlarge, "
     "g6e.16xlarge, g6e.24xlarge, g6e.2xlarge, g6e.48xlarge, g6e.4xlarge, g6e.8xlarge, g6e.xlarge, p4d.24xlarge"),
    ("managed-type-not-in-region", "healthcare-hipaa", _set("managed", instanceType="ml.g6.2xlarge", gpu="L4"),
     "llm-hosting:managed.instanceType", "'ml.g6.2xlarge' is not in the catalog's sagemaker instances in us-east-1"),
    ("gpu-class-mismatch", "realtime-npc", _set("selfHosted", gpu="H100"),
     "llm-hosting:selfHosted.gpu", "g6e.xlarge has L40S GPUs, not H100"),
    ("model-does-not-fit", "eu-sovereign-airgapped", _set("selfHosted", gpusPerReplica=1),
     "llm-hosting:selfHosted.gpusPerReplica", "70b in fp8 needs 75.6 GB (weights + KV cache for 30400 tokens) but 1 x L40S "
     "offer 42.2 GB; use gpusPerReplica: 2 on e.g. g6e.12xlarge"),
    ("replica-spans-nodes", "eu-sovereign-airgapped", _set("selfHosted", instanceType="g6e.xlarge", gpusPerReplica=2),
     "llm-hosting:selfHosted.gpusPerReplica", "g6e.xlarge has 1 GPU(s); a replica cannot span nodes"),
    ("spot-of-another-gpu", "realtime-npc", _set("selfHosted", spotInstanceTypes=["g6e.xlarge", "g5.xlarge"]),
     "llm-hosting:selfHosted.spotInstanceTypes[1]", "'g5.xlarge' is not an instance type of aws with L40S GPUs"),
    ("public-cidrs-on-private", "eu-sovereign-airgapped", _set("selfHosted", publicAccessCidrs=["203.0.113.0/24"]),
     "llm-hosting:selfHosted.publicAccessCidrs", "the airgapped network variant keeps the cluster endpoint private"),
    ("weights-from-another-cloud", "healthcare-hipaa", _set("model", weightsUri="gs://bucket/llama/"),
     "llm-hosting:model.weightsUri", "weights of this aws stack come from an in-region s3:// location"),
    ("unknown-version-key", "realtime-npc", lambda c: c.update({"llm-hosting:versions": {"vllm": "v0.12.0"}}),
     "llm-hosting:versions.vllm", "unknown version key; valid: aws_cli_image, aws_cli_tag, aws_load_balancer_controller_chart"),
]


@pytest.mark.parametrize("stack,edit,field,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_combination_is_refused_before_any_resource(cli, project, stack, edit, field, message):
    _edit(project, stack, edit)
    result = cli("preview", "--stack", stack, "--project-dir", str(project))
    assert result.exit_code == 2, result.output
    assert f"error: stacks/Pulumi.{stack}.yaml: {field}: " in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_a_digest_pin_replaces_the_tag(project):
    from preview.harness import run_preview

    digest = "sha256:" + "ab" * 32
    pinned = {"nvidia_device_plugin_image": "nvcr.io/nvidia/k8s-device-plugin@" + digest}
    _edit(project, "realtime-npc", lambda c: c.update({"llm-hosting:versions": pinned}))
    _edit(project, "eu-sovereign-airgapped", lambda c: c.update({"llm-hosting:versions": pinned}))
    image = lambda stack: run_preview(project, stack).by_type("kubernetes:apps/v1:DaemonSet")[0].inputs["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert image("realtime-npc") == f"nvcr.io/nvidia/k8s-device-plugin:{VERSIONS.nvidia_device_plugin}@{digest}"
    # The mirror keeps the digest: the same bytes, from the in-region registry.
    assert image("eu-sovereign-airgapped") == (f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror/k8s-device-plugin:"
                                               f"{VERSIONS.nvidia_device_plugin}@{digest}")


# ---------------------------------------------------------------------------------------------------------------
# Sizing: derived from the model and the catalog, not constants


def test_startup_budget_grows_with_the_model(catalog):
    small = startup_budget(catalog, weights_gb(catalog, "8b", "fp8"))
    large = startup_budget(catalog, weights_gb(catalog, "70b", "fp8"))
    assert large.download_seconds > small.download_seconds and large.load_seconds > small.load_seconds
    # 70.6 GB at 200 MB/s, doubled: 706 s; read at 1 GB/s plus 300 s warm-up, doubled: 742 s.
    assert (large.download_seconds, large.load_seconds) == (706, 742)


def test_managed_timeouts_in_the_stack_come_from_the_budget(catalog):
    cfg = yaml.safe_load((ROOT / "stacks/Pulumi.healthcare-hipaa.yaml").read_text())["config"]["llm-hosting:managed"]
    budget = startup_budget(catalog, weights_gb(catalog, "70b", cfg["precision"]))
    assert cfg["downloadTimeoutSeconds"] == budget.download_seconds
    assert cfg["startupTimeoutSeconds"] == budget.load_seconds


def test_spot_types_share_the_gpu_class(catalog):
    assert same_class_instance_types(catalog, "aws", "g6e.12xlarge") == ["g6e.12xlarge", "g6e.24xlarge"]
    assert same_class_instance_types(catalog, "aws", "g6e.xlarge") == ["g6e.xlarge", "g6e.2xlarge", "g6e.4xlarge", "g6e.8xlarge"]
    shapes = catalog.instance_shapes.aws
    assert {shapes[t].gpu for t in same_class_instance_types(catalog, "aws", "p5.48xlarge")} == {"H100"}


def test_node_counts_keep_the_floor_on_two_nodes(catalog):
    # 70B needs 2 of the 4 L40S of a g6e.12xlarge: 2 replicas per node, but the two-replica floor takes two nodes.
    counts = node_counts(catalog, "aws", "g6e.12xlarge", 2, min_replicas=2, on_demand_replicas=4, spot_replicas=7)
    assert (counts.replicas_per_node, counts.on_demand_min, counts.on_demand_max, counts.spot_max) == (2, 2, 2, 4)


def test_root_volume_holds_images_and_two_copies_of_the_weights(catalog):
    assert root_volume_gb(catalog, 70.6) == 210  # 60 + 2 x 70.6 = 201.2, rounded up to 10 GB
    assert root_volume_gb(catalog, 8.03) == 80


def test_fit_problem_names_a_size_that_fits(catalog):
    assert fit_problem(catalog, "aws", "70b", "L40S", 2, 8192) is None
    message = fit_problem(catalog, "aws", "70b", "A10G", 4, 8192)
    assert message.startswith("70b in fp16 needs 143.9 GB") and "use gpusPerReplica: 8 on e.g. g5.48xlarge" in message


def test_airgapped_s3_endpoint_admits_only_own_buckets_and_ecr_layers():
    import json

    from preview.harness import run_preview

    airgapped = run_preview(ROOT, "eu-sovereign-airgapped").named("network-vpce-s3")
    policy = json.loads(airgapped.inputs["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["OwnAccountBuckets", "EcrImageLayers"]
    assert policy["Statement"][0]["Condition"] == {"StringEquals": {"aws:ResourceAccount": "123456789012"}}
    assert policy["Statement"][1]["Resource"] == "arn:aws:s3:::prod-eu-central-1-starport-layer-bucket/*"
    # With NAT egress there is another way out anyway, so the public variant keeps the default policy.
    assert "policy" not in run_preview(ROOT, "realtime-npc").named("network-vpce-s3").inputs


def test_private_sagemaker_invocations_stay_in_the_vpc():
    from preview.harness import run_preview

    result = run_preview(ROOT, "healthcare-hipaa")
    endpoints = [r for r in result.by_type("aws:ec2/vpcEndpoint:VpcEndpoint") if r.inputs.get("vpcEndpointType") == "Interface"]
    assert [e.inputs["serviceName"] for e in endpoints] == ["com.amazonaws.us-east-1.sagemaker.runtime"]
    assert endpoints[0].inputs["privateDnsEnabled"] is True
    (sg,) = [r for r in result.by_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "network-endpoint-sg"]
    assert [(i["fromPort"], i["cidrBlocks"]) for i in sg.inputs["ingress"]] == [(443, ["10.0.0.0/16"])]


def test_burst_overflow_keys_off_the_running_replicas_not_the_fleet_ceiling():
    """Each running vLLM replica refuses what it cannot hold, and the gateway overflows that request to the API
    without cooling the fleet down; there is no in-flight cap computed from the fleet's maximum replicas."""
    import yaml as _yaml

    from preview.harness import run_preview
    from serving.engine import SHED_QUEUE_REQUESTS
    from serving.gateway_config import REFUSALS_NEVER_COOL_DOWN

    result = run_preview(ROOT, "burst-hybrid")
    cm = result.named("gateway-config")
    config = _yaml.safe_load(cm.inputs["data"]["config.yaml"])
    (self_hosted,) = [m for m in config["model_list"] if m["model_name"] == "llm"]
    assert "max_parallel_requests" not in self_hosted["litellm_params"]
    assert config["router_settings"]["fallbacks"][0]["llm"]  # beyond the fleet, the API
    assert config["router_settings"]["allowed_fails_policy"] == {
        "ServiceUnavailableErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN, "RateLimitErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN}
    args = result.named("model-server-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    seqs = int(args[args.index("--max-num-seqs") + 1])
    assert int(args[args.index("--max-num-queued-reqs") + 1]) == seqs + SHED_QUEUE_REQUESTS
    # Stacks without burst overflow queue instead of refusing: nothing else would take the refused request.
    plain = run_preview(ROOT, "realtime-npc").named("model-server-deployment").inputs["spec"]["template"]["spec"]
    assert "--max-num-queued-reqs" not in plain["containers"][0]["args"]


def test_node_maxima_let_the_zone_spread_place_every_replica(catalog):
    # 16 replicas two to a g6e.12xlarge: 8 nodes over 3 zones sit 3, 3, 2 and the spread (maxSkew 1) places only
    # 4 + 5 + 5 = 14. One more spot node lets all 16 land.
    from planner.sizing import zone_spread_capacity

    assert zone_spread_capacity([2, 6], 3, 2) == 14
    counts = node_counts(catalog, "aws", "g6e.12xlarge", 2, min_replicas=2, on_demand_replicas=4, spot_replicas=12, zones=3)
    assert (counts.on_demand_max, counts.spot_max) == (2, 7)
    assert zone_spread_capacity([counts.on_demand_max, counts.spot_max], 3, 2) >= 16
    # Without spot, the on-demand pool grows instead; a single zone needs nothing extra.
    assert node_counts(catalog, "aws", "g6e.12xlarge", 2, 2, 16, 0, zones=3).on_demand_max == 9
    assert node_counts(catalog, "aws", "g6e.12xlarge", 2, 2, 4, 12, zones=1).spot_max == 6
