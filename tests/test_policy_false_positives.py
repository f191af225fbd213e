"""Four policies judged on what a hand-written program does, not on names: each with a compliant and a violating case.

- BND-001 reads an environment variable by where its value points: an OpenAI-compatible client aimed at the
  stack's own vLLM is not a third-party route, whatever the variable is called.
- ENC-003 lets an S3 bucket that serves public content skip the customer-managed key in a public or internal
  stack (S3 refuses anonymous reads of SSE-KMS objects), and still demands it in a confidential one.
- AIR-004 checks init containers too, and flags any container that downloads from a public hub.
- RES-002 counts a GCP provider's zone (`gcp:zone` without `gcp:region`); RES-001 a resource's own zone.

Same record style as tests/test_policy_rules.py: camelCase props through `check_resource` / `check_stack`.
"""

from __future__ import annotations

import json

import pytest

from policies.engine import check_resource, check_stack

REGULATED = {"classification": "regulated"}
AIRGAPPED = {"network": "airgapped"}
REGISTRY = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror"
KEY = "arn:aws:kms:eu-central-1:123456789012:key/0b7c6e1e-1111-2222-3333-444455556666"
BOUNDARY = "regulated data may not be sent outside the boundary"
OFFLINE_ENV = [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TRANSFORMERS_OFFLINE", "value": "1"}]
SERVER = {"app.kubernetes.io/component": "model-server"}


def deployment(containers, init=None, labels=None, kind="Deployment"):
    spec = {"containers": containers, **({"initContainers": init} if init else {})}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "app", "labels": labels or {}},
            "spec": {"template": {"metadata": {"labels": labels or {}}, "spec": spec}}}


def res(typ, name, inputs=None, **options):
    return {"type": typ, "name": name, "inputs": inputs or {}, "options": options}


def messages(result):
    return [v.message for v in result.violations]


# --- BND-001: judged by destination ---------------------------------------------------------------------------------

def webui(env):
    return deployment([{"name": "webui", "image": "ghcr.io/open-webui/open-webui:v0.6.5", "env": env}])


