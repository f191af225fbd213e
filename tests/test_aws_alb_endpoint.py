"""AwsAlbEndpoint: the internal ALB, private-CA certificate and private DNS name in front of a gateway on ECS.

Built under the offline preview mocks together with the stack's AwsNetwork, so the links are checked end to end: the
ALB sits in the network's private subnets, admits the network's CIDR only, sends only to the target port inside the
VPC, and its zone is associated with the network's VPC. The load balancer and the listener are also held to the
policy pack's own rules (BND-003 internal load balancers, ENC-009 TLS listeners) for a regulated stack. The
internet-facing mode is built in a `public` network: its ALB in the public subnets, its DNS-validated public
certificate and alias in the team's public zone, no private CA or zone.
"""

from __future__ import annotations

import pulumi
import pytest

from components.aws_alb_endpoint import DEREGISTRATION_DELAY_SECONDS, AwsAlbEndpoint, AwsAlbEndpointArgs
from components.aws_network import AwsNetwork, AwsNetworkArgs
from components.aws_private_endpoint import (HTTPS_PORT, IDLE_TIMEOUT_SECONDS, SSL_POLICY, AwsPrivateEndpointArgs,
                                             alb_name)
from policies.engine import check_resource
from preview.harness import UNKNOWN, run_program
from preview.mocks import PreviewMocks

REGION = "eu-central-1"
ORG_CA = "arn:aws:acm-pca:eu-central-1:210987654321:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ORG_CA_PEM = "-----BEGIN CERTIFICATE-----\norg-issuing-ca\n-----END CERTIFICATE-----"
ORG_ROOT_PEM = "-----BEGIN CERTIFICATE-----\norg-root-ca\n-----END CERTIFICATE-----"
ALB_DNS = "internal-llm-hosting-test-1234567890.eu-central-1.elb.amazonaws.com"
ALB_ZONE = "Z215JYRZR1TBD5"  # the ALB's own hosted zone in eu-central-1
# The CNAME ACM asks for to validate a public certificate for DOMAIN (ACM names it; the stack writes it).
DOMAIN = "llm.example.com"
PUBLIC_ZONE = "Z0123456789ABCDEFGHIJ"
ACM_VALIDATION = {"resourceRecordName": f"_3f1e2d.{DOMAIN}.", "resourceRecordType": "CNAME",
                  "resourceRecordValue": "_9a8b7c.zfyfvmchrl.acm-validations.aws."}
OUTPUTS = ("url", "dns_name", "load_balancer_arn", "listener_arn", "target_group_arn", "security_group_id",
           "zone_id", "certificate_arn", "ca_certificate")


@pytest.fixture(autouse=True)
def cloud_answers(monkeypatch):
    """What AWS would answer that the shared preview mocks leave unknown: the ALB's DNS name and hosted zone (so the
    alias can be compared with them) and the organisation's CA (a subordinate, so it has a chain)."""
    new_resource, call = PreviewMocks.new_resource, PreviewMocks.call

    def answer_resource(self, args):
        rid, state = new_resource(self, args)
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state = {**state, "dnsName": ALB_DNS, "zoneId": ALB_ZONE}
        if args.typ == "aws:acm/certificate:Certificate" and state.get("validationMethod") == "DNS":
            state = {**state, "domainValidationOptions": [{"domainName": state["domainName"], **ACM_VALIDATION}]}
        if args.typ == "aws:route53/record:Record":
            state = {**state, "fqdn": str(state["name"]).rstrip(".")}
        return rid, state

    def answer_call(self, args):
        if args.token == "aws:acmpca/getCertificateAuthority:getCertificateAuthority":
            assert args.args["arn"] == ORG_CA, "the CA is read by the ARN the stack was given"
            return {"arn": ORG_CA, "id": ORG_CA, "certificate": ORG_CA_PEM, "certificateChain": ORG_ROOT_PEM,
                    "type": "SUBORDINATE", "usageMode": "GENERAL_PURPOSE", "status": "ACTIVE"}, []
        return call(self, args)

    monkeypatch.setattr(PreviewMocks, "new_resource", answer_resource)
    monkeypatch.setattr(PreviewMocks, "call", answer_call)


