"""GcpServerlessEndpoint under the recording mocks, wired the way a stack without a cluster wires it: a GcpNetwork with
its proxy-only subnet, a Cloud Run service reachable only through an internal load balancer, and the endpoint in
front of it. What a client in the VPC meets: one name, one address, HTTPS on 443 only with the private CA's
certificate and TLS 1.2+, nothing answered for other host names, and the Cloud Run service behind it all. Then the
internet-facing mode: the same chain as a regional external load balancer (EXTERNAL_MANAGED), a publicly trusted
certificate authorized through the public zone, and no CA or private zone."""

from __future__ import annotations

import contextlib
import ipaddress
from functools import lru_cache
from unittest import mock

import pulumi
import pulumi_gcp as gcp
import pytest

from components.gcp_network import GcpNetwork, GcpNetworkArgs
from components.gcp_serverless_endpoint import GcpServerlessEndpoint, GcpServerlessEndpointArgs
from policies.engine import check_resource
from preview.harness import run_program
from preview.mocks import PreviewMocks

PROJECT, STACK, REGION, GCP_PROJECT = "llm-hosting", "t", "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
LABELS = {"llm-hosting-stack": STACK}
SERVICE = "llm-gateway"
OUTPUTS = ("url", "dns_name", "address", "backend_service_id", "forwarding_rule_id", "ca_certificate")

ADDRESS = "gcp:compute/address:Address"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/regionBackendService:RegionBackendService"
URL_MAP = "gcp:compute/regionUrlMap:RegionUrlMap"
SSL_POLICY = "gcp:compute/regionSslPolicy:RegionSslPolicy"
HTTPS_PROXY = "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy"
RULE = "gcp:compute/forwardingRule:ForwardingRule"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
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
# Every way a GCP load balancer could also answer in plain text or on another port.
PLAIN = ("gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy", "gcp:compute/targetHttpProxy:TargetHttpProxy",
         "gcp:compute/regionTargetTcpProxy:RegionTargetTcpProxy", "gcp:compute/targetTcpProxy:TargetTcpProxy",
         "gcp:compute/globalForwardingRule:GlobalForwardingRule")


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
def run(wait: bool = True, zone_name: str = "llm.internal", protect: bool = True, internet: bool = False):
    public = dict(internet_facing=True, domain=DOMAIN, public_zone=PUBLIC_ZONE) if internet else {}

    def program():
        net = GcpNetwork("net", GcpNetworkArgs(stack=STACK, variant="public" if internet else "private",
                                               region=REGION, project=GCP_PROJECT, proxy_only_subnet=True,
                                               labels=LABELS))
        service = gcp.cloudrunv2.Service(
            "gateway", name=SERVICE, project=GCP_PROJECT, location=REGION,
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            template=gcp.cloudrunv2.ServiceTemplateArgs(containers=[
                gcp.cloudrunv2.ServiceTemplateContainerArgs(image="ghcr.io/berriai/litellm:main-stable")]))
        ep = GcpServerlessEndpoint("endpoint", GcpServerlessEndpointArgs(
            stack=STACK, project=GCP_PROJECT, region=REGION, network=net.network_self_link,
            subnetwork=net.subnet_self_link, cloud_run_service=service.name, wait_for=[net] if wait else [],
            zone_name=zone_name, labels=LABELS, protect=protect, **public))
        for key in OUTPUTS:
            pulumi.export(key, getattr(ep, key))
        pulumi.export("subnet_self_link", net.subnet_self_link)
        pulumi.export("network_self_link", net.network_self_link)

    with certificate_manager_answers_the_challenge():
        return run_program(program, PROJECT, STACK, CONFIG)


def one(result, type_):
    [r] = result.by_type(type_)
    return r


# -- the listener: HTTPS on 443, nothing else -----------------------------------------------------------------------

def test_one_forwarding_rule_on_tcp_443_to_the_https_proxy_and_no_plain_listener():
    result = run()
    rule, proxy = one(result, RULE), one(result, HTTPS_PROXY)
    assert (rule.inputs["ipProtocol"], rule.inputs["portRange"]) == ("TCP", "443")
    assert "ports" not in rule.inputs and not rule.inputs.get("allPorts")
    assert rule.inputs["target"] == _mock_id(proxy)
    assert [r for t in PLAIN for r in result.by_type(t)] == []


