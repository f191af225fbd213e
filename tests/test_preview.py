"""`llmhost preview`: the real program under mocks, compared with the inventories beside the tests."""

from __future__ import annotations

import json

import pytest
import yaml

import inventory
from conftest import PROFILES, ROOT
from preview.harness import ProgramRefused, run_preview

INVENTORIED = ["startup-api", "eu-residency-api", "healthcare-hipaa", "eu-sovereign-airgapped", "realtime-npc",
               "eu-airgapped-gke", "us-vertex-support", "realtime-captions", "tiered-sensitivity", "burst-hybrid",
               "tgi-fine-tuned-eks", "tiered-managed-hybrid"]
BUILT = INVENTORIED + ["eu-confidential-vertex", "fine-tuned"]  # stacks whose tier this version builds


@pytest.mark.parametrize("stack", INVENTORIED)
def test_preview_matches_inventory(stack):
    result = run_preview(ROOT, stack)
    problems = inventory.differences(result, inventory.load(stack))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stack", BUILT)
def test_every_stateful_resource_is_protected_and_every_child_has_its_component_parent(stack):
    result = run_preview(ROOT, stack)
    stateful = ("kms/key:Key", "kms/replicaKey:ReplicaKey", "secretsmanager/secret:Secret", "kms/keyRing:KeyRing",
                "kms/cryptoKey:CryptoKey", "eks/cluster:Cluster", "cloudwatch/logGroup:LogGroup", "sagemaker/endpoint:Endpoint",
                "container/cluster:Cluster", "vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment")
    for r in result.resources:
        if r.type.endswith(stateful):
            assert r.options.get("protect") is True, f"{r.name} ({r.type}) is not protected"
        if r.custom:
            assert r.parent is not None, f"{r.name} is not inside a component"


