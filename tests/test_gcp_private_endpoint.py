"""GcpPrivateEndpoint under the recording mocks, wired to a GcpNetwork the way a stack wires it: the Gateway and
HTTPRoute against the real Gateway API CRDs, the address, certificate and DNS name agreeing, the load balancer's
proxies admitted to the pods' port, and the private CA. Then the internet-facing mode: a regional external Gateway,
a publicly trusted certificate authorized through the public zone, and no CA or private zone."""

from __future__ import annotations

import contextlib
import copy
import ipaddress
from functools import lru_cache
from unittest import mock

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.gcp_network import GcpNetwork, GcpNetworkArgs
from components.gcp_private_endpoint import GcpPrivateEndpoint, GcpPrivateEndpointArgs
from policies.engine import check_resource
from preview.harness import run_program
from preview.mocks import PROJECT_NUMBER, PreviewMocks
from crd_schemas import validate_custom_resource

PROJECT, STACK, REGION, GCP_PROJECT = "llm-hosting", "t", "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
LABELS = {"llm-hosting-stack": STACK}
NAMESPACE, SERVICE, PORT = "llm-serving", "llm-gateway", 4000
PROXY_ONLY = "10.26.0.0/23"
HEALTH_CHECKS = {"35.191.0.0/16", "130.211.0.0/22"}

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
HEALTH = "kubernetes:networking.gke.io/v1:HealthCheckPolicy"
ADDRESS = "gcp:compute/address:Address"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
FIREWALL = "gcp:compute/firewall:Firewall"
POOL = "gcp:certificateauthority/caPool:CaPool"
CA = "gcp:certificateauthority/authority:Authority"
POOL_MEMBER = "gcp:certificateauthority/caPoolIamMember:CaPoolIamMember"
ISSUANCE = "gcp:certificatemanager/certificateIssuanceConfig:CertificateIssuanceConfig"
CERT = "gcp:certificatemanager/certificate:Certificate"
ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
AUTHORIZATION = "gcp:certificatemanager/dnsAuthorization:DnsAuthorization"
SERVICE_IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
CAS_TYPES = (POOL, CA, POOL_MEMBER, ISSUANCE, SERVICE_IDENTITY)
DOMAIN, PUBLIC_ZONE = "llm.example.com", "example-com"
# What Certificate Manager answers for a regional (per-project) DNS authorization: one CNAME to add to the zone.
CHALLENGE = {"name": f"_acme-challenge_k3v9q2.{DOMAIN}.", "type": "CNAME",
             "data": "0f1e2d3c-4b5a.4.europe-west4.authorize.certificatemanager.goog."}


@contextlib.contextmanager
def certificate_manager_answers_the_challenge():
    """The recording mocks know no DnsAuthorization outputs; teach them the record the API returns."""
    original = PreviewMocks._gcp

    def answer(self, typ, name, inputs):
        rid, outputs = original(self, typ, name, inputs)
        if typ == AUTHORIZATION:
            outputs = {**outputs, "dnsResourceRecords": [CHALLENGE]}
        return rid, outputs

    with mock.patch.object(PreviewMocks, "_gcp", answer):
        yield


@lru_cache(maxsize=None)
def run(variant: str = "private", zone_name: str = "llm.internal", protect: bool = True, internet: bool = False):
    public = dict(internet_facing=True, domain=DOMAIN, public_zone=PUBLIC_ZONE) if internet else {}

    def program():
        net = GcpNetwork("net", GcpNetworkArgs(stack=STACK, variant=variant, region=REGION, project=GCP_PROJECT,
                                               proxy_only_subnet=True, proxy_only_cidr=PROXY_ONLY, labels=LABELS))
        provider = k8s.Provider("gke-k8s", kubeconfig="{}")
        ep = GcpPrivateEndpoint("endpoint", GcpPrivateEndpointArgs(
            stack=STACK, project=GCP_PROJECT, region=REGION, network=net.network_self_link,
            subnetwork=net.subnet_self_link, proxy_only_cidr=net.proxy_only_cidr, namespace=NAMESPACE,
            service_name=SERVICE, service_port=PORT, zone_name=zone_name, labels=LABELS, protect=protect, **public),
            opts=pulumi.ResourceOptions(provider=provider))
        for key in ("url", "dns_name", "address", "ca_certificate"):
            pulumi.export(key, getattr(ep, key))
        pulumi.export("subnet_self_link", net.subnet_self_link)
        pulumi.export("network_self_link", net.network_self_link)

    with certificate_manager_answers_the_challenge():
        return run_program(program, PROJECT, STACK, CONFIG)


