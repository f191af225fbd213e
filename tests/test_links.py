"""The links between a stack's parts, checked over each example stack's whole inventory (policies/rules/links/).

Every example stack runs under the offline preview and the link policies read it with the stack's checked-in policy
config (stacks/<stack>.policy-config.json, the file `pulumi preview --policy-pack-config` takes) and its outputs. The
findings of the check for a known gap of the kit (LNK-007 endpoint reachability) must equal tests/known_link_gaps.yaml exactly: a new gap fails, and so does a gap that closed
without the list being updated. Any other link finding fails the test. Then each check catches a deliberately broken
variant, naming the resources on both ends of the link and the fix.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest
import yaml
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from conftest import ROOT, edit_stack, set_section
from planner.stack_config import load_stack_config
from policies.config import ADVISORY_LINKS, policy_config
from policies.engine import check_preview, duration_seconds, evaluate_preview, load_policy_config
from policies.rules import BY_ID
from preview.harness import load_config, run_preview

STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
GAPS_FILE = Path(__file__).parent / "known_link_gaps.yaml"
LINKS = [m.POLICY for name, m in BY_ID.items() if name.startswith("LNK-")]


def known_gaps() -> dict[str, set[tuple[str, str]]]:
    doc = yaml.safe_load(GAPS_FILE.read_text()) or {}
    return {stack: {(g["policy"], g["resource"]) for g in gaps or []} for stack, gaps in doc.items()}


@functools.lru_cache(maxsize=None)
def preview(stack: str):
    return run_preview(ROOT, stack)


def stack_config(root: Path, stack: str) -> tuple[dict, dict]:
    """(policy config as checked in, default provider regions) of a stack."""
    _, merged, _, _ = load_config(root, stack)
    cfg = load_stack_config(merged, f"stacks/Pulumi.{stack}.yaml")
    config, notes = load_policy_config(root / "stacks" / f"{stack}.policy-config.json", cfg)
    assert notes == [], notes
    return config, {pkg: merged[f"{pkg}:region"] for pkg in ("aws", "gcp") if merged.get(f"{pkg}:region")}


def links(result, config: dict, regions: dict, resources=None):
    """The link policies' findings on a preview (optionally on edited copies of its resources)."""
    if resources is not None:
        result = copy.copy(result)
        result.resources = resources
    return evaluate_preview(result, config, regions, exceptions=[], policies=LINKS)


def edited(stack: str) -> list:
    """A copy of the stack's recorded resources to break on purpose."""
    return copy.deepcopy(preview(stack).resources)


def named(resources: list, name: str):
    return next(r for r in resources if r.name == name)


def findings(violations) -> list[tuple[str, str, str]]:
    return [(v.policy, v.resource_name, v.message) for v in violations]


# --- every example stack ----------------------------------------------------------------------------------------

def test_the_known_gaps_file_covers_every_example_stack():
    assert sorted(known_gaps()) == STACKS
    for stack, gaps in known_gaps().items():
        assert {p for p, _ in gaps} <= set(ADVISORY_LINKS), f"{stack}: only the known-gap checks may list gaps"


@pytest.mark.parametrize("stack", STACKS)
def test_example_stack_links(stack):
    config, regions = stack_config(ROOT, stack)
    violations = links(preview(stack), config, regions)
    gaps = [v for v in violations if v.policy in ADVISORY_LINKS]
    others = [v.line() for v in violations if v.policy not in ADVISORY_LINKS]
    assert others == [], f"{stack}: broken links between parts of the stack"
    assert {(v.policy, v.resource_name) for v in gaps} == known_gaps()[stack], \
        f"{stack}: the known gaps changed; update {GAPS_FILE.name} (findings: {[v.line() for v in gaps]})"
    assert all(v.enforcement == "advisory" and not v.cannot_verify for v in gaps)


@pytest.mark.parametrize("stack", STACKS)
def test_known_gaps_do_not_fail_llmhost_preview(stack):
    """The gap checks are advisory in the generated config: `llmhost preview` shows them and still passes on them."""
    report = check_preview(ROOT, preview(stack))
    gap_lines = [v for v in report.violations if v.policy in ADVISORY_LINKS]
    assert all(not v.blocking for v in gap_lines)
    assert len(gap_lines) == len(known_gaps()[stack])