def test_key_is_a_secret_everywhere(project, cli, tmp_path):
    """The provider key never appears in plain text in inputs, outputs or the JSON inventory."""
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    # The offline preview cannot decrypt, so a `secure:` value is replaced by a marked placeholder: check it stays masked.
    doc["config"]["llm-hosting:groqApiKey"] = {"secure": "v1:ciphertext"}
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "inv.json"
    result = cli("preview", "--stack", "startup-api", "--json", str(out), "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "preview-placeholder-for-llm-hosting:groqApiKey" not in text + result.stdout
    rows = json.loads(text)
    version = next(r for r in rows if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion")
    assert version["inputs"]["secretString"] == "[secret]"
    assert "secretString" in version["options"]["additionalSecretOutputs"]
    assert {r["name"] for r in rows} >= {"api-key", "api-key-secret", "api-key-version"}
    assert all(set(r) == {"type", "name", "parent", "inputs", "options"} for r in rows)


def test_json_inventory_names_parents_by_name(tmp_path, cli):
    out = tmp_path / "inv.json"
    result = cli("preview", "--stack", "eu-residency-api", "--json", str(out), "--project-dir", str(ROOT))
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert rows["api-key"]["parent"] is None
    assert rows["api-key-cmek-key-europe-west1"]["parent"] == "api-key-cmek"
    assert rows["api-key-secret"]["type"] == "gcp:secretmanager/secret:Secret"
    assert "api_key_secret: Secret Manager secret llm-hosting-eu-residency-api-consumer-<consumer>" in result.stdout
    assert rows["gateway"]["type"] == "llmhost:index:GatewayCloudRun" and rows["endpoint"]["parent"] is None


def test_aws_replicas_only_in_allowed_regions():
    result = run_preview(ROOT, "startup-api")
    secret = result.named("api-key-secret")
    assert [r["region"] for r in secret.inputs["replicas"]] == ["us-west-2"]
    assert [r.inputs["region"] for r in result.by_type("aws:kms/replicaKey:ReplicaKey")] == ["us-west-2"]
    policy = json.loads(result.named("api-key-read").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"}
    assert all(s["Resource"] != "*" for s in policy["Statement"])


def test_gcp_replication_is_user_managed_in_allowed_locations_with_cmek():
    result = run_preview(ROOT, "eu-residency-api")
    replicas = result.named("api-key-secret").inputs["replication"]["userManaged"]["replicas"]
    assert [r["location"] for r in replicas] == ["europe-west4", "europe-west1"]
    for r in replicas:
        assert f"/locations/{r['location']}/" in r["customerManagedEncryption"]["kmsKeyName"]


def test_consumer_role_gets_the_read_policy_attached(project):
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["llm-hosting:api"]["consumerRoleName"] = "support-bot"
    path.write_text(yaml.safe_dump(doc))
    result = run_preview(project, "startup-api")
    attach = result.named("api-key-read-attach")
    assert attach.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    assert attach.inputs["role"] == "support-bot"
    assert attach.inputs["policyArn"] == "arn:aws:iam::123456789012:policy/llm-hosting-startup-api-read-groq-api-key"


def test_protect_can_be_turned_off_by_name(project):
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["llm-hosting:protect"] = False
    path.write_text(yaml.safe_dump(doc))
    result = run_preview(project, "startup-api")
    assert not any(r.options.get("protect") for r in result.resources)


def test_every_example_stack_builds():
    assert {p.stem for p in PROFILES} == set(BUILT)


def _managed_hybrid(project):
    """A hybrid whose in-boundary tier is a SageMaker endpoint, written by hand from two example stacks."""
    managed = yaml.safe_load((project / "stacks/Pulumi.healthcare-hipaa.yaml").read_text())["config"]
    hybrid = yaml.safe_load((project / "stacks/Pulumi.tiered-sensitivity.yaml").read_text())["config"]
    config = {k: v for k, v in hybrid.items() if k not in ("llm-hosting:selfHosted", "llm-hosting:generatedBy")}
    config["llm-hosting:managed"] = managed["llm-hosting:managed"]
    config["llm-hosting:model"] = managed["llm-hosting:model"]
    (project / "stacks/Pulumi.managed-hybrid.yaml").write_text(yaml.safe_dump({"config": config}))


def test_a_hybrid_on_a_managed_endpoint_runs_its_gateway_on_fargate(project):
    """No cluster: the gateway runs on ECS on Fargate and signs its SageMaker calls as its task role, which may invoke
    this endpoint and nothing else."""
    _managed_hybrid(project)
    result = run_preview(project, "managed-hybrid")
    [task] = result.by_type("aws:ecs/taskDefinition:TaskDefinition")
    assert task.inputs["requiresCompatibilities"] == ["FARGATE"]
    [task_policy] = [r for r in result.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "gateway-task-policy"]
    [statement] = json.loads(task_policy.inputs["policy"])["Statement"]
    assert statement["Action"] == ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
    [endpoint] = result.by_type("aws:sagemaker/endpoint:Endpoint")
    assert statement["Resource"].endswith(":endpoint/" + endpoint.inputs["name"])  # this endpoint, nothing else
    assert result.outputs["endpoint_url"] == "https://managed-hybrid.llm.internal/v1"


def test_project_defaults_are_merged_like_the_cli(project):
    """A key the stack file leaves out takes the Pulumi.yaml default (protect: true)."""
    path = project / "stacks/Pulumi.startup-api.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["config"]["llm-hosting:protect"]
    path.write_text(yaml.safe_dump(doc))
    result = run_preview(project, "startup-api")
    assert result.named("api-key-secret").options.get("protect") is True


def test_outputs_the_mocks_do_not_know_stay_unknown_as_in_a_real_preview():
    """An output the offline mocks have no answer for is unknown, not None: callbacks on it do not run, a resource
    that takes it shows `[unknown]`, and so does a stack output built from it."""
    import pulumi
    import pulumi_aws as aws

    from preview.harness import UNKNOWN, run_program

    ran: list = []

    def program():
        lb = aws.lb.LoadBalancer("lb", internal=True, load_balancer_type="application", subnets=["subnet-1", "subnet-2"])
        lb.dns_name.apply(lambda name: ran.append(name))  # dnsName is assigned by AWS: the mocks leave it unknown
        aws.route53.Record("alias", zone_id="Z123", name="llm.internal", type="CNAME", ttl=60, records=[lb.dns_name])
        pulumi.export("url", lb.dns_name.apply(lambda name: f"https://{name}/v1"))
        pulumi.export("internal", lb.internal)  # what the program set is known

    result = run_program(program, "llm-hosting", "t", {"aws:region": "us-east-1"})
    assert ran == []
    assert result.named("alias").inputs["records"] == [UNKNOWN]
    assert result.outputs == {"url": UNKNOWN, "internal": True}


def test_the_workload_identity_binding_names_its_service_account():
    # The GCP service-account mock answers `name`, so the binding's target is visible in the inventory.
    result = run_preview(ROOT, "realtime-captions")
    gsa = result.named("weights-reader-gsa").inputs
    assert result.named("weights-reader-wi").inputs["serviceAccountId"] == (
        f"projects/{gsa['project']}/serviceAccounts/{gsa['accountId']}@{gsa['project']}.iam.gserviceaccount.com")
