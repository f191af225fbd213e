"""GatewayCloudRun and GcpImageMirror under the recording mocks, wired the way a GCP stack without a cluster wires
them: the stack's network, its consumer keys (secrets and CMEK key), the API tier's key secret, a Vertex AI endpoint,
and the LiteLLM image through the ghcr.io mirror.

What a reviewer asks of a gateway on Cloud Run: only the internal load balancer reaches it; its config is the
rendered one; no key is in its spec; its identity reads exactly its secrets and calls predict on one endpoint only;
its traffic leaves through the VPC; it runs exactly `replicas` instances; and its image is one Cloud Run can pull.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import stat
import subprocess
import sys
from functools import lru_cache

import pulumi
import pytest
import yaml

from components.consumer_keys import Consumer as KeyConsumer
from components.gcp_consumer_keys import GcpConsumerKeys, GcpConsumerKeysArgs
from components.gcp_image_mirror import GcpImageMirror, GcpImageMirrorArgs, mirrored_image
from components.gcp_network import GcpNetwork, GcpNetworkArgs
from components.versions import VERSIONS
from preview.harness import MASK, run_program
from preview.mocks import PROJECT_NUMBER
from serving.gateway_cloud_run import (GatewayCloudRun, GatewayCloudRunArgs, check_image, master_key_secret_id,
                                       predict_role_id, service_account_id, service_name)
from serving.gateway_config import (BOOTSTRAP_ENTRYPOINT, BOOTSTRAP_SOURCE, CONSUMERS_SETTING, FILES_ENV,
                                    MASTER_KEY_ENV, PORT, PROXY_ENV, Consumer, GatewayRoutes, api_upstream,
                                    config_files, consumer_key_env, per_replica_limit, render_config, vertex_upstream)

PROJECT, STACK, REGION, GCP_PROJECT = "llm-hosting", "t", "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
LABELS = {"llm-hosting-stack": STACK}
ENDPOINT_ID = "7281934650123"
ENDPOINT = f"projects/{GCP_PROJECT}/locations/{REGION}/endpoints/{ENDPOINT_ID}"
GROQ_ENV = "LLMHOST_GROQ_API_KEY"
GROQ_SECRET = f"projects/{PROJECT_NUMBER}/secrets/llm-hosting-{STACK}-groq-api-key"
FAKE_MASTER = "sk-master-test-5e1d07c2-never-in-spec"
CONSUMERS = (Consumer("chat-app", 120, 200_000), Consumer("batch", 7, 50_001))

SERVICE = "gcp:cloudrunv2/service:Service"
ACCOUNT = "gcp:serviceaccount/account:Account"
SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
ENDPOINT_MEMBER = "gcp:vertex/aiEndpointIamMember:AiEndpointIamMember"
PROJECT_MEMBERS = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
                   "gcp:projects/iAMPolicy:IAMPolicy")
REPOSITORY = "gcp:artifactregistry/repository:Repository"
KEY_MEMBER = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"


def routes(vertex: bool = True) -> GatewayRoutes:
    upstreams = [api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1")]
    if vertex:
        upstreams.insert(0, vertex_upstream(f"https://{ENDPOINT_ID}.{REGION}-{PROJECT_NUMBER}.prediction.vertexai.goog",
                                            ENDPOINT_ID, GCP_PROJECT, REGION))
    return GatewayRoutes(pattern="burst-overflow" if vertex else "none", upstreams=tuple(upstreams), consumers=CONSUMERS)


@lru_cache(maxsize=None)
def run(replicas: int = 2, vertex: bool = True, protect: bool = True):
    def program():
        net = GcpNetwork("net", GcpNetworkArgs(stack=STACK, variant="private", region=REGION, project=GCP_PROJECT,
                                               labels=LABELS))
        keys = GcpConsumerKeys("consumers", GcpConsumerKeysArgs(
            stack=STACK, region=REGION, consumers=[KeyConsumer(c.name) for c in CONSUMERS],
            endpoint_url=f"https://{STACK}.llm.internal/v1", model="llm", project=GCP_PROJECT, labels=LABELS))
        mirror = GcpImageMirror("mirror", GcpImageMirrorArgs(
            stack=STACK, region=REGION, kms_key_id=keys.kms_key_id, project=GCP_PROJECT, labels=LABELS))
        image = mirror.image(VERSIONS.gateway_image(None))
        gateway = GatewayCloudRun("gateway", GatewayCloudRunArgs(
            stack=STACK, project=GCP_PROJECT, region=REGION, routes=routes(vertex), image=image,
            master_key=pulumi.Output.secret(FAKE_MASTER), api_key_secrets={GROQ_ENV: GROQ_SECRET},
            consumer_key_secrets=dict(keys.secret_names), kms_key_id=keys.kms_key_id,
            network=net.network_self_link, subnetwork=net.subnet_self_link,
            vertex_endpoint=ENDPOINT if vertex else None, replicas=replicas, labels=LABELS, protect=protect,
            secrets_ready=[keys]))
        for key in ("service_name", "service_id", "service_account_email", "master_key_secret_id", "config"):
            pulumi.export(key, getattr(gateway, key))
        pulumi.export("image", image)
        pulumi.export("registry", mirror.registry)
        pulumi.export("kms_key_id", keys.kms_key_id)
        pulumi.export("network", net.network_self_link)
        pulumi.export("subnetwork", net.subnet_self_link)
        pulumi.export("consumer_secrets", keys.secret_names)

    return run_program(program, PROJECT, STACK, CONFIG)


def one(result, type_):
    [r] = result.by_type(type_)
    return r


def service(result=None) -> dict:
    return one(result or run(), SERVICE).inputs


def container(result=None) -> dict:
    [c] = service(result)["template"]["containers"]
    return c


def envs(result=None) -> dict[str, dict]:
    return {e["name"]: e for e in container(result)["envs"]}


def secret_refs(result=None) -> dict[str, dict]:
    return {n: e["valueSource"]["secretKeyRef"] for n, e in envs(result).items() if "valueSource" in e}


def gateway_account(result) -> dict:
    [sa] = [a for a in result.by_type(ACCOUNT) if a.name == "gateway-sa"]
    return sa


# -- ingress --------------------------------------------------------------------------------------------------------

def test_only_the_internal_load_balancer_reaches_the_service():
    spec = service()
    assert spec["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    # The load balancer carries no Google identity; the gateway checks the consumers' keys itself.
    assert spec["invokerIamDisabled"] is True
    assert spec["name"] == service_name(STACK) == run().outputs["service_name"]
    assert spec["location"] == REGION and spec["launchStage"] == "GA"


@pytest.mark.parametrize("protect", [True, False])
def test_deletion_protection_follows_protect(protect):
    result = run(protect=protect)
    assert service(result)["deletionProtection"] is protect
    master = next(s for s in result.by_type(SECRET) if s.name == "gateway-master-key")
    assert master.inputs["deletionProtection"] is protect
    assert bool(one(result, SERVICE).options.get("protect")) is protect


# -- the config ----------------------------------------------------------------------------------------------------

def unpack(value: str) -> dict[str, str]:
    return json.loads(gzip.decompress(base64.b64decode(value)))


def test_files_env_unpacks_to_the_rendered_config_directory():
    files = unpack(envs()[FILES_ENV]["value"])
    assert files == config_files(render_config(routes(), replicas=2))
    assert run().outputs["config"] == render_config(routes(), replicas=2)


def test_the_container_runs_the_bootstrap_on_the_proxy_port_with_the_plain_proxy_env():
    c = container()
    assert c["commands"] == list(BOOTSTRAP_ENTRYPOINT)
    assert c["ports"] == {"name": "http1", "containerPort": PORT}
    assert {n: e["value"] for n, e in envs().items() if n in PROXY_ENV} == PROXY_ENV
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health/liveliness", "port": PORT}, probe


def test_the_bootstrap_unpacks_the_service_env_and_starts_litellm(tmp_path):
    """Run the container's command against the service's own environment, with Cloud Run's secret values standing
    in (the consumer secret holds the JSON document) and a stand-in `litellm` that reports what it was given."""
    bin_dir, config_dir = tmp_path / "bin", tmp_path / "config"
    bin_dir.mkdir()
    fake = bin_dir / "litellm"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "print(json.dumps({'argv': sys.argv[1:], 'key': os.environ['LLMHOST_CONSUMER_CHAT_APP_KEY'],"
                    f" 'files_env_left': {FILES_ENV!r} in os.environ}}))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {n: e["value"] for n, e in envs().items() if "value" in e}
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", LLMHOST_GATEWAY_DIR=str(config_dir),
               LLMHOST_CONSUMER_CHAT_APP_KEY=json.dumps({"base_url": "https://t.llm.internal/v1",
                                                         "api_key": "sk-llmhost-abc", "model": "llm"}))
    command = container()["commands"]
    assert command[:2] == ["python", "-c"] and command[2] == BOOTSTRAP_SOURCE
    done = subprocess.run([sys.executable, "-c", command[2]], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"argv": ["--config", str(config_dir / "config.yaml"), "--port", str(PORT)],
                      "key": "sk-llmhost-abc", "files_env_left": False}
    assert {p.name: p.read_text() for p in config_dir.iterdir()} == config_files(render_config(routes(), replicas=2))


# -- keys -----------------------------------------------------------------------------------------------------------

def test_no_key_value_is_in_the_service_spec():
    spec = json.dumps(service())
    assert FAKE_MASTER not in spec and MASK not in spec
    keyed = [n for n in envs() if n == MASTER_KEY_ENV or n.endswith("_KEY")]
    assert keyed and all("value" not in envs()[n] and "valueSource" in envs()[n] for n in keyed)
    # Every secret env var, and nothing else, comes from Secret Manager.
    assert set(secret_refs()) == {MASTER_KEY_ENV, GROQ_ENV, *(consumer_key_env(c.name) for c in CONSUMERS)}


def test_secrets_are_referenced_by_name_and_the_master_key_by_pinned_version():
    result = run()
    refs = secret_refs(result)
    master = next(s for s in result.by_type(SECRET) if s.name == "gateway-master-key")
    version = next(v for v in result.by_type(VERSION) if v.name == "gateway-master-key-version")
    assert refs[MASTER_KEY_ENV] == {"secret": f"projects/{PROJECT_NUMBER}/secrets/{master_key_secret_id(STACK)}",
                                    "version": "1"}
    assert version.inputs["secretData"] == MASK  # stored as a secret, never in plain state
    assert refs[GROQ_ENV] == {"secret": GROQ_SECRET, "version": "latest"}
    consumer_secrets = result.outputs["consumer_secrets"]
    for c in CONSUMERS:
        assert refs[consumer_key_env(c.name)] == {"secret": consumer_secrets[c.name], "version": "latest"}


def test_master_key_secret_is_in_the_region_under_the_consumer_keys_cmek_key():
    result = run()
    master = next(s for s in result.by_type(SECRET) if s.name == "gateway-master-key").inputs
    assert master["secretId"] == master_key_secret_id(STACK) == f"llm-hosting-{STACK}-gateway-master-key"
    [replica] = master["replication"]["userManaged"]["replicas"]
    assert replica["location"] == REGION
    assert replica["customerManagedEncryption"]["kmsKeyName"] == result.outputs["kms_key_id"]
    consumer = next(s for s in result.by_type(SECRET) if s.name == "consumers-chat-app").inputs
    assert result.outputs["kms_key_id"] == \
        consumer["replication"]["userManaged"]["replicas"][0]["customerManagedEncryption"]["kmsKeyName"]


def test_the_consumer_keys_cmek_export_waits_for_the_agents_grant():
    result = run()
    master = next(s for s in result.by_type(SECRET) if s.name == "gateway-master-key")
    grants = {r.urn for r in result.by_type(KEY_MEMBER) if r.name.startswith("consumers-cmek-grant")}
    assert grants and grants <= set(master.dependencies)


# -- identity -------------------------------------------------------------------------------------------------------

def test_the_service_runs_as_its_own_account_which_reads_exactly_its_secrets():
    result = run()
    sa = gateway_account(result)
    member = f"serviceAccount:{result.outputs['service_account_email']}"
    assert service(result)["template"]["serviceAccount"] == result.outputs["service_account_email"]
    grants = [m.inputs for m in result.by_type(SECRET_MEMBER) if m.inputs["member"] == member]
    assert all(g["role"] == "roles/secretmanager.secretAccessor" for g in grants)
    assert sorted(g["secretId"] for g in grants) == sorted(r["secret"] for r in secret_refs(result).values())
    assert not any(r.type in PROJECT_MEMBERS for r in result.resources)  # no project-wide role at all
    assert sa.inputs["accountId"].startswith("llm-") and 6 <= len(sa.inputs["accountId"]) <= 30


def test_vertex_predict_is_granted_on_the_one_endpoint_through_a_single_permission_role():
    result = run()
    role = one(result, ROLE).inputs
    assert role["permissions"] == ["aiplatform.endpoints.predict"]
    assert role["roleId"] == predict_role_id(STACK) and role["stage"] == "GA"
    grant = one(result, ENDPOINT_MEMBER).inputs
    assert grant["endpoint"] == ENDPOINT
    assert grant["role"] == f"projects/{GCP_PROJECT}/roles/{role['roleId']}"
    assert grant["member"] == f"serviceAccount:{result.outputs['service_account_email']}"


def test_without_a_vertex_endpoint_there_is_no_predict_grant():
    result = run(vertex=False)
    assert not result.by_type(ROLE) and not result.by_type(ENDPOINT_MEMBER)


def test_the_first_revision_waits_for_its_grants_and_the_secrets_writers():
    result = run()
    deps = set(one(result, SERVICE).dependencies)
    needed = {r.urn for r in result.by_type(SECRET_MEMBER) if r.parent == "gateway"}
    needed |= {one(result, ENDPOINT_MEMBER).urn}
    # The consumers' secret versions: their secret names are known before the versions exist.
    needed |= {r.urn for r in result.by_type(VERSION) if r.parent == "consumers"}
    assert len(needed) == 4 + 1 + 2 and needed <= deps


# -- network and instances ------------------------------------------------------------------------------------------

def test_all_egress_goes_through_the_stacks_vpc():
    result = run()
    vpc = service(result)["template"]["vpcAccess"]
    assert vpc["egress"] == "ALL_TRAFFIC"
    assert vpc["networkInterfaces"] == [{"network": result.outputs["network"],
                                         "subnetwork": result.outputs["subnetwork"]}]
    assert "connector" not in vpc  # Direct VPC egress, no connector VMs


@pytest.mark.parametrize("replicas", [2, 3])
def test_exactly_replicas_instances_serve_and_limits_are_per_instance(replicas):
    result = run(replicas=replicas)
    template = service(result)["template"]
    assert template["scaling"] == {"minInstanceCount": replicas, "maxInstanceCount": replicas}
    assert container(result)["resources"]["cpuIdle"] is False  # always allocated
    assert container(result)["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert template["executionEnvironment"] == "EXECUTION_ENVIRONMENT_GEN2" and template["timeout"] == "600s"
    deployed = yaml.safe_load(unpack(envs(result)[FILES_ENV]["value"])["config.yaml"])
    consumers = {c["name"]: c for c in deployed["general_settings"][CONSUMERS_SETTING]}
    assert consumers["batch"]["rpm_limit"] == per_replica_limit(7, replicas) == -(-7 // replicas)
    assert consumers["batch"]["tpm_limit"] == -(-50_001 // replicas)


# -- images ---------------------------------------------------------------------------------------------------------

def test_the_service_pulls_the_gateway_image_through_the_mirror():
    result = run()
    expected = f"{REGION}-docker.pkg.dev/{GCP_PROJECT}/llm-hosting-{STACK}-ghcr-io/berriai/litellm:main-v1.106.2"
    assert result.outputs["image"] == expected == container(result)["image"]
    assert result.outputs["registry"] == expected.split("/berriai/")[0]


@pytest.mark.parametrize("image", ["ghcr.io/berriai/litellm:main-v1.106.2", "quay.io/org/litellm:1.0",
                                   "nvcr.io/nvidia/thing:2.0"])
def test_images_cloud_run_cannot_pull_are_refused_with_the_way_out(image):
    with pytest.raises(ValueError, match="GcpImageMirror") as info:
        check_image(image)
    assert info.value.args[0].startswith("image:")


@pytest.mark.parametrize("image", ["europe-west4-docker.pkg.dev/p/r/litellm:main-v1.106.2", "gcr.io/p/litellm:1.2",
                                   "eu.gcr.io/p/litellm@sha256:" + "a" * 64, "docker.io/berriai/litellm:1.0",
                                   "berriai/litellm:1.0"])
def test_images_on_registries_cloud_run_pulls_from_are_accepted(image):
    check_image(image)


@pytest.mark.parametrize("image", ["europe-west4-docker.pkg.dev/p/r/litellm", "gcr.io/p/litellm:latest"])
def test_unpinned_images_are_refused(image):
    with pytest.raises(ValueError, match="not pinned"):
        check_image(image)


def test_the_args_refuse_a_ghcr_image_before_anything_is_registered():
    with pytest.raises(ValueError, match="^image: .*ghcr.io.*GcpImageMirror"):
        GatewayCloudRunArgs(stack=STACK, project=GCP_PROJECT, region=REGION, routes=routes(),
                            image=VERSIONS.gateway_image(None), master_key="m", api_key_secrets={GROQ_ENV: GROQ_SECRET},
                            consumer_key_secrets={c.name: f"s-{c.name}" for c in CONSUMERS}, kms_key_id="k",
                            network="n", subnetwork="s", vertex_endpoint=ENDPOINT)


def test_mirror_is_a_cmek_remote_repository_of_ghcr_in_the_region():
    result = run()
    repo = one(result, REPOSITORY).inputs
    assert (repo["format"], repo["mode"], repo["location"]) == ("DOCKER", "REMOTE_REPOSITORY", REGION)
    assert repo["remoteRepositoryConfig"]["dockerRepository"] == {"customRepository": {"uri": "https://ghcr.io"}}
    assert repo["kmsKeyName"] == result.outputs["kms_key_id"]
    [agent] = [i for i in result.by_type(IDENTITY) if i.inputs["service"] == "artifactregistry.googleapis.com"]
    [grant] = [g for g in result.by_type(KEY_MEMBER) if g.parent == "mirror"]
    assert grant.inputs["member"] == f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
    assert grant.inputs["cryptoKeyId"] == result.outputs["kms_key_id"]
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant.urn in one(result, REPOSITORY).dependencies and agent.urn in grant.dependencies


@pytest.mark.parametrize("upstream, mirrored", [
    ("ghcr.io/berriai/litellm:main-v1.106.2", "europe-west4-docker.pkg.dev/acme/m/berriai/litellm:main-v1.106.2"),
    ("ghcr.io/huggingface/text-generation-inference:3.3.5@sha256:" + "b" * 64,
     "europe-west4-docker.pkg.dev/acme/m/huggingface/text-generation-inference:3.3.5@sha256:" + "b" * 64),
])
def test_mirror_maps_image_names(upstream, mirrored):
    assert mirrored_image(upstream, "ghcr.io", "europe-west4", "acme", "m") == mirrored


@pytest.mark.parametrize("upstream", ["docker.io/vllm/vllm-openai:v0.30.0", "ghcr.io.evil.example/x:1", "ghcr.io/"])
def test_mirror_refuses_images_from_elsewhere(upstream):
    with pytest.raises(ValueError, match="not on ghcr.io"):
        mirrored_image(upstream, "ghcr.io", "europe-west4", "acme", "m")


# -- arguments ------------------------------------------------------------------------------------------------------

def args(**kw) -> GatewayCloudRunArgs:
    base = dict(stack=STACK, project=GCP_PROJECT, region=REGION, routes=routes(),
                image=f"{REGION}-docker.pkg.dev/{GCP_PROJECT}/r/berriai/litellm:main-v1.106.2", master_key="m",
                api_key_secrets={GROQ_ENV: GROQ_SECRET},
                consumer_key_secrets={c.name: f"s-{c.name}" for c in CONSUMERS}, kms_key_id="k", network="n",
                subnetwork="s", vertex_endpoint=ENDPOINT)
    base.update(kw)
    return GatewayCloudRunArgs(**base)


@pytest.mark.parametrize("kw, field", [
    ({"replicas": 1}, "replicas"),
    ({"master_key": ""}, "master_key"),
    ({"kms_key_id": None}, "kms_key_id"),
    ({"subnetwork": ""}, "subnetwork"),
    ({"consumer_key_secrets": {"chat-app": "s"}}, "consumer_key_secrets"),
    ({"api_key_secrets": {}}, "api_key_secrets"),
    ({"api_key_secrets": {GROQ_ENV: GROQ_SECRET, "LLMHOST_OTHER_API_KEY": "x"}}, "api_key_secrets"),
    ({"api_key_secrets": {GROQ_ENV: GROQ_SECRET, "OPENAI_API_KEY": "x"}}, "api_key_secrets"),
    ({"vertex_endpoint": "endpoints/12"}, "vertex_endpoint"),
    ({"vertex_endpoint": f"projects/{GCP_PROJECT}/locations/us-central1/endpoints/1"}, "vertex_endpoint"),
    ({"cpu": "2 cores"}, "cpu"),
    ({"memory": "2GB"}, "memory"),
    ({"stack": "a-stack-name-far-too-long-for-cloud-run"}, "stack"),
])
def test_bad_arguments_are_refused_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        args(**kw)


@pytest.mark.parametrize("stack", ["t", "eu-residency-api", "healthcare-hipaa-production-eu",
                                   "healthcare-hipaa-production-us"])
def test_service_account_ids_fit_and_stay_distinct(stack):
    account = service_account_id(stack)
    assert 6 <= len(account) <= 30 and re.match(r"^[a-z][a-z0-9-]*[a-z0-9]$", account), account
    assert service_account_id(stack + "x") != account


def test_a_numeric_endpoint_id_is_accepted():
    assert args(vertex_endpoint=ENDPOINT_ID).vertex_endpoint == ENDPOINT_ID
