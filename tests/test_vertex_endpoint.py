"""VertexEndpoint under the recording mocks: what it registers, how it is wired, what it refuses, and that its list
of settings the provider cannot express stays true to the provider's schema."""

from __future__ import annotations

import base64
import gzip
import inspect
import ipaddress
import json
import re
from functools import lru_cache
from types import SimpleNamespace
from urllib.parse import urlparse

import pulumi
import pulumi_gcp as gcp
import pytest
import yaml
from pulumi_gcp.vertex import _inputs as vertex_inputs

from components.gcp_network import GcpNetwork, GcpNetworkArgs
from components.vertex_endpoint import NOT_EXPRESSIBLE, VertexEndpoint, VertexEndpointArgs, _psc_ip_required
from components.versions import VERSIONS
from conftest import ROOT
from preview.harness import run_preview, run_program
from preview.mocks import PROJECT_NUMBER
from serving.gateway_config import CONFIG_FILE, FILES_ENV

REGION = "us-central1"
PROJECT = "acme-llm"
REGISTRY = f"{REGION}-docker.pkg.dev/{PROJECT}/llm-images"
IMAGE = f"{REGISTRY}/vllm-openai:{VERSIONS.vllm_tag}"
NETWORK = f"projects/{PROJECT}/global/networks/llm-vpc"
BASE = dict(
    stack="t", region=REGION, project=PROJECT, model_id="meta-llama/Llama-3.1-70B-Instruct", image_uri=IMAGE,
    weights_uri="gs://acme-llm-weights-usc1/llama-3.1-70b-instruct/", machine_type="a3-highgpu-4g",
    accelerator_type="NVIDIA_H100_80GB", accelerator_count=4, min_replicas=2, max_replicas=5,
    max_context_tokens=32768, precision="fp16", network_variant="private", network=NETWORK, accept_eula=True,
)
DEPLOYMENT = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"
AGENT = "gcp:projects/serviceIdentity:ServiceIdentity"
KEY = "gcp:kms/cryptoKey:CryptoKey"
GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
POLICY = "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy"
SUBNET = "gcp:compute/subnetwork:Subnetwork"


def make_args(**overrides) -> VertexEndpointArgs:
    return VertexEndpointArgs(**{**BASE, **overrides})


@lru_cache(maxsize=None)
def _run(overrides: tuple):
    def program():
        ep = VertexEndpoint("vertex", make_args(**dict(overrides)))
        for key in ("endpoint_id", "endpoint_name", "kms_key_ids"):
            pulumi.export(key, getattr(ep, key))
        pulumi.export("endpoint_url", ep.contract.endpoint_url)
        pulumi.export("api_key_secret", ep.contract.api_key_secret)
        pulumi.export("model", ep.contract.model)
        pulumi.export("tier", ep.contract.tier)
        if ep.psc_ip_address is not None:
            pulumi.export("psc_ip_address", ep.psc_ip_address)
            pulumi.export("psc_dns_name", ep.psc_dns_name)

    return run_program(program, "llm-hosting", "t", {"gcp:region": REGION, "gcp:project": PROJECT})


def run(**overrides):
    return _run(tuple(sorted(overrides.items())))


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def deployment(**overrides) -> dict:
    return one(run(**overrides), DEPLOYMENT).inputs


def container(**overrides) -> dict:
    return deployment(**overrides)["modelConfig"]["containerSpec"]


def dedicated(**overrides) -> dict:
    return deployment(**overrides)["deployConfig"]["dedicatedResources"]


def flags(**overrides) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container(**overrides)["args"])


def env(**overrides) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(**overrides).get("envs", [])}