def one(result, type_):
    [r] = result.by_type(type_)
    return r


def manifest(resource) -> dict:
    """A copy: the recorded run is cached and shared by the tests."""
    return copy.deepcopy({k: resource.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})


# -- the Kubernetes side --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_", [GATEWAY, ROUTE])
def test_gateway_api_resources_match_their_crds(type_):
    assert validate_custom_resource(manifest(one(run(), type_))) == []


def test_the_crd_check_would_catch_a_broken_listener():
    broken = manifest(one(run(), GATEWAY))
    broken["spec"]["listeners"][0]["port"] = "443"
    broken["spec"]["listeners"][0]["tlsMode"] = "Terminate"
    problems = validate_custom_resource(broken)
    assert any("port" in p for p in problems) and any("tlsMode" in p for p in problems), problems


def test_gateway_is_an_internal_regional_alb_with_https_on_443_only():
    spec = one(run(), GATEWAY).inputs["spec"]
    assert spec["gatewayClassName"] == "gke-l7-rilb"
    [listener] = spec["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTPS", 443)
    assert listener["hostname"] == "t.llm.internal"
    assert listener["tls"]["mode"] == "Terminate"


def test_gateway_serves_the_certificate_manager_certificate_by_the_regional_option():
    result = run()
    listener = one(result, GATEWAY).inputs["spec"]["listeners"][0]
    cert = one(result, CERT).inputs
    assert listener["tls"] == {"mode": "Terminate",
                               "options": {"networking.gke.io/cert-manager-certs": cert["name"]}}
    assert "networking.gke.io/certmap" not in str(one(result, GATEWAY).inputs)  # global Gateways only


def test_gateway_takes_the_reserved_address_by_name():
    result = run()
    address = one(result, ADDRESS).inputs
    assert one(result, GATEWAY).inputs["spec"]["addresses"] == [{"type": "NamedAddress", "value": address["name"]}]


def test_address_is_internal_in_the_stacks_subnet_and_region():
    result = run()
    address = one(result, ADDRESS).inputs
    assert address["addressType"] == "INTERNAL"
    assert address["purpose"] == "SHARED_LOADBALANCER_VIP"
    assert address["region"] == REGION
    assert address["subnetwork"] == result.outputs["subnet_self_link"]


def test_route_sends_the_endpoints_name_to_the_gateway_service_port():
    result = run()
    gateway, route = one(result, GATEWAY).inputs, one(result, ROUTE).inputs
    assert route["metadata"]["namespace"] == gateway["metadata"]["namespace"] == NAMESPACE  # no ReferenceGrant needed
    [parent] = route["spec"]["parentRefs"]
    assert parent["name"] == gateway["metadata"]["name"]
    assert parent["sectionName"] == gateway["spec"]["listeners"][0]["name"]
    assert route["spec"]["hostnames"] == [gateway["spec"]["listeners"][0]["hostname"]]
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": SERVICE, "port": PORT}]


def test_health_check_asks_the_pods_readiness_path_on_the_serving_port():
    # HealthCheckPolicy is GKE's own CRD, not among the shared schemas: its shape is asserted here instead.
    policy = one(run(), HEALTH).inputs
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": SERVICE}
    check = policy["spec"]["default"]["config"]
    assert check["type"] == "HTTP"
    assert check["httpHealthCheck"] == {"portSpecification": "USE_SERVING_PORT", "requestPath": "/health/readiness"}


def test_kubernetes_resources_use_the_clusters_provider():
    result = run()
    for type_ in (GATEWAY, ROUTE, HEALTH):
        assert one(result, type_).options.get("provider") == "gke-k8s", type_


def test_route_and_gateway_wait_for_what_they_need():
    result = run()
    deps = {r.name: set(r.dependencies) for r in result.resources}
    urn = {r.name: r.urn for r in result.resources}
    gateway = one(result, GATEWAY).name
    assert {urn["endpoint-address"], urn["endpoint-certificate"], urn["endpoint-ilb-proxies"]} <= deps[gateway]
    assert urn[gateway] in deps[one(result, ROUTE).name]


