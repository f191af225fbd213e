"""AwsPrivateEndpoint: the internal ALB, private-CA certificate and private DNS name in front of the gateway.

Built under the offline preview mocks together with the stack's AwsNetwork, so the links are checked end to end: the
ALB's subnets are the network's private subnets (tagged for internal load balancers), the zone is associated with the
network's VPC, the certificate names the record's name, the controller's service account is the one the Pod
Identity role is bound to. The chart values are held to the chart's values.yaml, the Ingress to Kubernetes 1.33's
schema (kubernetes-validate, strict) and the IngressClassParams to the controller's CRD. The internet-facing mode
is built in a `public` network: the Ingress, the class and the chart's default scheme internet-facing, the ALB in the
public subnets, a DNS-validated public certificate and the alias in the team's public zone, no private CA or zone.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache

import pulumi
import pytest

from components import aws_private_endpoint as ape
from components.aws_network import DEFAULT_INTERFACE_ENDPOINTS, AwsNetwork, AwsNetworkArgs
from components.aws_private_endpoint import (CONTROLLER_AWS_APIS, SSL_POLICY, AwsPrivateEndpoint,
                                             AwsPrivateEndpointArgs, alb_name, controller_statements)
from policies.engine import check_resource
from preview.harness import UNKNOWN, run_program
import test_charts
from crd_schemas import validate_custom_resource
from tools import ToolInstallError, tool_bin

REGION = "eu-central-1"
MIRROR = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-hosting"
CLUSTER = "llm-hosting-test"
SYSTEM = {"llm-hosting/pool": "system"}
PREFIX = "alb.ingress.kubernetes.io"


def args(network=None, **overrides) -> AwsPrivateEndpointArgs:
    base = dict(stack="test", cluster_name=CLUSTER, region=REGION,
                vpc_id=network.vpc_id if network else "vpc-0123",
                subnet_ids=network.private_subnet_ids if network else ["subnet-a", "subnet-b", "subnet-c"],
                client_cidrs=[network.vpc_cidr] if network else ["10.0.0.0/16"], node_selector=SYSTEM, tags={"team": "ml"})
    return AwsPrivateEndpointArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def build(variant: str = "private", registry: str | None = None):
    def program():
        network = AwsNetwork("network", AwsNetworkArgs(stack="test", variant=variant, region=REGION, protect=False))
        endpoint = AwsPrivateEndpoint("endpoint", args(network, registry=registry))
        for key in ("url", "dns_name", "zone_id", "certificate_arn", "ca_certificate", "load_balancer_hostname"):
            pulumi.export(key, getattr(endpoint, key))
        for key in ("private_subnet_ids", "public_subnet_ids", "vpc_id"):
            pulumi.export(f"network_{key}", getattr(network, key))

    return run_program(program, "llm-hosting", "test", {"aws:region": REGION})


def one(result, type_: str):
    rows = result.by_type(type_)
    assert len(rows) == 1, f"expected one {type_}, got {[r.name for r in rows]}"
    return rows[0]


def ingress(result) -> dict:
    return one(result, "kubernetes:networking.k8s.io/v1:Ingress").inputs


def annotations(result) -> dict:
    return ingress(result)["metadata"]["annotations"]


def statements(result) -> list[dict]:
    (policy,) = [r.inputs["policy"] for r in result.by_type("aws:iam/rolePolicy:RolePolicy")
                 if r.name == "endpoint-controller-identity-policy"]
    return json.loads(policy)["Statement"]


# -- the endpoint a client sees --------------------------------------------------------------------------------------

def test_outputs_name_the_endpoint_and_what_the_cloud_assigns_stays_unknown():
    out = build().outputs
    assert out["url"] == "https://test.llm.internal/v1"
    assert out["dns_name"] == "test.llm.internal"
    assert out["certificate_arn"].startswith(f"arn:aws:acm:{REGION}:")
    # The ALB exists only once the controller has run: in a preview its name and zone are unknown, never a crash.
    assert out["load_balancer_hostname"] == UNKNOWN
    assert out["ca_certificate"] == UNKNOWN


def test_the_zone_is_private_to_the_stacks_vpc_and_the_record_aliases_the_alb():
    r = build()
    zone = one(r, "aws:route53/zone:Zone").inputs
    assert zone["name"] == "llm.internal"
    assert len(zone["vpcs"]) == 1 and zone["vpcs"][0]["vpcRegion"] == REGION
    assert zone["vpcs"][0]["vpcId"] == r.outputs["network_vpc_id"]
    record = one(r, "aws:route53/record:Record").inputs
    assert record["name"] == "test.llm.internal" and record["type"] == "A"
    assert "records" not in record and "ttl" not in record, "an alias record, not a CNAME-style value"
    (alias,) = record["aliases"]
    assert alias["evaluateTargetHealth"] is True
    assert alias["name"] == UNKNOWN and alias["zoneId"] == UNKNOWN


def test_zone_name_is_an_argument():
    def program():
        AwsPrivateEndpoint("endpoint", args(zone_name="ai.corp.internal", stack="prod-eu"))

    r = run_program(program, "llm-hosting", "test", {"aws:region": REGION})
    assert one(r, "aws:route53/zone:Zone").inputs["name"] == "ai.corp.internal"
    assert one(r, "aws:acm/certificate:Certificate").inputs["domainName"] == "prod-eu.ai.corp.internal"
    assert ingress(r)["spec"]["rules"][0]["host"] == "prod-eu.ai.corp.internal"


# -- the certificate ---------------------------------------------------------------------------------------------------

def test_the_certificate_comes_from_an_active_general_purpose_root_ca_and_names_the_endpoint():
    r = build()
    ca = one(r, "aws:acmpca/certificateAuthority:CertificateAuthority")
    assert ca.inputs["type"] == "ROOT"
    assert ca.inputs["usageMode"] == "GENERAL_PURPOSE", "ACM cannot issue from a short-lived-mode CA"
    assert ca.options.get("protect") is True
    root = one(r, "aws:acmpca/certificate:Certificate").inputs
    assert root["templateArn"] == "arn:aws:acm-pca:::template/RootCACertificate/V1"
    activation = one(r, "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate")
    permission = one(r, "aws:acmpca/permission:Permission").inputs
    assert permission["principal"] == "acm.amazonaws.com" and "IssueCertificate" in permission["actions"]
    cert = one(r, "aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == "test.llm.internal"
    assert cert.inputs["certificateAuthorityArn"] == ca.inputs.get("arn", cert.inputs["certificateAuthorityArn"])
    assert "validationMethod" not in cert.inputs, "a private certificate has no DNS/email validation"
    # Requested only once the CA is active and ACM may renew it.
    permission_urn = one(r, "aws:acmpca/permission:Permission").urn
    assert activation.urn in cert.dependencies and permission_urn in cert.dependencies
    assert annotations(r)[f"{PREFIX}/certificate-arn"] == build().outputs["certificate_arn"]


def test_the_endpoints_own_resources_keep_their_names():
    # A resource's URN is its type, its name and its parents' types: a rename or a new parent would make `pulumi up`
    # replace it, and replacing the CA invalidates every certificate clients trust. The CA, certificate and zone are
    # made by components/aws_private_ca.py, still as children of this endpoint under these names.
    r = build()
    assert sorted((x.type, x.name) for x in r.resources if x.parent == "endpoint") == [
        ("aws:acm/certificate:Certificate", "endpoint-certificate"),
        ("aws:acmpca/certificate:Certificate", "endpoint-ca-root"),
        ("aws:acmpca/certificateAuthority:CertificateAuthority", "endpoint-ca"),
        ("aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate", "endpoint-ca-activation"),
        ("aws:acmpca/permission:Permission", "endpoint-ca-acm-renewal"),
        ("aws:route53/record:Record", "endpoint-record"),
        ("aws:route53/zone:Zone", "endpoint-zone"),
        ("kubernetes:helm.sh/v3:Release", "endpoint-controller"),
        ("kubernetes:networking.k8s.io/v1:Ingress", "endpoint-ingress"),
        ("llmhost:index:EksPodIdentity", "endpoint-controller-identity"),
    ]
    assert one(r, "aws:acmpca/certificateAuthority:CertificateAuthority").urn == (
        "urn:pulumi:test::llm-hosting::llmhost:index:AwsPrivateEndpoint$"
        "aws:acmpca/certificateAuthority:CertificateAuthority::endpoint-ca")


# -- the Ingress the controller turns into the ALB ---------------------------------------------------------------------

def test_the_alb_is_internal_https_only_with_tls12_13_and_targets_the_gateway_pods():
    r = build()
    a = annotations(r)
    assert a[f"{PREFIX}/scheme"] == "internal"
    assert a[f"{PREFIX}/target-type"] == "ip"
    assert json.loads(a[f"{PREFIX}/listen-ports"]) == [{"HTTPS": 443}]
    assert a[f"{PREFIX}/ssl-policy"] == SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert a[f"{PREFIX}/backend-protocol"] == "HTTP"
    assert a[f"{PREFIX}/healthcheck-path"] == "/health/liveliness"
    assert a[f"{PREFIX}/load-balancer-name"] == alb_name("test")
    assert "idle_timeout.timeout_seconds=600" in a[f"{PREFIX}/load-balancer-attributes"]
    assert a[f"{PREFIX}/tags"] == "team=ml"
    spec = ingress(r)["spec"]
    assert spec["ingressClassName"] == "alb"
    (rule,) = spec["rules"]
    assert rule["host"] == "test.llm.internal"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "llm-gateway", "port": {"number": 4000}}
    assert ingress(r)["metadata"]["namespace"] == "llm-serving"


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_the_alb_lands_only_in_the_private_subnets_which_carry_the_internal_elb_tag(variant):
    r = build(variant)
    a = annotations(r)
    private = [s for s in r.by_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    assert len(private) == 3
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    subnets = a[f"{PREFIX}/subnets"].split(",")
    assert subnets == r.outputs["network_private_subnet_ids"]
    assert not set(subnets) & set(r.outputs["network_public_subnet_ids"])
    # Only the VPC may connect (the network's CIDR, handed on rather than retyped).
    assert a[f"{PREFIX}/inbound-cidrs"] == "10.0.0.0/16"
    assert a[f"{PREFIX}/scheme"] == "internal", f"{variant}: never internet-facing"


def test_the_ingress_waits_for_the_controller_and_the_certificate():
    r = build()
    ing = one(r, "kubernetes:networking.k8s.io/v1:Ingress")
    assert one(r, "kubernetes:helm.sh/v3:Release").urn in ing.dependencies
    assert one(r, "aws:acm/certificate:Certificate").urn in ing.dependencies


def test_the_ingress_is_valid_for_kubernetes_1_33_in_strict_mode(kubernetes_validate_python):
    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                **{k: v for k, v in ingress(build()).items() if k not in ("apiVersion", "kind")}}
    assert schema_problems(kubernetes_validate_python, manifest) == []
    internet = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                **{k: v for k, v in ingress(build_internet()).items() if k not in ("apiVersion", "kind")}}
    assert schema_problems(kubernetes_validate_python, internet) == []
    broken = {**manifest, "spec": {**manifest["spec"], "ingressClass": "alb"}}
    assert schema_problems(kubernetes_validate_python, broken), "the validator must reject an unknown field"


# The same pinned tool and Kubernetes minor as tests/test_manifests.py (which checks every stack's objects).
KUBERNETES_VALIDATE = ("kubernetes-validate==1.37.0",)
KUBERNETES_VERSION = "1.33.0"
VALIDATE = r"""
import json, sys
from kubernetes_validate import utils
problems = []
try:
    utils.validate(json.load(sys.stdin), sys.argv[1], strict=True)