def _mock_id(resource) -> str:
    """The id preview/mocks.py gives a regional compute resource (what another resource's reference to it holds)."""
    kind = resource.type.split(":")[-1]
    return f"projects/{GCP_PROJECT}/regions/{REGION}/{kind[0].lower() + kind[1:]}s/{resource.inputs['name']}"


def _location_id(resource) -> str:
    """The id preview/mocks.py gives a regional Certificate Manager resource."""
    kind = resource.type.split(":")[-1]
    return f"projects/{GCP_PROJECT}/locations/{REGION}/{kind[0].lower() + kind[1:]}s/{resource.inputs['name']}"


def test_https_proxy_serves_the_private_certificate_with_a_tls12_policy():
    result = run()
    proxy, cert, policy = one(result, HTTPS_PROXY).inputs, one(result, CERT).inputs, one(result, SSL_POLICY)
    cert_id = f"projects/{GCP_PROJECT}/locations/{REGION}/certificates/{cert['name']}"
    assert proxy["certificateManagerCertificates"] == [f"//certificatemanager.googleapis.com/{cert_id}"]
    assert "sslCertificates" not in proxy  # one or the other, never both
    assert cert["location"] == proxy["region"] == policy.inputs["region"] == REGION  # regional, as the proxy is
    assert cert["managed"]["domains"] == ["t.llm.internal"]
    assert proxy["sslPolicy"] == _mock_id(policy)
    assert policy.inputs["minTlsVersion"] == "TLS_1_2"
    assert policy.inputs["profile"] in ("MODERN", "RESTRICTED")


def test_the_kits_tls_and_boundary_policies_pass_the_listener():
    result = run()
    for type_ in (RULE, HTTPS_PROXY, CLOUD_RUN):
        evaluation = check_resource("ENC-009-tls-listeners", type_, one(result, type_).inputs, {})
        assert [v.message for v in evaluation.violations] == [], type_
    evaluation = check_resource("BND-003-no-public-load-balancer", RULE, one(result, RULE).inputs,
                                {"classification": "regulated"})
    assert [v.message for v in evaluation.violations] == []


def test_internal_managed_everywhere():
    result = run()
    assert one(result, RULE).inputs["loadBalancingScheme"] == "INTERNAL_MANAGED"
    assert one(result, BACKEND).inputs["loadBalancingScheme"] == "INTERNAL_MANAGED"
    rule = one(result, RULE).inputs
    assert rule["network"] == result.outputs["network_self_link"]
    assert rule["subnetwork"] == result.outputs["subnet_self_link"]
    assert rule["region"] == REGION
    assert not rule.get("allowGlobalAccess")


def test_address_is_a_reserved_internal_one_in_the_stacks_subnet():
    result = run()
    address = one(result, ADDRESS).inputs
    assert address["addressType"] == "INTERNAL"
    assert address["purpose"] == "GCE_ENDPOINT"  # one forwarding rule: nothing shares it
    assert address["subnetwork"] == result.outputs["subnet_self_link"]
    assert address["region"] == REGION
    assert one(result, RULE).inputs["ipAddress"] == result.outputs["address"]


# -- behind the proxy: the URL map, the backend, the Cloud Run service -----------------------------------------------

