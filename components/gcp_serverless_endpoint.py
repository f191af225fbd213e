"""A private HTTPS endpoint in the VPC for a Cloud Run service: a regional internal Application Load Balancer.

The tiers without a cluster (API, Vertex AI, hybrid on Vertex) run the gateway on Cloud Run with ingress
INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER, so its run.app URL answers nothing and applications reach it only here:

  https://<stack>.<zone>/v1  --Cloud DNS private zone-->  a reserved internal address in the stack's subnet
      --forwarding rule (TCP 443 only)--> target HTTPS proxy (Certificate Manager certificate, TLS 1.2+ policy)
      --URL map (the endpoint's name only)--> backend service --serverless NEG--> the Cloud Run service

The same endpoint the GKE tiers get from GcpPrivateEndpoint, made from Compute Engine resources directly since there
is no Gateway controller to make them: the same name (`<stack>.<zone>`), the same private CA and regional certificate
and the same private zone (`gcp_private_ca`), so a client configured for one tier works against another. There is no
HTTP listener at all, not even a redirect: the clients are the stack's own applications, configured with the https
URL this component exports.

Prerequisite from elsewhere: a proxy-only subnet (purpose REGIONAL_MANAGED_PROXY) in the region of the VPC, which
every regional Envoy-based load balancer needs; pass it (or the GcpNetwork that makes it) as `wait_for`. No firewall
rule is needed: the proxies reach Cloud Run through Google's network, not the VPC, and a serverless NEG has no
health check (Cloud Run keeps its own instances healthy).

Internet-facing mode (`internet_facing=True`, with `domain` and `public_zone`), for a stack whose consumers are on the
internet (network variant public, data neither confidential nor regulated: the caller enforces that, and the kit's
BND-003 policy refuses it for confidential and regulated stacks). The same chain, as a regional *external*
Application Load Balancer (scheme EXTERNAL_MANAGED on the backend service and the forwarding rule):

  https://<domain>/v1  --Cloud DNS public zone-->  a reserved regional EXTERNAL address
      --forwarding rule (TCP 443 only)--> target HTTPS proxy (Google-managed certificate, TLS 1.2+ policy)
      --URL map (the domain only; other hosts 404)--> backend service --serverless NEG--> the Cloud Run service

- regional, not global: the proxies run in the region, from the same proxy-only subnet (purpose
  REGIONAL_MANAGED_PROXY serves regional external and internal load balancers alike; `wait_for` as before), so TLS
  is terminated in the region (data residency);
- a Google-managed, publicly trusted regional certificate for `domain`, authorized through a regional DNS
  authorization whose CNAME goes in the public zone; no CA, no private zone; `ca_certificate` is None, as clients
  trust the certificate already (`gcp_public_certificate`, which also says why the address is Standard Tier);
- the Cloud Run service keeps ingress INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER, which admits external Application Load
  Balancers too, so its run.app URL still answers nothing;
- `url` is https://<domain>/v1 and `dns_name` the domain; every resource is named `<prefix>-endpoint-public`.
Protection from the internet is the kit's own: every request needs a consumer key, and each consumer has its own
rate and budget limits, enforced by the gateway. Cloud Armor is not set up here; a team that wants it (per-IP rate
limits, WAF rules, geo restrictions) creates a regional security policy (`gcp.compute.RegionSecurityPolicy`) and
sets it as the backend service's `security_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .gcp_network import name_prefix
from .gcp_private_ca import CA_NAME_SUFFIX, NAME_SUFFIX, check_zone_name, private_certificate, private_zone_record
from .gcp_public_certificate import (EXTERNAL_SCHEME, NETWORK_TIER, PUBLIC_NAME_SUFFIX, check_internet_facing,
                                     external_address, public_certificate, public_domain, public_record,
                                     public_resource_name)
from .gcp_private_endpoint import API_PATH, HTTPS_PORT, check_endpoint_names, dns_label

LOAD_BALANCING_SCHEME = "INTERNAL_MANAGED"  # regional internal Application Load Balancer (Envoy proxies)
# One forwarding rule, so the address is an ordinary one; SHARED_LOADBALANCER_VIP is for an address several
# forwarding rules share (an HTTP and an HTTPS listener on one IP), which this endpoint deliberately does not have.
ADDRESS_PURPOSE = "GCE_ENDPOINT"
BACKEND_PROTOCOL = "HTTPS"  # the request stays encrypted past the proxy, on its way to Cloud Run
# Serverless NEGs refuse RATE; UTILIZATION at full capacity is the mode they accept (Cloud Run scales itself).
BALANCING_MODE = "UTILIZATION"
# A TLS policy of the region's own (global SSL policies do not attach to regional proxies): TLS 1.2 and later with
# the RESTRICTED profile, forward-secret AEAD suites only, which every current client library negotiates.
MIN_TLS_VERSION = "TLS_1_2"
TLS_PROFILE = "RESTRICTED"
# Requests for any other host name (a client calling the raw IP, or a stale name) are refused at the proxy with this
# status and never reach the gateway. The regional URL map has no fixed-response action; a fault-injection abort of
# every request on the default route is how it returns one.
UNKNOWN_HOST_STATUS = 404
PATH_MATCHER = "endpoint"
URL_MAP_TEST_PATH = f"{API_PATH}/models"  # checked by the API at every update of the URL map: it must reach the backend
CERT_MANAGER_URL = "//certificatemanager.googleapis.com/"


@dataclass(frozen=True)
class GcpServerlessEndpointArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # the Cloud Run service's region: the NEG, load balancer, address, CA and certificate live there too
    network: pulumi.Input[str]  # VPC self link: the forwarding rule is in it and the private zone is visible there only
    # Self link of the stack's subnet in `region`: the private load balancer's address is from it (unused when
    # internet_facing: the address is external).
    subnetwork: pulumi.Input[str]
    # The Cloud Run service's name (in `region` and `project`), whose ingress should be
    # INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER.
    cloud_run_service: pulumi.Input[str]
    # What the forwarding rule must wait for: the region's proxy-only subnet (or the GcpNetwork that makes it). The
    # API refuses an INTERNAL_MANAGED (or EXTERNAL_MANAGED) forwarding rule in a region without one.
    wait_for: list[pulumi.Resource] = field(default_factory=list)
    zone_name: str = "llm.internal"
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True  # the private CA and its pool (the internet-facing mode has none)
    # Opt-in: an internet-facing endpoint at https://<domain>/v1 (see the module's docstring); zone_name is unused then.
    internet_facing: bool = False
    domain: Optional[str] = None  # the public DNS name clients call, e.g. llm.example.com
    public_zone: Optional[str] = None  # the Cloud DNS public managed zone's name that holds `domain`

    def __post_init__(self):
        check_internet_facing(self.internet_facing, self.domain, self.public_zone)
        check_endpoint_names(self.stack, self.zone_name,
                             (PUBLIC_NAME_SUFFIX,) if self.internet_facing else (NAME_SUFFIX, CA_NAME_SUFFIX))
        if not self.region:
            raise ValueError("region is empty: the serverless NEG must be in the Cloud Run service's region")
        if isinstance(self.cloud_run_service, str) and not self.cloud_run_service:
            raise ValueError("cloud_run_service is empty: the load balancer needs the Cloud Run service's name")
        if not all(isinstance(r, pulumi.Resource) for r in self.wait_for):
            raise ValueError("wait_for must hold Pulumi resources (the proxy-only subnet, or the network making it)")

    @property
    def dns_name(self) -> str:
        """`<stack>.<zone>` (internet-facing: `domain`): the name clients call, the certificate's only domain and the
        URL map's only host."""
        if self.internet_facing:
            return public_domain(self.domain)
        return f"{dns_label(self.stack)}.{check_zone_name(self.zone_name)}"


class GcpServerlessEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]  # https://<dns_name>/v1
    dns_name: pulumi.Output[str]  # <stack>.<zone>, no trailing dot
    address: pulumi.Output[str]  # the load balancer's internal IPv4 address (internet-facing: its external one)
    backend_service_id: pulumi.Output[str]  # the regional backend service in front of the Cloud Run service
    forwarding_rule_id: pulumi.Output[str]  # the HTTPS 443 forwarding rule
    # PEM of the private root CA clients must trust; None when internet-facing (a publicly trusted certificate).
    ca_certificate: pulumi.Output[Optional[str]]

    def __init__(self, name: str, args: GcpServerlessEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpServerlessEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public = args.internet_facing
        resource_name = public_resource_name(args.stack) if public else f"{name_prefix(args.stack)}-{NAME_SUFFIX}"
        dns_name = args.dns_name
        zone = check_zone_name(args.zone_name)  # the private mode's
        common = dict(project=args.project, region=args.region)
        what = f"llm-hosting {args.stack}: the {'internet-facing' if public else 'private'} endpoint"
        scheme = EXTERNAL_SCHEME if public else LOAD_BALANCING_SCHEME

        if public:
            address = external_address(name, self, stack=args.stack, labels=args.labels, **common)
        else:
            address = gcp.compute.Address(
                f"{name}-address", name=resource_name, subnetwork=args.subnetwork, address_type="INTERNAL",
                purpose=ADDRESS_PURPOSE, description=f"{what}'s load balancer", labels=args.labels, opts=child,
                **common)

        neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-neg", name=resource_name, network_endpoint_type="SERVERLESS",
            cloud_run=gcp.compute.RegionNetworkEndpointGroupCloudRunArgs(service=args.cloud_run_service),
            description=f"{what}: the Cloud Run service", opts=child, **common)
        # No health_checks: a serverless NEG takes none. No timeout_sec either: the Cloud Run service's own request
        # timeout is what bounds a long (streamed) completion.
        backend = gcp.compute.RegionBackendService(
            f"{name}-backend", name=resource_name, load_balancing_scheme=scheme,
            protocol=BACKEND_PROTOCOL, description=f"{what}: the Cloud Run service",
            backends=[gcp.compute.RegionBackendServiceBackendArgs(
                group=neg.id, balancing_mode=BALANCING_MODE, capacity_scaler=1.0)],
            # Every request logged: the load balancer's log is the endpoint's access log.
            log_config=gcp.compute.RegionBackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            opts=child, **common)

        url_map = gcp.compute.RegionUrlMap(
            f"{name}-url-map", name=resource_name, description=f"{what}: {dns_name} only",
            host_rules=[gcp.compute.RegionUrlMapHostRuleArgs(hosts=[dns_name], path_matcher=PATH_MATCHER)],
            path_matchers=[gcp.compute.RegionUrlMapPathMatcherArgs(name=PATH_MATCHER, default_service=backend.id)],
            # Any other host: refused by the proxy itself. The API wants a default service even so; the abort of
            # every request means none is ever sent to it.
            default_service=backend.id,
            default_route_action=gcp.compute.RegionUrlMapDefaultRouteActionArgs(
                fault_injection_policy=gcp.compute.RegionUrlMapDefaultRouteActionFaultInjectionPolicyArgs(
                    abort=gcp.compute.RegionUrlMapDefaultRouteActionFaultInjectionPolicyAbortArgs(
                        http_status=UNKNOWN_HOST_STATUS, percentage=100.0))),
            tests=[gcp.compute.RegionUrlMapTestArgs(host=dns_name, path=URL_MAP_TEST_PATH, service=backend.id,
                                                    description="the endpoint's name reaches the gateway")],
            opts=child, **common)

        if public:
            cert = public_certificate(name, self, stack=args.stack, domain=dns_name, public_zone=args.public_zone,
                                      labels=args.labels, **common)
            ca_certificate = pulumi.Output.from_input(None)  # publicly trusted: no CA of the stack's to hand out
        else:
            cert = private_certificate(name, self, stack=args.stack, project=args.project, region=args.region,
                                       dns_name=dns_name, zone=zone, labels=args.labels, protect=args.protect)
            ca_certificate = cert.ca_certificate
        certificate_kind = "the publicly trusted certificate" if public else "the private CA's certificate"
        ssl_policy = gcp.compute.RegionSslPolicy(
            f"{name}-tls", name=resource_name, min_tls_version=MIN_TLS_VERSION, profile=TLS_PROFILE,
            description=f"{what}: TLS 1.2 and later", opts=child, **common)
        proxy = gcp.compute.RegionTargetHttpsProxy(
            f"{name}-proxy", name=resource_name, url_map=url_map.id, ssl_policy=ssl_policy.id,
            certificate_manager_certificates=[cert.certificate_id.apply(lambda cid: f"{CERT_MANAGER_URL}{cid}")],
            description=f"{what}: HTTPS with {certificate_kind}", opts=child, **common)

        # An external rule has no subnetwork (its address is not from one) but names the VPC all the same: the
        # proxies it hands connections to are in the VPC's proxy-only subnet in the region.
        forwarding_rule = gcp.compute.ForwardingRule(
            f"{name}-https", name=resource_name, load_balancing_scheme=scheme,
            ip_protocol="TCP", port_range=str(HTTPS_PORT), ip_address=address.address, target=proxy.id,
            network=args.network, subnetwork=None if public else args.subnetwork,
            network_tier=NETWORK_TIER if public else "PREMIUM",
            description=f"{what}: HTTPS only", labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.wait_for)), **common)

        if public:
            public_record(name, self, project=args.project, public_zone=args.public_zone, domain=dns_name,
                          address=forwarding_rule.ip_address)
        else:
            private_zone_record(name, self, stack=args.stack, project=args.project, zone=zone, network=args.network,
                                dns_name=dns_name, address=forwarding_rule.ip_address, labels=args.labels)

        self.dns_name = pulumi.Output.from_input(dns_name)
        self.url = pulumi.Output.from_input(f"https://{dns_name}{API_PATH}")
        self.address = forwarding_rule.ip_address
        self.backend_service_id = backend.id
        self.forwarding_rule_id = forwarding_rule.id
        self.ca_certificate = ca_certificate
        self.register_outputs({"url": self.url, "dns_name": self.dns_name, "address": self.address,
                               "backend_service_id": self.backend_service_id,
                               "forwarding_rule_id": self.forwarding_rule_id, "ca_certificate": self.ca_certificate})