except utils.ValidationError as exc:
    problems.append("%s: %s" % (".".join(str(p) for p in exc.path) or "<root>", exc.message))
json.dump(problems, sys.stdout)
"""


@pytest.fixture(scope="module")
def kubernetes_validate_python():
    try:
        return tool_bin("kubernetes-validate", KUBERNETES_VALIDATE) / "python"
    except (ToolInstallError, OSError) as exc:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"cannot install {KUBERNETES_VALIDATE[0]}: {exc}")
        pytest.skip(f"cannot install {KUBERNETES_VALIDATE[0]} (no network to PyPI?): {exc}")


def schema_problems(python, manifest: dict) -> list[str]:
    proc = subprocess.run([str(python), "-c", VALIDATE, KUBERNETES_VERSION], input=json.dumps(manifest),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


# -- the controller ----------------------------------------------------------------------------------------------------

def release_problems(registry):
    release = one(build("airgapped" if registry else "private", registry), "kubernetes:helm.sh/v3:Release").inputs
    return release, test_charts.release_problems(ape.CHART, release, registry)


@pytest.fixture
def free_form(monkeypatch):
    # The chart renders these whole with toYaml: a CRD spec and core/v1 ResourceRequirements.
    monkeypatch.setitem(test_charts.FREE_FORM_PATHS, ape.CHART, {("ingressClassParams", "spec"), ("resources",)})


@pytest.mark.parametrize("registry", [None, MIRROR], ids=["public", "airgapped"])
def test_the_controller_release_matches_its_chart(registry, free_form):
    release, problems = release_problems(registry)
    assert not problems, "\n".join(problems)
    values = release["values"]
    assert values["clusterName"] == CLUSTER and values["region"] == REGION and values["vpcId"]
    assert values["enableWaf"] is False and values["enableWafv2"] is False and values["enableShield"] is False
    assert values["defaultLoadBalancerScheme"] == "internal"
    assert values["nodeSelector"] == SYSTEM
    if registry:
        assert release["chart"] == f"oci://{MIRROR}/charts/aws-load-balancer-controller"
        assert values["image"]["repository"] == f"{MIRROR}/aws-load-balancer-controller"
    else:
        assert release["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"


def test_a_misspelt_chart_key_would_be_reported(free_form):
    release, _ = release_problems(None)
    bad = {**release, "values": {**release["values"], "enableWafV2": False}}
    assert test_charts.release_problems(ape.CHART, bad, None) == [
        "aws-load-balancer-controller: enableWafV2 is not a key of the chart's values.yaml"]


def test_the_ingress_class_params_enforce_the_internal_scheme():
    cr = {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "IngressClassParams", "metadata": {"name": "alb"},
          "spec": ape.ingress_class_params_spec()}
    assert validate_custom_resource(cr) == []
    assert cr["spec"]["scheme"] == "internal"
    assert validate_custom_resource({**cr, "spec": {"scheme": "public"}}), "the CRD must reject a bad scheme"


def test_the_pod_identity_binds_the_service_account_the_chart_creates():
    r = build()
    association = one(r, "aws:eks/podIdentityAssociation:PodIdentityAssociation").inputs
    values = one(r, "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert association["namespace"] == one(r, "kubernetes:helm.sh/v3:Release").inputs["namespace"] == "kube-system"
    assert association["serviceAccount"] == values["serviceAccount"]["name"]
    assert association["clusterName"] == CLUSTER


def test_the_air_gapped_network_has_every_api_the_controller_calls():
    assert set(CONTROLLER_AWS_APIS) <= set(DEFAULT_INTERFACE_ENDPOINTS)
    services = {v.inputs["serviceName"].rsplit(f"{REGION}.", 1)[-1]
                for v in build("airgapped").by_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(CONTROLLER_AWS_APIS) <= services


# -- least privilege ---------------------------------------------------------------------------------------------------

def _actions(statement) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_only_describe_calls_run_on_any_resource():
    for s in statements(build()):
        if s["Resource"] == "*":
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in _actions(s)), s["Sid"]


def test_creating_and_deleting_needs_this_clusters_tag():
    by_sid = {s["Sid"]: s for s in statements(build())}
    tag = "elbv2.k8s.aws/cluster"
    create = by_sid["CreateOurLoadBalancers"]
    assert create["Condition"]["StringEquals"][f"aws:RequestTag/{tag}"] == CLUSTER
    for sid in ("ManageOurLoadBalancers", "ManageOurSecurityGroups", "RetagOurLoadBalancers"):
        assert by_sid[sid]["Condition"]["StringEquals"][f"aws:ResourceTag/{tag}"] == CLUSTER, sid
    manage = _actions(by_sid["ManageOurLoadBalancers"])
    assert {"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:RegisterTargets"} <= set(manage)
    # Tags of a load balancer (the controller's proof of ownership) change only where it already is ours.
    for s in statements(build()):
        if {"elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"} & set(_actions(s)):
            resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
            if any(":loadbalancer/" in arn or ":targetgroup/" in arn for arn in resources):
                assert s["Condition"]["StringEquals"][f"aws:RequestTag/{tag}" if s["Sid"] == "TagOnCreate"
                                                      else f"aws:ResourceTag/{tag}"] == CLUSTER, s["Sid"]
    # No other statement may delete a load balancer, a target group or a security group.
    for s in statements(build()):
        deletes = {"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
                   "ec2:DeleteSecurityGroup"} & set(_actions(s))
        if deletes:
            assert s["Condition"]["StringEquals"][f"aws:ResourceTag/{tag}"] == CLUSTER, s["Sid"]


def test_no_waf_shield_cognito_or_certificate_discovery_permissions():
    actions = {a for s in statements(build()) for a in _actions(s)}
    assert not {a for a in actions if a.split(":")[0] in ("wafv2", "waf-regional", "shield", "cognito-idp", "acm")}
    assert "elasticloadbalancing:SetWebAcl" not in actions


def test_resources_are_this_accounts_and_regions_and_security_group_rules_stay_in_the_vpc():
    s = controller_statements("c1", "vpc-9", "eu-west-1", "111122223333", "aws")
    for statement in s:
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        for arn in resources:
            assert arn == "*" or ":111122223333:" in arn, (statement["Sid"], arn)
            assert arn == "*" or statement["Sid"] == "ElbServiceLinkedRole" or ":eu-west-1:" in arn
    backend = next(x for x in s if x["Sid"] == "BackendRulesInThisVpc")
    assert backend["Condition"] == {"ArnEquals": {"ec2:Vpc": "arn:aws:ec2:eu-west-1:111122223333:vpc/vpc-9"}}


# -- arguments -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,field", [
    ({"stack": "Prod_EU"}, "stack"),
    ({"zone_name": "internal"}, "zone_name"),
    ({"zone_name": "a" * 60 + ".internal"}, "zone_name"),
    ({"client_cidrs": []}, "client_cidrs"),
    ({"health_path": "health"}, "health_path"),
    ({"service_port": 0}, "service_port"),
    ({"node_selector": {}}, "node_selector"),
    ({"tags": {"a": "b,c"}}, "tags"),
])
def test_bad_arguments_are_refused_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        args(**overrides)


def test_alb_names_fit_32_characters_and_stay_distinct():
    assert alb_name("test") == "llm-hosting-test"
    long_a, long_b = alb_name("a-very-long-stack-name-one"), alb_name("a-very-long-stack-name-two")
    assert len(long_a) <= 32 and len(long_b) <= 32 and long_a != long_b


def test_a_missing_load_balancer_in_the_ingress_status_is_a_clear_error():
    class Status:
        load_balancer = type("LB", (), {"ingress": []})()

    with pytest.raises(ValueError, match="no load balancer"):
        ape._load_balancer_hostname(Status())


def test_the_policy_fits_an_inline_role_policy():
    # IAM counts an inline role policy's characters without whitespace: at most 10,240.
    document = {"Version": "2012-10-17", "Statement": controller_statements(
        "llm-hosting-" + "x" * 88, "vpc-0123456789abcdef0", "ap-southeast-2", "123456789012", "aws-us-gov")}
    assert len(json.dumps(document, separators=(",", ":"))) < 10_240


# -- internet-facing -----------------------------------------------------------------------------------------------------

DOMAIN = "llm.example.com"
PUBLIC_ZONE = "Z0123456789ABCDEFGHIJ"


@lru_cache(maxsize=None)
def build_internet(client_cidrs: tuple[str, ...] = ("0.0.0.0/0",)):
    def program():
        network = AwsNetwork("network", AwsNetworkArgs(stack="test", variant="public", region=REGION, protect=False))
        endpoint = AwsPrivateEndpoint("endpoint", args(
            network, internet_facing=True, domain=DOMAIN, public_zone_id=PUBLIC_ZONE,
            public_subnet_ids=network.public_subnet_ids, client_cidrs=list(client_cidrs)))
        for key in ("url", "dns_name", "zone_id", "certificate_arn", "ca_certificate", "load_balancer_hostname"):
            pulumi.export(key, getattr(endpoint, key))
        for key in ("private_subnet_ids", "public_subnet_ids", "vpc_id"):
            pulumi.export(f"network_{key}", getattr(network, key))

    return run_program(program, "llm-hosting", "test", {"aws:region": REGION})


def test_internet_facing_outputs_name_the_public_domain_and_hand_out_no_ca():
    out = build_internet().outputs
    assert out["url"] == "https://llm.example.com/v1"
    assert out["dns_name"] == DOMAIN and out["zone_id"] == PUBLIC_ZONE
    assert out["ca_certificate"] is None, "a publicly trusted certificate: clients need no CA of ours"
    assert out["load_balancer_hostname"] == UNKNOWN


def test_internet_facing_ingress_asks_for_an_internet_facing_alb_in_the_public_subnets_only():
    r = build_internet()
    a = annotations(r)
    assert a[f"{PREFIX}/scheme"] == "internet-facing"
    subnets = a[f"{PREFIX}/subnets"].split(",")
    assert subnets == r.outputs["network_public_subnet_ids"]
    assert not set(subnets) & set(r.outputs["network_private_subnet_ids"])
    assert a[f"{PREFIX}/inbound-cidrs"] == "0.0.0.0/0"
    # The same listener, TLS policy and header hygiene as the private endpoint.
    assert json.loads(a[f"{PREFIX}/listen-ports"]) == [{"HTTPS": 443}]
    assert a[f"{PREFIX}/ssl-policy"] == SSL_POLICY
    assert "routing.http.drop_invalid_header_fields.enabled=true" in a[f"{PREFIX}/load-balancer-attributes"]
    (rule,) = ingress(r)["spec"]["rules"]
    assert rule["host"] == DOMAIN
    assert ingress(r)["metadata"]["name"] == "llm-gateway-public"


def test_internet_facing_client_cidrs_are_the_ones_admitted():
    a = annotations(build_internet(("198.51.100.0/24", "203.0.113.0/24")))
    assert a[f"{PREFIX}/inbound-cidrs"] == "198.51.100.0/24,203.0.113.0/24"


def test_internet_facing_ingress_waits_for_the_certificates_validation():
    r = build_internet()
    validation = one(r, "aws:acm/certificateValidation:CertificateValidation")
    ing = one(r, "kubernetes:networking.k8s.io/v1:Ingress")
    assert validation.urn in ing.dependencies
    assert annotations(r)[f"{PREFIX}/certificate-arn"] == validation.inputs["certificateArn"] == \
        r.outputs["certificate_arn"]


def test_internet_facing_makes_a_dns_validated_public_certificate_and_no_private_ca_or_zone():
    r = build_internet()
    assert not [x.name for x in r.resources if x.type.startswith("aws:acmpca/")]
    assert not r.by_type("aws:route53/zone:Zone")
    cert = one(r, "aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == DOMAIN and cert.inputs["validationMethod"] == "DNS"
    assert "certificateAuthorityArn" not in cert.inputs
    records = {x.name: x for x in r.by_type("aws:route53/record:Record")}
    assert set(records) == {"endpoint-certificate-validation-record", "endpoint-record"}
    check = records["endpoint-certificate-validation-record"]
    assert check.inputs["zoneId"] == PUBLIC_ZONE and check.inputs["allowOverwrite"] is True
    # What ACM asks for is known only once the certificate is requested: unknown in a preview, never a crash.
    assert check.inputs["name"] == UNKNOWN and cert.urn in check.dependencies
    alias = records["endpoint-record"].inputs
    assert (alias["zoneId"], alias["name"], alias["type"]) == (PUBLIC_ZONE, DOMAIN, "A")
    assert sorted((x.type, x.name) for x in r.resources if x.parent == "endpoint") == [
        ("aws:acm/certificate:Certificate", "endpoint-certificate"),
        ("aws:acm/certificateValidation:CertificateValidation", "endpoint-certificate-validation"),
        ("aws:route53/record:Record", "endpoint-certificate-validation-record"),
        ("aws:route53/record:Record", "endpoint-record"),
        ("kubernetes:helm.sh/v3:Release", "endpoint-controller"),
        ("kubernetes:networking.k8s.io/v1:Ingress", "endpoint-ingress"),
        ("llmhost:index:EksPodIdentity", "endpoint-controller-identity"),
    ]


def test_internet_facing_class_params_and_default_scheme_follow_the_stacks_scheme(free_form):
    release = one(build_internet(), "kubernetes:helm.sh/v3:Release").inputs
    assert not test_charts.release_problems(ape.CHART, release, None)
    values = release["values"]
    assert values["defaultLoadBalancerScheme"] == "internet-facing"
    assert values["ingressClassParams"]["spec"] == {"scheme": "internet-facing"}
    cr = {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "IngressClassParams", "metadata": {"name": "alb"},
          "spec": values["ingressClassParams"]["spec"]}
    assert validate_custom_resource(cr) == []
    # ... and the private stack's class stays pinned internal.
    private = one(build(), "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert private["ingressClassParams"]["spec"] == {"scheme": "internal"}
    assert private["defaultLoadBalancerScheme"] == "internal"


def test_the_policy_pack_passes_the_internet_facing_ingress_and_bnd003_still_guards_regulated_stacks():
    props = ingress(build_internet())
    result = check_resource("ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress", props, {})
    assert not result.violations and not result.not_applicable
    assert check_resource("BND-003-no-public-load-balancer", "kubernetes:networking.k8s.io/v1:Ingress", props,
                          {"classification": "regulated"}).violations


INTERNET = dict(internet_facing=True, domain=DOMAIN, public_zone_id=PUBLIC_ZONE,
                public_subnet_ids=["subnet-pub-a", "subnet-pub-b"], client_cidrs=["0.0.0.0/0"])


@pytest.mark.parametrize("overrides,field", [
    ({"domain": DOMAIN}, "domain"),
    ({"public_zone_id": PUBLIC_ZONE}, "public_zone_id"),
    ({"public_subnet_ids": ["subnet-pub-a"]}, "public_subnet_ids"),
    ({**INTERNET, "domain": None}, "domain"),
    ({**INTERNET, "public_zone_id": None}, "public_zone_id"),
    ({**INTERNET, "public_subnet_ids": None}, "public_subnet_ids"),
    ({**INTERNET, "public_subnet_ids": ["subnet-b"]}, "public_subnet_ids"),
    ({**INTERNET, "domain": "llm"}, "domain"),
    ({**INTERNET, "domain": "llm.corp.internal"}, "domain"),
    ({**INTERNET, "domain": "x" * 60 + ".example.com"}, "domain"),
    ({**INTERNET, "public_zone_id": "zone-1"}, "public_zone_id"),
    ({**INTERNET, "certificate_authority_arn":
      "arn:aws:acm-pca:eu-central-1:210987654321:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
     "certificate_authority_arn"),
])
def test_bad_internet_facing_combinations_are_refused_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        args(**overrides)


def test_an_organisations_ca_is_answered_by_the_shared_preview_mocks():
    # What a whole-stack preview does with certificate_authority_arn: the CA is read, none is made.
    ca = "arn:aws:acm-pca:eu-central-1:210987654321:certificate-authority/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

    def program():
        endpoint = AwsPrivateEndpoint("endpoint", args(certificate_authority_arn=ca))
        pulumi.export("ca_certificate", endpoint.ca_certificate)

    r = run_program(program, "llm-hosting", "test", {"aws:region": REGION})
    assert not [x.name for x in r.resources if x.type.startswith("aws:acmpca/")]
    assert one(r, "aws:acm/certificate:Certificate").inputs["certificateAuthorityArn"] == ca
    pems = r.outputs["ca_certificate"].strip().split("\n-----END CERTIFICATE-----\n")
    assert len(pems) == 2 and all(p.startswith("-----BEGIN CERTIFICATE-----") for p in pems), "the CA, then its chain"