def args(network=None, **overrides) -> AwsAlbEndpointArgs:
    base = dict(stack="test", region=REGION,
                vpc_id=network.vpc_id if network else "vpc-0123", vpc_cidr=network.vpc_cidr if network else "10.0.0.0/16",
                subnet_ids=network.private_subnet_ids if network else ["subnet-a", "subnet-b", "subnet-c"],
                client_cidrs=[network.vpc_cidr] if network else ["10.0.0.0/16"], tags={"team": "ml"})
    return AwsAlbEndpointArgs(**{**base, **overrides})


def build(variant: str = "private", **overrides):
    def program():
        network = AwsNetwork("network", AwsNetworkArgs(stack="test", variant=variant, region=REGION, protect=False))
        endpoint = AwsAlbEndpoint("endpoint", args(network, **overrides))
        for key in OUTPUTS:
            pulumi.export(key, getattr(endpoint, key))
        for key in ("private_subnet_ids", "public_subnet_ids", "vpc_id", "vpc_cidr"):
            pulumi.export(f"network_{key}", getattr(network, key))

    return run_program(program, "llm-hosting", "test", {"aws:region": REGION})


def one(result, type_: str):
    rows = result.by_type(type_)
    assert len(rows) == 1, f"expected one {type_}, got {[r.name for r in rows]}"
    return rows[0]


def listener(result):
    return one(result, "aws:lb/listener:Listener")


def security_group(result):
    return result.named("endpoint-sg")  # the network has its own groups


def load_balancer(result):
    return one(result, "aws:lb/loadBalancer:LoadBalancer")


# -- what a client sees ------------------------------------------------------------------------------------------------

def test_outputs_name_the_endpoint_and_the_parts_the_ecs_service_attaches_to():
    r = build()
    out = r.outputs
    assert out["url"] == "https://test.llm.internal/v1"
    assert out["dns_name"] == "test.llm.internal"
    assert out["certificate_arn"].startswith(f"arn:aws:acm:{REGION}:")
    assert out["security_group_id"].startswith("sg-")
    assert out["target_group_arn"] == one(r, "aws:lb/listenerRule:ListenerRule").inputs["actions"][0]["targetGroupArn"]
    assert out["listener_arn"] == one(r, "aws:lb/listenerRule:ListenerRule").inputs["listenerArn"]
    assert out["load_balancer_arn"] == listener(r).inputs["loadBalancerArn"]
    # The stack's own root CA signs itself only at `pulumi up`: unknown in a preview, never a crash.
    assert out["ca_certificate"] == UNKNOWN
    assert all(r.named(n).parent == "endpoint" for n in ("endpoint-alb", "endpoint-sg", "endpoint-zone", "endpoint-ca"))


def test_the_only_listener_is_https_443_with_the_tls_policy_and_the_endpoints_certificate():
    r = build()
    (only,) = r.by_type("aws:lb/listener:Listener")  # no port 80, not even a redirect
    li = only.inputs
    assert (li["protocol"], li["port"]) == ("HTTPS", HTTPS_PORT) == ("HTTPS", 443)
    assert li["sslPolicy"] == SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert li["certificateArn"] == r.outputs["certificate_arn"]
    assert one(r, "aws:acm/certificate:Certificate").inputs["domainName"] == "test.llm.internal"


def test_only_the_endpoints_host_reaches_the_gateway_anything_else_gets_404():
    r = build()
    (default,) = listener(r).inputs["defaultActions"]
    assert default["type"] == "fixed-response" and default["fixedResponse"]["statusCode"] == "404"
    (rule,) = r.by_type("aws:lb/listenerRule:ListenerRule")
    assert rule.inputs["conditions"] == [{"hostHeader": {"values": ["test.llm.internal"]}}]
    (action,) = rule.inputs["actions"]
    assert action["type"] == "forward"
    assert action["targetGroupArn"] == r.outputs["target_group_arn"]


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_the_alb_is_internal_in_the_private_subnets_with_deletion_protection(variant):
    r = build(variant)
    lb = load_balancer(r).inputs
    assert lb["internal"] is True and lb["loadBalancerType"] == "application"
    assert lb["subnets"] == r.outputs["network_private_subnet_ids"]
    assert not set(lb["subnets"]) & set(r.outputs["network_public_subnet_ids"])
    assert lb["securityGroups"] == [r.outputs["security_group_id"]]
    assert lb["enableDeletionProtection"] is True
    assert lb["dropInvalidHeaderFields"] is True
    assert lb["idleTimeout"] == IDLE_TIMEOUT_SECONDS == 600
    assert lb["name"] == alb_name("test")


