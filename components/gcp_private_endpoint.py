"""A private HTTPS endpoint in the VPC for an in-cluster Service: GKE's internal Application Load Balancer.

Applications in the VPC cannot reach a ClusterIP Service. This puts a regional internal Application Load Balancer in
front of it the GKE way, through the Gateway API (GatewayClass `gke-l7-rilb`):

  https://<stack>.<zone>/v1  --Cloud DNS private zone-->  a reserved internal address in the stack's subnet
      --Gateway (HTTPS 443 only, Certificate Manager certificate)--HTTPRoute-->  the Service's pods (NEGs)

The certificate is issued by a private CA of the stack's own (Certificate Authority Service, DevOps tier, in the
region) through a Certificate Manager issuance config, and renewed by Certificate Manager; clients trust the CA's PEM
this component exports (`ca_certificate`). Nothing here needs the internet: the Gateway controller, CAS, Certificate
Manager and Cloud DNS are Google's control plane, and clients stay inside the VPC. The CA, the certificate and the
private zone are built by `gcp_private_ca`, the same way as for the Cloud Run tiers' GcpServerlessEndpoint.

Prerequisites from elsewhere: the cluster runs with the Gateway API enabled (GkeCluster), and the VPC holds a
proxy-only subnet in the region (GcpNetwork `proxy_only_subnet=True`), whose range `proxy_only_cidr` is.

Cost (list prices, one stack): the DevOps-tier CA is about $20 a month, plus a per-certificate fee at each issuance
(renewed about monthly here); the load balancer's forwarding rule and proxy hours are the bulk of the rest.

Internet-facing mode (`internet_facing=True`, with `domain` and `public_zone`), for a stack whose consumers are on the
internet (network variant public, data neither confidential nor regulated: the caller enforces that, and the kit's
BND-003 policy refuses it for confidential and regulated stacks). The same Gateway, HTTPRoute, health check and
firewall, but:

  https://<domain>/v1  --Cloud DNS public zone-->  a reserved regional EXTERNAL address
      --Gateway of class gke-l7-regional-external-managed (HTTPS 443 only)--HTTPRoute-->  the Service's pods

- the regional external Application Load Balancer, not the global one: its proxies run in the region, from the same
  proxy-only subnet (purpose REGIONAL_MANAGED_PROXY serves regional external and internal ones alike), so TLS is
  terminated in the region (data residency); the firewall rule for those proxies and the health checkers is the
  private mode's;
- a Google-managed, publicly trusted regional certificate for `domain`, authorized through a regional DNS
  authorization whose CNAME goes in the public zone, given to the listener by the same TLS option as in the private
  mode; no CA, no private zone; `ca_certificate` is None, as clients trust the certificate already
  (`gcp_public_certificate`);
- `url` is https://<domain>/v1 and `dns_name` the domain.
Protection from the internet is the kit's own: every request needs a consumer key, and each consumer has its own
rate and budget limits, enforced by the gateway. Cloud Armor is not set up here; a team that wants it (per-IP rate
limits, WAF rules, geo restrictions) attaches a regional security policy (`gcp.compute.RegionSecurityPolicy`) to the
Gateway's backend service through a GCPBackendPolicy's `securityPolicy`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .gcp_network import HEALTH_CHECK_RANGES, MAX_NAME, PRIORITY_ALLOW, name_prefix
from .gcp_private_ca import CA_NAME_SUFFIX, NAME_SUFFIX, check_zone_name, private_certificate, private_zone_record
from .gcp_public_certificate import (PUBLIC_NAME_SUFFIX, check_internet_facing, external_address, public_certificate,
                                     public_domain, public_record)

GATEWAY_CLASS = "gke-l7-rilb"  # regional internal Application Load Balancer
EXTERNAL_GATEWAY_CLASS = "gke-l7-regional-external-managed"  # regional external Application Load Balancer
GATEWAY_API = "gateway.networking.k8s.io/v1"
HEALTH_CHECK_API = "networking.gke.io/v1"  # GKE's own policy CRD, installed with the Gateway API
LISTENER = "https"
HTTPS_PORT = 443
# How a regional Gateway takes Certificate Manager certificates (comma-separated names in the listener's TLS options).
# The global classes take a certificate map (`networking.gke.io/certmap`) instead, which regional ones do not support.
CERT_MANAGER_CERTS_OPTION = "networking.gke.io/cert-manager-certs"
API_PATH = "/v1"  # the OpenAI-compatible API the gateway serves


def dns_label(stack: str) -> str:
    """The stack as one DNS label: lowercase letters, digits and dashes (Pulumi stacks may also hold _ and .)."""
    return re.sub(r"[^a-z0-9-]", "-", stack.lower()).strip("-")


def check_endpoint_names(stack: str, zone_name: str, suffixes: tuple[str, ...]) -> None:
    """What every private endpoint's arguments must allow: `<stack>` as a DNS label under a zone Cloud DNS takes, and
    GCP resource names `<prefix>-<suffix>` within the limit."""
    if not dns_label(stack):
        raise ValueError(f"stack {stack!r} leaves no DNS label for the endpoint's name")
    if len(dns_label(stack)) > 63:
        raise ValueError(f"stack {stack!r}: a DNS label is at most 63 characters")
    if any(len(f"{name_prefix(stack)}-{s}") > MAX_NAME for s in suffixes):
        raise ValueError(f"stack {stack!r} makes resource names longer than {MAX_NAME} characters")
    check_zone_name(zone_name)


@dataclass(frozen=True)
class GcpPrivateEndpointArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # where the load balancer, its address, the CA and the certificate live
    network: pulumi.Input[str]  # VPC self link: the private zone is visible there only
    # Self link of the stack's subnet in `region`: the private load balancer's address is from it (unused when
    # internet_facing: the address is external).
    subnetwork: pulumi.Input[str]
    # The proxy-only subnet's range (GcpNetwork.proxy_only_cidr): the load balancer's proxies connect from it.
    proxy_only_cidr: pulumi.Input[str]
    namespace: pulumi.Input[str] = "llm-serving"  # of the Service; the Gateway and HTTPRoute go beside it
    service_name: str = "llm-gateway"
    service_port: int = 4000
    # The pods' readiness path: the load balancer's health check asks the same question the kubelet does.
    health_check_path: str = "/health/readiness"
    zone_name: str = "llm.internal"
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True  # the private CA and its pool (the internet-facing mode has none)
    # Opt-in: an internet-facing endpoint at https://<domain>/v1 (see the module's docstring); zone_name is unused then.
    internet_facing: bool = False
    domain: Optional[str] = None  # the public DNS name clients call, e.g. llm.example.com
    public_zone: Optional[str] = None  # the Cloud DNS public managed zone's name that holds `domain`

    def __post_init__(self):
        check_internet_facing(self.internet_facing, self.domain, self.public_zone)
        suffixes = (PUBLIC_NAME_SUFFIX,) if self.internet_facing else (NAME_SUFFIX, CA_NAME_SUFFIX)
        check_endpoint_names(self.stack, self.zone_name, (*suffixes, "ilb-proxies"))
        if not 1 <= self.service_port <= 65535:
            raise ValueError(f"service_port {self.service_port} is not a TCP port")
        if not self.health_check_path.startswith("/"):
            raise ValueError(f"health_check_path {self.health_check_path!r} must be an absolute path")

    @property
    def dns_name(self) -> str:
        """`<stack>.<zone>` (internet-facing: `domain`): the name clients call, the certificate's only domain and the
        HTTPRoute's hostname."""
        if self.internet_facing:
            return public_domain(self.domain)
        return f"{dns_label(self.stack)}.{self.zone_name.rstrip('.')}"