def test_bnd001_openai_compatible_client_pointed_at_our_vllm_passes():
    env = [{"name": "OPENAI_API_BASE_URLS", "value": "http://vllm.llm-serving.svc.cluster.local:8000/v1"},
           {"name": "OPENAI_API_KEYS", "value": "unused"},
           {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway", "key": "master-key"}}}]
    result = check_resource("BND-001-no-third-party-api", "kubernetes:apps/v1:Deployment", webui(env), REGULATED)
    assert messages(result) == []
    assert not result.not_applicable
    # A bare host (no scheme) is a destination too.
    bare = [{"name": "OPENAI_BASE_URL", "value": "vllm:8000/v1"}, {"name": "OPENAI_API_KEY", "value": "unused"}]
    assert messages(check_resource("BND-001-no-third-party-api", "kubernetes:apps/v1:Deployment", webui(bare),
                                   REGULATED)) == []


def test_bnd001_the_same_variable_pointed_at_the_provider_is_reported_once():
    env = [{"name": "OPENAI_API_BASE_URLS", "value": "https://api.openai.com/v1"},
           {"name": "OPENAI_API_KEY", "value": "[secret]"}]
    result = check_resource("BND-001-no-third-party-api", "kubernetes:apps/v1:Deployment", webui(env), REGULATED)
    assert messages(result) == [
        f"spec.template.spec.containers[0].env[0].value names the third-party API api.openai.com; {BOUNDARY}"]


def test_bnd001_a_provider_key_with_no_route_goes_to_the_provider():
    """The OpenAI client's default base URL is api.openai.com: a key alone is a route there."""
    env = [{"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "key"}}}]
    result = check_resource("BND-001-no-third-party-api", "kubernetes:apps/v1:Deployment", webui(env), REGULATED)
    assert messages(result) == [
        "spec.template.spec.containers[0].env[0].name holds a key for the third-party API provider openai and no "
        f"variable points its client elsewhere, so it calls openai.com; {BOUNDARY}"]


def test_bnd001_ecs_task_environment_is_judged_the_same_way():
    def task(base):
        return {"family": "ui", "containerDefinitions": json.dumps([{
            "name": "ui", "image": "ui:1", "environment": [{"name": "OPENAI_API_BASE", "value": base}],
            "secrets": [{"name": "OPENAI_API_KEY", "valueFrom": "arn:aws:ssm:eu-central-1:123456789012:parameter/ui"}]}])}

    ok = check_resource("BND-001-no-third-party-api", "aws:ecs/taskDefinition:TaskDefinition",
                        task("http://vllm.internal:8000/v1"), REGULATED)
    assert messages(ok) == []
    bad = check_resource("BND-001-no-third-party-api", "aws:ecs/taskDefinition:TaskDefinition",
                         task("https://api.groq.com/openai/v1"), REGULATED)
    assert messages(bad) == [
        f"containerDefinitions[0].environment[0].value names the third-party API api.groq.com; {BOUNDARY}"]


# --- ENC-003: public-content buckets in non-confidential stacks ----------------------------------------------------

PUBLIC_READ = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-site/*"}]})


def website_stack(how):
    site = res("aws:s3/bucketV2:BucketV2", "site", {"bucket": "acme-site"})
    extra = {
        "website": [res("aws:s3/bucketWebsiteConfigurationV2:BucketWebsiteConfigurationV2", "site-web",
                        {"bucket": "acme-site", "indexDocument": {"suffix": "index.html"}})],
        "policy": [res("aws:s3/bucketPolicy:BucketPolicy", "site-policy", {"bucket": "acme-site", "policy": PUBLIC_READ})],
        "acl": [res("aws:s3/bucketAclV2:BucketAclV2", "site-acl", {"bucket": "acme-site", "acl": "public-read"})],
        "inline-website": [],
    }[how]
    if how == "inline-website":
        site["inputs"]["website"] = {"indexDocument": "index.html"}
    private = res("aws:s3/bucketV2:BucketV2", "logs", {"bucket": "acme-logs"})  # not public: still needs a key
    return [site, *extra, private]


@pytest.mark.parametrize("how", ["website", "policy", "acl", "inline-website"])
def test_enc003_public_content_bucket_in_a_public_or_internal_stack_may_skip_the_key(how):
    for classification in ("public", "internal"):
        result = check_stack("ENC-003-cmk-buckets", website_stack(how), {"classification": classification})
        assert [(v.resource_name, v.message) for v in result.violations] == [
            ("logs", "has no server-side encryption configuration with a customer-managed KMS key: objects use SSE-S3")]


def test_enc003_public_content_bucket_in_a_confidential_stack_still_needs_the_key():
    result = check_stack("ENC-003-cmk-buckets", website_stack("website"), {"classification": "confidential"})
    assert [v.resource_name for v in result.violations] == ["site", "logs"]


def test_enc003_a_policy_that_reads_for_one_account_is_not_public_content():
    stack = website_stack("policy")
    stack[1]["inputs"]["policy"] = PUBLIC_READ.replace('"Principal": "*"',
                                                       '"Principal": {"AWS": "arn:aws:iam::123456789012:root"}')
    result = check_stack("ENC-003-cmk-buckets", stack, {"classification": "public"})
    assert [v.resource_name for v in result.violations] == ["site", "logs"]


def test_enc003_without_the_stack_classification_a_public_bucket_cannot_be_verified():
    result = check_stack("ENC-003-cmk-buckets", website_stack("website"), {})
    assert [(v.resource_name, v.cannot_verify) for v in result.violations] == [("logs", False), (None, True)]
    assert "the stack's classification" in result.violations[1].message


# --- AIR-004: init containers and hub downloads --------------------------------------------------------------------

def vllm(env=OFFLINE_ENV):
    return {"name": "vllm", "image": f"{REGISTRY}/vllm-openai:v0.30.0", "command": ["vllm", "serve", "/models/llama"],
            "env": env}


def downloader(args, env=None):
    return {"name": "fetch-weights", "image": f"{REGISTRY}/hf-cli:0.30.0", "command": ["sh", "-c"], "args": args,
            "env": env or []}


def test_air004_init_container_loading_from_the_bucket_passes():
    init = [{"name": "fetch-weights", "image": f"{REGISTRY}/aws-cli:2.27.0",
             "command": ["aws", "s3", "sync", "s3://acme-weights/llama", "/models/llama"]}]
    result = check_resource("AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
                            deployment([vllm()], init=init, labels=SERVER), AIRGAPPED)
    assert messages(result) == []
    # The hub tool itself is fine when HF_ENDPOINT names a private mirror.
    mirrored = [downloader(["huggingface-cli download meta-llama/Llama-3.1-8B --local-dir /models/llama"],
                           env=[{"name": "HF_ENDPOINT", "value": "https://hf-mirror.llm.internal"}])]
    result = check_resource("AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
                            deployment([vllm()], init=mirrored, labels=SERVER), AIRGAPPED)
    assert messages(result) == []


def test_air004_init_container_downloading_from_the_hub_is_flagged():
    init = [downloader(["huggingface-cli download meta-llama/Llama-3.1-8B --local-dir /models/llama"])]
    result = check_resource("AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
                            deployment([vllm()], init=init, labels=SERVER), AIRGAPPED)
    assert messages(result) == [
        "init container fetch-weights (spec.template.spec.initContainers[0]) runs 'huggingface-cli download' with no "
        "HF_ENDPOINT for a private mirror, so it downloads from huggingface.co; an air-gapped stack loads weights "
        "from its in-region bucket or a private mirror"]


def test_air004_any_container_naming_a_hub_url_is_flagged_even_outside_a_model_server():
    job = deployment([{"name": "prefetch", "image": f"{REGISTRY}/curl:8.13.0",
                       "command": ["curl", "-LO", "https://huggingface.co/org/model/resolve/main/model.safetensors"]}],
                     kind="Job")
    result = check_resource("AIR-004-hub-offline-serving", "kubernetes:batch/v1:Job", job, AIRGAPPED)
    assert messages(result) == [
        "container prefetch (spec.template.spec.containers[0]) fetches from the public hub huggingface.co "
        "(spec.template.spec.containers[0].command); an air-gapped stack loads weights from its in-region bucket "
        "or a private mirror"]
    assert not result.not_applicable


# --- residency: zones count -----------------------------------------------------------------------------------------

def gcp_program(zone):
    return [res("pulumi:providers:gcp", "gcp", {"project": "p", "zone": zone}),
            res("gcp:compute/instance:Instance", "vm", {"machineType": "e2-small"}, provider="gcp")]


def test_res002_gcp_provider_with_a_zone_in_an_allowed_region_passes():
    result = check_stack("RES-002-provider-region", gcp_program("europe-west4-b"), {"allowedRegions": ["europe-west4"]})
    assert messages(result) == []
    assert not result.not_applicable


def test_res002_gcp_provider_with_only_a_zone_outside_the_allowed_regions_is_flagged():
    result = check_stack("RES-002-provider-region", gcp_program("us-central1-a"), {"allowedRegions": ["europe-west4"]})
    assert [(v.resource_name, v.resource_type, v.message) for v in result.violations] == [
        ("gcp", "pulumi:providers:gcp", "the gcp provider gcp deploys to the zone us-central1-a (region us-central1), "
                                        "outside the allowed regions (europe-west4)")]


@pytest.mark.parametrize("zone, expected", [
    ("europe-west4-a", []),
    ("us-central1-f", ["zone is us-central1-f (region us-central1), outside the allowed regions (europe-west4)"]),
])
def test_res001_a_resource_zone_counts_as_its_region(zone, expected):
    result = check_resource("RES-001-region-allowlist", "gcp:compute/instance:Instance",
                            {"machineType": "e2-small", "zone": zone}, {"allowedRegions": ["europe-west4"]})
    assert messages(result) == expected


@pytest.mark.parametrize("zone, flagged", [("us-central1-a", True), ("europe-west4-a", False)])
def test_res002_offline_default_provider_of_a_zone_only_stack(zone, flagged):
    """`llmhost preview` of a stack set with gcp:zone alone: the offline default provider carries the zone, as the
    Pulumi engine's does, so RES-002 judges it."""
    result = check_stack("RES-002-provider-region", [], {"allowedRegions": ["europe-west4"]}, provider_regions={"gcp": zone})
    assert bool(result.violations) is flagged