def test_protect_false_lifts_the_deletion_protection_and_the_ca_protection():
    r = build(protect=False)
    assert load_balancer(r).inputs["enableDeletionProtection"] is False
    assert "protect" not in one(r, "aws:acmpca/certificateAuthority:CertificateAuthority").options


def test_the_target_group_takes_task_ips_on_the_gateway_port_and_checks_its_health():
    r = build(target_port=8080, health_path="/health/readiness")
    tg = one(r, "aws:lb/targetGroup:TargetGroup").inputs
    assert (tg["targetType"], tg["protocol"], tg["port"]) == ("ip", "HTTP", 8080)
    assert tg["vpcId"] == r.outputs["network_vpc_id"]
    assert tg["deregistrationDelay"] == DEREGISTRATION_DELAY_SECONDS == 30
    health = tg["healthCheck"]
    assert (health["path"], health["matcher"], health["port"]) == ("/health/readiness", "200", "traffic-port")
    egress = security_group(r).inputs["egress"]
    assert [(e["fromPort"], e["toPort"]) for e in egress] == [(8080, 8080)], "the ALB may reach the new port only"


# -- the security group ------------------------------------------------------------------------------------------------

def test_the_security_group_admits_only_the_clients_on_443_and_sends_only_to_the_target_port_in_the_vpc():
    r = build(client_cidrs=["10.0.0.0/16", "172.16.8.0/24"])
    sg = security_group(r).inputs
    assert sg["vpcId"] == r.outputs["network_vpc_id"]
    assert [(i["protocol"], i["fromPort"], i["toPort"], i["cidrBlocks"]) for i in sg["ingress"]] == [
        ("tcp", 443, 443, ["10.0.0.0/16", "172.16.8.0/24"])]
    assert not any(i.get("ipv6CidrBlocks") or i.get("securityGroups") or i.get("self") for i in sg["ingress"])
    assert [(e["protocol"], e["fromPort"], e["toPort"], e["cidrBlocks"]) for e in sg["egress"]] == [
        ("tcp", 4000, 4000, [r.outputs["network_vpc_cidr"]])]


def test_the_clients_are_the_networks_cidr_handed_on_not_retyped():
    r = build()
    (rule,) = security_group(r).inputs["ingress"]
    assert rule["cidrBlocks"] == [r.outputs["network_vpc_cidr"]] == ["10.0.0.0/16"]


# -- private DNS ---------------------------------------------------------------------------------------------------------

def test_the_zone_is_private_to_the_stacks_vpc_and_the_record_aliases_the_alb():
    r = build()
    zone = one(r, "aws:route53/zone:Zone")
    assert zone.inputs["name"] == "llm.internal"
    assert zone.inputs["vpcs"] == [{"vpcId": r.outputs["network_vpc_id"], "vpcRegion": REGION}]
    record = one(r, "aws:route53/record:Record")
    assert record.inputs["name"] == "test.llm.internal" == r.outputs["dns_name"] and record.inputs["type"] == "A"
    assert "records" not in record.inputs and "ttl" not in record.inputs, "an alias record, not a CNAME-style value"
    assert record.inputs["aliases"] == [{"name": ALB_DNS, "zoneId": ALB_ZONE, "evaluateTargetHealth": True}]
    assert load_balancer(r).urn in record.dependencies
    assert zone.urn in record.dependencies


def test_zone_name_is_an_argument():
    r = build(zone_name="ai.corp.internal", stack="prod-eu")
    assert one(r, "aws:route53/zone:Zone").inputs["name"] == "ai.corp.internal"
    assert one(r, "aws:acm/certificate:Certificate").inputs["domainName"] == "prod-eu.ai.corp.internal"
    assert one(r, "aws:route53/record:Record").inputs["name"] == "prod-eu.ai.corp.internal"
    assert one(r, "aws:lb/listenerRule:ListenerRule").inputs["conditions"][0]["hostHeader"]["values"] == [
        "prod-eu.ai.corp.internal"]
    assert r.outputs["url"] == "https://prod-eu.ai.corp.internal/v1"