def gateway_manifest(name: str, namespace, address_name, certificate_name, dns_name: str,
                     gateway_class: str = GATEWAY_CLASS) -> dict:
    """The Gateway: HTTPS on 443 only, the reserved address, the Certificate Manager certificate. Both regional
    classes (internal gke-l7-rilb, external gke-l7-regional-external-managed) take the certificate the same way."""
    return {
        "apiVersion": GATEWAY_API, "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": gateway_class,
            # The address is reserved beforehand, so the DNS record does not wait for the load balancer.
            "addresses": [{"type": "NamedAddress", "value": address_name}],
            "listeners": [{
                "name": LISTENER, "protocol": "HTTPS", "port": HTTPS_PORT, "hostname": dns_name,
                "tls": {"mode": "Terminate", "options": {CERT_MANAGER_CERTS_OPTION: certificate_name}},
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            }],
        },
    }


def http_route_manifest(name: str, namespace, gateway: str, dns_name: str, service: str, port: int) -> dict:
    """Everything that arrives for `dns_name` on the Gateway's HTTPS listener goes to the Service."""
    return {
        "apiVersion": GATEWAY_API, "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway,
                            "sectionName": LISTENER}],
            "hostnames": [dns_name],
            "rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": service, "port": port}]}],
        },
    }


def health_check_policy_manifest(name: str, namespace, service: str, path: str) -> dict:
    """GKE's HealthCheckPolicy: unlike Ingress, the Gateway controller does not read the pods' readiness probe and
    would otherwise probe `/`, which says nothing about whether the gateway can serve."""
    return {
        "apiVersion": HEALTH_CHECK_API, "kind": "HealthCheckPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "default": {
                "checkIntervalSec": 10, "timeoutSec": 5, "healthyThreshold": 1, "unhealthyThreshold": 3,
                "logConfig": {"enabled": True},
                "config": {"type": "HTTP", "httpHealthCheck": {"portSpecification": "USE_SERVING_PORT",
                                                               "requestPath": path}},
            },
            "targetRef": {"group": "", "kind": "Service", "name": service},
        },
    }


