"""GcpNetwork under the recording mocks: VPC and subnet, NAT egress, the airgapped lockdown, the perimeter, bad args."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache

import pulumi
import pytest

from components.gcp_network import RESTRICTED_SERVICES, GcpNetwork, GcpNetworkArgs
from preview.harness import run_program
from preview.mocks import PROJECT_NUMBER

PROJECT, STACK, REGION, GCP_PROJECT = "llm-hosting", "t", "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
OUTPUTS = ("network_id", "network_self_link", "subnet_id", "subnet_self_link", "pods_range_name",
           "services_range_name", "nat_name", "perimeter_name", "psc_subnet_id", "proxy_only_cidr")
LABELS = {"llm-hosting-stack": STACK, "team": "ml-platform"}
VARIANTS = ("public", "private", "airgapped")

NETWORK = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"
ROUTE = "gcp:compute/route:Route"
FIREWALL = "gcp:compute/firewall:Firewall"
ADDRESS = "gcp:compute/address:Address"
GLOBAL_ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD = "gcp:dns/recordSet:RecordSet"
PERIMETER = "gcp:accesscontextmanager/servicePerimeter:ServicePerimeter"
POLICY = "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy"
VERTEX = ("gcp-vertexai",)

VIP = "199.36.153.4/30"
VIP_ADDRESSES = ["199.36.153.4", "199.36.153.5", "199.36.153.6", "199.36.153.7"]
HEALTH_CHECKS = {"35.191.0.0/16", "130.211.0.0/22"}
NETWORK_ID = f"projects/{GCP_PROJECT}/global/networks/llm-hosting-t-vpc"


@lru_cache(maxsize=None)
def _run(variant: str, kwargs: tuple):
    def program():
        net = GcpNetwork("net", GcpNetworkArgs(stack=STACK, variant=variant, region=REGION, project=GCP_PROJECT,
                                               labels=dict(LABELS), **dict(kwargs)))
        for key in OUTPUTS:
            pulumi.export(key, getattr(net, key))

    return run_program(program, PROJECT, STACK, CONFIG)


def run(variant: str, **kwargs):
    """One run per distinct argument set; the results are only read."""
    return _run(variant, tuple(sorted(kwargs.items())))


def firewalls(result, direction: str) -> dict:
    return {r.name: r.inputs for r in result.by_type(FIREWALL) if r.inputs["direction"] == direction}


def records(result) -> set:
    return {(r.inputs["managedZone"], r.inputs["name"], r.inputs["type"], tuple(r.inputs["rrdatas"]))
            for r in result.by_type(RECORD)}


# -- every variant --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_network_is_custom_mode_with_regional_routing(variant):
    [network] = run(variant).by_type(NETWORK)
    assert network.inputs["autoCreateSubnetworks"] is False
    assert network.inputs["routingMode"] == "REGIONAL"
    assert network.inputs["name"] == "llm-hosting-t-vpc"
    assert network.inputs["project"] == GCP_PROJECT


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_subnet_in_the_region_with_private_google_access(variant):
    result = run(variant)
    [subnet] = result.by_type(SUBNET)
    assert subnet.inputs["region"] == REGION
    assert subnet.inputs["network"] == result.outputs["network_id"] == NETWORK_ID
    assert subnet.inputs["ipCidrRange"] == "10.10.0.0/20"
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert result.outputs["subnet_id"] == f"projects/{GCP_PROJECT}/regions/{REGION}/subnetworks/llm-hosting-t-{REGION}"
    assert result.outputs["subnet_self_link"] == f"https://www.googleapis.com/compute/v1/{result.outputs['subnet_id']}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_subnet_has_named_pod_and_service_ranges_with_the_default_cidrs(variant):
    result = run(variant)
    ranges = result.named("net-subnet").inputs["secondaryIpRanges"]
    assert ranges == [{"rangeName": "pods", "ipCidrRange": "10.16.0.0/14"},
                      {"rangeName": "services", "ipCidrRange": "10.20.0.0/20"}]
    assert result.outputs["pods_range_name"] == "pods"
    assert result.outputs["services_range_name"] == "services"


def test_subnet_takes_the_given_cidrs():
    result = run("airgapped", subnet_cidr="172.20.0.0/22", pods_cidr="100.64.0.0/16", services_cidr="172.20.8.0/24")
    subnet = result.named("net-subnet").inputs
    assert subnet["ipCidrRange"] == "172.20.0.0/22"
    assert {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]} == {
        "pods": "100.64.0.0/16", "services": "172.20.8.0/24"}
    # The in-VPC allowances follow the ranges.
    assert firewalls(result, "EGRESS")["net-allow-internal-egress"]["destinationRanges"] == [
        "172.20.0.0/22", "100.64.0.0/16", "172.20.8.0/24"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_subnet_flow_logs_are_on(variant):
    log = run(variant).named("net-subnet").inputs["logConfig"]
    assert log["aggregationInterval"] == "INTERVAL_5_SEC"
    assert log["flowSampling"] == 1
    assert log["metadata"] == "INCLUDE_ALL_METADATA"


@pytest.mark.parametrize("variant", VARIANTS)
def test_ingress_from_anywhere_is_denied_at_low_priority(variant):
    rule = firewalls(run(variant), "INGRESS")["net-deny-all-ingress"]
    assert rule["sourceRanges"] == ["0.0.0.0/0"]
    assert rule["denies"] == [{"protocol": "all"}] and "allows" not in rule
    assert rule["priority"] == 65534
    assert rule["network"] == NETWORK_ID
    assert "logConfig" in rule


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_resource_is_inside_the_component(variant):
    result = run(variant, access_policy_id="123456789")
    assert result.named("net").type == "llmhost:index:GcpNetwork"
    for r in result.resources:
        if r.custom:
            assert r.parent == "net", f"{r.name} is not inside the component"
            if r.type.startswith("gcp:compute/") or r.type.startswith("gcp:dns/"):
                assert r.inputs["project"] == GCP_PROJECT, f"{r.name} lands in the provider's default project"


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_and_subnet_are_protected(variant):
    result = run(variant)
    assert result.named("net-vpc").options.get("protect") is True
    assert result.named("net-subnet").options.get("protect") is True


def test_protect_can_be_turned_off():
    result = run("airgapped", protect=False, access_policy_id="123456789")
    assert not any(r.options.get("protect") for r in result.resources)


def test_stack_names_are_made_gcp_safe():
    result = run_program(
        lambda: GcpNetwork("net", GcpNetworkArgs(stack="Prod_EU.1", variant="airgapped", region=REGION,
                                                 access_policy_id="42")),
        PROJECT, "Prod_EU.1", CONFIG)
    assert result.named("net-vpc").inputs["name"] == "llm-hosting-prod-eu-1-vpc"
    assert result.named("net-googleapis").inputs["name"] == "llm-hosting-prod-eu-1-googleapis"
    assert result.named("net-perimeter").inputs["name"] == "accessPolicies/42/servicePerimeters/llm_hosting_prod_eu_1"


# -- public and private ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["public", "private"])
def test_one_router_and_one_nat_on_it(variant):
    result = run(variant)
    [router] = result.by_type(ROUTER)
    [nat] = result.by_type(NAT)
    assert router.inputs["network"] == NETWORK_ID and router.inputs["region"] == REGION
    assert nat.inputs["router"] == router.inputs["name"]
    assert nat.inputs["region"] == REGION
    assert result.outputs["nat_name"] == nat.inputs["name"] == "llm-hosting-t-nat"


@pytest.mark.parametrize("variant", ["public", "private"])
def test_nat_serves_the_subnet_only_with_google_assigned_addresses(variant):
    result = run(variant)
    nat = result.named("net-nat").inputs
    assert nat["natIpAllocateOption"] == "AUTO_ONLY" and not nat.get("natIps")
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat["subnetworks"] == [{"name": result.outputs["subnet_self_link"],
                                   "sourceIpRangesToNats": ["ALL_IP_RANGES"]}]
    assert result.by_type(ADDRESS) == [] and result.by_type(GLOBAL_ADDRESS) == []


@pytest.mark.parametrize("variant", ["public", "private"])
def test_nat_logs_errors(variant):
    assert run(variant).named("net-nat").inputs["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}


@pytest.mark.parametrize("variant", ["public", "private"])
def test_nat_variants_keep_the_default_internet_route(variant):
    result = run(variant)
    assert result.named("net-vpc").inputs["deleteDefaultRoutesOnCreate"] is False
    assert result.by_type(ROUTE) == []
    assert result.by_type(ZONE) == []  # Google APIs resolve publicly and go out through Private Google Access


def test_public_lets_google_health_checks_reach_the_backends():
    rule = firewalls(run("public"), "INGRESS")["net-allow-health-checks"]
    assert set(rule["sourceRanges"]) == HEALTH_CHECKS
    assert rule["allows"] == [{"protocol": "tcp"}]
    assert rule["priority"] < 65534


@pytest.mark.parametrize("variant", ["private", "airgapped"])
def test_no_ingress_from_outside_the_vpc_is_allowed(variant):
    internal = [ipaddress.ip_network(c) for c in ("10.10.0.0/20", "10.16.0.0/14", "10.20.0.0/20")]
    for name, rule in firewalls(run(variant), "INGRESS").items():
        if not rule.get("allows"):
            continue
        for source in rule.get("sourceRanges", []):
            assert any(ipaddress.ip_network(source).subnet_of(n) for n in internal), f"{name} admits {source}"
        assert not HEALTH_CHECKS & set(rule.get("sourceRanges", [])), name
        assert rule.get("sourceRanges"), f"{name} allows ingress without a source range"


@pytest.mark.parametrize("variant", ["public", "private"])
def test_nat_variants_have_no_egress_rules(variant):
    assert firewalls(run(variant), "EGRESS") == {}  # GCP's implied allow-all egress goes out through the NAT


# -- airgapped ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_", [NAT, ROUTER])
def test_airgapped_has_no_nat_or_router(type_):
    assert run("airgapped").by_type(type_) == []


def test_airgapped_has_no_external_address():
    result = run("airgapped")
    external = [r for r in result.by_type(ADDRESS) + result.by_type(GLOBAL_ADDRESS)
                if r.inputs.get("addressType", "EXTERNAL") == "EXTERNAL"]
    assert external == []
    assert result.outputs["nat_name"] is None


def test_airgapped_network_drops_the_default_internet_route():
    assert run("airgapped").named("net-vpc").inputs["deleteDefaultRoutesOnCreate"] is True


def test_airgapped_only_route_is_the_restricted_vip_via_the_internet_gateway():
    result = run("airgapped")
    [route] = result.by_type(ROUTE)
    assert route.inputs["destRange"] == VIP
    assert route.inputs["nextHopGateway"] == "default-internet-gateway"
    assert route.inputs["network"] == NETWORK_ID
    assert not any(k.startswith("nextHop") and k != "nextHopGateway" for k in route.inputs)


def test_airgapped_nothing_routes_or_allows_egress_to_the_internet():
    result = run("airgapped")
    allowed_destinations = [ipaddress.ip_network(c) for c in (VIP, "10.10.0.0/20", "10.16.0.0/14", "10.20.0.0/20")]
    for r in result.by_type(ROUTE):
        assert r.inputs["destRange"] == VIP, f"{r.name} routes {r.inputs['destRange']}"
    for name, rule in firewalls(result, "EGRESS").items():
        if not rule.get("allows"):
            continue
        assert rule.get("destinationRanges"), f"{name} allows egress to everywhere"
        for dest in rule["destinationRanges"]:
            assert any(ipaddress.ip_network(dest).subnet_of(n) for n in allowed_destinations), f"{name} -> {dest}"
    # Whatever mentions 0.0.0.0/0 only denies.
    for r in result.resources:
        if "0.0.0.0/0" in json.dumps(r.inputs):
            assert r.type == FIREWALL and r.inputs.get("denies") and not r.inputs.get("allows"), r.name
    text = json.dumps([r.inputs for r in result.resources])
    assert text.count("default-internet-gateway") == 1  # the VIP route, nothing else


def test_airgapped_egress_is_denied_except_to_the_vip_and_the_vpc():
    rules = firewalls(run("airgapped"), "EGRESS")
    assert set(rules) == {"net-deny-all-egress", "net-allow-restricted-apis", "net-allow-internal-egress"}
    deny, vip, internal = (rules[n] for n in ("net-deny-all-egress", "net-allow-restricted-apis",
                                               "net-allow-internal-egress"))
    assert deny["destinationRanges"] == ["0.0.0.0/0"] and deny["denies"] == [{"protocol": "all"}]
    assert deny["priority"] == 65534
    assert vip["destinationRanges"] == [VIP] and vip["allows"] == [{"protocol": "tcp", "ports": ["443"]}]
    assert internal["destinationRanges"] == ["10.10.0.0/20", "10.16.0.0/14", "10.20.0.0/20"]
    assert internal["allows"] == [{"protocol": "all"}]
    # Lower numbers win: both allowances must take precedence over the catch-all deny.
    assert vip["priority"] < deny["priority"] and internal["priority"] < deny["priority"]
    assert all(r["network"] == NETWORK_ID for r in rules.values())


def test_airgapped_private_zones_are_bound_to_this_network_only():
    zones = {z.inputs["dnsName"]: z.inputs for z in run("airgapped").by_type(ZONE)}
    assert set(zones) == {"googleapis.com.", "pkg.dev."}
    for zone in zones.values():
        assert zone["visibility"] == "private"
        assert zone["privateVisibilityConfig"] == {"networks": [{"networkUrl": NETWORK_ID}]}
        assert zone["labels"] == LABELS


def test_airgapped_records_send_google_apis_and_artifact_registry_to_the_restricted_vip():
    result = run("airgapped")
    assert records(result) == {
        ("llm-hosting-t-googleapis", "restricted.googleapis.com.", "A", tuple(VIP_ADDRESSES)),
        ("llm-hosting-t-googleapis", "*.googleapis.com.", "CNAME", ("restricted.googleapis.com.",)),
        ("llm-hosting-t-pkg-dev", "pkg.dev.", "A", tuple(VIP_ADDRESSES)),
        ("llm-hosting-t-pkg-dev", "*.pkg.dev.", "CNAME", ("pkg.dev.",)),
    }
    assert {z.inputs["name"]: z.inputs["dnsName"] for z in result.by_type(ZONE)} == {
        "llm-hosting-t-googleapis": "googleapis.com.", "llm-hosting-t-pkg-dev": "pkg.dev."}
    assert len(result.by_type(RECORD)) == 4


# -- service connection policies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_no_policy_or_psc_subnet_unless_asked(variant):
    result = run(variant)
    assert result.by_type(POLICY) == []
    assert [s.name for s in result.by_type(SUBNET)] == ["net-subnet"]
    assert result.outputs["psc_subnet_id"] is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_policy_lets_the_service_class_create_endpoints_from_a_dedicated_subnet(variant):
    result = run(variant, psc_service_classes=VERTEX)
    [policy] = result.by_type(POLICY)
    psc = result.named("net-psc").inputs
    assert (psc["region"], psc["network"], psc["ipCidrRange"]) == (REGION, NETWORK_ID, "10.24.0.0/28")
    assert "secondaryIpRanges" not in psc and psc["project"] == GCP_PROJECT
    p = policy.inputs
    assert (p["serviceClass"], p["location"], p["network"], p["project"]) == ("gcp-vertexai", REGION, NETWORK_ID,
                                                                              GCP_PROJECT)
    assert p["name"] == "llm-hosting-t-gcp-vertexai"
    assert p["pscConfig"] == {"subnetworks": [result.outputs["psc_subnet_id"]]}
    assert result.outputs["psc_subnet_id"] == f"projects/{GCP_PROJECT}/regions/{REGION}/subnetworks/llm-hosting-t-psc"
    assert policy.parent == "net" and p["labels"] == LABELS


def test_one_policy_per_service_class():
    result = run("private", psc_service_classes=("gcp-vertexai", "google-cloud-sql"))
    assert sorted(r.inputs["serviceClass"] for r in result.by_type(POLICY)) == ["gcp-vertexai", "google-cloud-sql"]
    assert len([s for s in result.by_type(SUBNET) if s.name == "net-psc"]) == 1


def test_airgapped_callers_may_reach_the_psc_endpoints():
    internal = firewalls(run("airgapped", psc_service_classes=VERTEX), "EGRESS")["net-allow-internal-egress"]
    assert internal["destinationRanges"] == ["10.10.0.0/20", "10.16.0.0/14", "10.20.0.0/20", "10.24.0.0/28"]


# -- proxy-only subnet (regional internal Application Load Balancers) -----------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_no_proxy_only_subnet_unless_asked(variant):
    result = run(variant)
    assert [s for s in result.by_type(SUBNET) if s.inputs.get("purpose")] == []
    assert result.outputs["proxy_only_cidr"] is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_proxy_only_subnet_is_regional_managed_proxy_and_active_in_the_region(variant):
    result = run(variant, proxy_only_subnet=True)
    [proxy] = [s for s in result.by_type(SUBNET) if s.inputs.get("purpose")]
    p = proxy.inputs
    assert (p["purpose"], p["role"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE")
    assert (p["region"], p["network"], p["ipCidrRange"]) == (REGION, NETWORK_ID, "10.26.0.0/23")
    assert p["name"] == "llm-hosting-t-proxy-only" and p["project"] == GCP_PROJECT
    # Proxies cannot carry secondary ranges or Private Google Access; GCP refuses them on this purpose.
    assert "secondaryIpRanges" not in p and not p.get("privateIpGoogleAccess")
    assert proxy.parent == "net"
    assert result.outputs["proxy_only_cidr"] == "10.26.0.0/23"


def test_proxy_only_subnet_takes_the_given_cidr():
    result = run("private", proxy_only_subnet=True, proxy_only_cidr="10.30.0.0/24")
    [proxy] = [s for s in result.by_type(SUBNET) if s.inputs.get("purpose")]
    assert proxy.inputs["ipCidrRange"] == result.outputs["proxy_only_cidr"] == "10.30.0.0/24"


# -- VPC Service Controls -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_no_perimeter_without_an_access_policy(variant):
    result = run(variant)
    assert result.by_type(PERIMETER) == []
    assert result.outputs["perimeter_name"] is None


@pytest.mark.parametrize("variant", ["airgapped", "public"])
def test_perimeter_holds_the_project_by_number_and_restricts_the_data_apis(variant):
    result = run(variant, access_policy_id="123456789")
    [perimeter] = result.by_type(PERIMETER)
    p = perimeter.inputs
    assert p["parent"] == "accessPolicies/123456789"
    assert p["name"] == "accessPolicies/123456789/servicePerimeters/llm_hosting_t"
    assert p["perimeterType"] == "PERIMETER_TYPE_REGULAR"
    assert p["status"]["resources"] == [f"projects/{PROJECT_NUMBER}"]
    services = set(p["status"]["restrictedServices"])
    assert services == set(RESTRICTED_SERVICES)
    assert services >= {"aiplatform.googleapis.com", "storage.googleapis.com", "artifactregistry.googleapis.com",
                        "container.googleapis.com", "secretmanager.googleapis.com", "cloudkms.googleapis.com",
                        "logging.googleapis.com",
                        # GKE's alert path: Managed Service for Prometheus writes the firing alerts here.
                        "monitoring.googleapis.com",
                        # The private endpoint's trust chain: its CA, its certificate, its DNS name.
                        "privateca.googleapis.com", "certificatemanager.googleapis.com", "dns.googleapis.com"}
    assert perimeter.options.get("protect") is True
    assert result.outputs["perimeter_name"] == p["name"]


# -- bad arguments --------------------------------------------------------------------------------------------------

def _refused(**kwargs) -> ValueError:
    args = {"stack": STACK, "variant": "airgapped", "region": REGION, **kwargs}
    with pytest.raises(ValueError) as info:
        run_program(lambda: GcpNetwork("net", GcpNetworkArgs(**args)), PROJECT, STACK, CONFIG)
    assert getattr(info.value, "registered", 0) == 0  # refused before anything was registered
    return info.value


@pytest.mark.parametrize("kwargs, field, expected", [
    ({"variant": "dmz"}, "variant", "is not one of public, private, airgapped"),
    ({"subnet_cidr": "not-a-cidr"}, "subnet_cidr", "is not a valid network in CIDR notation"),
    ({"subnet_cidr": "10.10.0.1/20"}, "subnet_cidr", "has host bits set"),
    ({"pods_cidr": "fd00::/56"}, "pods_cidr", "is IPv6"),
    ({"services_cidr": "10.20.0.0/30"}, "services_cidr", "GCP allows subnet ranges from /8 to /29"),
    ({"services_cidr": "169.254.0.0/20"}, "services_cidr", "overlaps 169.254.0.0/16"),
    ({"pods_cidr": "10.8.0.0/13"}, "pods_cidr", "subnet_cidr 10.10.0.0/20 overlaps pods_cidr 10.8.0.0/13"),
    ({"services_cidr": "10.18.0.0/20"}, "services_cidr", "pods_cidr 10.16.0.0/14 overlaps services_cidr 10.18.0.0/20"),
    ({"access_policy_id": "accessPolicies/123"}, "access_policy_id", "must be the numeric id"),
    ({"access_policy_id": ""}, "access_policy_id", "must be the numeric id"),
    ({"region": "Europe West 4"}, "region", "is not a GCP region name"),
    ({"stack": "x" * 60}, "stack", "does not make valid GCP resource names"),
    ({"labels": {"Team": "ml"}}, "labels", "label keys and values"),
    ({"psc_service_classes": ("gcp-vertexai",), "psc_subnet_cidr": "10.10.0.0/28"}, "psc_subnet_cidr",
     "subnet_cidr 10.10.0.0/20 overlaps psc_subnet_cidr 10.10.0.0/28"),
    ({"psc_service_classes": ("gcp-vertexai",), "psc_subnet_cidr": "10.24.0.0/30"}, "psc_subnet_cidr",
     "GCP allows subnet ranges from /8 to /29"),
    ({"psc_service_classes": ("GCP Vertex",)}, "psc_service_classes", "is not a service class name"),
    ({"psc_service_classes": ("gcp-vertexai", "gcp-vertexai")}, "psc_service_classes", "names a class twice"),
    ({"proxy_only_subnet": True, "proxy_only_cidr": "10.10.8.0/23"}, "proxy_only_cidr",
     "subnet_cidr 10.10.0.0/20 overlaps proxy_only_cidr 10.10.8.0/23"),
    ({"proxy_only_subnet": True, "proxy_only_cidr": "10.26.0.0/27"}, "proxy_only_cidr", "must be at least /26"),
    ({"proxy_only_subnet": True, "proxy_only_cidr": "10.26.0.1/23"}, "proxy_only_cidr", "has host bits set"),
])
def test_bad_arguments_are_refused_naming_the_field(kwargs, field, expected):
    message = str(_refused(**kwargs))
    assert field in message and expected in message, message