# -- network: proxy-only subnet and firewall ------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_proxies_and_health_checkers_reach_the_pods_port_only(variant):
    rule = next(r for r in run(variant).by_type(FIREWALL) if r.name == "endpoint-ilb-proxies")
    assert rule.inputs["direction"] == "INGRESS"
    assert set(rule.inputs["sourceRanges"]) == {PROXY_ONLY, *HEALTH_CHECKS}
    assert rule.inputs["allows"] == [{"protocol": "tcp", "ports": [str(PORT)]}]
    assert rule.inputs["priority"] < 65534  # above the network's deny-all
    assert rule.inputs["network"] == run(variant).outputs["network_self_link"]


def test_firewall_takes_the_range_of_the_networks_proxy_only_subnet():
    result = run()
    [proxy] = [s for s in result.by_type(SUBNET) if s.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"]
    rule = next(r for r in result.by_type(FIREWALL) if r.name == "endpoint-ilb-proxies")
    assert proxy.urn in rule.dependencies
    assert proxy.inputs["region"] == REGION


# -- certificate and CA ---------------------------------------------------------------------------------------------

def test_ca_is_a_devops_tier_root_in_the_region_constrained_to_the_zone():
    result = run()
    pool, ca = one(result, POOL).inputs, one(result, CA).inputs
    assert pool["tier"] == "DEVOPS" and pool["location"] == REGION
    assert ca["location"] == REGION and ca["pool"] == pool["name"] and ca["type"] == "SELF_SIGNED"
    x509 = ca["config"]["x509Config"]
    assert x509["caOptions"]["isCa"] is True
    assert x509["nameConstraints"]["permittedDnsNames"] == ["llm.internal"]
    assert x509["nameConstraints"]["critical"] is True


def test_certificate_is_regional_for_the_dns_name_issued_by_the_pool():
    result = run()
    pool, issuance, cert = one(result, POOL), one(result, ISSUANCE), one(result, CERT)
    cas = issuance.inputs["certificateAuthorityConfig"]["certificateAuthorityServiceConfig"]
    assert cas["caPool"] == f"projects/{GCP_PROJECT}/locations/{REGION}/caPools/{pool.inputs['name']}"
    assert issuance.inputs["location"] == cert.inputs["location"] == REGION
    assert cert.inputs["managed"]["domains"] == [result.outputs["dns_name"]]
    assert cert.inputs["managed"]["issuanceConfig"] == \
        f"projects/{GCP_PROJECT}/locations/{REGION}/certificateIssuanceConfigs/{issuance.inputs['name']}"


def test_certificate_manager_may_request_from_the_pool_before_issuing():
    result = run()
    member = one(result, POOL_MEMBER)
    assert member.inputs["role"] == "roles/privateca.certificateRequester"
    assert member.inputs["member"] == \
        f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-certificatemanager.iam.gserviceaccount.com"
    assert member.urn in one(result, ISSUANCE).dependencies


@pytest.mark.parametrize("protect", [True, False])
def test_the_ca_and_pool_follow_protect(protect):
    result = run(protect=protect)
    for type_ in (POOL, CA):
        assert bool(one(result, type_).options.get("protect")) is protect, type_
    assert one(result, CA).inputs["deletionProtection"] is protect


def test_shared_ca_and_zone_keep_their_names_and_parent():
    # gcp_private_ca builds these for both private endpoints; a renamed resource would replace a protected CA.
    result = run()
    expected = {  # logical name -> (type, physical name)
        "endpoint-ca-pool": (POOL, "llm-hosting-t-endpoint"),
        "endpoint-ca": (CA, "llm-hosting-t-endpoint-cas"),
        "endpoint-certmanager-agent": ("gcp:projects/serviceIdentity:ServiceIdentity", None),
        "endpoint-ca-requester": (POOL_MEMBER, None),
        "endpoint-issuance": (ISSUANCE, "llm-hosting-t-endpoint"),
        "endpoint-certificate": (CERT, "llm-hosting-t-endpoint"),
        "endpoint-zone": (ZONE, "llm-hosting-t-endpoint"),
        "endpoint-record": (RECORD, None),
    }
    for name, (type_, physical) in expected.items():
        r = result.named(name)
        assert (r.type, r.parent) == (type_, "endpoint"), name
        assert r.urn == f"urn:pulumi:{STACK}::{PROJECT}::llmhost:index:GcpPrivateEndpoint${type_}::{name}"
        if physical:
            assert r.inputs.get("certificateAuthorityId", r.inputs.get("name")) == physical, name


# -- DNS and outputs ------------------------------------------------------------------------------------------------

def test_private_zone_is_bound_to_the_stacks_vpc_and_points_at_the_address():
    result = run()
    zone, record = one(result, ZONE).inputs, one(result, RECORD).inputs
    assert zone["dnsName"] == "llm.internal." and zone["visibility"] == "private"
    assert zone["privateVisibilityConfig"]["networks"] == [{"networkUrl": result.outputs["network_self_link"]}]
    assert record["managedZone"] == zone["name"]
    assert (record["name"], record["type"]) == ("t.llm.internal.", "A")
    assert record["rrdatas"] == [result.outputs["address"]]
    ipaddress.ip_address(result.outputs["address"])


def test_outputs():
    out = run().outputs
    assert out["dns_name"] == "t.llm.internal"
    assert out["url"] == "https://t.llm.internal/v1"
    assert out["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_zone_name_is_an_argument():
    result = run(zone_name="ai.corp.internal.")
    assert result.outputs["url"] == "https://t.ai.corp.internal/v1"
    assert one(result, ZONE).inputs["dnsName"] == "ai.corp.internal."
    assert one(result, CERT).inputs["managed"]["domains"] == ["t.ai.corp.internal"]
    assert one(result, CA).inputs["config"]["x509Config"]["nameConstraints"]["permittedDnsNames"] == ["ai.corp.internal"]


# -- bad arguments --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, expected", [
    ({"zone_name": "LLM Internal"}, "zone_name"),
    ({"zone_name": "internal"}, "zone_name"),
    ({"service_port": 0}, "service_port"),
    ({"health_check_path": "health"}, "health_check_path"),
    ({"stack": "___"}, "stack"),
    ({"stack": "x" * 60}, "stack"),
])
def test_bad_arguments_are_refused_naming_the_field(kwargs, expected):
    base = dict(stack=STACK, project=GCP_PROJECT, region=REGION, network="n", subnetwork="s",
                proxy_only_cidr=PROXY_ONLY)
    with pytest.raises(ValueError, match=expected):
        GcpPrivateEndpointArgs(**{**base, **kwargs})


