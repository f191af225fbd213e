"""GkeCluster and GkeGpuNodePools under the recording mocks, each alone and wired together.

Each argument set runs once (cached); the tests only read the recorded registrations.
"""

from __future__ import annotations

import json
from functools import lru_cache

import pulumi
import pytest

from components.gke_cluster import AUTH_PLUGIN, GkeCluster, GkeClusterArgs, kubeconfig
from components.gke_gpu_node_pools import GkeGpuNodePools, GkeGpuNodePoolsArgs
from preview.harness import MASK, run_program
from preview.mocks import PROJECT_NUMBER

PROJECT, STACK = "llm-hosting", "t"
REGION, GCP_PROJECT = "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
ZONES = ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{GCP_PROJECT}/global/networks/llm-hosting-{STACK}"
SUBNETWORK = f"https://www.googleapis.com/compute/v1/projects/{GCP_PROJECT}/regions/{REGION}/subnetworks/nodes"
CLUSTER_ID = f"projects/{GCP_PROJECT}/locations/{REGION}/clusters/llm-hosting-{STACK}"
NODE_KMS = f"projects/{GCP_PROJECT}/locations/{REGION}/keyRings/llm-hosting-{STACK}-gke/cryptoKeys/gke"
COMPUTE_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@compute-system.iam.gserviceaccount.com"
CIDRS = ["203.0.113.0/24", "198.51.100.7/32"]

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
KEY_RING = "gcp:kms/keyRing:KeyRing"
KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
SERVICE_IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
K8S_PROVIDER = "pulumi:providers:kubernetes"
ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
NODE_ROLES = {"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
              "roles/artifactregistry.reader"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}


# -- helpers --------------------------------------------------------------------------------------------------------

def _key(overrides: dict) -> str:
    """Arguments as a cache key: JSON keeps lists and dicts (labels) hashable and comes back unchanged."""
    return json.dumps(overrides, sort_keys=True)


def _unkey(key: str) -> dict:
    return json.loads(key)


def cluster_args(**overrides) -> GkeClusterArgs:
    base = dict(stack=STACK, region=REGION, project=GCP_PROJECT, variant="private", network=NETWORK,
                subnetwork=SUBNETWORK, pods_range_name="pods", services_range_name="services")
    return GkeClusterArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def _cluster(key: str):
    def program():
        c = GkeCluster("gke", cluster_args(**_unkey(key)))
        pulumi.export("cluster_name", c.cluster_name)
        pulumi.export("cluster_id", c.cluster_id)
        pulumi.export("endpoint", c.endpoint)
        pulumi.export("kms_key_id", c.kms_key_id)
        pulumi.export("kubeconfig", c.kubeconfig)
        pulumi.export("kubeconfig_plain", pulumi.Output.unsecret(c.kubeconfig))

    result = run_program(program, PROJECT, STACK, CONFIG)
    return result, {r.name: set(r.dependencies) for r in result.resources}


def cluster_run(**overrides):
    return _cluster(_key(overrides))[0]


def cluster_deps(**overrides) -> dict[str, set[str]]:
    return _cluster(_key(overrides))[1]


def pool_args(**overrides) -> GkeGpuNodePoolsArgs:
    base = dict(stack=STACK, region=REGION, project=GCP_PROJECT, cluster=CLUSTER_ID, zones=ZONES,
                machine_type="g2-standard-24", gpu="L4", accelerator_type="nvidia-l4", accelerator_count=2,
                on_demand_min_nodes=2, on_demand_max_nodes=3, spot_max_nodes=4, boot_disk_gb=210, kms_key_id=NODE_KMS)
    return GkeGpuNodePoolsArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def _pools(key: str):
    def program():
        p = GkeGpuNodePools("gpu", pool_args(**_unkey(key)))
        pulumi.export("node_service_account_email", p.node_service_account_email)
        pulumi.export("node_pool_names", p.node_pool_names)

    result = run_program(program, PROJECT, STACK, CONFIG)
    return result, {r.name: set(r.dependencies) for r in result.resources}


def pools_run(**overrides):
    return _pools(_key(overrides))[0]


def pools_deps(**overrides) -> dict[str, set[str]]:
    return _pools(_key(overrides))[1]