def test_the_policy_configs_carry_the_catalog_facts_the_links_need():
    config, _ = stack_config(ROOT, "fine-tuned")
    shape = config["LNK-001-pods-schedulable"]["nodeShapes"]["a3-highgpu-8g"]
    # a3-highgpu-8g: 208 vCPUs and 1872 GiB, less GKE's system reserve (CPU table; memory 25/20/10/6/2 % tiers) and
    # the kubelet's 100 MiB eviction threshold.
    assert shape == {"gpu": "H100", "gpuCount": 8, "gpuMemoryGb": 80.0, "fp8": True, "accelerator": "nvidia-h100-80gb",
                     "vcpus": 208, "memoryGib": 1872, "allocatableCpu": 207.41, "allocatableMemoryGib": 1827.702}
    assert config["LNK-005-model-fits-gpu"]["models"] == [{
        "id": "lexcorp/contract-llama-3.1-70b-ft", "sizeClass": "70b", "paramsBillion": 70.6,
        "kvBytesPerTokenFp16": 327680, "kvCacheTokens": 21600, "contextTokens": 8192, "modelMaxTokens": 131072}]
    assert {k: config["LNK-005-model-fits-gpu"][k] for k in ("gpuMemoryUtilization", "activationReserveGbPerGpu")} == \
        {"gpuMemoryUtilization": 0.9, "activationReserveGbPerGpu": 1.0}
    assert config["LNK-006-rollout-wait"] == {"nodeProvisioningSeconds": 600, "imagePullSeconds": 400}
    assert {p: config[p]["enforcementLevel"] for p in ADVISORY_LINKS} == {p: "advisory" for p in ADVISORY_LINKS}
    # Every link check blocks now, endpoint reachability included.
    assert "enforcementLevel" not in config["LNK-007-endpoint-reachable"] and config["all"] == "mandatory"
    eks, _ = stack_config(ROOT, "realtime-npc")
    # EKS reserves 255 MiB + 11 MiB x 110 pods, plus the 100 MiB eviction threshold: 1565 MiB of g6e.xlarge's 32 GiB.
    assert eks["LNK-001-pods-schedulable"]["nodeShapes"]["g6e.xlarge"]["allocatableMemoryGib"] == 30.472


# --- broken variants: each link, both ends named --------------------------------------------------------------

def test_a_selector_the_pools_do_not_carry_is_caught():
    """The model server's selector retypes the GPU as GKE names it, not as the pools label their nodes."""
    config, regions = stack_config(ROOT, "realtime-captions")
    resources = edited("realtime-captions")
    deployment = named(resources, "model-server-deployment")
    deployment.inputs["spec"]["template"]["spec"]["nodeSelector"] = {"llm-hosting/gpu": "nvidia-l4"}
    [(policy, name, message)] = [f for f in findings(links(preview("realtime-captions"), config, regions, resources))
                                 if f[0] == "LNK-001-pods-schedulable"]
    assert (policy, name) == ("LNK-001-pods-schedulable", "model-server-deployment")
    assert message.startswith("Deployment llm-serving/vllm (selects llm-hosting/gpu=nvidia-l4; needs 1 nvidia.com/gpu")
    for pool in ("gpu-nodes-gpu-on-demand", "gpu-nodes-gpu-spot", "gpu-nodes-system"):
        assert f"{pool}: nodeSelector llm-hosting/gpu=nvidia-l4, but the pool has" in message
    assert message.endswith("Fix: make the selector and the pool's node labels the same value, taken from the one place "
                            "that defines it.")


def test_a_gpu_pool_without_a_device_plugin_is_caught():
    """On EKS the GPU AMIs advertise no GPUs until the NVIDIA device plugin runs on the node."""
    config, regions = stack_config(ROOT, "realtime-npc")
    resources = [r for r in edited("realtime-npc") if r.name != "nvidia-device-plugin-ds"]
    [message] = [m for p, n, m in findings(links(preview("realtime-npc"), config, regions, resources))
                 if p == "LNK-001-pods-schedulable" and n == "model-server-deployment"]
    assert "gpu-nodes-gpu-on-demand: no NVIDIA device plugin DaemonSet runs on it" in message