# -- the certificate -----------------------------------------------------------------------------------------------------

def test_by_default_the_stack_makes_its_own_active_general_purpose_root_ca():
    r = build()
    ca = one(r, "aws:acmpca/certificateAuthority:CertificateAuthority")
    assert (ca.inputs["type"], ca.inputs["usageMode"]) == ("ROOT", "GENERAL_PURPOSE")
    assert ca.options.get("protect") is True
    cert = one(r, "aws:acm/certificate:Certificate")
    assert cert.inputs["certificateAuthorityArn"] == one(r, "aws:acmpca/permission:Permission").inputs[
        "certificateAuthorityArn"]
    activation = one(r, "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate")
    assert activation.urn in cert.dependencies


def test_an_organisations_ca_is_reused_and_no_ca_is_created():
    r = build(certificate_authority_arn=ORG_CA)
    assert not [x.name for x in r.resources if x.type.startswith("aws:acmpca/")], "no CA, root, activation, permission"
    cert = one(r, "aws:acm/certificate:Certificate").inputs
    assert cert["certificateAuthorityArn"] == ORG_CA
    assert cert["domainName"] == "test.llm.internal"
    assert listener(r).inputs["certificateArn"] == r.outputs["certificate_arn"]
    # Clients get the issuing CA and its chain up to the organisation's root.
    assert r.outputs["ca_certificate"] == f"{ORG_CA_PEM}\n{ORG_ROOT_PEM}\n"


def test_the_eks_endpoint_reuses_an_organisations_ca_the_same_way():
    from components.aws_private_endpoint import AwsPrivateEndpoint

    def program():
        endpoint = AwsPrivateEndpoint("endpoint", AwsPrivateEndpointArgs(
            stack="test", cluster_name="llm-hosting-test", region=REGION, vpc_id="vpc-0123",
            subnet_ids=["subnet-a", "subnet-b"], client_cidrs=["10.0.0.0/16"],
            node_selector={"llm-hosting/pool": "system"}, certificate_authority_arn=ORG_CA))
        pulumi.export("ca_certificate", endpoint.ca_certificate)

    r = run_program(program, "llm-hosting", "test", {"aws:region": REGION})
    assert not [x.name for x in r.resources if x.type.startswith("aws:acmpca/")]
    assert one(r, "aws:acm/certificate:Certificate").inputs["certificateAuthorityArn"] == ORG_CA
    assert r.outputs["ca_certificate"] == f"{ORG_CA_PEM}\n{ORG_ROOT_PEM}\n"


# -- the policy pack's own view ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy,type_,config,broken", [
    ("BND-003-no-public-load-balancer", "aws:lb/loadBalancer:LoadBalancer", {"classification": "regulated"},
     {"internal": False}),
    ("ENC-009-tls-listeners", "aws:lb/listener:Listener", {}, {"protocol": "HTTP", "port": 80}),
])
def test_the_policy_pack_passes_the_load_balancer_and_the_listener(policy, type_, config, broken):
    props = one(build(), type_).inputs
    result = check_resource(policy, type_, props, config)
    assert not result.violations and not result.not_applicable
    assert check_resource(policy, type_, {**props, **broken}, config).violations, "the rule must catch the broken one"


# -- arguments -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,field", [
    ({"stack": "Prod_EU"}, "stack"),
    ({"zone_name": "internal"}, "zone_name"),
    ({"zone_name": "llm..internal"}, "zone_name"),
    ({"zone_name": "a" * 60 + ".internal"}, "zone_name"),
    ({"client_cidrs": []}, "client_cidrs"),
    ({"client_cidrs": ["10.0.0.0/33"]}, "client_cidrs"),
    ({"client_cidrs": ["10.0.0.1/16"]}, "client_cidrs"),
    ({"client_cidrs": ["fd00::/8"]}, "client_cidrs"),
    ({"health_path": "health"}, "health_path"),
    ({"target_port": 0}, "target_port"),
    ({"target_port": 65536}, "target_port"),
    ({"certificate_authority_arn": "arn:aws:acm:eu-central-1:210987654321:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
     "certificate_authority_arn"),
    ({"certificate_authority_arn": "arn:aws:acm-pca:eu-central-1:2109876543:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
     "certificate_authority_arn"),
    ({"certificate_authority_arn": "arn:aws:acm-pca:eu-central-1:210987654321:certificate-authority/my-ca"},
     "certificate_authority_arn"),
    ({"certificate_authority_arn": ORG_CA.replace("eu-central-1", "us-east-1")}, "certificate_authority_arn"),
    ({"certificate_authority_arn": ""}, "certificate_authority_arn"),
])
def test_bad_arguments_are_refused_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        args(**overrides)


