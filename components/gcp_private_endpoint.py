"""A private HTTPS endpoint in the VPC for an in-cluster Service: GKE's internal Application Load Balancer.

Applications in the VPC cannot reach a ClusterIP Service. This puts a regional internal Application Load Balancer in
front of it the GKE way, through the Gateway API (GatewayClass `gke-l7-rilb`):

  https://<stack>.<zone>/v1  --Cloud DNS private zone-->  a reserved internal address in the stack's subnet
      --Gateway (HTTPS 443 only, Certificate Manager certificate)--HTTPRoute-->  the Service's pods (NEGs)

The certificate is issued by a private CA of the stack's own (Certificate Authority Service, DevOps tier, in the
region) through a Certificate Manager issuance config, and renewed by Certificate Manager; clients trust the CA's PEM
this component exports (`ca_certificate`). Nothing here needs the internet: the Gateway controller, CAS, Certificate
Manager and Cloud DNS are Google's control plane, and clients stay inside the VPC.

Prerequisites from elsewhere: the cluster runs with the Gateway API enabled (GkeCluster), and the VPC holds a
proxy-only subnet in the region (GcpNetwork `proxy_only_subnet=True`), whose range `proxy_only_cidr` is.

Cost (list prices, one stack): the DevOps-tier CA is about $20 a month, plus a per-certificate fee at each issuance
(renewed about monthly here); the load balancer's forwarding rule and proxy hours are the bulk of the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .gcp_network import HEALTH_CHECK_RANGES, MAX_NAME, PRIORITY_ALLOW, name_prefix

GATEWAY_CLASS = "gke-l7-rilb"  # regional internal Application Load Balancer
GATEWAY_API = "gateway.networking.k8s.io/v1"
HEALTH_CHECK_API = "networking.gke.io/v1"  # GKE's own policy CRD, installed with the Gateway API
LISTENER = "https"
HTTPS_PORT = 443
# How a regional Gateway takes Certificate Manager certificates (comma-separated names in the listener's TLS options).
# The global classes take a certificate map (`networking.gke.io/certmap`) instead, which regional ones do not support.
CERT_MANAGER_CERTS_OPTION = "networking.gke.io/cert-manager-certs"
# DevOps tier: issues without storing certificates or keeping revocation lists; what short-lived, automatically
# renewed server certificates need, at a tenth of the Enterprise tier's monthly price.
CA_TIER = "DEVOPS"
CA_LIFETIME = "315360000s"  # 10 years: the root clients are given once
CERT_LIFETIME = "2592000s"  # 30 days; Certificate Manager renews before it runs out
CERT_ROTATION_PERCENT = 66  # renew two thirds into the lifetime, leaving ten days to notice a failing renewal
API_PATH = "/v1"  # the OpenAI-compatible API the gateway serves
DNS_TTL = 300
_ZONE = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def dns_label(stack: str) -> str:
    """The stack as one DNS label: lowercase letters, digits and dashes (Pulumi stacks may also hold _ and .)."""
    return re.sub(r"[^a-z0-9-]", "-", stack.lower()).strip("-")


@dataclass(frozen=True)
class GcpPrivateEndpointArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # where the load balancer, its address, the CA and the certificate live
    network: pulumi.Input[str]  # VPC self link: the private zone is visible there only
    subnetwork: pulumi.Input[str]  # self link of the stack's subnet in `region`: the load balancer's address is from it
    # The proxy-only subnet's range (GcpNetwork.proxy_only_cidr): the load balancer's proxies connect from it.
    proxy_only_cidr: pulumi.Input[str]
    namespace: pulumi.Input[str] = "llm-serving"  # of the Service; the Gateway and HTTPRoute go beside it
    service_name: str = "llm-gateway"
    service_port: int = 4000
    # The pods' readiness path: the load balancer's health check asks the same question the kubelet does.
    health_check_path: str = "/health/readiness"
    zone_name: str = "llm.internal"
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True

    def __post_init__(self):
        if not dns_label(self.stack):
            raise ValueError(f"stack {self.stack!r} leaves no DNS label for the endpoint's name")
        if len(dns_label(self.stack)) > 63:
            raise ValueError(f"stack {self.stack!r}: a DNS label is at most 63 characters")
        names = [f"{name_prefix(self.stack)}-{s}" for s in ("endpoint", "endpoint-cas", "ilb-proxies")]
        if any(len(n) > MAX_NAME for n in names):
            raise ValueError(f"stack {self.stack!r} makes resource names longer than {MAX_NAME} characters")
        zone = self.zone_name.rstrip(".")
        if not _ZONE.match(zone) or "." not in zone or len(zone) > 200:
            # A single label such as `internal` would shadow Compute Engine's own internal DNS names in the VPC.
            raise ValueError(f"zone_name {self.zone_name!r} is not a DNS domain of two or more labels such as "
                             "llm.internal (lowercase letters, digits and dashes, separated by dots)")
        if not 1 <= self.service_port <= 65535:
            raise ValueError(f"service_port {self.service_port} is not a TCP port")
        if not self.health_check_path.startswith("/"):
            raise ValueError(f"health_check_path {self.health_check_path!r} must be an absolute path")

    @property
    def dns_name(self) -> str:
        """`<stack>.<zone>`: the name clients call, the certificate's only domain and the HTTPRoute's hostname."""
        return f"{dns_label(self.stack)}.{self.zone_name.rstrip('.')}"


def gateway_manifest(name: str, namespace, address_name, certificate_name, dns_name: str) -> dict:
    """The Gateway: HTTPS on 443 only, the reserved address, the Certificate Manager certificate."""
    return {
        "apiVersion": GATEWAY_API, "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
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
    address: pulumi.Output[str]  # the load balancer's internal IPv4 address
    ca_certificate: pulumi.Output[str]  # PEM of the private root CA clients must trust

    def __init__(self, name: str, args: GcpPrivateEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpPrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The CA and its pool: deleting them invalidates every client's trust anchor; GCP also keeps their names.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        prefix = name_prefix(args.stack)
        dns_name = args.dns_name
        zone = args.zone_name.rstrip(".")
        ns = args.namespace

        address = gcp.compute.Address(
            f"{name}-address", name=f"{prefix}-endpoint", project=args.project, region=args.region,
            subnetwork=args.subnetwork, address_type="INTERNAL", purpose="SHARED_LOADBALANCER_VIP",
            description=f"llm-hosting {args.stack}: the private endpoint's load balancer", labels=args.labels,
            opts=child)

        # The load balancer's proxies reach the pods (container-native, through NEGs) from the proxy-only subnet,
        # and Google's health checkers probe them from their own ranges; the network's deny-all would drop both.
        firewall = gcp.compute.Firewall(
            f"{name}-ilb-proxies", name=f"{prefix}-ilb-proxies", project=args.project, network=args.network,
            description=f"llm-hosting {args.stack}: internal load balancer proxies and health checks reach "
                        f"{args.service_name} on {args.service_port}",
            direction="INGRESS", priority=PRIORITY_ALLOW,
            source_ranges=pulumi.Output.from_input(args.proxy_only_cidr).apply(
                lambda cidr: [cidr, *HEALTH_CHECK_RANGES]),
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.service_port)])],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))

        pool = gcp.certificateauthority.CaPool(
            f"{name}-ca-pool", name=f"{prefix}-endpoint", project=args.project, location=args.region, tier=CA_TIER,
            # No CRL or CA certificate published to a bucket: clients get the root from this stack's output, and
            # nothing in an air-gapped VPC could fetch them anyway.
            publishing_options=gcp.certificateauthority.CaPoolPublishingOptionsArgs(
                publish_ca_cert=False, publish_crl=False),
            labels=args.labels, opts=kept)
        authority = gcp.certificateauthority.Authority(
            f"{name}-ca", certificate_authority_id=f"{prefix}-endpoint-cas", project=args.project,
            location=args.region, pool=pool.name, type="SELF_SIGNED", lifetime=CA_LIFETIME,
            key_spec=gcp.certificateauthority.AuthorityKeySpecArgs(algorithm="EC_P256_SHA256"),
            config=gcp.certificateauthority.AuthorityConfigArgs(
                subject_config=gcp.certificateauthority.AuthorityConfigSubjectConfigArgs(
                    subject=gcp.certificateauthority.AuthorityConfigSubjectConfigSubjectArgs(
                        organization="llm-hosting", common_name=f"llm-hosting {args.stack} private endpoint CA")),
                x509_config=gcp.certificateauthority.AuthorityConfigX509ConfigArgs(
                    ca_options=gcp.certificateauthority.AuthorityConfigX509ConfigCaOptionsArgs(
                        is_ca=True, max_issuer_path_length=0),
                    key_usage=gcp.certificateauthority.AuthorityConfigX509ConfigKeyUsageArgs(
                        base_key_usage=gcp.certificateauthority.AuthorityConfigX509ConfigKeyUsageBaseKeyUsageArgs(
                            cert_sign=True, crl_sign=True),
                        extended_key_usage=gcp.certificateauthority.AuthorityConfigX509ConfigKeyUsageExtendedKeyUsageArgs(
                            server_auth=True)),
                    # The root clients are told to trust can vouch for names in this zone only.
                    name_constraints=gcp.certificateauthority.AuthorityConfigX509ConfigNameConstraintsArgs(
                        critical=True, permitted_dns_names=[zone]))),
            deletion_protection=args.protect, labels=args.labels, opts=kept)

        # Certificate Manager requests the certificates from the pool as its own service agent.
        agent = gcp.projects.ServiceIdentity(f"{name}-certmanager-agent", service="certificatemanager.googleapis.com",
                                             project=args.project, opts=child)
        requester = gcp.certificateauthority.CaPoolIamMember(
            f"{name}-ca-requester", ca_pool=pool.id, role="roles/privateca.certificateRequester", member=agent.member,
            opts=child)
        issuance = gcp.certificatemanager.CertificateIssuanceConfig(
            f"{name}-issuance", name=f"{prefix}-endpoint", project=args.project, location=args.region,
            description=f"llm-hosting {args.stack}: certificates from the stack's private CA",
            certificate_authority_config=gcp.certificatemanager.CertificateIssuanceConfigCertificateAuthorityConfigArgs(
                certificate_authority_service_config=gcp.certificatemanager
                .CertificateIssuanceConfigCertificateAuthorityConfigCertificateAuthorityServiceConfigArgs(
                    ca_pool=pool.id)),
            lifetime=CERT_LIFETIME, rotation_window_percentage=CERT_ROTATION_PERCENT, key_algorithm="ECDSA_P256",
            labels=args.labels, opts=pulumi.ResourceOptions(parent=self, depends_on=[authority, requester]))
        certificate = gcp.certificatemanager.Certificate(
            f"{name}-certificate", name=f"{prefix}-endpoint", project=args.project, location=args.region,
            description=f"llm-hosting {args.stack}: {dns_name}",
            managed=gcp.certificatemanager.CertificateManagedArgs(domains=[dns_name], issuance_config=issuance.id),
            labels=args.labels, opts=child)

        k8s_opts = pulumi.ResourceOptions(parent=self)
        gateway_name = f"{args.service_name}-internal"
        gateway = _custom_resource(
            f"{name}-gateway", gateway_manifest(gateway_name, ns, address.name, certificate.name, dns_name),
            # The proxies' subnet and their firewall rule come first, or the load balancer has no healthy backend.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[firewall])))
        _custom_resource(
            f"{name}-route", http_route_manifest(args.service_name, ns, gateway_name, dns_name, args.service_name,
                                                   args.service_port),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[gateway])))
        _custom_resource(
            f"{name}-health-check", health_check_policy_manifest(args.service_name, ns, args.service_name,
                                                                   args.health_check_path),
            opts=k8s_opts)

        private_zone = gcp.dns.ManagedZone(
            f"{name}-zone", name=f"{prefix}-endpoint", project=args.project, dns_name=f"{zone}.",
            description=f"llm-hosting {args.stack}: the private endpoint's name, inside the VPC only",
            visibility="private", private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=args.network)]),
            labels=args.labels, opts=child)
        gcp.dns.RecordSet(
            f"{name}-record", project=args.project, managed_zone=private_zone.name, name=f"{dns_name}.", type="A",
            ttl=DNS_TTL, rrdatas=[address.address], opts=child)

        self.dns_name = pulumi.Output.from_input(dns_name)
        self.url = pulumi.Output.from_input(f"https://{dns_name}{API_PATH}")
        self.address = address.address
        # A self-signed root: its chain is itself.
        self.ca_certificate = authority.pem_ca_certificates.apply(lambda pems: pems[0] if pems else None)
        self.register_outputs({"url": self.url, "dns_name": self.dns_name, "address": self.address,
                               "ca_certificate": self.ca_certificate})