def test_a_hand_raised_max_replicas_beyond_the_node_groups_is_caught(project):
    """maxReplicas edited in the stack file: KEDA may ask for more replicas than the node groups can hold."""
    edit_stack(project, "realtime-npc", set_section("selfHosted", maxReplicas=20))
    config, regions = stack_config(ROOT, "realtime-npc")
    violations = links(run_preview(project, "realtime-npc"), config, regions)
    assert ("LNK-002-replicas-fit", "model-server-deployment",
            "Deployment llm-serving/vllm may scale to 20 replicas (maxReplicaCount of model-server-scaledobject) but the pools that "
            "can run it hold 11 (gpu-nodes-gpu-on-demand 2 node(s) x 1, gpu-nodes-gpu-spot 9 node(s) x 1 per node): 9 "
            "replica(s) would stay Pending. Fix: raise the pools' maximum nodes, or lower maxReplicaCount of "
            "model-server-scaledobject to 11.") in findings(violations)


def test_a_spread_the_zones_cannot_satisfy_is_caught():
    """The GPU pools pinned to one zone while the system pool's nodes stand in three: an empty zone caps the spread."""
    config, regions = stack_config(ROOT, "realtime-captions")
    resources = edited("realtime-captions")
    for name in ("gpu-nodes-gpu-on-demand", "gpu-nodes-gpu-spot"):
        named(resources, name).inputs["nodeLocations"] = ["us-central1-a"]
    spec = named(resources, "model-server-deployment").inputs["spec"]["template"]["spec"]
    spec.pop("nodeSelector")  # GPU pods found by their toleration only: every node counts as a zone domain
    [message] = [m for p, n, m in findings(links(preview("realtime-captions"), config, regions, resources))
                 if p == "LNK-002-replicas-fit"]
    assert "its spread over topology.kubernetes.io/zone" in message and "lets the scheduler place only 1 on" in message


def without(resources: list, *names: str) -> list:
    return [r for r in resources if r.name not in names]


def test_node_groups_that_may_grow_need_an_autoscaler():
    """realtime-npc's spot group grows from 0 only through the stack's cluster-autoscaler: without it, it is caught."""
    config, regions = stack_config(ROOT, "realtime-npc")
    assert not [v for v in links(preview("realtime-npc"), config, regions) if v.policy == "LNK-003-node-pools-scaled"]
    resources = without(edited("realtime-npc"), "cluster-autoscaler-release")
    spot = next(v for v in links(preview("realtime-npc"), config, regions, resources)
                if (v.policy, v.resource_name) == ("LNK-003-node-pools-scaled", "gpu-nodes-gpu-spot"))
    assert spot.enforcement == "mandatory"
    assert spot.message == (
        "minSize 0 is below maxSize 9, but nothing in the stack scales it: EKS does not resize managed node groups itself "
        "and eks-cluster runs no cluster-autoscaler or Karpenter, so the group stays at its desired size (0) and the "
        "other nodes up to 9 never come. Fix: deploy cluster-autoscaler (or Karpenter) in eks-cluster, or set minSize = "
        "maxSize.")


def lnk004(stack: str, resources=None) -> list[str]:
    config, regions = stack_config(ROOT, stack)
    return [v.message for v in links(preview(stack), config, regions, resources) if v.policy == "LNK-004-metric-sources"]


@pytest.mark.parametrize("stack", ["fine-tuned", "realtime-npc"])
def test_the_scaler_reads_a_prometheus_that_scrapes_the_pods(stack):
    """KEDA, the Prometheus it queries and the PodMonitor that feeds it: each one missing is caught by name."""
    assert lnk004(stack) == []
    [message] = lnk004(stack, without(edited(stack), "keda-release"))
    assert message.startswith("is a KEDA ScaledObject for model-server-deployment but KEDA is not in the stack")
    messages = lnk004(stack, without(edited(stack), "model-server-podmonitor"))
    assert messages and all("no PodMonitor or ServiceMonitor in the stack selects model-server-deployment's pods" in m
                            for m in messages)
    messages = lnk004(stack, without(edited(stack), "monitoring-release"))
    assert messages and all("but no Prometheus the stack deploys answers there" in m for m in messages)