# -- internet-facing mode -------------------------------------------------------------------------------------------

def internet():
    return run("public", internet=True)


@pytest.mark.parametrize("type_", [GATEWAY, ROUTE])
def test_internet_facing_gateway_api_resources_match_their_crds(type_):
    assert validate_custom_resource(manifest(one(internet(), type_))) == []


def test_internet_facing_gateway_is_a_regional_external_alb_with_https_on_443_only():
    result = internet()
    spec = one(result, GATEWAY).inputs["spec"]
    assert spec["gatewayClassName"] == "gke-l7-regional-external-managed"  # not a global class: TLS ends in region
    [listener] = spec["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == ("HTTPS", 443, DOMAIN)
    # The same option form as the internal regional class: global classes would need a certificate map instead.
    assert listener["tls"] == {"mode": "Terminate",
                               "options": {"networking.gke.io/cert-manager-certs": one(result, CERT).inputs["name"]}}
    assert spec["addresses"] == [{"type": "NamedAddress", "value": one(result, ADDRESS).inputs["name"]}]
    route = one(result, ROUTE).inputs
    assert route["spec"]["hostnames"] == [DOMAIN]
    assert route["spec"]["parentRefs"][0]["name"] == one(result, GATEWAY).inputs["metadata"]["name"]


def test_internet_facing_has_no_ca_and_no_private_zone():
    result = internet()
    for type_ in (*CAS_TYPES, ZONE):
        assert result.by_type(type_) == [], type_
    assert result.outputs["ca_certificate"] is None  # publicly trusted: clients need no CA


def test_internet_facing_address_is_regional_external():
    address = one(internet(), ADDRESS).inputs
    assert address["addressType"] == "EXTERNAL"
    assert address["networkTier"] == "STANDARD"
    assert address["region"] == REGION
    assert "subnetwork" not in address and "purpose" not in address
    assert address["name"] == "llm-hosting-t-endpoint-public"


def test_internet_facing_certificate_is_google_managed_through_a_regional_dns_authorization():
    result = internet()
    auth, cert = one(result, AUTHORIZATION), one(result, CERT)
    assert (auth.inputs["domain"], auth.inputs["location"], auth.inputs["type"]) == (DOMAIN, REGION,
                                                                                     "PER_PROJECT_RECORD")
    assert cert.inputs["location"] == REGION
    assert cert.inputs["managed"]["domains"] == [DOMAIN]
    assert cert.inputs["managed"]["dnsAuthorizations"] == \
        [f"projects/{GCP_PROJECT}/locations/{REGION}/dnsAuthorizations/{auth.inputs['name']}"]
    assert "issuanceConfig" not in cert.inputs["managed"]  # no private CA
    challenge = result.named("endpoint-dns-authorization-record")
    assert challenge.urn in cert.dependencies  # the challenge is answerable when issuance starts


def test_internet_facing_dns_authorizations_record_is_created_in_the_public_zone():
    result = internet()
    auth = one(result, AUTHORIZATION)
    challenge = result.named("endpoint-dns-authorization-record")
    assert challenge.inputs["managedZone"] == PUBLIC_ZONE
    assert (challenge.inputs["name"], challenge.inputs["type"], challenge.inputs["rrdatas"]) == \
        (CHALLENGE["name"], "CNAME", [CHALLENGE["data"]])
    assert auth.urn in challenge.dependencies


def test_internet_facing_a_record_in_the_public_zone_points_at_the_external_address():
    result = internet()
    [record] = [r for r in result.by_type(RECORD) if r.inputs["type"] == "A"]
    assert record.inputs["managedZone"] == PUBLIC_ZONE
    assert record.inputs["name"] == f"{DOMAIN}."
    assert record.inputs["rrdatas"] == [result.outputs["address"]]
    assert one(result, ADDRESS).urn in record.dependencies
    ipaddress.ip_address(result.outputs["address"])


def test_internet_facing_keeps_the_proxy_and_health_check_firewall():
    result = internet()
    rule = next(r for r in result.by_type(FIREWALL) if r.name == "endpoint-ilb-proxies")
    assert set(rule.inputs["sourceRanges"]) == {PROXY_ONLY, *HEALTH_CHECKS}
    assert rule.inputs["allows"] == [{"protocol": "tcp", "ports": [str(PORT)]}]
    assert rule.urn in one(result, GATEWAY).dependencies


def test_internet_facing_outputs():
    out = internet().outputs
    assert (out["url"], out["dns_name"]) == (f"https://{DOMAIN}/v1", DOMAIN)


def test_internet_facing_gateway_passes_the_kits_policies_for_an_internal_stack_only():
    gateway = one(internet(), GATEWAY).inputs
    assert check_resource("ENC-009-tls-listeners", GATEWAY, gateway, {}).violations == []
    internal = check_resource("BND-003-no-public-load-balancer", GATEWAY, gateway, {"classification": "internal"})
    assert internal.violations == []
    # The boundary policy still judges it: a regulated stack could not opt in.
    regulated = check_resource("BND-003-no-public-load-balancer", GATEWAY, gateway, {"classification": "regulated"})
    assert [v.message for v in regulated.violations] and "gke-l7-regional-external-managed" in \
        regulated.violations[0].message


@pytest.mark.parametrize("kwargs, expected", [
    ({"internet_facing": True}, "domain"),
    ({"internet_facing": True, "domain": DOMAIN}, "public_zone"),
    ({"internet_facing": True, "public_zone": PUBLIC_ZONE}, "domain"),
    ({"domain": DOMAIN}, "domain"),
    ({"public_zone": PUBLIC_ZONE}, "public_zone"),
    ({"internet_facing": True, "domain": "example", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": "*.example.com", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": "LLM.Example.com", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": "llm.corp.internal", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": DOMAIN, "public_zone": "example.com."}, "public_zone"),
    ({"internet_facing": "yes", "domain": DOMAIN, "public_zone": PUBLIC_ZONE}, "internet_facing"),
])
def test_bad_internet_facing_combinations_are_refused_naming_the_field(kwargs, expected):
    base = dict(stack=STACK, project=GCP_PROJECT, region=REGION, network="n", subnetwork="s",
                proxy_only_cidr=PROXY_ONLY)
    with pytest.raises(ValueError, match=expected):
        GcpPrivateEndpointArgs(**{**base, **kwargs})


def test_internet_facing_args_take_the_domain_as_the_name():
    args = GcpPrivateEndpointArgs(stack=STACK, project=GCP_PROJECT, region=REGION, network="n", subnetwork="s",
                                  proxy_only_cidr=PROXY_ONLY, internet_facing=True, domain=f"{DOMAIN}.",
                                  public_zone=PUBLIC_ZONE)
    assert args.dns_name == DOMAIN