@lru_cache(maxsize=None)
def wired_run():
    """The cluster and its pools together, as the program would wire them."""
    def program():
        c = GkeCluster("gke", cluster_args())
        GkeGpuNodePools("gpu", pool_args(cluster=c.cluster_id, kms_key_id=c.kms_key_id))
        pulumi.export("cluster_id", c.cluster_id)
        pulumi.export("kms_key_id", c.kms_key_id)

    return run_program(program, PROJECT, STACK, CONFIG)


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def pools(result) -> dict:
    """Node pools by their GKE name (system, gpu-on-demand, gpu-spot)."""
    return {p.inputs["name"]: p for p in result.by_type(NODE_POOL)}


def gpu_pools(result) -> list:
    return [p for name, p in pools(result).items() if name != "system"]


def plain_kubeconfig(result) -> dict:
    return json.loads(result.outputs["kubeconfig_plain"])


# -- GkeCluster: placement and node pools ---------------------------------------------------------------------------

def test_cluster_is_regional():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["location"] == REGION
    assert "nodeLocations" not in cluster  # the region's zones, not a single zone


def test_default_node_pool_is_removed():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["removeDefaultNodePool"] is True
    assert cluster["initialNodeCount"] == 1
    assert not cluster.get("nodePools")


def test_cluster_is_vpc_native_on_the_given_network_and_secondary_ranges():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["networkingMode"] == "VPC_NATIVE"
    assert (cluster["network"], cluster["subnetwork"]) == (NETWORK, SUBNETWORK)
    assert cluster["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_gateway_api_is_on_with_the_standard_channel(variant):
    # The private endpoint's Gateway and HTTPRoute need GKE's Gateway controller and CRDs; the standard channel
    # installs the GA resources only.
    cluster = one(cluster_run(variant=variant), CLUSTER).inputs
    assert cluster["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}


@pytest.mark.parametrize("variant, cidrs", [("public", CIDRS), ("public", []), ("private", []), ("airgapped", [])])
def test_nodes_are_private_in_every_variant(variant, cidrs):
    private = one(cluster_run(variant=variant, master_authorized_cidrs=cidrs), CLUSTER).inputs["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["masterIpv4CidrBlock"] == "172.16.0.0/28"


@pytest.mark.parametrize("variant, cidrs, private_endpoint", [
    ("public", CIDRS, False),
    ("public", [], True),  # no CIDRs named: nobody outside the VPC needs the API server
    ("private", [], True),
    ("airgapped", [], True),
])
def test_private_endpoint_per_variant(variant, cidrs, private_endpoint):
    result = cluster_run(variant=variant, master_authorized_cidrs=cidrs)
    assert one(result, CLUSTER).inputs["privateClusterConfig"]["enablePrivateEndpoint"] is private_endpoint
    assert result.outputs["endpoint"] == ("10.0.0.2" if private_endpoint else "34.118.0.2")


def test_public_variant_authorizes_exactly_the_given_cidrs():
    networks = one(cluster_run(variant="public", master_authorized_cidrs=CIDRS), CLUSTER).inputs["masterAuthorizedNetworksConfig"]
    assert [b["cidrBlock"] for b in networks["cidrBlocks"]] == CIDRS
    assert networks["gcpPublicCidrsAccessEnabled"] is False


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_without_cidrs_no_network_is_authorized_beyond_the_vpc(variant):
    networks = one(cluster_run(variant=variant), CLUSTER).inputs["masterAuthorizedNetworksConfig"]
    assert not networks.get("cidrBlocks")
    assert networks["gcpPublicCidrsAccessEnabled"] is False


def test_no_client_certificate_and_no_legacy_abac():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["masterAuth"]["clientCertificateConfig"]["issueClientCertificate"] is False
    assert cluster["enableLegacyAbac"] is False


# -- GkeCluster: identity and encryption ----------------------------------------------------------------------------

def test_workload_identity_pool_is_the_projects():
    assert one(cluster_run(), CLUSTER).inputs["workloadIdentityConfig"] == {"workloadPool": f"{GCP_PROJECT}.svc.id.goog"}


def test_workload_identity_pool_falls_back_to_the_providers_project():
    result = cluster_run(project=None)
    assert one(result, CLUSTER).inputs["workloadIdentityConfig"]["workloadPool"] == f"{GCP_PROJECT}.svc.id.goog"


def test_secrets_are_encrypted_with_the_regions_key():
    result = cluster_run()
    encryption = one(result, CLUSTER).inputs["databaseEncryption"]
    assert encryption["state"] == "ENCRYPTED"
    assert one(result, KEY_RING).inputs["location"] == REGION
    assert encryption["keyName"] == NODE_KMS == result.outputs["kms_key_id"]
    assert one(result, KEY).options.get("protect") is True


def test_key_is_granted_to_the_container_service_agent_before_the_cluster():
    result = cluster_run()
    agent = one(result, SERVICE_IDENTITY)
    assert agent.inputs["service"] == "container.googleapis.com"
    grant = one(result, KEY_GRANT)
    assert grant.inputs["cryptoKeyId"] == one(result, CLUSTER).inputs["databaseEncryption"]["keyName"]
    assert grant.inputs["role"] == ENCRYPTER
    # The mocks answer ServiceIdentity with gcp-sa-<service>; the real GKE agent is container-engine-robot.
    assert grant.inputs["member"] in {f"serviceAccount:service-{PROJECT_NUMBER}@{domain}.iam.gserviceaccount.com"
                                      for domain in ("gcp-sa-container", "container-engine-robot")}
    assert grant.urn in cluster_deps()["gke-cluster"]


def test_shielded_nodes_are_enabled():
    assert one(cluster_run(), CLUSTER).inputs["enableShieldedNodes"] is True


def test_dataplane_v2_enforces_network_policy():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"
    assert not cluster.get("networkPolicy", {}).get("enabled")  # Calico would conflict with Dataplane V2


@pytest.mark.parametrize("channel", ["REGULAR", "STABLE"])
def test_release_channel_is_set(channel):
    assert one(cluster_run(release_channel=channel), CLUSTER).inputs["releaseChannel"] == {"channel": channel}


def test_system_and_workload_logs_and_system_metrics_are_on():
    cluster = one(cluster_run(), CLUSTER).inputs
    assert sorted(cluster["loggingConfig"]["enableComponents"]) == ["SYSTEM_COMPONENTS", "WORKLOADS"]
    assert "SYSTEM_COMPONENTS" in cluster["monitoringConfig"]["enableComponents"]


def test_managed_prometheus_collects_for_the_alert_path():
    # GkeAlertForwarding's PodMonitoring is only acted on by managed collection.
    cluster = one(cluster_run(), CLUSTER).inputs
    assert cluster["monitoringConfig"]["managedPrometheus"] == {"enabled": True}


def test_labels_reach_the_cluster_and_key():
    labels = {"llm-hosting-stack": "t", "managed-by": "pulumi"}
    result = cluster_run(labels=labels)
    assert one(result, CLUSTER).inputs["resourceLabels"] == labels
    assert one(result, KEY).inputs["labels"] == labels


# -- GkeCluster: protection -----------------------------------------------------------------------------------------

def test_cluster_is_protected_with_deletion_protection():
    cluster = one(cluster_run(), CLUSTER)
    assert cluster.inputs["deletionProtection"] is True
    assert cluster.options.get("protect") is True


def test_protect_false_turns_off_protection_and_deletion_protection():
    result = cluster_run(protect=False)
    cluster = one(result, CLUSTER)
    assert cluster.inputs["deletionProtection"] is False
    assert "protect" not in cluster.options
    assert "protect" not in one(result, KEY).options


# -- GkeCluster: kubeconfig and provider ----------------------------------------------------------------------------

def test_kubeconfig_output_is_secret():
    assert cluster_run().outputs["kubeconfig"] == MASK


def test_kubeconfig_execs_the_gke_auth_plugin_for_this_cluster():
    result = cluster_run()
    config = plain_kubeconfig(result)
    [entry] = config["clusters"]
    assert entry["cluster"]["server"] == f"https://{result.outputs['endpoint']}"
    assert entry["cluster"]["certificate-authority-data"]
    assert config["current-context"] == f"gke_{GCP_PROJECT}_{REGION}_{result.outputs['cluster_name']}"
    [user] = config["users"]
    assert user["user"]["exec"]["command"] == AUTH_PLUGIN == "gke-gcloud-auth-plugin"
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def test_kubeconfig_holds_no_static_credentials():
    config = json.loads(kubeconfig(GCP_PROJECT, REGION, "llm-hosting-x", "10.0.0.2", "Q0E="))
    [user] = config["users"]
    assert set(user["user"]) == {"exec"}
    assert "env" not in user["user"]["exec"]
    text = json.dumps(config).lower()
    for word in ("token\":", "client-key", "client-certificate", "password", "username", "auth-provider"):
        assert word not in text, word


def test_kubernetes_provider_gets_the_kubeconfig_as_a_secret():
    result = cluster_run()
    provider = one(result, K8S_PROVIDER)
    assert provider.name == "gke-k8s" and provider.parent == "gke"
    assert provider.inputs["kubeconfig"] == MASK
    assert provider.inputs["enableServerSideApply"] in (True, "true")


def test_cluster_outputs_name_and_id():
    result = cluster_run()
    assert result.outputs["cluster_name"] == f"llm-hosting-{STACK}"
    assert result.outputs["cluster_id"] == CLUSTER_ID


# -- GkeCluster: refusals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"variant": "internal"}, "variant"),
    ({"variant": "public", "master_authorized_cidrs": ["0.0.0.0/0"]}, "master_authorized_cidrs"),
    ({"variant": "public", "master_authorized_cidrs": ["203.0.113.0/24", "0.0.0.0/0"]}, "master_authorized_cidrs"),
    ({"variant": "private", "master_authorized_cidrs": ["203.0.113.0/24"]}, "master_authorized_cidrs"),
    ({"variant": "airgapped", "master_authorized_cidrs": ["203.0.113.0/24"]}, "master_authorized_cidrs"),
    ({"release_channel": "NIGHTLY"}, "release_channel"),
])
def test_bad_cluster_arguments_are_refused(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        cluster_args(**overrides)


# -- GkeGpuNodePools: GPUs ------------------------------------------------------------------------------------------

def test_gpu_pools_carry_the_accelerator_type_and_count():
    gpu = gpu_pools(pools_run())
    assert len(gpu) == 2
    for p in gpu:
        [accel] = p.inputs["nodeConfig"]["guestAccelerators"]
        assert (accel["type"], accel["count"]) == ("nvidia-l4", 2)
        assert p.inputs["nodeConfig"]["machineType"] == "g2-standard-24"


@pytest.mark.parametrize("version", ["LATEST", "DEFAULT"])
def test_gke_installs_the_gpu_driver(version):
    for p in gpu_pools(pools_run(gpu_driver_version=version)):
        [accel] = p.inputs["nodeConfig"]["guestAccelerators"]
        assert accel["gpuDriverInstallationConfig"] == {"gpuDriverVersion": version}
        assert p.inputs["nodeConfig"]["imageType"] == "COS_CONTAINERD"


def test_gpu_pools_are_tainted_for_gpu_workloads_only():
    result = pools_run()
    for p in gpu_pools(result):
        assert p.inputs["nodeConfig"]["taints"] == [GPU_TAINT]
    system = pools(result)["system"].inputs["nodeConfig"]
    assert not system.get("taints") and not system.get("guestAccelerators")


def test_gpu_pools_carry_gpu_and_capacity_labels():
    # The GPU label holds the catalog's GPU class, as on EKS: the model server's selector comes from the same place.
    by_name = pools(pools_run())
    assert by_name["gpu-on-demand"].inputs["nodeConfig"]["labels"] == {
        "llm-hosting/pool": "gpu-on-demand", "llm-hosting/gpu": "L4", "llm-hosting/capacity": "on-demand"}
    assert by_name["gpu-spot"].inputs["nodeConfig"]["labels"] == {
        "llm-hosting/pool": "gpu-spot", "llm-hosting/gpu": "L4", "llm-hosting/capacity": "spot"}
    assert by_name["system"].inputs["nodeConfig"]["labels"] == {"llm-hosting/pool": "system"}


def test_every_pool_spans_the_given_zones_of_the_region():
    for p in pools_run().by_type(NODE_POOL):
        assert p.inputs["nodeLocations"] == ZONES
        assert p.inputs["location"] == REGION
        assert p.inputs["cluster"] == CLUSTER_ID


def test_autoscaling_uses_total_counts_from_the_arguments():
    by_name = pools(pools_run())
    on_demand = by_name["gpu-on-demand"].inputs["autoscaling"]
    assert (on_demand["totalMinNodeCount"], on_demand["totalMaxNodeCount"]) == (2, 3)
    spot = by_name["gpu-spot"].inputs["autoscaling"]
    assert (spot["totalMinNodeCount"], spot["totalMaxNodeCount"]) == (0, 4)
    for p in by_name.values():
        assert "minNodeCount" not in p.inputs["autoscaling"] and "maxNodeCount" not in p.inputs["autoscaling"]


def test_initial_nodes_per_zone_cover_the_floor():
    by_name = pools(pools_run(zones=ZONES[:2], on_demand_min_nodes=3, on_demand_max_nodes=4))
    assert by_name["gpu-on-demand"].inputs["initialNodeCount"] * 2 >= 3
    assert by_name["gpu-spot"].inputs["initialNodeCount"] == 0


def test_spot_pool_is_spot_and_the_others_are_not():
    by_name = pools(pools_run())
    assert by_name["gpu-spot"].inputs["nodeConfig"]["spot"] is True
    assert not by_name["gpu-on-demand"].inputs["nodeConfig"].get("spot")
    assert not by_name["system"].inputs["nodeConfig"].get("spot")


def test_no_spot_pool_when_spot_max_is_zero():
    result = pools_run(spot_max_nodes=0)
    assert set(pools(result)) == {"system", "gpu-on-demand"}
    assert result.outputs["node_pool_names"] == ["system", "gpu-on-demand"]


def test_node_count_is_left_to_the_autoscaler():
    for p in pools_run().by_type(NODE_POOL):
        assert {"nodeCount", "initialNodeCount"} <= set(p.options["ignoreChanges"])


def test_pools_are_auto_repaired_and_auto_upgraded():
    for p in pools_run().by_type(NODE_POOL):
        assert p.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}


# -- GkeGpuNodePools: node security ---------------------------------------------------------------------------------

def test_boot_disks_are_encrypted_with_the_given_key():
    by_name = pools(pools_run())
    for p in by_name.values():
        assert p.inputs["nodeConfig"]["bootDiskKmsKey"] == NODE_KMS
    for name in ("gpu-on-demand", "gpu-spot"):
        assert by_name[name].inputs["nodeConfig"]["diskSizeGb"] == 210


def test_compute_service_agent_holds_the_boot_disk_key_before_the_pools():
    result = pools_run()
    grant = one(result, KEY_GRANT)
    assert grant.inputs == {"cryptoKeyId": NODE_KMS, "role": ENCRYPTER, "member": COMPUTE_AGENT}
    deps = pools_deps()
    for p in result.by_type(NODE_POOL):
        assert grant.urn in deps[p.name]


def test_nodes_serve_the_gke_metadata_server_only():
    for p in pools_run().by_type(NODE_POOL):
        assert p.inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_nodes_are_shielded_with_secure_boot_and_integrity_monitoring():
    for p in pools_run().by_type(NODE_POOL):
        assert p.inputs["nodeConfig"]["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}


def test_nodes_run_as_the_dedicated_service_account_with_the_cloud_platform_scope():
    result = pools_run()
    account = one(result, SERVICE_ACCOUNT)
    email = f"{account.inputs['accountId']}@{GCP_PROJECT}.iam.gserviceaccount.com"
    assert result.outputs["node_service_account_email"] == email
    for p in result.by_type(NODE_POOL):
        assert p.inputs["nodeConfig"]["serviceAccount"] == email
        assert p.inputs["nodeConfig"]["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]


def test_node_service_account_has_exactly_the_four_node_roles():
    result = pools_run()
    account = one(result, SERVICE_ACCOUNT)
    members = result.by_type(PROJECT_MEMBER)
    roles = [m.inputs["role"] for m in members]
    assert sorted(roles) == sorted(NODE_ROLES)
    assert not {"roles/editor", "roles/owner"} & set(roles)
    for m in members:
        assert m.inputs["project"] == GCP_PROJECT
        assert m.inputs["member"] == f"serviceAccount:{account.inputs['accountId']}@{GCP_PROJECT}.iam.gserviceaccount.com"


def test_node_roles_fall_back_to_the_providers_project():
    for m in pools_run(project=None).by_type(PROJECT_MEMBER):
        assert m.inputs["project"] == GCP_PROJECT


def test_node_service_account_is_protected_unless_opted_out():
    assert one(pools_run(), SERVICE_ACCOUNT).options.get("protect") is True
    assert "protect" not in one(pools_run(protect=False), SERVICE_ACCOUNT).options


def test_system_pool_has_no_gpu_and_the_system_machine_type():
    system = pools(pools_run(system_machine_type="e2-standard-8"))["system"].inputs
    assert system["nodeConfig"]["machineType"] == "e2-standard-8"
    assert (system["autoscaling"]["totalMinNodeCount"], system["autoscaling"]["totalMaxNodeCount"]) == (2, 4)


def test_labels_reach_the_node_vms():
    labels = {"llm-hosting-stack": "t", "managed-by": "pulumi"}
    for p in pools_run(labels=labels).by_type(NODE_POOL):
        assert p.inputs["nodeConfig"]["resourceLabels"] == labels


def test_pool_names_are_output():
    assert pools_run().outputs["node_pool_names"] == ["system", "gpu-on-demand", "gpu-spot"]


# -- GkeGpuNodePools: refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"zones": ["europe-west4-a"]}, "zones"),
    ({"zones": ["europe-west4-a", "europe-west4-a"]}, "zones"),
    ({"zones": ["europe-west4-a", "europe-west1-b"]}, "zones"),
    ({"accelerator_type": "L4"}, "accelerator_type"),
    ({"accelerator_count": 0}, "accelerator_count"),
    ({"on_demand_min_nodes": 3, "on_demand_max_nodes": 2}, "on_demand_min_nodes"),
    ({"on_demand_min_nodes": 0, "on_demand_max_nodes": 2}, "on_demand_min_nodes"),
    ({"spot_max_nodes": -1}, "spot_max_nodes"),
    ({"boot_disk_gb": 20}, "boot_disk_gb"),
    ({"gpu_driver_version": "INSTALLATION_DISABLED"}, "gpu_driver_version"),
])
def test_bad_node_pool_arguments_are_refused(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        pool_args(**overrides)


# -- wired together -------------------------------------------------------------------------------------------------

def test_pools_join_the_cluster_and_use_its_key():
    result = wired_run()
    for p in result.by_type(NODE_POOL):
        assert p.inputs["cluster"] == result.outputs["cluster_id"]
        assert p.inputs["nodeConfig"]["bootDiskKmsKey"] == result.outputs["kms_key_id"]
    members = {g.inputs["member"] for g in result.by_type(KEY_GRANT)}
    assert COMPUTE_AGENT in members
    assert len({g.inputs["cryptoKeyId"] for g in result.by_type(KEY_GRANT)}) == 1


# -- the links a GKE stack depends on ----------------------------------------------------------------------------------

GKE_STACKS = ["realtime-captions", "eu-airgapped-gke", "fine-tuned"]


@pytest.mark.parametrize("stack", GKE_STACKS)
def test_model_server_pods_select_labels_that_the_gpu_pools_carry(stack):
    from preview.harness import run_preview
    from tests.conftest import ROOT

    result = run_preview(ROOT, stack)
    (deployment,) = [r for r in result.by_type("kubernetes:apps/v1:Deployment") if r.name == "model-server-deployment"]
    template = deployment.inputs["spec"]["template"]["spec"]
    gpu_pools = [p for p in result.by_type("gcp:container/nodePool:NodePool") if p.inputs["nodeConfig"].get("guestAccelerators")]
    assert gpu_pools
    for pool in gpu_pools:
        labels = pool.inputs["nodeConfig"]["labels"]
        assert template["nodeSelector"].items() <= labels.items(), (pool.name, labels)
    (pref,) = template["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    (on_demand,) = [p for p in gpu_pools if p.name.endswith("gpu-on-demand")]
    for term in pref["preference"]["matchExpressions"]:
        assert on_demand.inputs["nodeConfig"]["labels"][term["key"]] in term["values"]


@pytest.mark.parametrize("stack", GKE_STACKS)
def test_the_weights_reader_can_list_its_prefix_and_is_bound_after_the_cluster(stack):
    from preview.harness import run_preview
    from tests.conftest import ROOT

    result = run_preview(ROOT, stack)
    grant = result.named("weights-reader-weights").inputs
    bucket, _, prefix = grant["bucket"], None, None
    expression = grant["condition"]["expression"]
    # Reads are checked against the object, listings against the bucket with the request's prefix as an attribute.
    assert f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/' in expression
    assert 'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith(' in expression
    binding = result.named("weights-reader-wi")
    cluster = result.named("gke-cluster")
    pool = cluster.inputs["workloadIdentityConfig"]["workloadPool"]
    assert binding.inputs["member"] == f"serviceAccount:{pool}[llm-serving/vllm]"
    assert cluster.urn in binding.dependencies  # "Identity Pool does not exist" otherwise, on a first pulumi up
    gsa = result.named("weights-reader-gsa")
    assert binding.inputs["serviceAccountId"] == f"projects/{gsa.inputs['project']}/serviceAccounts/{gsa.inputs['accountId']}@{gsa.inputs['project']}.iam.gserviceaccount.com"
    assert binding.urn in result.named("model-server-deployment").dependencies


def test_prefix_condition_admits_exactly_the_prefix():
    from components.gke_workload_identity import prefix_condition

    expression = prefix_condition("weights", "llama/8b/")
    assert expression == ('resource.name.startsWith("projects/_/buckets/weights/objects/llama/8b/") || '
                          'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("llama/8b/")')