def test_a_model_that_does_not_fit_its_gpus_is_caught():
    """The vLLM server loses its fp8 flags: 70B in 16 bits on two H100s."""
    config, regions = stack_config(ROOT, "fine-tuned")
    resources = edited("fine-tuned")
    container = named(resources, "model-server-deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    for flag in ("--quantization", "--kv-cache-dtype"):
        i = args.index(flag)
        del args[i:i + 2]
    [(policy, name, message)] = [f for f in findings(links(preview("fine-tuned"), config, regions, resources))
                                 if f[0] == "LNK-005-model-fits-gpu"]
    assert name == "model-server-deployment"
    assert "on 2 x H100 (80.0 GB) of gpu-nodes-gpu-on-demand's a3-highgpu-8g" in message
    assert "weights 141.2 GB + KV cache for 21600 tokens 7.1 GB = 148.3 GB, but 2 x (80.0 GB x 0.9 - 1 GB) leaves 142.0 GB" \
        in message
    assert message.endswith("Fix: --quantization fp8 --kv-cache-dtype fp8 (fits on 2 GPU(s)).")


def test_a_sagemaker_model_sharded_over_too_few_gpus_is_caught():
    config, regions = stack_config(ROOT, "healthcare-hipaa")
    resources = edited("healthcare-hipaa")
    env = named(resources, "sagemaker-model").inputs["primaryContainer"]["environment"]
    env["TENSOR_PARALLEL_DEGREE"] = "2"
    for key in ("OPTION_QUANTIZE", "OPTION_KV_CACHE_DTYPE"):
        env.pop(key, None)
    [(policy, name, message)] = [f for f in findings(links(preview("healthcare-hipaa"), config, regions, resources))
                                 if f[0] == "LNK-005-model-fits-gpu"]
    assert name == "sagemaker-model" and "on 2 x L40S (48.0 GB) of sagemaker-config's ml.g6e.12xlarge" in message
    assert "TENSOR_PARALLEL_DEGREE 4 (of the 4 GPUs there)" in message


def test_a_rollout_wait_shorter_than_the_start_up_is_caught():
    config, regions = stack_config(ROOT, "realtime-npc")
    resources = edited("realtime-npc")
    named(resources, "model-server-deployment").options.pop("customTimeouts", None)
    [(policy, name, message)] = [f for f in findings(links(preview("realtime-npc"), config, regions, resources))
                                 if f[0] == "LNK-006-rollout-wait"]
    assert name == "model-server-deployment"
    assert message.startswith("Deployment llm-serving/vllm: create waits 600 s (the default) but one start takes GPU node "
                              "provisioning 600 s + image pull 400 s + startupProbe of vllm")
    assert "update waits 600 s (the default) but a rollout of 11 replica(s) (model-server-scaledobject maxReplicas 11)" in message


def test_an_unreachable_endpoint_is_caught():
    """The SageMaker tier's front door: private name -> internal ALB -> HTTPS listener -> host rule -> target group ->
    the gateway's ECS service. Each broken hop is caught on the resource that holds it."""
    config, regions = stack_config(ROOT, "healthcare-hipaa")
    assert not [f for f in findings(links(preview("healthcare-hipaa"), config, regions)) if f[0].startswith("LNK-007")]
    for removed, at in (("gateway-service", "endpoint-tg"), ("endpoint-host", "endpoint-https"),
                        ("endpoint-record", "endpoint-zone")):
        resources = [r for r in edited("healthcare-hipaa") if r.name != removed]
        [(policy, name, message)] = [f for f in findings(links(preview("healthcare-hipaa"), config, regions, resources))
                                     if f[0] == "LNK-007-endpoint-reachable"]
        assert name == at, (removed, name, message)
        assert "healthcare-hipaa.llm.internal" in message or "target group" in message, message


def test_a_vertex_tier_without_its_private_record_is_caught():
    config, regions = stack_config(ROOT, "us-vertex-support")
    resources = [r for r in edited("us-vertex-support") if r.name != "endpoint-record"]
    [(policy, name, message)] = [f for f in findings(links(preview("us-vertex-support"), config, regions, resources))
                                 if f[0] == "LNK-007-endpoint-reachable"]
    assert name == "endpoint-zone" and "has no record for us-vertex-support.llm.internal" in message


def test_in_cluster_endpoints_are_found_without_outputs_too():
    """Under `pulumi preview` a stack policy sees no outputs: the front door is the rendered gateway Service, exposed
    by the internal load balancer's Ingress in front of it; without that Ingress it is caught."""
    config, regions = stack_config(ROOT, "tiered-sensitivity")
    result = copy.copy(preview("tiered-sensitivity"))
    result.outputs = None
    assert not [f for f in findings(links(result, config, regions)) if f[0] == "LNK-007-endpoint-reachable"]
    without_lb = [r for r in edited("tiered-sensitivity") if r.name != "endpoint-ingress"]
    [(policy, name, message)] = [f for f in findings(links(result, config, regions, without_lb))
                                 if f[0] == "LNK-007-endpoint-reachable"]
    assert (policy, name) == ("LNK-007-endpoint-reachable", "gateway-service")
    assert message.startswith("the stack exports the ClusterIP Service llm-serving/llm-gateway, reachable only from pods "
                              "inside its cluster")


@pytest.mark.parametrize("stack", ["tiered-sensitivity", "eu-airgapped-gke"])
def test_the_exported_endpoint_resolves_privately_to_the_internal_load_balancer_in_front_of_the_gateway(stack):
    """The contract's endpoint_url: https, a name in the stack's private zone, whose record points at the internal load
    balancer (the ALB the Ingress makes, or the address the Gateway holds), which forwards to the gateway's Service."""
    result = preview(stack)
    url = result.outputs["endpoint_url"]
    host = url.split("://", 1)[1].split("/", 1)[0]
    assert url.startswith("https://") and url.endswith("/v1")
    records = [r for r in result.resources if r.type in ("aws:route53/record:Record", "gcp:dns/recordSet:RecordSet")
               and r.inputs.get("name", "").rstrip(".") == host]
    assert len(records) == 1, records
    front = next(r for r in result.resources if r.name in ("endpoint-ingress", "endpoint-gateway"))
    if front.type.endswith(":Ingress"):
        annotations = front.inputs["metadata"]["annotations"]
        assert annotations["alb.ingress.kubernetes.io/scheme"] == "internal"
        assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
        (rule,) = front.inputs["spec"]["rules"]
        assert rule["host"] == host
        assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "llm-gateway"
        assert front.urn in records[0].dependencies
    else:
        assert front.inputs["spec"]["gatewayClassName"] == "gke-l7-rilb"
        assert {listener["protocol"] for listener in front.inputs["spec"]["listeners"]} == {"HTTPS"}
        route = next(r for r in result.resources if r.name == "endpoint-route")
        assert route.inputs["spec"]["rules"][0]["backendRefs"][0]["name"] == "llm-gateway"
        address = next(r for r in result.resources if r.type == "gcp:compute/address:Address")
        assert address.urn in records[0].dependencies


# --- how the facts and options reach the pack ---------------------------------------------------------------------

def test_custom_timeouts_reach_the_policies_in_seconds():
    assert [duration_seconds(v) for v in ("1800s", "30m", "1h30m", 2450, "", "soon")] == [1800, 1800, 5400, 2450, 0, 0]


def test_a_value_unknown_at_preview_is_cannot_verify():
    config, regions = stack_config(ROOT, "realtime-npc")
    resources = edited("realtime-npc")
    named(resources, "gpu-nodes-gpu-on-demand").inputs["labels"] = UNKNOWN_STRING_VALUE
    named(resources, "gpu-nodes-gpu-spot").inputs["labels"] = "[unknown]"  # how the offline preview shows one
    violations = links(preview("realtime-npc"), config, regions, resources)
    [v] = [v for v in violations if v.policy == "LNK-001-pods-schedulable"]
    assert v.cannot_verify and v.enforcement == "advisory"
    assert "gpu-nodes-gpu-on-demand.labels" in v.message and "gpu-nodes-gpu-spot.labels" in v.message


def test_link_facts_are_validated_by_the_pack_schema():
    from policies.config import PolicyConfigError

    facts = {"allowedRegions": ["us-east-1"], "classification": "internal", "network": "public",
             "links": {"nodeShapes": {"g6e.xlarge": {"gpu": "L40S", "gpuCount": 0, "gpuMemoryGb": 48}}, "gpuCount": 1}}
    with pytest.raises(PolicyConfigError) as err:
        policy_config(facts)
    assert err.value.problems == [
        "links.gpuCount: unknown fact; valid: nodeShapes, models, gpuMemoryUtilization, activationReserveGbPerGpu, "
        "nodeProvisioningSeconds, imagePullSeconds",
        "links.nodeShapes.g6e.xlarge.gpuCount: 0 is below the minimum 1"]
    config = json.loads((ROOT / "stacks" / "realtime-npc.policy-config.json").read_text())
    config["LNK-005-model-fits-gpu"]["models"][0]["paramsBillion"] = "eight"
    from policies.config import validate_config

    assert validate_config(config) == [
        "LNK-005-model-fits-gpu.models[0].paramsBillion: expected number, got the string 'eight'"]


# --- the monitoring chain over the whole stack ----------------------------------------------------------------------

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
CLUSTER_STACKS = [s for s in STACKS if preview(s).by_type("kubernetes:apps/v1:Deployment")]


def admits(policy, namespace: str, pod_labels: dict) -> bool:
    """Whether a NetworkPolicy (that selects the pod) lets a pod of `namespace` in, on some port."""
    spec = policy.inputs["spec"]
    own = policy.inputs["metadata"].get("namespace")
    for rule in spec.get("ingress") or []:
        for peer in rule.get("from") or []:
            ns_sel = peer.get("namespaceSelector")
            if ns_sel is None and "podSelector" in peer and namespace == own:
                return True
            if ns_sel is not None and (ns_sel == {} or ns_sel.get("matchLabels", {}).get(
                    "kubernetes.io/metadata.name") == namespace):
                return True
    return False


def selects(policy, namespace: str, pod_labels: dict) -> bool:
    match = policy.inputs["spec"].get("podSelector", {}).get("matchLabels", {})
    return policy.inputs["metadata"].get("namespace") == namespace and match.items() <= pod_labels.items()


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_every_namespace_a_network_policy_admits_by_name_exists(stack):
    """The engine's NetworkPolicy admits `monitoring` for Prometheus: that namespace (and every other one admitted by
    name) is created by the stack, or a scrape would be admitted from nowhere."""
    result = preview(stack)
    created = {r.inputs["metadata"]["name"] for r in result.by_type(NAMESPACE)} | {"kube-system", "gmp-system"}
    for policy in result.by_type(NETWORK_POLICY):
        for rule in policy.inputs["spec"].get("ingress") or []:
            for peer in rule.get("from") or []:
                name = (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                assert name is None or name in created, f"{policy.name} admits namespace {name}, which the stack lacks"


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_the_scaler_and_the_forwarder_may_reach_prometheus(stack):
    """KEDA queries Prometheus from its own namespace (and GKE's collectors scrape its firing alerts from gmp-system):
    every NetworkPolicy that selects the Prometheus pods admits them, or the scaler falls back blind."""
    from components.monitoring_stack import NAMESPACE as MONITORING, PROMETHEUS_POD_LABELS

    result = preview(stack)
    keda = result.named("keda-release").inputs["namespace"]
    readers = [keda] + (["gmp-system"] if result.by_type("kubernetes:monitoring.googleapis.com/v1:PodMonitoring") else [])
    guarding = [p for p in result.by_type(NETWORK_POLICY) if selects(p, MONITORING, PROMETHEUS_POD_LABELS)]
    assert guarding, "the Prometheus pods should be guarded by a NetworkPolicy"
    for policy in guarding:
        for reader in readers:
            assert admits(policy, reader, {}), f"{policy.name} keeps {reader} from Prometheus"
    # and a policy that forgets the scaler is caught
    broken = copy.deepcopy(guarding[0])
    broken.inputs["spec"]["ingress"][0]["from"] = [peer for peer in broken.inputs["spec"]["ingress"][0]["from"]
                                                   if (peer.get("namespaceSelector") or {}).get("matchLabels", {})
                                                   .get("kubernetes.io/metadata.name") != keda]
    assert not admits(broken, keda, {})


@pytest.mark.parametrize("stack", ["tiered-sensitivity", "eu-airgapped-gke", "realtime-captions", "burst-hybrid"])
def test_the_gateway_admits_its_load_balancer_and_nothing_else_from_outside_its_namespace(stack):
    """NetworkPolicy is enforced on both clouds: the internal ALB (IP targets, nodes in the VPC) and the internal
    Application Load Balancer (proxy-only subnet, Google's health checks) must be admitted, or the endpoint is dead."""
    from components.gcp_network import HEALTH_CHECK_RANGES

    result = preview(stack)
    policy = result.named("gateway-netpol").inputs["spec"]
    (rule,) = policy["ingress"]
    peers = rule["from"]
    blocks = {p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p}
    namespaces = [p["namespaceSelector"] for p in peers if "namespaceSelector" in p]
    if result.by_type("aws:ec2/vpc:Vpc"):
        assert blocks == {result.named("network-vpc").inputs["cidrBlock"]}
    else:
        proxy = next(r for r in result.resources if r.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY")
        assert blocks == {proxy.inputs["ipCidrRange"], *HEALTH_CHECK_RANGES}
    # no other namespace than monitoring (the metrics scrape), and no open namespaceSelector
    assert namespaces == [{"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