def keys_anywhere(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# -- machines and replicas -----------------------------------------------------------------------------------------

def test_machine_spec_has_type_accelerator_and_count():
    assert dedicated()["machineSpec"] == {"machineType": "a3-highgpu-4g", "acceleratorType": "NVIDIA_H100_80GB",
                                          "acceleratorCount": 4}


def test_min_and_max_replicas():
    resources = dedicated()
    assert (resources["minReplicaCount"], resources["maxReplicaCount"]) == (2, 5)


def test_spot_is_off_by_default_and_on_when_asked():
    assert dedicated()["spot"] is False
    assert dedicated(spot=True)["spot"] is True


def test_autoscaling_on_gpu_duty_cycle_with_the_target():
    (spec,) = dedicated(autoscaling_target_gpu_duty_cycle=70)["autoscalingMetricSpecs"]
    assert spec == {"metricName": "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle", "target": 70}


def test_single_replica_only_when_explicitly_allowed():
    assert dedicated(min_replicas=1, max_replicas=2, allow_single_replica=True)["minReplicaCount"] == 1


# -- container -----------------------------------------------------------------------------------------------------

def test_serving_image_is_the_given_artifact_registry_image():
    assert container()["imageUri"] == IMAGE


def test_vllm_args_carry_tensor_parallel_context_and_served_name():
    args = flags()
    assert args["tensor-parallel-size"] == "4"
    assert args["max-model-len"] == "32768"
    assert args["served-model-name"] == BASE["model_id"]
    assert container()["commands"] == ["vllm", "serve"]


def test_port_and_routes_match_vllms_openai_server():
    spec = container()
    assert spec["ports"] == [{"containerPort": 8080}]
    assert flags()["port"] == "8080"
    assert (spec["healthRoute"], spec["predictRoute"]) == ("/health", "/v1/chat/completions")


def test_weights_come_from_the_gcs_prefix():
    args = flags()
    assert args["model"] == BASE["weights_uri"]
    assert args["load-format"] == "runai_streamer"


def test_without_weights_uri_vllm_pulls_the_model_id():
    args = flags(weights_uri=None, network_variant="public", network=None)
    assert args["model"] == BASE["model_id"]
    assert "load-format" not in args


def test_deployment_names_the_model_garden_model():
    assert deployment()["huggingFaceModelId"] == BASE["model_id"]


def test_shared_memory_only_for_tensor_parallel():
    assert container()["sharedMemorySizeMb"] == "16384"
    single = dict(machine_type="g2-standard-8", accelerator_type="NVIDIA_L4", accelerator_count=1)
    assert "sharedMemorySizeMb" not in container(**single)


def test_airgapped_sets_offline_flags():
    variables = env(network_variant="airgapped")
    assert variables["HF_HUB_OFFLINE"] == "1" and variables["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.parametrize("variant", ["public", "private"])
def test_other_variants_leave_offline_flags_unset(variant):
    variables = env(network_variant=variant, network=None if variant == "public" else NETWORK)
    assert "HF_HUB_OFFLINE" not in variables and "TRANSFORMERS_OFFLINE" not in variables


def test_vllm_usage_reporting_is_off():
    assert env()["VLLM_NO_USAGE_STATS"] == "1"


def test_fp8_plan_quantises_weights_and_kv_cache():
    args = flags(precision="fp8", machine_type="g2-standard-8", accelerator_type="NVIDIA_L4", accelerator_count=1)
    assert (args["quantization"], args["kv-cache-dtype"]) == ("fp8", "fp8")


def test_fp16_plan_adds_no_precision_flags():
    assert not {"quantization", "kv-cache-dtype", "dtype"} & set(flags(precision="fp16"))


# -- Model Garden: licence and model source --------------------------------------------------------------------------

def test_gated_model_is_deployed_with_the_licence_accepted_from_googles_cache():
    config = deployment()["modelConfig"]
    assert config["acceptEula"] is True
    assert config["huggingFaceCacheEnabled"] is True
    assert "huggingFaceAccessToken" not in config


def test_hub_token_stays_secret_and_replaces_the_cache():
    config = deployment(hugging_face_token="hf_abcdefghijklmnopqrstuvwxyz")["modelConfig"]
    assert config["huggingFaceAccessToken"] == "[secret]"
    assert config["huggingFaceCacheEnabled"] is False
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in str(run(hugging_face_token="hf_abcdefghijklmnopqrstuvwxyz").resources)


def test_ungated_model_needs_no_licence():
    config = deployment(model_id="Qwen/Qwen2.5-7B-Instruct", accept_eula=False)["modelConfig"]
    assert config["acceptEula"] is False and config["huggingFaceCacheEnabled"] is True


@pytest.mark.parametrize("model_id", ["meta-llama/Llama-3.1-70B-Instruct", "google/gemma-2-27b-it",
                                      "mistralai/Mixtral-8x7B-Instruct-v0.1"])
def test_gated_model_without_the_licence_is_refused(model_id):
    with pytest.raises(ValueError, match=r"^accept_eula: .* is a gated .* set accept_eula: true") as exc:
        make_args(model_id=model_id, accept_eula=False)
    assert f"https://huggingface.co/{model_id}" in str(exc.value)


# -- encryption ----------------------------------------------------------------------------------------------------

def test_one_key_in_the_endpoint_region():
    result = run()
    key = one(result, KEY)
    assert key.inputs["keyRing"].startswith(f"projects/{PROJECT}/locations/{REGION}/keyRings/")
    assert result.outputs["kms_key_ids"] == {REGION: key.inputs["keyRing"] + "/cryptoKeys/vertex-endpoint"}


def test_key_is_granted_to_the_vertex_ai_service_agent():
    result = run()
    agent = one(result, AGENT)
    assert agent.inputs["service"] == "aiplatform.googleapis.com"
    grant = one(result, GRANT).inputs
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant["member"] == f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-aiplatform.iam.gserviceaccount.com"
    assert grant["cryptoKeyId"] == result.outputs["kms_key_ids"][REGION]


def test_deployment_carries_no_key_because_the_resource_cannot():
    # CMEK is listed as not expressible; the deployment must not pretend otherwise.
    assert "encryption_spec" in NOT_EXPRESSIBLE
    assert not {"encryptionSpec", "kmsKeyName"} & keys_anywhere(deployment())


def test_labels_land_on_the_key():
    # The deployment takes no labels (NOT_EXPRESSIBLE["labels"]); the key is where they can go.
    def program():
        VertexEndpoint("vertex", make_args(labels={"llm-hosting-stack": "t"}))

    result = run_program(program, "llm-hosting", "t", {"gcp:region": REGION, "gcp:project": PROJECT})
    assert one(result, KEY).inputs["labels"] == {"llm-hosting-stack": "t"}
    assert "labels" not in one(result, DEPLOYMENT).inputs


# -- network -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["private", "airgapped"])
def test_private_variants_get_psc_with_automation_in_the_vpc(variant):
    psc = deployment(network_variant=variant)["endpointConfig"]["privateServiceConnectConfig"]
    assert psc["enablePrivateServiceConnect"] is True
    assert psc["projectAllowlists"] == [PROJECT]
    assert psc["pscAutomationConfigs"] == {"projectId": PROJECT, "network": NETWORK}
    assert "dedicatedEndpointEnabled" not in deployment(network_variant=variant)["endpointConfig"]


def test_network_self_link_is_turned_into_the_name_psc_takes():
    link = f"https://www.googleapis.com/compute/v1/{NETWORK}"
    psc = deployment(network=link)["endpointConfig"]["privateServiceConnectConfig"]
    assert psc["pscAutomationConfigs"]["network"] == NETWORK


def test_public_has_no_psc_and_a_dedicated_endpoint():
    config = deployment(network_variant="public", network=None)["endpointConfig"]
    assert "privateServiceConnectConfig" not in config
    assert config["dedicatedEndpointEnabled"] is True


def test_no_standalone_forwarding_rule_or_endpoint():
    # PSC automation creates the forwarding rule; a second endpoint resource would be an empty, unused endpoint.
    types = {r.type for r in run().resources}
    assert "gcp:compute/forwardingRule:ForwardingRule" not in types
    assert "gcp:vertex/aiEndpoint:AiEndpoint" not in types


@pytest.mark.parametrize("variant", ["private", "airgapped"])
def test_private_zone_resolves_the_url_host_to_the_psc_address_in_the_vpc_only(variant):
    result = run(network_variant=variant)
    zone, record = one(result, ZONE).inputs, one(result, RECORD).inputs
    assert zone["visibility"] == "private"
    assert zone["privateVisibilityConfig"] == {"networks": [{"networkUrl": NETWORK}]}
    assert zone["dnsName"] == "prediction.p.vertexai.goog."
    assert record["managedZone"] == zone["name"] == "llm-hosting-t-vertex-psc"
    host = urlparse(result.outputs["endpoint_url"]).hostname
    assert record["name"] == f"{host}." and host == result.outputs["psc_dns_name"]
    assert (record["type"], record["rrdatas"]) == ("A", [result.outputs["psc_ip_address"]])
    assert ipaddress.ip_address(result.outputs["psc_ip_address"]).is_private


def test_public_endpoint_has_no_private_zone():
    result = run(network_variant="public", network=None)
    assert result.by_type(ZONE) == [] and result.by_type(RECORD) == []


def test_record_refuses_a_failed_psc_automation_with_its_reason():
    automation = SimpleNamespace(ip_address=None, state="PSC_AUTOMATION_STATE_FAILED",
                                 error_message="CONNECTION_POLICY_MISSING")
    config = SimpleNamespace(private_service_connect_config=SimpleNamespace(psc_automation_configs=automation))
    with pytest.raises(ValueError, match="PSC_AUTOMATION_STATE_FAILED: CONNECTION_POLICY_MISSING.*gcp-vertexai"):
        _psc_ip_required(config)


def _with_network(variant: str = "private"):
    def program():
        net = GcpNetwork("net", GcpNetworkArgs(stack="t", variant=variant, region=REGION, project=PROJECT,
                                               psc_service_classes=(VertexEndpoint.psc_service_class,)))
        ep = VertexEndpoint("vertex", make_args(
            network_variant=variant, network=net.network_self_link,
            service_connection_policy=net.service_connection_policies[VertexEndpoint.psc_service_class]))
        pulumi.export("endpoint_url", ep.contract.endpoint_url)

    return run_program(program, "llm-hosting", "t", {"gcp:region": REGION, "gcp:project": PROJECT})


def test_deployment_waits_for_the_networks_vertex_ai_policy():
    result = _with_network()
    policy = one(result, POLICY)
    assert policy.inputs["serviceClass"] == "gcp-vertexai"
    assert policy.urn in one(result, DEPLOYMENT).dependencies


def test_service_connection_policy_is_refused_for_a_public_endpoint():
    with pytest.raises(ValueError, match=r"^service_connection_policy: "):
        make_args(network_variant="public", network=None, service_connection_policy=object())


# -- the example stacks, read the way a caller in the VPC would ------------------------------------------------------

@lru_cache(maxsize=None)
def stack(name: str):
    return run_preview(ROOT, name)


@pytest.mark.parametrize("name", ["us-vertex-support", "eu-confidential-vertex"])
def test_stack_url_resolves_in_its_vpc_to_an_address_its_policy_hands_out(name):
    result = stack(name)
    [network] = result.by_type("gcp:compute/network:Network")
    deployment_ = one(result, DEPLOYMENT)
    location = deployment_.inputs["location"]
    policy = one(result, POLICY).inputs
    vpc = f"projects/{network.inputs['project']}/global/networks/{network.inputs['name']}"
    assert (policy["serviceClass"], policy["network"], policy["location"]) == ("gcp-vertexai", vpc, location)
    assert one(result, POLICY).urn in deployment_.dependencies, "the deployment's first `pulumi up` races the policy"
    assert deployment_.inputs["endpointConfig"]["privateServiceConnectConfig"]["pscAutomationConfigs"]["network"] == \
        policy["network"]
    [psc_subnet] = [s for s in result.by_type(SUBNET) if s.name == "network-psc"]
    assert policy["pscConfig"]["subnetworks"] == [
        f"projects/{psc_subnet.inputs['project']}/regions/{location}/subnetworks/{psc_subnet.inputs['name']}"]
    zone, record = result.named("vertex-psc-dns").inputs, result.named("vertex-psc-dns-a").inputs
    assert zone["privateVisibilityConfig"]["networks"] == [{"networkUrl": policy["network"]}]
    # The stack's gateway (Cloud Run, egress through the VPC) calls the endpoint by the name this zone resolves.
    [service] = result.by_type("gcp:cloudrunv2/service:Service")
    env = {e["name"]: e.get("value") for e in service.inputs["template"]["containers"][0]["envs"]}
    files = json.loads(gzip.decompress(base64.b64decode(env[FILES_ENV])))
    [upstream] = [m["litellm_params"]["api_base"] for m in yaml.safe_load(files[CONFIG_FILE])["model_list"]]
    assert record["name"] == urlparse(upstream).hostname + "."
    [address] = record["rrdatas"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(psc_subnet.inputs["ipCidrRange"])


@pytest.mark.parametrize("name", ["us-vertex-support", "eu-confidential-vertex"])
def test_stack_serves_the_planned_precision_with_the_licence_accepted(name):
    result = stack(name)
    config = one(result, DEPLOYMENT).inputs["modelConfig"]
    assert (config["acceptEula"], config["huggingFaceCacheEnabled"]) == (True, True)
    args = config["containerSpec"]["args"]
    assert "--quantization=fp8" in args and "--kv-cache-dtype=fp8" in args  # both stacks plan fp8 on L4


# -- protection ----------------------------------------------------------------------------------------------------

def test_endpoint_is_protected():
    result = run()
    assert one(result, DEPLOYMENT).options.get("protect") is True
    assert one(result, DEPLOYMENT).inputs["deletionPolicy"] == "PREVENT"


def test_protect_false_allows_deletion():
    result = run(protect=False)
    assert "protect" not in one(result, DEPLOYMENT).options
    assert one(result, DEPLOYMENT).inputs["deletionPolicy"] == "DELETE"


# -- contract ------------------------------------------------------------------------------------------------------

def test_contract_is_the_openai_base_url_with_google_oauth():
    outputs = run().outputs
    endpoint = outputs["endpoint_id"]
    assert re.fullmatch(r"\d+", endpoint)
    # Private: the documented name of a PSC endpoint, which the stack's private zone resolves.
    assert outputs["endpoint_url"] == (f"https://{endpoint}-{REGION}-{PROJECT_NUMBER}.prediction.p.vertexai.goog"
                                       f"/v1/projects/{PROJECT}/locations/{REGION}/endpoints/{endpoint}")
    assert outputs["endpoint_name"] == f"projects/{PROJECT}/locations/{REGION}/endpoints/{endpoint}"
    assert outputs["api_key_secret"] == "google-oauth (IAM aiplatform.endpoints.predict)"
    assert (outputs["model"], outputs["tier"]) == (BASE["model_id"], "managed")


def test_public_contract_is_the_dedicated_endpoints_public_name():
    outputs = run(network_variant="public", network=None).outputs
    endpoint = outputs["endpoint_id"]
    assert outputs["endpoint_url"] == (f"https://{endpoint}.{REGION}-{PROJECT_NUMBER}.prediction.vertexai.goog"
                                       f"/v1/projects/{PROJECT}/locations/{REGION}/endpoints/{endpoint}")


def test_component_type_token():
    assert one(run(), "llmhost:index:VertexEndpoint").name == "vertex"


# -- what the provider cannot express ------------------------------------------------------------------------------

def _schema_fields() -> set[str]:
    """Every input field of AiEndpointWithModelGardenDeployment and its nested Args types, as the SDK names them."""
    classes = [gcp.vertex.AiEndpointWithModelGardenDeploymentArgs] + [
        getattr(vertex_inputs, n) for n in dir(vertex_inputs)
        if n.startswith("AiEndpointWithModelGardenDeployment") and n.endswith("Args")]
    return {p for c in classes for p in inspect.signature(c.__init__).parameters if p not in ("self", "__self__")}


def test_every_not_expressible_key_is_absent_from_the_schema():
    fields = _schema_fields()
    assert "spot" in fields and "autoscaling_metric_specs" in fields  # the schema walk really sees nested types
    for key in NOT_EXPRESSIBLE:
        assert key not in fields, f"{key} is a field of the deployment now; express it and drop it from NOT_EXPRESSIBLE"


def test_every_not_expressible_key_is_absent_from_the_registered_inputs():
    inputs = keys_anywhere(deployment()) | keys_anywhere(deployment(network_variant="public", network=None))
    for key in NOT_EXPRESSIBLE:
        assert camel(key) not in inputs


def test_what_the_schema_can_express_is_not_listed_as_a_gap():
    expressed = {"spot", "autoscaling_metric_specs", "private_service_connect_config", "psc_automation_configs",
                 "dedicated_resources", "container_spec"}
    assert expressed <= _schema_fields()
    assert not expressed & set(NOT_EXPRESSIBLE)


def test_each_gap_says_why_and_what_to_do():
    for key, text in NOT_EXPRESSIBLE.items():
        assert len(text) > 80, key
        assert re.search(r"workaround|until|check it", text, re.IGNORECASE), key


# -- refusals ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"network_variant": "airgapped", "image_uri": f"{VERSIONS.vllm_image}:{VERSIONS.vllm_tag}"}, "image_uri"),
    ({"network_variant": "airgapped", "image_uri": "ghcr.io/acme/vllm-openai:v0.11.0"}, "image_uri"),
    ({"network_variant": "airgapped", "image_uri": "nvcr.io/nvidia/vllm:25.09-py3"}, "image_uri"),
    ({"network_variant": "airgapped", "image_uri": "gcr.io/acme-llm/vllm-openai:v0.11.0"}, "image_uri"),
    ({"network_variant": "airgapped", "image_uri": f"europe-west4-docker.pkg.dev/{PROJECT}/llm-images/vllm:v0.11.0"},
     "image_uri"),
    ({"image_uri": f"us-docker.pkg.dev/{PROJECT}/llm-images/vllm-openai:v0.11.0"}, "image_uri"),
    ({"image_uri": "docker.io/vllm/vllm-openai:v0.11.0"}, "image_uri"),
    ({"image_uri": f"{REGISTRY}/vllm-openai:latest"}, "image_uri"),
    ({"image_uri": f"{REGISTRY}/vllm-openai"}, "image_uri"),
    ({"min_replicas": 1}, "min_replicas"),
    ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
    ({"network_variant": "airgapped", "weights_uri": None}, "weights_uri"),
    ({"weights_uri": "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct"}, "weights_uri"),
    ({"weights_uri": "s3://acme-llm-weights/llama/"}, "weights_uri"),
    ({"weights_uri": "gs://acme-llm-weights-usc1/llama-3.1-70b-instruct"}, "weights_uri"),
    ({"accelerator_type": "NVIDIA_H100"}, "accelerator_type"),
    ({"accelerator_type": "TPU_V5_LITEPOD"}, "accelerator_type"),
    ({"accelerator_type": "NVIDIA_L4"}, "machine_type"),
    ({"accelerator_count": 8}, "accelerator_count"),
    ({"autoscaling_target_gpu_duty_cycle": 0}, "autoscaling_target_gpu_duty_cycle"),
    ({"max_context_tokens": 0}, "max_context_tokens"),
    ({"network": None}, "network"),
    ({"network_variant": "public"}, "network"),
    ({"network": "llm-vpc"}, "network"),
    ({"network_variant": "internal"}, "network_variant"),
    ({"precision": "int4"}, "precision"),
    ({"accept_eula": False}, "accept_eula"),
    ({"network_variant": "airgapped", "hugging_face_token": "hf_token"}, "hugging_face_token"),
    ({"stack": "x" * 60}, "stack"),
    ({"latency_alert_ms": 0}, "latency_alert_ms"),
])
def test_refusals_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        make_args(**overrides)


def test_airgapped_refusal_explains_what_is_valid():
    with pytest.raises(ValueError) as exc:
        make_args(network_variant="airgapped", image_uri="docker.io/vllm/vllm-openai:v0.11.0")
    assert f"{REGION}-docker.pkg.dev" in str(exc.value)


def test_public_accepts_an_upstream_image_and_hub_download():
    args = make_args(network_variant="public", network=None, weights_uri=None,
                     image_uri=f"{VERSIONS.vllm_image}:{VERSIONS.vllm_tag}")
    assert args.weights_uri is None


def test_airgapped_accepts_an_in_region_digest_pinned_image():
    image = f"{REGISTRY}/vllm-openai@sha256:{'a' * 64}"
    assert make_args(network_variant="airgapped", image_uri=image).image_uri == image


def test_psc_address_output_only_for_private_variants():
    holder = {}

    def program():
        holder["public"] = VertexEndpoint("pub", make_args(network_variant="public", network=None))
        holder["private"] = VertexEndpoint("priv", make_args())

    run_program(program, "llm-hosting", "t", {"gcp:region": REGION, "gcp:project": PROJECT})
    assert holder["public"].psc_ip_address is None
    assert isinstance(holder["private"].psc_ip_address, pulumi.Output)


# -- alert policies on the endpoint's own metrics ----------------------------------------------------------------------

ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = f"projects/{PROJECT}/notificationChannels/1234567890"


def alert_policies(**overrides) -> dict[str, dict]:
    """The endpoint's alert policies by what they watch (latency, errors, saturation)."""
    result = run(notification_channels=(CHANNEL,), **overrides)
    return {p.name.rsplit("-alert-", 1)[1]: p.inputs for p in result.by_type(ALERT_POLICY)}


def threshold(policy: dict) -> dict:
    (cond,) = policy["conditions"]
    return cond["conditionThreshold"]


def test_no_channels_no_alert_policies():
    assert not run().by_type(ALERT_POLICY)


def test_alert_policies_watch_this_endpoint_and_notify_the_channels():
    result = run(notification_channels=(CHANNEL,), latency_alert_ms=800)
    policies = result.by_type(ALERT_POLICY)
    assert len(policies) == 3
    endpoint_id = result.outputs["endpoint_id"]
    for p in policies:
        t = threshold(p.inputs)
        assert 'resource.type="aiplatform.googleapis.com/Endpoint"' in t["filter"]
        assert f'resource.labels.endpoint_id="{endpoint_id}"' in t["filter"]
        assert f'resource.labels.location="{REGION}"' in t["filter"]
        assert p.inputs["notificationChannels"] == [CHANNEL]
        assert "Runbook: " in p.inputs["documentation"]["content"]
        assert t["comparison"] == "COMPARISON_GT"  # threshold conditions take only greater-than or less-than


def test_latency_policy_fires_on_p95_above_the_sla():
    policy = alert_policies(latency_alert_ms=800)["latency"]
    t = threshold(policy)
    assert 'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies"' in t["filter"]
    assert 'metric.labels.latency_type="total"' in t["filter"]
    assert t["aggregations"] == [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_PERCENTILE_95"}]
    assert t["thresholdValue"] == 800 and t["duration"] == "300s"
    assert "800 ms" in policy["displayName"] and "800 ms" in policy["documentation"]["content"]


def test_no_sla_no_latency_policy():
    assert set(alert_policies()) == {"errors", "saturation"}


def test_error_policy_is_a_ratio_of_failed_to_all_predictions():
    t = threshold(alert_policies()["errors"])
    assert 'metric.type="aiplatform.googleapis.com/prediction/online/error_count"' in t["filter"]
    assert 'metric.type="aiplatform.googleapis.com/prediction/online/prediction_count"' in t["denominatorFilter"]
    assert t["thresholdValue"] == 0.05
    assert t["aggregations"][0]["perSeriesAligner"] == t["denominatorAggregations"][0]["perSeriesAligner"]


def test_saturation_policy_fires_at_max_replicas_and_not_for_a_pinned_deployment():
    t = threshold(alert_policies()["saturation"])
    assert 'metric.type="aiplatform.googleapis.com/prediction/online/replicas"' in t["filter"]
    assert BASE["max_replicas"] - 1 < t["thresholdValue"] < BASE["max_replicas"]
    assert t["duration"] == "900s"
    assert "saturation" not in alert_policies(min_replicas=3, max_replicas=3)