def _custom_resource(name: str, manifest: dict, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(name, api_version=manifest["apiVersion"], kind=manifest["kind"],
                                            metadata=manifest["metadata"], spec=manifest["spec"], opts=opts)


class GcpPrivateEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]  # https://<dns_name>/v1
    dns_name: pulumi.Output[str]  # <stack>.<zone>, no trailing dot
    address: pulumi.Output[str]  # the load balancer's internal IPv4 address (internet-facing: its external one)
    # PEM of the private root CA clients must trust; None when internet-facing (a publicly trusted certificate).
    ca_certificate: pulumi.Output[Optional[str]]

    def __init__(self, name: str, args: GcpPrivateEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpPrivateEndpoint", name, None, opts)
        if args.internet_facing:
            self._internet_facing(name, args)
            return
        child = pulumi.ResourceOptions(parent=self)
        prefix = name_prefix(args.stack)
        dns_name = args.dns_name
        zone = args.zone_name.rstrip(".")

        address = gcp.compute.Address(
            f"{name}-address", name=f"{prefix}-endpoint", project=args.project, region=args.region,
            subnetwork=args.subnetwork, address_type="INTERNAL", purpose="SHARED_LOADBALANCER_VIP",
            description=f"llm-hosting {args.stack}: the private endpoint's load balancer", labels=args.labels,
            opts=child)

        firewall = self._proxy_firewall(name, args, "internal load balancer proxies")

        cert = private_certificate(name, self, stack=args.stack, project=args.project, region=args.region,
                                   dns_name=dns_name, zone=zone, labels=args.labels, protect=args.protect)

        self._routes(name, args, gateway_manifest(f"{args.service_name}-internal", args.namespace, address.name,
                                                  cert.certificate_name, dns_name), firewall, dns_name)

        private_zone_record(name, self, stack=args.stack, project=args.project, zone=zone, network=args.network,
                            dns_name=dns_name, address=address.address, labels=args.labels)

        self._outputs(dns_name, address.address, cert.ca_certificate)

    def _proxy_firewall(self, name: str, args: GcpPrivateEndpointArgs, proxies: str) -> gcp.compute.Firewall:
        # The load balancer's proxies reach the pods (container-native, through NEGs) from the proxy-only subnet,
        # and Google's health checkers probe them from their own ranges; the network's deny-all would drop both.
        # The same rule in both modes: regional external and internal load balancers share the proxy-only subnet.
        return gcp.compute.Firewall(
            f"{name}-ilb-proxies", name=f"{name_prefix(args.stack)}-ilb-proxies", project=args.project,
            network=args.network,
            description=f"llm-hosting {args.stack}: {proxies} and health checks reach "
                        f"{args.service_name} on {args.service_port}",
            direction="INGRESS", priority=PRIORITY_ALLOW,
            source_ranges=pulumi.Output.from_input(args.proxy_only_cidr).apply(
                lambda cidr: [cidr, *HEALTH_CHECK_RANGES]),
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.service_port)])],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))

    def _routes(self, name: str, args: GcpPrivateEndpointArgs, gateway: dict, firewall: gcp.compute.Firewall,
                dns_name: str) -> None:
        """The Gateway, its HTTPRoute to the Service and the Service's health check."""
        k8s_opts = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        created = _custom_resource(
            f"{name}-gateway", gateway,
            # The proxies' subnet and their firewall rule come first, or the load balancer has no healthy backend.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[firewall])))
        _custom_resource(
            f"{name}-route", http_route_manifest(args.service_name, ns, gateway["metadata"]["name"], dns_name,
                                                   args.service_name, args.service_port),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[created])))
        _custom_resource(
            f"{name}-health-check", health_check_policy_manifest(args.service_name, ns, args.service_name,
                                                                   args.health_check_path),
            opts=k8s_opts)

    def _internet_facing(self, name: str, args: GcpPrivateEndpointArgs) -> None:
        """The regional external Application Load Balancer for `domain`, with a publicly trusted certificate."""
        domain = args.dns_name
        common = dict(stack=args.stack, project=args.project, region=args.region, labels=args.labels)
        address = external_address(name, self, **common)
        firewall = self._proxy_firewall(name, args, "external load balancer proxies")
        cert = public_certificate(name, self, domain=domain, public_zone=args.public_zone, **common)
        self._routes(name, args, gateway_manifest(f"{args.service_name}-external", args.namespace, address.name,
                                                  cert.certificate_name, domain, EXTERNAL_GATEWAY_CLASS),
                     firewall, domain)
        public_record(name, self, project=args.project, public_zone=args.public_zone, domain=domain,
                      address=address.address)
        # Publicly trusted: there is no CA of the stack's for clients to trust.
        self._outputs(domain, address.address, pulumi.Output.from_input(None))

    def _outputs(self, dns_name: str, address: pulumi.Output[str], ca_certificate: pulumi.Output) -> None:
        self.dns_name = pulumi.Output.from_input(dns_name)
        self.url = pulumi.Output.from_input(f"https://{dns_name}{API_PATH}")
        self.address = address
        self.ca_certificate = ca_certificate
        self.register_outputs({"url": self.url, "dns_name": self.dns_name, "address": self.address,
                               "ca_certificate": self.ca_certificate})
