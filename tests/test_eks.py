"""EksCluster, EksGpuNodeGroups and NvidiaDevicePlugin under the recording mocks, and how the program wires them.

Component tests run each component alone with `run_program`; the wiring tests run the whole program for the two
checked-in self-hosted stacks with `run_preview` and compare against the stack files and the planner's sizing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pulumi
import pytest
import yaml

from components.eks_cluster import CONTROL_PLANE_LOGS, EksCluster, EksClusterArgs, kubeconfig
from components.eks_gpu_node_groups import EksGpuNodeGroups, EksGpuNodeGroupsArgs
from components.nvidia_device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.versions import VERSIONS
from planner.catalog import load_catalog
from planner.sizing import node_counts, same_class_instance_types
from preview.harness import MASK, run_preview, run_program
from preview.mocks import ACCOUNT_ID, EC2_ID_PREFIX, _hex, _uuid

ROOT = Path(__file__).resolve().parent.parent
PROJECT, STACK, REGION = "llm-hosting", "test", "eu-central-1"
CLUSTER_NAME = f"llm-hosting-{STACK}"
SUBNETS = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
NODE_KMS = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/11111111-2222-3333-4444-555555555555"
MIRROR = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/llm-mirror"
ADMINS = [f"arn:aws:iam::{ACCOUNT_ID}:role/platform-admin", f"arn:aws:iam::{ACCOUNT_ID}:role/break-glass"]
STACKS = ["eu-sovereign-airgapped", "realtime-npc"]

CLUSTER = "aws:eks/cluster:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
K8S_PROVIDER = "pulumi:providers:kubernetes"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
SUBNET = "aws:ec2/subnet:Subnet"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_POLICIES = {"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
                 "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"}
AUTOSCALING_ROLE = (f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/"
                    "AWSServiceRoleForAutoScaling")


# -- helpers --------------------------------------------------------------------------------------------------------

def cluster_args(**overrides) -> EksClusterArgs:
    base = dict(stack=STACK, region=REGION, variant="private", version=VERSIONS.eks_version, subnet_ids=SUBNETS)
    return EksClusterArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def _cluster(overrides: tuple):
    def program():
        c = EksCluster("eks", cluster_args(**{k: list(v) if isinstance(v, tuple) else v for k, v in overrides}))
        pulumi.export("cluster_name", c.cluster_name)
        pulumi.export("endpoint", c.endpoint)
        pulumi.export("kms_key_arn", c.kms_key_arn)
        pulumi.export("kubeconfig", c.kubeconfig)
        pulumi.export("kubeconfig_plain", pulumi.Output.unsecret(c.kubeconfig))

    result = run_program(program, PROJECT, STACK, {"aws:region": dict(overrides).get("region", REGION)})
    return result, {r.name: set(r.dependencies) for r in result.resources}


def cluster_run(**overrides):
    """One run per distinct argument set (lists passed as tuples so they can be cached); results are only read."""
    return _cluster(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items())))[0]


def cluster_deps(**overrides) -> dict[str, set[str]]:
    return _cluster(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items())))[1]


def node_args(**overrides) -> EksGpuNodeGroupsArgs:
    base = dict(stack=STACK, cluster_name=CLUSTER_NAME, subnet_ids=SUBNETS, kms_key_arn=NODE_KMS, gpu="L40S",
                instance_type="g6e.12xlarge", on_demand_min_nodes=2, on_demand_max_nodes=3,
                spot_instance_types=same_class_instance_types(load_catalog(), "aws", "g6e.12xlarge"),
                spot_max_nodes=4, root_volume_gb=210)
    return EksGpuNodeGroupsArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def _nodes(overrides: tuple):
    def program():
        EksGpuNodeGroups("gpu", node_args(**{k: list(v) if isinstance(v, tuple) else v for k, v in overrides}))

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def nodes_run(**overrides):
    return _nodes(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items())))


@lru_cache(maxsize=None)
def plugin_run(image: str = VERSIONS.device_plugin_image(MIRROR)):
    def program():
        NvidiaDevicePlugin("nvidia", NvidiaDevicePluginArgs(image=image))

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


@lru_cache(maxsize=None)
def stack_run(stack: str):
    return run_preview(ROOT, stack)


def stack_self_hosted(stack: str) -> dict:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return doc["config"]["llm-hosting:selfHosted"]


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def ec2_id(resource) -> str:
    kind = resource.type.split(":")[-1]
    return f"{EC2_ID_PREFIX.get(kind, kind.lower())}-{_hex(resource.name, n=17)}"


def groups(result) -> dict:
    """Node groups by their EKS node group name (system, gpu-on-demand, gpu-spot)."""
    return {g.inputs["nodeGroupName"]: g for g in result.by_type(NODE_GROUP)}


def gpu_groups(result) -> list:
    return [g for name, g in groups(result).items() if name != "system"]


def launch_template_of(result, group):
    by_id = {ec2_id(lt): lt for lt in result.by_type(LAUNCH_TEMPLATE)}
    return by_id[group.inputs["launchTemplate"]["id"]]


def key_statements(result) -> list[dict]:
    return json.loads(one(result, KEY).inputs["policy"])["Statement"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def container(result) -> dict:
    [c] = one(result, DAEMONSET).inputs["spec"]["template"]["spec"]["containers"]
    return c


def pod_spec(result) -> dict:
    return one(result, DAEMONSET).inputs["spec"]["template"]["spec"]


def is_pinned(image: str) -> bool:
    """A digest, or a tag other than `latest` (a registry port is not a tag)."""
    name, _, digest = image.partition("@")
    if digest:
        return digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    last = name.rsplit("/", 1)[-1]
    return ":" in last and last.split(":", 1)[1] not in ("", "latest")


# -- EksCluster: encryption and logs --------------------------------------------------------------------------------

def test_secrets_are_envelope_encrypted_with_the_cluster_cmk():
    result = cluster_run()
    encryption = one(result, CLUSTER).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    cmk_arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{_uuid('eks-cmk-key')}"
    assert encryption["provider"]["keyArn"] == cmk_arn == result.outputs["kms_key_arn"]


def test_all_five_control_plane_log_types_are_enabled():
    logs = one(cluster_run(), CLUSTER).inputs["enabledClusterLogTypes"]
    assert sorted(logs) == sorted(["api", "audit", "authenticator", "controllerManager", "scheduler"])
    assert len(logs) == 5 and CONTROL_PLANE_LOGS == logs


def test_control_plane_log_group_has_the_name_eks_writes_to():
    result = cluster_run()
    cluster_name = one(result, CLUSTER).inputs["name"]
    assert cluster_name == CLUSTER_NAME == result.outputs["cluster_name"]
    assert one(result, LOG_GROUP).inputs["name"] == f"/aws/eks/{cluster_name}/cluster"


def test_control_plane_log_group_is_encrypted_with_the_cluster_key():
    result = cluster_run()
    assert one(result, LOG_GROUP).inputs["kmsKeyId"] == result.outputs["kms_key_arn"]
    assert one(result, LOG_GROUP).inputs["kmsKeyId"] == one(result, CLUSTER).inputs["encryptionConfig"]["provider"]["keyArn"]


def test_control_plane_log_group_is_protected():
    group = one(cluster_run(), LOG_GROUP)
    assert group.options.get("protect") is True
    assert group.inputs["deletionProtectionEnabled"] is True


def test_cluster_is_created_after_its_log_group():
    result = cluster_run()
    assert one(result, LOG_GROUP).urn in cluster_deps()["eks-cluster"]


# -- EksCluster: endpoint -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["private", "airgapped", "public"])
def test_endpoint_is_private_only_without_public_cidrs(variant):
    vpc = one(cluster_run(variant=variant), CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False
    assert vpc["endpointPrivateAccess"] is True
    assert not vpc.get("publicAccessCidrs")


def test_public_variant_with_cidrs_opens_the_endpoint_to_exactly_those_cidrs():
    cidrs = ["203.0.113.0/24", "198.51.100.7/32"]
    vpc = one(cluster_run(variant="public", public_access_cidrs=cidrs), CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == cidrs
    assert vpc["endpointPrivateAccess"] is True  # nodes still reach the API server privately


def test_cluster_is_placed_in_the_given_subnets():
    assert one(cluster_run(), CLUSTER).inputs["vpcConfig"]["subnetIds"] == SUBNETS


@pytest.mark.parametrize("variant, cidrs", [
    ("public", ["0.0.0.0/0"]),
    ("public", ["203.0.113.0/24", "0.0.0.0/0"]),
    ("private", ["203.0.113.0/24"]),
    ("airgapped", ["203.0.113.0/24"]),
    ("private", ["0.0.0.0/0"]),
])
def test_open_or_misplaced_public_cidrs_are_refused(variant, cidrs):
    with pytest.raises(ValueError, match=r"^public_access_cidrs: "):
        cluster_args(variant=variant, public_access_cidrs=cidrs)


# -- EksCluster: access ---------------------------------------------------------------------------------------------

def test_authentication_uses_access_entries_not_aws_auth():
    assert one(cluster_run(), CLUSTER).inputs["accessConfig"]["authenticationMode"] == "API"


def test_each_admin_role_gets_an_access_entry_and_the_cluster_admin_policy():
    result = cluster_run(admin_role_arns=ADMINS)
    entries = result.by_type(ACCESS_ENTRY)
    associations = result.by_type(ASSOCIATION)
    assert sorted(e.inputs["principalArn"] for e in entries) == sorted(ADMINS)
    assert sorted(a.inputs["principalArn"] for a in associations) == sorted(ADMINS)
    for e in entries:
        assert e.inputs["clusterName"] == CLUSTER_NAME and e.inputs["type"] == "STANDARD"
    for a in associations:
        assert a.inputs["clusterName"] == CLUSTER_NAME
        assert a.inputs["policyArn"] == CLUSTER_ADMIN_POLICY
        assert a.inputs["accessScope"]["type"] == "cluster"


def test_no_admin_roles_means_no_access_entries():
    result = cluster_run()
    assert result.by_type(ACCESS_ENTRY) == [] and result.by_type(ASSOCIATION) == []


def test_pod_identity_agent_addon_is_installed():
    addons = {a.inputs["addonName"]: a for a in cluster_run().by_type(ADDON)}
    assert "eks-pod-identity-agent" in addons
    assert addons["eks-pod-identity-agent"].inputs["clusterName"] == CLUSTER_NAME


# -- EksCluster: protection -----------------------------------------------------------------------------------------

def test_cluster_is_protected_with_deletion_protection():
    cluster = one(cluster_run(), CLUSTER)
    assert cluster.options.get("protect") is True
    assert cluster.inputs["deletionProtection"] is True


def test_protect_false_turns_off_protection_and_deletion_protection():
    cluster = one(cluster_run(protect=False), CLUSTER)
    assert "protect" not in cluster.options
    assert cluster.inputs["deletionProtection"] is False


# -- EksCluster: IAM and the key ------------------------------------------------------------------------------------

def test_cluster_role_has_only_the_eks_cluster_policy():
    result = cluster_run()
    role = one(result, ROLE)
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "eks.amazonaws.com"}]
    assert [a.inputs["policyArn"] for a in result.by_type(ATTACHMENT)] == [
        "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    assert "managedPolicyArns" not in role.inputs and "inlinePolicies" not in role.inputs
    assert "FullAccess" not in json.dumps([r.inputs for r in result.resources])


def test_key_policy_lets_the_regional_logs_service_use_the_key():
    result = cluster_run(region="us-west-2")
    [logs] = [s for s in key_statements(result) if s["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}]
    assert logs["Effect"] == "Allow"
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == \
        f"arn:aws:logs:us-west-2:{ACCOUNT_ID}:log-group:*"


def test_key_policy_lets_the_autoscaling_service_linked_role_encrypt_node_volumes():
    statements = [s for s in key_statements(cluster_run()) if s["Principal"] == {"AWS": AUTOSCALING_ROLE}]
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"} <= actions
    [grant] = [s for s in statements if "kms:CreateGrant" in as_list(s["Action"])]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


# -- kubeconfig -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_kubeconfig_stack_output_is_secret(stack):
    assert stack_run(stack).outputs["kubeconfig"] == MASK


def test_kubeconfig_component_output_is_secret():
    assert cluster_run().outputs["kubeconfig"] == MASK


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_provider_gets_the_kubeconfig_as_a_secret(stack):
    provider = one(stack_run(stack), K8S_PROVIDER)
    assert provider.name == "eks-k8s"
    assert provider.inputs["kubeconfig"] == MASK


def test_kubeconfig_execs_aws_eks_get_token_for_the_cluster_and_region():
    config = json.loads(kubeconfig("llm-hosting-x", "https://example.eks.amazonaws.com", "Q0E=", "eu-north-1"))
    [user] = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws"
    args = exec_["args"]
    assert args[:2] == ["eks", "get-token"]
    assert args[args.index("--cluster-name") + 1] == "llm-hosting-x"
    assert args[args.index("--region") + 1] == "eu-north-1"


def test_kubeconfig_holds_no_static_credentials():
    config = json.loads(kubeconfig("llm-hosting-x", "https://example.eks.amazonaws.com", "Q0E=", "eu-north-1"))
    [user] = config["users"]
    assert set(user["user"]) == {"exec"}
    assert "env" not in user["user"]["exec"]
    text = json.dumps(config).lower()
    for word in ("token\":", "client-key", "client-certificate", "password", "aws_access_key_id", "aws_secret"):
        assert word not in text, word


def test_component_kubeconfig_is_built_for_its_cluster_and_region():
    result = cluster_run(region="us-west-2")
    cluster = one(result, CLUSTER)
    config = json.loads(result.outputs["kubeconfig_plain"])
    [entry] = config["clusters"]
    assert entry["cluster"]["server"] == result.outputs["endpoint"]
    args = config["users"][0]["user"]["exec"]["args"]
    assert args[args.index("--cluster-name") + 1] == cluster.inputs["name"]
    assert args[args.index("--region") + 1] == "us-west-2"


# -- EksGpuNodeGroups: GPU groups -----------------------------------------------------------------------------------

def test_gpu_groups_use_the_nvidia_ami():
    gpu = gpu_groups(nodes_run())
    assert len(gpu) == 2
    assert {g.inputs["amiType"] for g in gpu} == {"AL2023_x86_64_NVIDIA"}


def test_gpu_groups_are_tainted_for_gpu_workloads_only():
    for g in gpu_groups(nodes_run()):
        assert g.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}], g.name


def test_gpu_groups_carry_gpu_capacity_and_presence_labels():
    by_name = groups(nodes_run())
    for name, capacity in (("gpu-on-demand", "on-demand"), ("gpu-spot", "spot")):
        labels = by_name[name].inputs["labels"]
        assert labels["llm-hosting/gpu"] == "L40S"
        assert labels["llm-hosting/capacity"] == capacity
        assert labels["nvidia.com/gpu.present"] == "true"


def test_on_demand_group_holds_the_floor_on_the_given_instance_type():
    group = groups(nodes_run(on_demand_min_nodes=2, on_demand_max_nodes=3))["gpu-on-demand"].inputs
    assert group["capacityType"] == "ON_DEMAND"
    assert group["instanceTypes"] == ["g6e.12xlarge"]
    assert group["scalingConfig"] == {"minSize": 2, "desiredSize": 2, "maxSize": 3}


def test_spot_group_scales_from_zero_to_the_spot_maximum():
    group = groups(nodes_run(spot_max_nodes=4))["gpu-spot"].inputs
    assert group["capacityType"] == "SPOT"
    assert group["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 4}


def test_spot_group_spreads_over_several_types_with_the_same_gpu():
    shapes = load_catalog().instance_shapes.for_cloud("aws")
    types = groups(nodes_run())["gpu-spot"].inputs["instanceTypes"]
    assert len(types) >= 2
    assert types == same_class_instance_types(load_catalog(), "aws", "g6e.12xlarge")
    want = shapes["g6e.12xlarge"]
    for t in types:
        assert (shapes[t].gpu, shapes[t].gpu_count) == (want.gpu, want.gpu_count), t


def test_no_spot_group_when_spot_max_is_zero():
    assert sorted(groups(nodes_run(spot_max_nodes=0))) == ["gpu-on-demand", "system"]
    assert sorted(groups(nodes_run(spot_max_nodes=0, spot_instance_types=[]))) == ["gpu-on-demand", "system"]


# -- EksGpuNodeGroups: system group and placement -------------------------------------------------------------------

def test_system_group_is_on_demand_untainted_on_the_standard_ami():
    system = groups(nodes_run())["system"].inputs
    assert system["capacityType"] == "ON_DEMAND"
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert not system.get("taints")
    assert system["instanceTypes"] == ["m6i.large"]
    assert not {"nvidia.com/gpu.present", "llm-hosting/gpu"} & set(system["labels"])


def test_every_group_spans_all_the_given_subnets():
    by_name = groups(nodes_run())
    assert len(by_name) == 3
    for name, g in by_name.items():
        assert g.inputs["subnetIds"] == SUBNETS, name
        assert g.inputs["clusterName"] == CLUSTER_NAME, name


def test_desired_size_is_left_to_the_autoscaler():
    for g in nodes_run().by_type(NODE_GROUP):
        assert "scalingConfig.desiredSize" in g.options.get("ignoreChanges", []), g.name


# -- EksGpuNodeGroups: launch templates -----------------------------------------------------------------------------

def test_launch_templates_require_imdsv2_with_a_hop_limit_of_one():
    templates = nodes_run().by_type(LAUNCH_TEMPLATE)
    assert len(templates) == 2
    for lt in templates:
        metadata = lt.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required", lt.name
        assert metadata["httpPutResponseHopLimit"] == 1, lt.name


def test_every_group_uses_a_launch_template_of_this_component():
    result = nodes_run()
    for g in result.by_type(NODE_GROUP):
        assert launch_template_of(result, g).parent == "gpu", g.name


@pytest.mark.parametrize("root_gb", [120, 210])
def test_gpu_root_volume_is_encrypted_gp3_of_the_given_size(root_gb):
    result = nodes_run(root_volume_gb=root_gb)
    for g in gpu_groups(result):
        [device] = launch_template_of(result, g).inputs["blockDeviceMappings"]
        assert device["deviceName"] == "/dev/xvda"
        ebs = device["ebs"]
        assert ebs["volumeType"] == "gp3"
        assert ebs["encrypted"] in ("true", True)
        assert ebs["kmsKeyId"] == NODE_KMS
        assert ebs["volumeSize"] == root_gb


def test_system_root_volume_is_encrypted_with_the_given_key():
    result = nodes_run()
    [device] = launch_template_of(result, groups(result)["system"]).inputs["blockDeviceMappings"]
    assert device["deviceName"] == "/dev/xvda"
    assert device["ebs"]["encrypted"] in ("true", True) and device["ebs"]["kmsKeyId"] == NODE_KMS


# -- EksGpuNodeGroups: node role and refusals -----------------------------------------------------------------------

def test_node_role_has_exactly_the_three_managed_node_policies():
    result = nodes_run()
    role = one(result, ROLE)
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    arns = [a.inputs["policyArn"] for a in result.by_type(ATTACHMENT)]
    assert sorted(arns) == sorted(NODE_POLICIES)
    assert not any("FullAccess" in a for a in arns)
    for g in result.by_type(NODE_GROUP):
        assert g.inputs["nodeRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.inputs['name']}"


@pytest.mark.parametrize("overrides, field", [
    ({"on_demand_min_nodes": 3, "on_demand_max_nodes": 2}, "on_demand_min_nodes"),
    ({"on_demand_min_nodes": 0, "on_demand_max_nodes": 2}, "on_demand_min_nodes"),
    ({"spot_max_nodes": 2, "spot_instance_types": []}, "spot_instance_types"),
])
def test_bad_node_group_arguments_are_refused(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        node_args(**overrides)


# -- NvidiaDevicePlugin ---------------------------------------------------------------------------------------------

def test_device_plugin_runs_in_kube_system_from_the_given_pinned_image():
    result = plugin_run()
    ds = one(result, DAEMONSET)
    assert ds.inputs["metadata"]["namespace"] == "kube-system"
    image = container(result)["image"]
    assert image == f"{MIRROR}/k8s-device-plugin:{VERSIONS.nvidia_device_plugin}"
    assert is_pinned(image) and not image.endswith(":latest")


def test_device_plugin_takes_a_digest_pinned_image_as_given():
    image = f"{MIRROR}/k8s-device-plugin@sha256:{'a' * 64}"
    assert container(plugin_run(image))["image"] == image
    assert is_pinned(image)


@pytest.mark.parametrize("image, pinned", [
    ("nvcr.io/nvidia/k8s-device-plugin:v0.17.2", True),
    (f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com:443/m/k8s-device-plugin:v0.17.2", True),
    ("nvcr.io/nvidia/k8s-device-plugin:latest", False),
    ("nvcr.io/nvidia/k8s-device-plugin", False),
    ("registry.local:5000/k8s-device-plugin", False),
])
def test_pinned_image_check_itself(image, pinned):
    assert is_pinned(image) is pinned


def test_device_plugin_tolerates_the_gpu_taint():
    tolerations = pod_spec(plugin_run())["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_device_plugin_runs_only_on_gpu_nodes():
    assert pod_spec(plugin_run())["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_device_plugin_mounts_the_kubelet_device_plugin_directory():
    spec = pod_spec(plugin_run())
    [volume] = spec["volumes"]
    assert volume["hostPath"]["path"] == "/var/lib/kubelet/device-plugins"
    [mount] = container(plugin_run())["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (volume["name"], "/var/lib/kubelet/device-plugins")


def test_device_plugin_is_node_critical():
    assert pod_spec(plugin_run())["priorityClassName"] == "system-node-critical"


def test_device_plugin_container_cannot_escalate_and_drops_all_capabilities():
    security = container(plugin_run())["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert not security.get("privileged")
    assert not security["capabilities"].get("add")


def test_device_plugin_mounts_no_service_account_token():
    assert pod_spec(plugin_run())["automountServiceAccountToken"] is False


# -- wiring from the stack files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_device_plugin_is_deployed_through_the_eks_provider(stack):
    result = stack_run(stack)
    assert one(result, DAEMONSET).options["provider"] == one(result, K8S_PROVIDER).name


@pytest.mark.parametrize("stack, image", [
    ("eu-sovereign-airgapped",
     f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror/k8s-device-plugin:{VERSIONS.nvidia_device_plugin}"),
    ("realtime-npc", f"nvcr.io/nvidia/k8s-device-plugin:{VERSIONS.nvidia_device_plugin}"),
])
def test_device_plugin_image_comes_from_the_stacks_registry(stack, image):
    assert container(stack_run(stack))["image"] == image


@pytest.mark.parametrize("stack", STACKS)
def test_node_counts_follow_the_planners_sizing(stack):
    s = stack_self_hosted(stack)
    counts = node_counts(load_catalog(), "aws", s["instanceType"], s["gpusPerReplica"], s["minReplicas"],
                         s["onDemandReplicas"], s.get("spotReplicas", 0), zones=3)  # the VPC's three private subnets
    by_name = groups(stack_run(stack))
    on_demand = by_name["gpu-on-demand"].inputs
    assert on_demand["instanceTypes"] == [s["instanceType"]]
    assert on_demand["scalingConfig"]["minSize"] == on_demand["scalingConfig"]["desiredSize"] == counts.on_demand_min
    assert on_demand["scalingConfig"]["maxSize"] == counts.on_demand_max
    assert counts.spot_max > 0
    assert by_name["gpu-spot"].inputs["scalingConfig"]["maxSize"] == counts.spot_max
    assert by_name["gpu-spot"].inputs["instanceTypes"] == s["spotInstanceTypes"]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_spot_types_share_the_on_demand_gpu(stack):
    s = stack_self_hosted(stack)
    shapes = load_catalog().instance_shapes.for_cloud("aws")
    want = shapes[s["instanceType"]]
    types = groups(stack_run(stack))["gpu-spot"].inputs["instanceTypes"]
    assert len(types) >= 2
    assert all((shapes[t].gpu, shapes[t].gpu_count) == (want.gpu, want.gpu_count) for t in types), types


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_root_volume_is_the_stacks_root_volume_size(stack):
    result = stack_run(stack)
    for g in gpu_groups(result):
        [device] = launch_template_of(result, g).inputs["blockDeviceMappings"]
        assert device["ebs"]["volumeSize"] == stack_self_hosted(stack)["rootVolumeGb"], g.name


@pytest.mark.parametrize("stack", STACKS)
def test_node_volumes_use_the_cluster_key(stack):
    result = stack_run(stack)
    cluster_key = one(result, CLUSTER).inputs["encryptionConfig"]["provider"]["keyArn"]
    for lt in result.by_type(LAUNCH_TEMPLATE):
        assert lt.inputs["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] == cluster_key, lt.name


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_and_nodes_sit_in_the_networks_three_private_subnets(stack):
    result = stack_run(stack)
    private = sorted((s for s in result.by_type(SUBNET) if s.name.startswith("network-private-")), key=lambda s: s.name)
    assert len(private) == 3
    ids = [ec2_id(s) for s in private]
    assert one(result, CLUSTER).inputs["vpcConfig"]["subnetIds"] == ids
    for g in result.by_type(NODE_GROUP):
        assert g.inputs["subnetIds"] == ids, g.name


@pytest.mark.parametrize("stack", STACKS)
def test_device_plugin_matches_the_gpu_groups_labels_and_taint(stack):
    result = stack_run(stack)
    spec = pod_spec(result)
    effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
    for g in gpu_groups(result):
        assert spec["nodeSelector"].items() <= g.inputs["labels"].items(), g.name
        for taint in g.inputs["taints"]:
            assert any(t["key"] == taint["key"] and t.get("effect") == effects[taint["effect"]]
                       for t in spec["tolerations"]), (g.name, taint)


@pytest.mark.parametrize("type_", ["aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway",
                                   "aws:ec2/eip:Eip", "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"])
def test_airgapped_stack_has_no_path_to_the_internet(type_):
    assert stack_run("eu-sovereign-airgapped").by_type(type_) == []


def test_realtime_npc_public_variant_without_cidrs_keeps_the_endpoint_private():
    vpc = one(stack_run("realtime-npc"), CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False and vpc["endpointPrivateAccess"] is True


@pytest.mark.parametrize("image", ["nvcr.io/nvidia/k8s-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:latest",
                                   "localhost:5000/k8s-device-plugin"])
def test_device_plugin_refuses_an_unpinned_image(image):
    from components.nvidia_device_plugin import NvidiaDevicePluginArgs

    with pytest.raises(ValueError, match="^image: .* is not pinned"):
        NvidiaDevicePluginArgs(image=image)


def test_cluster_refuses_an_unknown_variant():
    from components.eks_cluster import EksClusterArgs

    with pytest.raises(ValueError, match="^variant: 'publc' is not one of public, private, airgapped"):
        EksClusterArgs(stack="t", region="us-east-1", variant="publc", version="1.33", subnet_ids=[])


def test_named_admins_replace_the_creators_standing_admin_entry():
    from components.eks_cluster import EksCluster, EksClusterArgs
    from preview.harness import run_program

    def cluster_access(admins):
        result = run_program(lambda: EksCluster("eks", EksClusterArgs(
            stack="t", region="us-east-1", variant="private", version="1.33", subnet_ids=["subnet-a"],
            admin_role_arns=admins)), "llm-hosting", "t", {"aws:region": "us-east-1"})
        return result.named("eks-cluster").inputs["accessConfig"]["bootstrapClusterCreatorAdminPermissions"]

    assert cluster_access([]) is True
    assert cluster_access(["arn:aws:iam::123456789012:role/platform-admin"]) is False


# -- the links an EKS stack depends on ---------------------------------------------------------------------------------

EKS_STACKS = ["realtime-npc", "eu-sovereign-airgapped", "burst-hybrid", "tiered-sensitivity"]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_model_server_pods_select_labels_that_the_gpu_groups_carry(stack):
    from preview.harness import run_preview
    from tests.conftest import ROOT

    result = run_preview(ROOT, stack)
    template = result.named("model-server-deployment").inputs["spec"]["template"]["spec"]
    gpu_groups = [g for g in result.by_type("aws:eks/nodeGroup:NodeGroup") if g.inputs["nodeGroupName"].startswith("gpu-")]
    assert gpu_groups
    for group in gpu_groups:
        assert template["nodeSelector"].items() <= group.inputs["labels"].items(), (group.name, group.inputs["labels"])


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_coredns_waits_for_a_node_group_and_serving_waits_for_its_pod_identity(stack):
    from preview.harness import run_preview
    from tests.conftest import ROOT

    result = run_preview(ROOT, stack)
    coredns = result.named("eks-coredns")
    assert coredns.parent == "eks"  # same name and parent as before the ordering: existing stacks keep the add-on
    assert result.named("gpu-nodes-system").urn in coredns.dependencies
    for addon in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):  # DaemonSets the nodes themselves need first
        assert not any("nodeGroup" in d for d in result.named(f"eks-{addon}").dependencies)
    association = result.named("weights-reader-association")
    assert association.urn in result.named("model-server-deployment").dependencies