def test_a_component_name_too_long_for_the_target_group_is_refused_before_any_resource():
    def program():
        AwsAlbEndpoint("a-gateway-endpoint-name-too-long", args())

    with pytest.raises(Exception, match="name: 'a-gateway-endpoint-name-too-long' is too long"):
        run_program(program, "llm-hosting", "test", {"aws:region": REGION})
    name = "x" * 21  # the longest that fits: 21 + len("-tg") + 8 = 32
    r = run_program(lambda: AwsAlbEndpoint(name, args()), "llm-hosting", "test", {"aws:region": REGION})
    assert r.named(f"{name}-tg").type == "aws:lb/targetGroup:TargetGroup"


def test_a_ca_in_another_region_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="only from a CA in the certificate's own region"):
        args(certificate_authority_arn=ORG_CA.replace("eu-central-1", "us-east-1"))


@pytest.mark.parametrize("arn", [
    ORG_CA,
    "arn:aws-us-gov:acm-pca:us-gov-west-1:210987654321:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "arn:aws-cn:acm-pca:cn-north-1:210987654321:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
])
def test_ca_arns_of_every_partition_are_accepted(arn):
    region = arn.split(":")[3]
    assert args(region=region, certificate_authority_arn=arn).certificate_authority_arn == arn


def test_the_eks_endpoint_refuses_a_bad_ca_arn_naming_the_field():
    with pytest.raises(ValueError, match="^certificate_authority_arn"):
        AwsPrivateEndpointArgs(stack="test", cluster_name="c", region=REGION, vpc_id="vpc-0123", subnet_ids=["s"],
                               client_cidrs=["10.0.0.0/16"], node_selector={"a": "b"},
                               certificate_authority_arn="arn:aws:acm-pca:eu-central-1:1:certificate-authority/x")


# -- internet-facing -----------------------------------------------------------------------------------------------------

def build_internet(client_cidrs=("0.0.0.0/0",), **overrides):
    def program():
        network = AwsNetwork("network", AwsNetworkArgs(stack="test", variant="public", region=REGION, protect=False))
        endpoint = AwsAlbEndpoint("endpoint", args(
            network, internet_facing=True, domain=DOMAIN, public_zone_id=PUBLIC_ZONE,
            public_subnet_ids=network.public_subnet_ids, client_cidrs=list(client_cidrs), **overrides))
        for key in OUTPUTS:
            pulumi.export(key, getattr(endpoint, key))
        for key in ("private_subnet_ids", "public_subnet_ids", "vpc_id", "vpc_cidr"):
            pulumi.export(f"network_{key}", getattr(network, key))

    return run_program(program, "llm-hosting", "test", {"aws:region": REGION})


def validation_record(result):
    return result.named("endpoint-certificate-validation-record")


def alias_record(result):
    return result.named("endpoint-record")


def test_internet_facing_outputs_name_the_public_domain_and_hand_out_no_ca():
    out = build_internet().outputs
    assert out["url"] == f"https://{DOMAIN}/v1" == "https://llm.example.com/v1"
    assert out["dns_name"] == DOMAIN
    assert out["zone_id"] == PUBLIC_ZONE
    assert out["ca_certificate"] is None, "a publicly trusted certificate: clients need no CA of ours"


