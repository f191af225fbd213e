"""The stack's front door as a whole: who it is served to (the endpoint audience), under which certificate, and what
is refused before anything is built. Each test plans a profile into a copy of the project, previews the real program
under mocks and runs the policy pack on it, as `llmhost plan` then `llmhost preview` would."""

from __future__ import annotations

import json

import pytest
import yaml

from policies.engine import check_preview
from preview.harness import ProgramRefused, run_preview
from tests.conftest import ROOT, edit_stack, set_section

ORG_CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0b9c2f1e-4a5d-4c1e-9f7a-2d3e4f5a6b7c"


def _plan(cli, project, tmp_path, example: str, endpoint: dict) -> str:
    data = yaml.safe_load((ROOT / "stacks/profiles" / f"{example}.yaml").read_text())
    data["endpoint"] = endpoint
    path = tmp_path / f"{example}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("plan", str(path), "--stack", example, "--force", "--project-dir", str(project))
    assert result.exit_code == 0, result.stderr
    return example


def _link_findings(project, result) -> list:
    report = check_preview(project, result)
    return [v for v in report.violations if v.policy == "LNK-007-endpoint-reachable"]


INTERNET = {"audience": "internet", "domain": "llm.example.com", "public_zone": "Z0123456789ABCDEFGHIJ"}