def test_neg_points_at_the_given_cloud_run_service_in_its_region():
    result = run()
    neg, service = one(result, NEG).inputs, one(result, CLOUD_RUN).inputs
    assert neg["networkEndpointType"] == "SERVERLESS"
    assert neg["cloudRun"] == {"service": SERVICE} and service["name"] == SERVICE
    assert neg["region"] == service["location"] == REGION
    assert service["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"


def test_backend_service_is_the_neg_over_https_with_logging_and_no_health_check():
    result = run()
    backend, neg = one(result, BACKEND).inputs, one(result, NEG)
    assert backend["protocol"] == "HTTPS"
    assert [b["group"] for b in backend["backends"]] == [_mock_id(neg)]
    assert backend["backends"][0]["balancingMode"] != "RATE"  # serverless NEGs refuse it
    assert "healthChecks" not in backend  # a serverless NEG takes none
    assert backend["logConfig"] == {"enable": True, "sampleRate": 1.0}


def test_url_map_sends_only_the_endpoints_name_to_the_backend_and_refuses_other_hosts():
    result = run()
    url_map, backend = one(result, URL_MAP).inputs, _mock_id(one(result, BACKEND))
    [host_rule] = url_map["hostRules"]
    assert host_rule["hosts"] == ["t.llm.internal"]
    [matcher] = url_map["pathMatchers"]
    assert matcher["name"] == host_rule["pathMatcher"] and matcher["defaultService"] == backend
    # Any other Host header: the proxy answers 404 itself; the default service is there because the API wants one.
    abort = url_map["defaultRouteAction"]["faultInjectionPolicy"]["abort"]
    assert (abort["httpStatus"], abort["percentage"]) == (404, 100.0)
    assert "weightedBackendServices" not in url_map["defaultRouteAction"]
    assert [(t["host"], t["service"]) for t in url_map["tests"]] == [("t.llm.internal", backend)]
    assert one(result, HTTPS_PROXY).inputs["urlMap"] == _mock_id(one(result, URL_MAP))


# -- DNS, ordering, CA ----------------------------------------------------------------------------------------------

def test_record_resolves_to_the_forwarding_rules_address_in_a_private_zone_on_the_vpc():
    result = run()
    zone, record, rule = one(result, ZONE).inputs, one(result, RECORD), one(result, RULE)
    assert zone["dnsName"] == "llm.internal." and zone["visibility"] == "private"
    assert zone["privateVisibilityConfig"]["networks"] == [{"networkUrl": result.outputs["network_self_link"]}]
    assert record.inputs["managedZone"] == zone["name"]
    assert (record.inputs["name"], record.inputs["type"]) == ("t.llm.internal.", "A")
    assert record.inputs["rrdatas"] == [rule.inputs["ipAddress"]] == [one(result, ADDRESS).inputs.get("address")
                                                                      or result.outputs["address"]]
    assert rule.urn in record.dependencies  # the name resolves only once something listens there
    ipaddress.ip_address(result.outputs["address"])


@pytest.mark.parametrize("wait", [True, False])
def test_forwarding_rule_waits_for_wait_for(wait):
    result = run(wait=wait)
    [proxy_only] = [s for s in result.by_type(SUBNET) if s.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"]
    assert (proxy_only.urn in one(result, RULE).dependencies) is wait
    assert proxy_only.inputs["region"] == one(result, RULE).inputs["region"]


def test_certificate_comes_from_the_stacks_private_ca_like_the_gke_endpoint():
    result = run()
    names = {r.name for r in result.resources}
    # The same logical names as GcpPrivateEndpoint's: gcp_private_ca builds both.
    assert {"endpoint-ca-pool", "endpoint-ca", "endpoint-certmanager-agent", "endpoint-ca-requester",
            "endpoint-issuance", "endpoint-certificate", "endpoint-zone", "endpoint-record"} <= names
    pool, ca, issuance = one(result, POOL).inputs, one(result, CA).inputs, one(result, ISSUANCE)
    assert pool["tier"] == "DEVOPS" and ca["pool"] == pool["name"] and ca["type"] == "SELF_SIGNED"
    assert ca["config"]["x509Config"]["nameConstraints"]["permittedDnsNames"] == ["llm.internal"]
    assert one(result, POOL_MEMBER).urn in issuance.dependencies
    assert one(result, CERT).inputs["managed"]["issuanceConfig"].endswith(f"/{issuance.inputs['name']}")


@pytest.mark.parametrize("protect", [True, False])
def test_the_ca_and_pool_follow_protect(protect):
    result = run(protect=protect)
    for type_ in (POOL, CA):
        assert bool(one(result, type_).options.get("protect")) is protect, type_


def test_children_of_the_component():
    result = run()
    mine = [r for r in result.resources if r.parent == "endpoint"]
    assert sorted(r.name.removeprefix("endpoint-") for r in mine) == sorted([
        "address", "neg", "backend", "url-map", "tls", "proxy", "https",
        "ca-pool", "ca", "certmanager-agent", "ca-requester", "issuance", "certificate", "zone", "record"])


def test_outputs():
    result = run()
    out = result.outputs
    assert out["url"] == "https://t.llm.internal/v1"
    assert out["dns_name"] == "t.llm.internal"
    assert out["backend_service_id"] == _mock_id(one(result, BACKEND))
    assert out["forwarding_rule_id"] == _mock_id(one(result, RULE))
    assert out["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_zone_name_is_an_argument():
    result = run(zone_name="ai.corp.internal.")
    assert result.outputs["url"] == "https://t.ai.corp.internal/v1"
    assert one(result, ZONE).inputs["dnsName"] == "ai.corp.internal."
    assert one(result, URL_MAP).inputs["hostRules"][0]["hosts"] == ["t.ai.corp.internal"]
    assert one(result, CERT).inputs["managed"]["domains"] == ["t.ai.corp.internal"]


# -- bad arguments --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, expected", [
    ({"zone_name": "internal"}, "zone_name"),
    ({"zone_name": "LLM Internal"}, "zone_name"),
    ({"stack": "___"}, "stack"),
    ({"stack": "x" * 60}, "stack"),
    ({"cloud_run_service": ""}, "cloud_run_service"),
    ({"region": ""}, "region"),
    ({"wait_for": ["llm-hosting-t-proxy-only"]}, "wait_for"),
])
def test_bad_arguments_are_refused_naming_the_field(kwargs, expected):
    base = dict(stack=STACK, project=GCP_PROJECT, region=REGION, network="n", subnetwork="s",
                cloud_run_service=SERVICE)
    with pytest.raises(ValueError, match=expected):
        GcpServerlessEndpointArgs(**{**base, **kwargs})


# -- internet-facing mode -------------------------------------------------------------------------------------------

def internet():
    return run(internet=True)


def test_internet_facing_is_external_managed_everywhere_and_regional():
    result = internet()
    rule, backend = one(result, RULE).inputs, one(result, BACKEND).inputs
    assert rule["loadBalancingScheme"] == backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert rule["region"] == backend["region"] == one(result, HTTPS_PROXY).inputs["region"] == REGION
    # The VPC whose proxy-only subnet the proxies come from; no subnetwork, the address is not from one.
    assert rule["network"] == result.outputs["network_self_link"]
    assert "subnetwork" not in rule
    assert rule["networkTier"] == one(result, ADDRESS).inputs["networkTier"] == "STANDARD"
    assert [r for t in PLAIN for r in result.by_type(t)] == []  # no global forwarding rule, no plain listener


def test_internet_facing_listens_on_tcp_443_only_with_the_tls12_policy():
    result = internet()
    rule, proxy, policy = one(result, RULE), one(result, HTTPS_PROXY), one(result, SSL_POLICY)
    assert (rule.inputs["ipProtocol"], rule.inputs["portRange"]) == ("TCP", "443")
    assert "ports" not in rule.inputs and not rule.inputs.get("allPorts")
    assert rule.inputs["target"] == _mock_id(proxy)
    assert proxy.inputs["sslPolicy"] == _mock_id(policy)
    assert (policy.inputs["minTlsVersion"], policy.inputs["profile"]) == ("TLS_1_2", "RESTRICTED")


def test_internet_facing_url_map_serves_the_domain_only():
    result = internet()
    url_map, backend = one(result, URL_MAP).inputs, _mock_id(one(result, BACKEND))
    assert url_map["hostRules"][0]["hosts"] == [DOMAIN]
    abort = url_map["defaultRouteAction"]["faultInjectionPolicy"]["abort"]
    assert (abort["httpStatus"], abort["percentage"]) == (404, 100.0)
    assert [(t["host"], t["service"]) for t in url_map["tests"]] == [(DOMAIN, backend)]


def test_internet_facing_has_no_ca_and_no_private_zone():
    result = internet()
    for type_ in (*CAS_TYPES, ZONE):
        assert result.by_type(type_) == [], type_
    assert result.outputs["ca_certificate"] is None  # publicly trusted: clients need no CA


def test_internet_facing_address_is_regional_external():
    address = one(internet(), ADDRESS).inputs
    assert (address["addressType"], address["region"]) == ("EXTERNAL", REGION)
    assert "subnetwork" not in address and "purpose" not in address


def test_internet_facing_proxy_serves_the_certificate_of_the_dns_authorization():
    result = internet()
    auth, cert, proxy = one(result, AUTHORIZATION), one(result, CERT), one(result, HTTPS_PROXY).inputs
    assert (auth.inputs["domain"], auth.inputs["location"]) == (DOMAIN, REGION)
    assert cert.inputs["location"] == REGION
    assert cert.inputs["managed"] == {"domains": [DOMAIN], "dnsAuthorizations": [_location_id(auth)]}
    assert proxy["certificateManagerCertificates"] == [f"//certificatemanager.googleapis.com/{_location_id(cert)}"]


def test_internet_facing_dns_authorizations_record_is_created_in_the_public_zone():
    result = internet()
    challenge = result.named("endpoint-dns-authorization-record")
    assert challenge.inputs["managedZone"] == PUBLIC_ZONE
    assert (challenge.inputs["name"], challenge.inputs["type"], challenge.inputs["rrdatas"]) == \
        (CHALLENGE["name"], "CNAME", [CHALLENGE["data"]])
    assert one(result, AUTHORIZATION).urn in challenge.dependencies
    assert challenge.urn in one(result, CERT).dependencies


def test_internet_facing_a_record_in_the_public_zone_points_at_the_forwarding_rule():
    result = internet()
    [record] = [r for r in result.by_type(RECORD) if r.inputs["type"] == "A"]
    rule = one(result, RULE)
    assert record.inputs["managedZone"] == PUBLIC_ZONE
    assert record.inputs["name"] == f"{DOMAIN}."
    assert record.inputs["rrdatas"] == [rule.inputs["ipAddress"]] == [result.outputs["address"]]
    assert rule.urn in record.dependencies


def test_internet_facing_outputs_and_names():
    result = internet()
    out = result.outputs
    assert (out["url"], out["dns_name"]) == (f"https://{DOMAIN}/v1", DOMAIN)
    assert out["forwarding_rule_id"] == _mock_id(one(result, RULE))
    # Not the private mode's names: switching modes creates the new load balancer before deleting the old.
    for type_ in (ADDRESS, NEG, BACKEND, URL_MAP, SSL_POLICY, HTTPS_PROXY, RULE, CERT, AUTHORIZATION):
        assert one(result, type_).inputs["name"] == "llm-hosting-t-endpoint-public", type_


def test_internet_facing_waits_for_the_proxy_only_subnet():
    result = internet()
    [proxy_only] = [s for s in result.by_type(SUBNET) if s.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"]
    assert proxy_only.urn in one(result, RULE).dependencies


def test_internet_facing_passes_the_kits_tls_and_boundary_policies_for_an_internal_stack_only():
    result = internet()
    for type_ in (RULE, HTTPS_PROXY, CLOUD_RUN):
        evaluation = check_resource("ENC-009-tls-listeners", type_, one(result, type_).inputs, {})
        assert [v.message for v in evaluation.violations] == [], type_
    rule = one(result, RULE).inputs
    internal = check_resource("BND-003-no-public-load-balancer", RULE, rule, {"classification": "internal"})
    assert internal.violations == []
    # The boundary policy still judges it: a regulated stack could not opt in.
    regulated = check_resource("BND-003-no-public-load-balancer", RULE, rule, {"classification": "regulated"})
    assert ["EXTERNAL_MANAGED" in v.message for v in regulated.violations] == [True]


@pytest.mark.parametrize("kwargs, expected", [
    ({"internet_facing": True}, "domain"),
    ({"internet_facing": True, "domain": DOMAIN}, "public_zone"),
    ({"domain": DOMAIN}, "domain"),
    ({"public_zone": PUBLIC_ZONE}, "public_zone"),
    ({"internet_facing": True, "domain": "llm", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": "llm.local", "public_zone": PUBLIC_ZONE}, "domain"),
    ({"internet_facing": True, "domain": DOMAIN, "public_zone": "Example Zone"}, "public_zone"),
])
def test_bad_internet_facing_combinations_are_refused_naming_the_field(kwargs, expected):
    base = dict(stack=STACK, project=GCP_PROJECT, region=REGION, network="n", subnetwork="s",
                cloud_run_service=SERVICE)
    with pytest.raises(ValueError, match=expected):
        GcpServerlessEndpointArgs(**{**base, **kwargs})