def test_internet_facing_alb_is_in_the_public_subnets_only_with_the_same_protections():
    r = build_internet()
    lb = load_balancer(r).inputs
    assert lb["internal"] is False and lb["loadBalancerType"] == "application"
    assert lb["subnets"] == r.outputs["network_public_subnet_ids"]
    assert not set(lb["subnets"]) & set(r.outputs["network_private_subnet_ids"])
    assert lb["enableDeletionProtection"] is True
    assert lb["dropInvalidHeaderFields"] is True
    assert lb["idleTimeout"] == IDLE_TIMEOUT_SECONDS
    assert lb["securityGroups"] == [r.outputs["security_group_id"]]


def test_internet_facing_makes_no_private_ca_and_no_private_zone():
    r = build_internet()
    assert not [x.name for x in r.resources if x.type.startswith("aws:acmpca/")]
    assert not r.by_type("aws:route53/zone:Zone")
    assert sorted((x.type, x.name) for x in r.resources if x.parent == "endpoint") == [
        ("aws:acm/certificate:Certificate", "endpoint-certificate"),
        ("aws:acm/certificateValidation:CertificateValidation", "endpoint-certificate-validation"),
        ("aws:ec2/securityGroup:SecurityGroup", "endpoint-sg"),
        ("aws:lb/listener:Listener", "endpoint-https"),
        ("aws:lb/listenerRule:ListenerRule", "endpoint-host"),
        ("aws:lb/loadBalancer:LoadBalancer", "endpoint-alb"),
        ("aws:lb/targetGroup:TargetGroup", "endpoint-tg"),
        ("aws:route53/record:Record", "endpoint-certificate-validation-record"),
        ("aws:route53/record:Record", "endpoint-record"),
    ]