@pytest.mark.parametrize("example,lb_type,internet", [
    ("startup-api", "aws:lb/loadBalancer:LoadBalancer", lambda r: r.inputs["internal"] is False),
    ("realtime-npc", "kubernetes:networking.k8s.io/v1:Ingress",
     lambda r: r.inputs["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internet-facing"),
])
def test_an_internet_audience_gets_an_internet_facing_endpoint_under_its_domain_on_aws(cli, project, tmp_path, example,
                                                                                        lb_type, internet):
    stack = _plan(cli, project, tmp_path, example, INTERNET)
    policy = json.loads((project / "stacks" / f"{stack}.policy-config.json").read_text())
    assert policy["LNK-007-endpoint-reachable"]["endpointAudience"] == "internet"
    result = run_preview(project, stack)
    assert result.outputs["endpoint_url"] == "https://llm.example.com/v1"
    assert all(internet(r) for r in result.by_type(lb_type)) and result.by_type(lb_type)
    # A publicly trusted certificate, validated in the team's public zone; no private CA or private zone at all.
    assert not result.by_type("aws:acmpca/certificateAuthority:CertificateAuthority")
    assert not [z for z in result.by_type("aws:route53/zone:Zone")]
    [cert] = result.by_type("aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == "llm.example.com" and cert.inputs["validationMethod"] == "DNS"
    assert {r.inputs["zoneId"] for r in result.by_type("aws:route53/record:Record")} == {"Z0123456789ABCDEFGHIJ"}
    assert _link_findings(project, result) == []


@pytest.mark.parametrize("example", ["eu-residency-api", "realtime-captions"])
def test_an_internet_audience_gets_a_regional_external_load_balancer_on_gcp(cli, project, tmp_path, example):
    stack = _plan(cli, project, tmp_path, example, {**INTERNET, "public_zone": "example-com"})
    result = run_preview(project, stack)
    assert result.outputs["endpoint_url"] == "https://llm.example.com/v1"
    assert not result.by_type("gcp:certificateauthority/authority:Authority")
    assert all(z.inputs.get("visibility") != "private" for z in result.by_type("gcp:dns/managedZone:ManagedZone")
               if "endpoint" in z.name)
    [record] = [r for r in result.by_type("gcp:dns/recordSet:RecordSet") if r.inputs["type"] == "A"
                and r.inputs["name"] == "llm.example.com."]
    assert record.inputs["managedZone"] == "example-com"
    rules = result.by_type("gcp:compute/forwardingRule:ForwardingRule")
    addresses = [a for a in result.by_type("gcp:compute/address:Address") if a.inputs.get("addressType") == "EXTERNAL"]
    assert all(r.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED" for r in rules) or addresses
    assert _link_findings(project, result) == []


def test_a_vpc_audience_on_a_public_network_is_reached_in_the_vpc_and_nowhere_else(project):
    """The public network variant (NAT, public subnets) does not put consumers on the internet: the default audience
    is the VPC, and LNK-007 finds the private name, the internal load balancer and the gateway behind it."""
    for stack in ("startup-api", "realtime-npc"):
        result = run_preview(project, stack)
        assert result.outputs["endpoint_url"] == f"https://{stack}.llm.internal/v1"
        assert all(lb.inputs["internal"] for lb in result.by_type("aws:lb/loadBalancer:LoadBalancer"))
        assert _link_findings(project, result) == []


def test_the_pack_catches_an_internet_audience_served_on_an_internal_endpoint(project):
    """The policy config says the consumers are on the internet, but the stack still serves in its VPC only."""
    result = run_preview(project, "startup-api")
    config = json.loads((project / "stacks/startup-api.policy-config.json").read_text())
    config["LNK-007-endpoint-reachable"]["endpointAudience"] = "internet"
    report = check_preview(project, result, config=config)
    messages = [v.message for v in report.violations if v.policy == "LNK-007-endpoint-reachable"]
    assert messages and any("anywhere (endpoint audience internet)" in m for m in messages), messages


@pytest.mark.parametrize("example,endpoint,field,reason", [
    ("fine-tuned", INTERNET, "endpoint.audience", "needs the public network variant"),
    ("tiered-sensitivity", INTERNET, "endpoint.audience", "needs the public network variant"),
    ("startup-api", {"audience": "internet", "public_zone": "Z0123456789ABCDEFGHIJ"}, "endpoint.domain", "public name"),
    ("startup-api", {"audience": "internet", "domain": "llm.example.com"}, "endpoint.public_zone", "public DNS zone"),
    ("startup-api", {"domain": "llm.example.com"}, "endpoint.domain", "audience internet only"),
    ("startup-api", {**INTERNET, "allowed_cidrs": ["203.0.113.7/24"]}, "endpoint.allowed_cidrs[0]", "IPv4 CIDR"),
    ("eu-residency-api", {"certificate_authority_arn": ORG_CA}, "endpoint.certificate_authority_arn", "AWS Private CA"),
    ("startup-api", {"certificate_authority_arn": ORG_CA.replace("us-east-1", "eu-west-1")},
     "endpoint.certificate_authority_arn", "stack's region us-east-1"),
])
def test_an_endpoint_the_stack_cannot_serve_is_refused_naming_the_profile_field(cli, project, tmp_path, example,
                                                                                 endpoint, field, reason):
    data = yaml.safe_load((ROOT / "stacks/profiles" / f"{example}.yaml").read_text())
    data["endpoint"] = endpoint
    path = tmp_path / f"{example}.yaml"
    path.write_text(yaml.safe_dump(data))
    before = (project / "stacks" / f"Pulumi.{example}.yaml").read_text()
    result = cli("plan", str(path), "--stack", example, "--force", "--project-dir", str(project))
    assert result.exit_code == 2, result.stdout
    assert field in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (project / "stacks" / f"Pulumi.{example}.yaml").read_text() == before  # nothing written


def test_confidential_data_is_never_served_to_the_internet(project):
    """A hand edit cannot do what the planner refuses: confidential stacks run on a private network, and an internet
    audience needs the public one. Nothing is registered."""
    edit_stack(project, "tiered-sensitivity", set_section(
        "endpoint", audience="internet", domain="llm.example.com", publicZone="Z0123456789ABCDEFGHIJ"))
    with pytest.raises(Exception) as info:
        run_preview(project, "tiered-sensitivity")
    assert "endpoint.audience" in str(info.value) and "needs the public network variant" in str(info.value)
    if isinstance(info.value, ProgramRefused):
        assert info.value.registered == 0


def test_an_organisation_ca_replaces_the_stacks_own(project):
    """About USD 400 a month per stack saved: no CA of the stack's own, the certificate issued from the shared one,
    and clients trust the organisation's root they already have."""
    edit_stack(project, "healthcare-hipaa", set_section("endpoint", certificateAuthorityArn=ORG_CA))
    result = run_preview(project, "healthcare-hipaa")
    assert not result.by_type("aws:acmpca/certificateAuthority:CertificateAuthority")
    [cert] = result.by_type("aws:acm/certificate:Certificate")
    assert cert.inputs["certificateAuthorityArn"] == ORG_CA
    assert cert.inputs["domainName"] == "healthcare-hipaa.llm.internal"
    assert result.outputs["ca_certificate"]


def test_the_serverless_gateways_pin_the_key_version_the_consumer_keys_wrote():
    """ECS resolves `valueFrom` and Cloud Run a secret variable only for a new task or revision: each pins the version
    of the consumer's secret that the stack just wrote, so rotating one key (its `rotation`) changes that pin alone and
    `pulumi up` rolls the gateway onto the new key; the other consumers' pins stay as they were."""
    aws = run_preview(ROOT, "healthcare-hipaa")
    [task] = aws.by_type("aws:ecs/taskDefinition:TaskDefinition")
    secrets = {s["name"]: s["valueFrom"] for s in json.loads(task.inputs["containerDefinitions"])[0]["secrets"]}
    [secret] = [r for r in aws.by_type("aws:secretsmanager/secret:Secret") if r.name == "consumer-keys-app"]
    arn, json_key, stage, version_id = secrets["LLMHOST_CONSUMER_APP_KEY"].rsplit(":", 3)
    assert arn.split(":secret:")[1].startswith(secret.inputs["name"] + "-")
    assert (json_key, stage) == ("api_key", "") and version_id  # the version written, not "whatever is current"
    gcp = run_preview(ROOT, "us-vertex-support")
    [svc] = gcp.by_type("gcp:cloudrunv2/service:Service")
    refs = {e["name"]: e["valueSource"]["secretKeyRef"] for e in svc.inputs["template"]["containers"][0]["envs"]
            if e.get("valueSource")}
    assert refs["LLMHOST_CONSUMER_APP_KEY"]["secret"].endswith("/secrets/llm-hosting-us-vertex-support-consumer-app")
    assert refs["LLMHOST_CONSUMER_APP_KEY"]["version"] not in ("", "latest")


def test_a_pinned_key_version_is_what_the_task_definition_reads():
    from serving.gateway_ecs import container_definition

    class Args:
        image, region = "ghcr.io/berriai/litellm:main-v1.106.2", "us-east-1"
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:llm-hosting/s/consumers/app-abcdef"
    pinned = container_definition(Args, {"model_list": []}, "g", "m", {}, {"app": arn}, {"app": "v-2"})
    current = container_definition(Args, {"model_list": []}, "g", "m", {}, {"app": arn})
    assert [s["valueFrom"] for s in pinned["secrets"]][1] == arn + ":api_key::v-2"
    assert [s["valueFrom"] for s in current["secrets"]][1] == arn + ":api_key::"


def test_the_report_prices_the_front_door_the_totals_leave_out(cli, project, tmp_path):
    """List prices from the catalog's front_door section: the ALB's hours and one LCU ((0.0225 + 0.008) x 720 = $22),
    two Fargate tasks of 1 vCPU and 2 GB (2 x (0.04048 + 2 x 0.004445) x 720 = $71), and the stack's private CA ($400)
    unless the organisation's CA issues the certificate."""
    report = (ROOT / "stacks/startup-api.decision.md").read_text()
    section = report.split("## Front door", 1)[1].split("\n## ", 1)[0]
    assert "https://startup-api.llm.internal/v1" in section and "gateway on ECS on Fargate" in section
    assert "internal ALB $22" in section and "2 Fargate tasks of 1 vCPU and 2 GB $71" in section
    assert "AWS Private CA $400" in section
    _plan(cli, project, tmp_path, "startup-api", {"certificate_authority_arn": ORG_CA})
    section = (project / "stacks/startup-api.decision.md").read_text().split("## Front door", 1)[1].split("\n## ", 1)[0]
    assert "Private CA" not in section and "internal ALB $22" in section
    gcp = (ROOT / "stacks/us-vertex-support.decision.md").read_text().split("## Front door", 1)[1].split("\n## ", 1)[0]
    # 2 x (2 vCPU x 0.000018 + 2 GiB x 0.000002) x 3600 x 720 = $207.36
    assert "2 always-on Cloud Run instances of 2 vCPU and 2 GiB $207" in gcp and "gateway on Cloud Run" in gcp
    cluster = (ROOT / "stacks/realtime-captions.decision.md").read_text().split("## Front door", 1)[1]
    assert "gateway on the cluster" in cluster and "Cloud Run" not in cluster.split("\n## ", 1)[0]


def test_the_fargate_gateway_of_a_managed_hybrid_keeps_regulated_traffic_on_the_endpoint():
    """The rendered config the ECS task unpacks: `llm-sensitive` reaches only this stack's SageMaker endpoint, in the
    stack's region, and the guard that refuses request-level fallbacks is loaded; `llm` goes to the API first."""
    import base64
    import gzip

    from serving.gateway_config import (CONFIG_FILE, FILES_ENV, GUARD_FILE, SENSITIVE_MODEL,
                                        assert_no_third_party_route)

    result = run_preview(ROOT, "tiered-managed-hybrid")
    [task] = result.by_type("aws:ecs/taskDefinition:TaskDefinition")
    env = {e["name"]: e["value"] for e in json.loads(task.inputs["containerDefinitions"])[0]["environment"]}
    files = json.loads(gzip.decompress(base64.b64decode(env[FILES_ENV])))
    config = yaml.safe_load(files[CONFIG_FILE])
    [endpoint] = result.by_type("aws:sagemaker/endpoint:Endpoint")
    sensitive = [m["litellm_params"] for m in config["model_list"] if m["model_name"] == SENSITIVE_MODEL]
    assert sensitive == [{**sensitive[0], "model": f"sagemaker_chat/{endpoint.inputs['name']}",
                          "aws_region_name": "us-east-1"}]
    third_party = [m["model_name"] for m in config["model_list"] if m.get("model_info", {}).get("third_party")]
    assert third_party  # the API is there, for the public share
    assert_no_third_party_route(config, SENSITIVE_MODEL, third_party)
    assert GUARD_FILE in files
    assert result.outputs["endpoint_url"] == "https://tiered-managed-hybrid.llm.internal/v1"