def test_internet_facing_certificate_is_dns_validated_through_a_record_in_the_public_zone():
    r = build_internet()
    cert = one(r, "aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == DOMAIN and cert.inputs["validationMethod"] == "DNS"
    assert "certificateAuthorityArn" not in cert.inputs, "a public certificate, not a private CA's"
    record = validation_record(r)
    assert record.inputs["zoneId"] == PUBLIC_ZONE
    # Exactly the record ACM asked for.
    assert (record.inputs["name"], record.inputs["type"], record.inputs["records"]) == (
        ACM_VALIDATION["resourceRecordName"], "CNAME", [ACM_VALIDATION["resourceRecordValue"]])
    assert record.inputs["allowOverwrite"] is True
    assert cert.urn in record.dependencies
    validation = one(r, "aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["validationRecordFqdns"] == [ACM_VALIDATION["resourceRecordName"].rstrip(".")]
    assert record.urn in validation.dependencies and cert.urn in validation.dependencies


def test_internet_facing_listener_waits_for_the_validation_and_keeps_https_443_and_the_tls_policy():
    r = build_internet()
    (only,) = r.by_type("aws:lb/listener:Listener")
    li = only.inputs
    assert (li["protocol"], li["port"], li["sslPolicy"]) == ("HTTPS", 443, SSL_POLICY)
    validation = one(r, "aws:acm/certificateValidation:CertificateValidation")
    assert validation.urn in only.dependencies, "the listener is made only once ACM has issued the certificate"
    assert li["certificateArn"] == validation.inputs["certificateArn"] == r.outputs["certificate_arn"]
    (rule,) = r.by_type("aws:lb/listenerRule:ListenerRule")
    assert rule.inputs["conditions"] == [{"hostHeader": {"values": [DOMAIN]}}]
    assert li["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"


def test_internet_facing_alias_is_in_the_public_zone():
    r = build_internet()
    record = alias_record(r).inputs
    assert (record["zoneId"], record["name"], record["type"]) == (PUBLIC_ZONE, DOMAIN, "A")
    assert record["aliases"] == [{"name": ALB_DNS, "zoneId": ALB_ZONE, "evaluateTargetHealth": True}]
    assert "allowOverwrite" not in record, "the alias never takes over a record someone else made"


@pytest.mark.parametrize("cidrs", [("0.0.0.0/0",), ("198.51.100.0/24", "203.0.113.0/24")])
def test_internet_facing_admits_the_client_cidrs_on_443_only(cidrs):
    sg = security_group(build_internet(client_cidrs=cidrs)).inputs
    assert [(i["protocol"], i["fromPort"], i["toPort"], i["cidrBlocks"]) for i in sg["ingress"]] == [
        ("tcp", 443, 443, list(cidrs))]
    assert [(e["fromPort"], e["toPort"]) for e in sg["egress"]] == [(4000, 4000)]
    assert "internet-facing" in sg["description"]


def test_the_policy_pack_passes_the_internet_facing_listener_and_bnd003_still_guards_regulated_stacks():
    r = build_internet()
    props = listener(r).inputs
    result = check_resource("ENC-009-tls-listeners", "aws:lb/listener:Listener", props, {})
    assert not result.violations and not result.not_applicable
    lb = load_balancer(r).inputs
    # Internet-facing is for stacks whose data is neither confidential nor regulated: the pack says so for the others.
    assert check_resource("BND-003-no-public-load-balancer", "aws:lb/loadBalancer:LoadBalancer", lb,
                          {"classification": "regulated"}).violations


def test_private_mode_is_unchanged_by_the_internet_facing_fields():
    r = build()
    assert load_balancer(r).inputs["internal"] is True
    assert not r.by_type("aws:acm/certificateValidation:CertificateValidation")
    assert "validationMethod" not in one(r, "aws:acm/certificate:Certificate").inputs


INTERNET = dict(internet_facing=True, domain=DOMAIN, public_zone_id=PUBLIC_ZONE,
                public_subnet_ids=["subnet-pub-a", "subnet-pub-b"], client_cidrs=["0.0.0.0/0"])


def internet_args(**overrides) -> AwsAlbEndpointArgs:
    return args(**{**INTERNET, **overrides})


def test_internet_facing_args_are_accepted_with_named_or_any_cidrs():
    assert internet_args().domain == DOMAIN
    assert internet_args(client_cidrs=["198.51.100.0/24"]).client_cidrs == ["198.51.100.0/24"]
    assert internet_args(domain="a.b.c.example.co.uk").domain == "a.b.c.example.co.uk"


BAD_INTERNET = [
    ({"domain": DOMAIN}, "domain", "only an internet-facing endpoint"),
    ({"public_zone_id": PUBLIC_ZONE}, "public_zone_id", "only an internet-facing endpoint"),
    ({"public_subnet_ids": ["subnet-pub-a"]}, "public_subnet_ids", "only an internet-facing endpoint"),
    ({**INTERNET, "domain": None}, "domain", "needs the public DNS name"),
    ({**INTERNET, "public_zone_id": None}, "public_zone_id", "public hosted zone"),
    ({**INTERNET, "public_subnet_ids": None}, "public_subnet_ids", "public subnets"),
    ({**INTERNET, "public_subnet_ids": []}, "public_subnet_ids", "public subnets"),
    ({**INTERNET, "public_subnet_ids": ["subnet-a"]}, "public_subnet_ids", "also in subnet_ids"),
    ({**INTERNET, "domain": "example"}, "domain", "two or more labels"),
    ({**INTERNET, "domain": "LLM.Example.com"}, "domain", "lower-case"),
    ({**INTERNET, "domain": "llm.example.com."}, "domain", "trailing dot"),
    ({**INTERNET, "domain": "*.example.com"}, "domain", "two or more labels"),
    ({**INTERNET, "domain": "10.0.0.1"}, "domain", "two or more labels"),
    ({**INTERNET, "domain": "llm-.example.com"}, "domain", "two or more labels"),
    ({**INTERNET, "domain": "a" * 55 + ".example.com"}, "domain", "64 characters"),
    ({**INTERNET, "domain": "llm.internal"}, "domain", "special-use"),
    ({**INTERNET, "public_zone_id": "/hostedzone/Z0123456789ABCDEFGHIJ"}, "public_zone_id", "hosted zone id"),
    ({**INTERNET, "public_zone_id": "z0123"}, "public_zone_id", "hosted zone id"),
    ({**INTERNET, "certificate_authority_arn": ORG_CA}, "certificate_authority_arn", "publicly trusted"),
    ({**INTERNET, "internet_facing": "yes"}, "internet_facing", "True or False"),
]


@pytest.mark.parametrize("overrides,field,reason", BAD_INTERNET)
def test_bad_internet_facing_combinations_are_refused_naming_the_field(overrides, field, reason):
    with pytest.raises(ValueError, match=f"^{field}: ") as refused:
        args(**overrides)
    assert reason in str(refused.value)
