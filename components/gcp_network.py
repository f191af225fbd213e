"""The VPC every self-hosted GCP tier runs in: one regional subnet with GKE secondary ranges, egress per variant.

Variants:
  public     Cloud NAT egress; Google's health checkers may reach load-balanced backends.
  private    the same Cloud NAT egress; no ingress from outside the VPC at all.
  airgapped  no path to the internet at all: no NAT, no default route, no external addresses. Google APIs are
             reached through restricted.googleapis.com (the VPC Service Controls VIP) by private DNS only.

Asked for service classes (`psc_service_classes`, e.g. Vertex AI's `gcp-vertexai`), the network also holds one
service connection policy per class, with a dedicated subnet they take Private Service Connect endpoint addresses
from: that is what lets a managed service create its forwarding rule in this VPC (service connectivity automation).

Asked for a proxy-only subnet (`proxy_only_subnet`), the network also holds the REGIONAL_MANAGED_PROXY subnet that
regional internal Application Load Balancers (GKE's `gke-l7-rilb` Gateways) take their Envoy proxies' addresses from.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp

VARIANTS = ("public", "private", "airgapped")
# restricted.googleapis.com: the VIP that serves only VPC Service Controls-supported APIs. Reachable without
# internet access, but only over a route whose next hop is the default internet gateway (Google's traffic never
# leaves its network; the route just has to exist).
RESTRICTED_VIP = "199.36.153.4/30"
RESTRICTED_VIP_ADDRESSES = ("199.36.153.4", "199.36.153.5", "199.36.153.6", "199.36.153.7")
# Where Google's load-balancer health checks come from; backends must admit them or the LB marks them down.
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
# Secondary range names are only unique within their subnet, so short fixed names do; GKE is handed them.
PODS_RANGE = "pods"
SERVICES_RANGE = "services"
# GCP rejects these as subnet or secondary ranges (or they would shadow the Google API VIPs we route to).
FORBIDDEN_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", RESTRICTED_VIP, "199.36.153.8/30"))
# GCP limits for IPv4 subnet ranges, primary and secondary: /8 to /29.
PREFIX_RANGE = (8, 29)
# Data and control-plane APIs the perimeter keeps inside: model artifacts, images, secrets, keys, logs, clusters.
RESTRICTED_SERVICES: tuple[str, ...] = (
    "aiplatform.googleapis.com", "artifactregistry.googleapis.com", "cloudkms.googleapis.com",
    "container.googleapis.com", "logging.googleapis.com", "monitoring.googleapis.com",
    "secretmanager.googleapis.com", "storage.googleapis.com",
    # The private endpoint's trust chain: the CA that signs (its key never leaves CAS), the certificates the load
    # balancer serves, and the private zone that sends clients to it. Whoever can call these from outside could
    # mint a trusted certificate or repoint the name.
    "privateca.googleapis.com", "certificatemanager.googleapis.com", "dns.googleapis.com",
)
# Firewall priorities: lower numbers win. The catch-all denies sit just above GCP's implied rules (65535).
PRIORITY_ALLOW = 1000
PRIORITY_DENY_ALL = 65534
MAX_NAME = 63  # RFC 1035 names: compute resources, DNS zones
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
# Suffixes of every named resource; the longest one bounds the stack name (the subnet is named after the region,
# a service connection policy after its service class).
NAME_SUFFIXES = ("vpc", "router", "nat", "deny-all-ingress", "allow-internal-ingress", "allow-health-checks",
                 "deny-all-egress", "allow-internal-egress", "allow-restricted-apis", "restricted-apis",
                 "googleapis", "pkg-dev", "psc", "proxy-only")
# Regional managed proxies: Google documents /26 as the smallest workable proxy-only subnet and recommends /23, which
# leaves room for the Envoy fleet to scale with traffic.
PROXY_ONLY_PURPOSE = "REGIONAL_MANAGED_PROXY"
PROXY_ONLY_MAX_PREFIX = 26
# Service classes are the producer's symbolic names: gcp-vertexai, google-cloud-sql, ...
_SERVICE_CLASS = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


def name_prefix(stack: str) -> str:
    """`llm-hosting-<stack>` in the characters GCP resource names allow (Pulumi stacks may also hold _ and .)."""
    return "llm-hosting-" + re.sub(r"[^a-z0-9-]", "-", stack.lower())


def perimeter_short_name(stack: str) -> str:
    # Perimeter names take letters, digits and _ only.
    return "llm_hosting_" + re.sub(r"[^a-z0-9]", "_", stack.lower())


def _parse_cidr(field_name: str, value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{field_name} {value!r} is not a valid network in CIDR notation (e.g. 10.10.0.0/20): "
                         f"{exc}") from None
    if net.version != 4:
        raise ValueError(f"{field_name} {value!r} is IPv6; subnet and GKE ranges need an IPv4 block")
    low, high = PREFIX_RANGE
    if not low <= net.prefixlen <= high:
        raise ValueError(f"{field_name} {value!r}: GCP allows subnet ranges from /{low} to /{high}")
    for bad in FORBIDDEN_RANGES:
        if net.overlaps(bad):
            raise ValueError(f"{field_name} {value!r} overlaps {bad}, which GCP reserves or uses for Google APIs")
    return net


@dataclass(frozen=True)
class GcpNetworkArgs:
    stack: str
    variant: Literal["public", "private", "airgapped"]
    region: str
    project: Optional[str] = None  # defaults to the provider's gcp:project
    subnet_cidr: str = "10.10.0.0/20"
    pods_cidr: str = "10.16.0.0/14"  # secondary range for GKE pods
    services_cidr: str = "10.20.0.0/20"  # secondary range for GKE services
    access_policy_id: Optional[str] = None  # VPC Service Controls: a perimeter is created when set
    # A private GKE control plane's range (its master CIDR): airgapped nodes must be allowed to reach it, since GKE
    # only creates the ingress side of that path and the deny-all egress rule would cut node registration.
    control_plane_cidr: Optional[str] = None
    # Managed services allowed to create Private Service Connect endpoints here (service connectivity automation).
    psc_service_classes: tuple[str, ...] = ()
    # The subnet those endpoints take addresses from. Google recommends a subnet used for nothing else, so other
    # resources cannot exhaust it; a /28 leaves room for a dozen endpoints.
    psc_subnet_cidr: str = "10.24.0.0/28"
    # Regional internal Application Load Balancers (a `gke-l7-rilb` Gateway) need one proxy-only subnet per region and
    # VPC; their proxies connect to the backends from it. Off unless such a load balancer is built.
    proxy_only_subnet: bool = False
    proxy_only_cidr: str = "10.26.0.0/23"
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # Refuse bad arguments before any resource is registered, with the field and the reason in the message.
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if not self.stack:
            raise ValueError("stack is empty; resource names are built from it")
        if not _REGION.match(self.region or ""):
            raise ValueError(f"region {self.region!r} is not a GCP region name such as europe-west4")
        for service_class in self.psc_service_classes:
            if not _SERVICE_CLASS.match(service_class):
                raise ValueError(f"psc_service_classes {service_class!r} is not a service class name such as "
                                 "gcp-vertexai (lowercase letters, digits and dashes)")
        if len(set(self.psc_service_classes)) != len(self.psc_service_classes):
            raise ValueError(f"psc_service_classes {list(self.psc_service_classes)} names a class twice; a network "
                             "holds one service connection policy per class and region")
        names = [f"{name_prefix(self.stack)}-{s}" for s in (*NAME_SUFFIXES, self.region, *self.psc_service_classes)]
        bad = [n for n in names if len(n) > MAX_NAME or not _NAME.match(n)]
        if bad:
            raise ValueError(f"stack {self.stack!r} does not make valid GCP resource names: {bad[0]!r} must be "
                             f"at most {MAX_NAME} lowercase letters, digits and dashes")
        ranges = ("subnet_cidr", "pods_cidr", "services_cidr") + (("psc_subnet_cidr",) if self.psc_service_classes else ()) \
            + (("proxy_only_cidr",) if self.proxy_only_subnet else ())
        nets = {f: _parse_cidr(f, getattr(self, f)) for f in ranges}
        if self.proxy_only_subnet and nets["proxy_only_cidr"].prefixlen > PROXY_ONLY_MAX_PREFIX:
            raise ValueError(f"proxy_only_cidr {self.proxy_only_cidr!r}: a proxy-only subnet must be at least "
                             f"/{PROXY_ONLY_MAX_PREFIX} (Google recommends /23)")
        keys = list(nets)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                if nets[a].overlaps(nets[b]):
                    raise ValueError(f"{a} {nets[a]} overlaps {b} {nets[b]}; the subnets and the GKE pod and "
                                     f"service ranges must not share addresses")
        if self.access_policy_id is not None and not re.fullmatch(r"[0-9]+", str(self.access_policy_id)):
            raise ValueError(f"access_policy_id {self.access_policy_id!r} must be the numeric id of an Access "
                             f"Context Manager policy (the digits in accessPolicies/<id>)")
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(str(value)):
                raise ValueError(f"labels {key}={value!r}: GCP label keys and values take lowercase letters, "
                                 f"digits, - and _ only (keys start with a letter, both at most 63 characters)")


def _range_name(ranges, wanted: str) -> str:
    # Read back from the subnet, so a consumer of the output also waits for the subnet to exist.
    for r in ranges or []:
        name = r.get("range_name") if isinstance(r, dict) else r.range_name
        if name == wanted:
            return name
    raise ValueError(f"the subnet has no secondary range named {wanted!r}")


class GcpNetwork(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    network_self_link: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    subnet_self_link: pulumi.Output[str]
    pods_range_name: pulumi.Output[str]  # for the GKE cluster's ip_allocation_policy
    services_range_name: pulumi.Output[str]
    nat_name: Optional[pulumi.Output[str]]  # None when there is no NAT (airgapped)
    perimeter_name: Optional[pulumi.Output[str]]  # None without access_policy_id
    psc_subnet_id: Optional[pulumi.Output[str]]  # None without psc_service_classes
    # None without proxy_only_subnet. Read back from the subnet, so a firewall rule or Gateway taking it waits for it.
    proxy_only_cidr: Optional[pulumi.Output[str]]
    # Per service class; a service's deployment must depend on its policy, or its first creation races it.
    service_connection_policies: dict[str, gcp.networkconnectivity.ServiceConnectionPolicy]

    def __init__(self, name: str, args: GcpNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The network and subnet hold the cluster: deleting them by accident takes every workload down.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        # Fixed names: a replacement must delete the old rule or route before its successor can take the name.
        replaced_in_place = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        prefix = name_prefix(args.stack)
        airgapped = args.variant == "airgapped"

        network = gcp.compute.Network(
            f"{name}-vpc",
            name=f"{prefix}-vpc",
            project=args.project,
            description=f"llm-hosting {args.stack}: model-serving network ({args.variant})",
            # Custom mode: no subnet appears in every region, so nothing lands outside the residency region.
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            # Airgapped: the 0.0.0.0/0 route to the internet gateway is never created, so nothing can leave even if
            # an external address or a NAT were added later by hand.
            delete_default_routes_on_create=airgapped,
            opts=kept,
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            name=f"{prefix}-{args.region}",
            project=args.project,
            network=network.id,
            region=args.region,
            ip_cidr_range=args.subnet_cidr,
            # Nodes without external addresses still reach Google APIs (in airgapped, via the restricted VIP).
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=PODS_RANGE, ip_cidr_range=args.pods_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=SERVICES_RANGE, ip_cidr_range=args.services_cidr),
            ],
            # Flow logs with every flow and all metadata: the audit trail of who talked to whom.
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC", flow_sampling=1.0, metadata="INCLUDE_ALL_METADATA"),
            opts=kept,
        )
        internal = [args.subnet_cidr, args.pods_cidr, args.services_cidr]
        if args.control_plane_cidr:
            internal.append(args.control_plane_cidr)

        psc_subnet, policies = None, {}
        if args.psc_service_classes:
            # A regular subnet of its own: the policies allocate endpoint addresses from it and return them when an
            # endpoint goes, so nothing else may draw on it.
            psc_subnet = gcp.compute.Subnetwork(
                f"{name}-psc", name=f"{prefix}-psc", project=args.project, network=network.id, region=args.region,
                ip_cidr_range=args.psc_subnet_cidr,
                description=f"llm-hosting {args.stack}: Private Service Connect endpoint addresses",
                log_config=gcp.compute.SubnetworkLogConfigArgs(
                    aggregation_interval="INTERVAL_5_SEC", flow_sampling=1.0, metadata="INCLUDE_ALL_METADATA"),
                opts=child)
            # Callers inside the VPC reach the endpoints at these addresses (airgapped egress is otherwise denied).
            internal.append(args.psc_subnet_cidr)
            for service_class in args.psc_service_classes:
                # One policy per network, region and class is all GCP allows; it delegates endpoint creation to the
                # producer, which then needs no network permissions of its own.
                policies[service_class] = gcp.networkconnectivity.ServiceConnectionPolicy(
                    f"{name}-psc-{service_class}", name=f"{prefix}-{service_class}", project=args.project,
                    location=args.region, network=network.id, service_class=service_class,
                    description=f"llm-hosting {args.stack}: {service_class} may create PSC endpoints in this VPC",
                    psc_config=gcp.networkconnectivity.ServiceConnectionPolicyPscConfigArgs(subnetworks=[psc_subnet.id]),
                    labels=args.labels, opts=child)

        proxy_only = None
        if args.proxy_only_subnet:
            # Envoy proxies of every regional internal Application Load Balancer in this region and VPC: they take
            # addresses from here and open the connections to the backends, so backends admit this range (the load
            # balancer's own component opens its port to it). No VM can use it, and no flow logs apply to it.
            proxy_only = gcp.compute.Subnetwork(
                f"{name}-proxy-only", name=f"{prefix}-proxy-only", project=args.project, network=network.id,
                region=args.region, ip_cidr_range=args.proxy_only_cidr, purpose=PROXY_ONLY_PURPOSE, role="ACTIVE",
                description=f"llm-hosting {args.stack}: regional internal Application Load Balancer proxies",
                opts=child)

        def firewall(suffix: str, description: str, **kwargs) -> gcp.compute.Firewall:
            return gcp.compute.Firewall(f"{name}-{suffix}", name=f"{prefix}-{suffix}", project=args.project,
                                        network=network.id, description=f"llm-hosting {args.stack}: {description}",
                                        opts=replaced_in_place, **kwargs)

        # GCP already denies unsolicited ingress implicitly; an explicit, logged rule makes the posture visible and
        # records who knocked. GKE adds its own higher-priority rules for the cluster as it needs them.
        firewall("deny-all-ingress", "deny ingress from anywhere unless a higher-priority rule allows it",
                 direction="INGRESS", priority=PRIORITY_DENY_ALL, source_ranges=["0.0.0.0/0"],
                 denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
                 log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"))
        # Nodes and pods talk to each other freely, like members of the AWS workload security group.
        firewall("allow-internal-ingress", "nodes and pods reach each other",
                 direction="INGRESS", priority=PRIORITY_ALLOW, source_ranges=[args.subnet_cidr, args.pods_cidr],
                 allows=[gcp.compute.FirewallAllowArgs(protocol="all")])
        if args.variant == "public":
            # Internet-facing load balancers only mark backends healthy if Google's probers get through. Private
            # has no such allowance: nothing from outside the VPC reaches its workloads.
            firewall("allow-health-checks", "Google load-balancer health checks reach the backends",
                     direction="INGRESS", priority=PRIORITY_ALLOW, source_ranges=list(HEALTH_CHECK_RANGES),
                     allows=[gcp.compute.FirewallAllowArgs(protocol="tcp")])

        nat = None
        if not airgapped:
            # Egress only: workloads keep private addresses, the NAT's Google-assigned addresses face the internet.
            router = gcp.compute.Router(
                f"{name}-router", name=f"{prefix}-router", project=args.project, network=network.id,
                region=args.region, description=f"llm-hosting {args.stack}: carries the Cloud NAT", opts=child)
            nat = gcp.compute.RouterNat(
                f"{name}-nat",
                name=f"{prefix}-nat",
                project=args.project,
                router=router.name,
                region=router.region,
                nat_ip_allocate_option="AUTO_ONLY",
                # Only this subnet, all of its ranges: nodes, and pods whose traffic GKE does not masquerade.
                source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
                subnetworks=[gcp.compute.RouterNatSubnetworkArgs(name=subnet.self_link,
                                                                 source_ip_ranges_to_nats=["ALL_IP_RANGES"])],
                # Image and weight pulls open many connections to the same hosts: ports grow per VM on demand
                # instead of failing when a fixed allocation runs out (dynamic ports rule out endpoint-independent
                # mapping).
                enable_dynamic_port_allocation=True,
                enable_endpoint_independent_mapping=False,
                min_ports_per_vm=64,
                max_ports_per_vm=8192,
                # Dropped connections (port exhaustion, no address) are what needs chasing; translations are noise.
                log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
                opts=child,
            )

        if airgapped:
            # The one route out of the VPC: Google documents it as required for the restricted VIP even without
            # internet access. Its next hop is the internet gateway, but only Google's /30 matches it.
            gcp.compute.Route(
                f"{name}-restricted-apis", name=f"{prefix}-restricted-apis", project=args.project,
                network=network.id, dest_range=RESTRICTED_VIP, next_hop_gateway="default-internet-gateway",
                priority=PRIORITY_ALLOW, description=f"llm-hosting {args.stack}: restricted.googleapis.com only",
                opts=replaced_in_place)
            # Egress is allowed by default in GCP; here it is denied except to the VPC itself and the restricted VIP.
            firewall("deny-all-egress", "deny egress anywhere unless a higher-priority rule allows it",
                     direction="EGRESS", priority=PRIORITY_DENY_ALL, destination_ranges=["0.0.0.0/0"],
                     denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
                     log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"))
            firewall("allow-restricted-apis", "HTTPS to restricted.googleapis.com",
                     direction="EGRESS", priority=PRIORITY_ALLOW, destination_ranges=[RESTRICTED_VIP],
                     allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["443"])])
            firewall("allow-internal-egress", "nodes, pods and services inside the VPC",
                     direction="EGRESS", priority=PRIORITY_ALLOW, destination_ranges=internal,
                     allows=[gcp.compute.FirewallAllowArgs(protocol="all")])

            # Private zones that shadow the public ones for this network only: every Google API name resolves to
            # the restricted VIP, so clients need no endpoint-specific configuration and nothing resolves to a
            # public Google address there would be no route to.
            visibility = gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network.id)])
            for zone_suffix, dns_name, apex, what in (
                ("googleapis", "googleapis.com.", "restricted.googleapis.com.", "Google APIs"),
                # Artifact Registry (<region>-docker.pkg.dev) is served from the same VIP.
                ("pkg-dev", "pkg.dev.", "pkg.dev.", "Artifact Registry"),
            ):
                zone = gcp.dns.ManagedZone(
                    f"{name}-{zone_suffix}", name=f"{prefix}-{zone_suffix}", project=args.project, dns_name=dns_name,
                    description=f"llm-hosting {args.stack}: {what} through restricted.googleapis.com",
                    visibility="private", private_visibility_config=visibility, labels=args.labels, opts=child)
                gcp.dns.RecordSet(
                    f"{name}-{zone_suffix}-a", project=args.project, managed_zone=zone.name, name=apex, type="A",
                    ttl=300, rrdatas=list(RESTRICTED_VIP_ADDRESSES), opts=child)
                gcp.dns.RecordSet(
                    f"{name}-{zone_suffix}-cname", project=args.project, managed_zone=zone.name,
                    name=f"*.{dns_name}", type="CNAME", ttl=300, rrdatas=[apex], opts=child)

        perimeter = None
        if args.access_policy_id:
            # Perimeters list projects by number, not id.
            project = gcp.organizations.get_project_output(project_id=args.project,
                                                           opts=pulumi.InvokeOutputOptions(parent=self))
            policy = f"accessPolicies/{args.access_policy_id}"
            perimeter = gcp.accesscontextmanager.ServicePerimeter(
                f"{name}-perimeter",
                parent=policy,
                name=f"{policy}/servicePerimeters/{perimeter_short_name(args.stack)}",
                title=f"llm-hosting {args.stack}",
                description=f"llm-hosting {args.stack}: the restricted APIs answer only from inside this project",
                perimeter_type="PERIMETER_TYPE_REGULAR",
                status=gcp.accesscontextmanager.ServicePerimeterStatusArgs(
                    resources=[project.number.apply(lambda n: f"projects/{n}")],
                    restricted_services=list(RESTRICTED_SERVICES)),
                # Removing the perimeter silently reopens every restricted API to the whole internet.
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )

        self.network_id = network.id
        self.network_self_link = network.self_link
        self.subnet_id = subnet.id
        self.subnet_self_link = subnet.self_link
        self.pods_range_name = subnet.secondary_ip_ranges.apply(lambda r: _range_name(r, PODS_RANGE))
        self.services_range_name = subnet.secondary_ip_ranges.apply(lambda r: _range_name(r, SERVICES_RANGE))
        self.nat_name = nat.name if nat is not None else None
        self.perimeter_name = perimeter.name if perimeter is not None else None
        self.psc_subnet_id = psc_subnet.id if psc_subnet is not None else None
        self.proxy_only_cidr = proxy_only.ip_cidr_range if proxy_only is not None else None
        self.service_connection_policies = policies
        self.register_outputs({
            "network_id": self.network_id, "network_self_link": self.network_self_link,
            "subnet_id": self.subnet_id, "subnet_self_link": self.subnet_self_link,
            "pods_range_name": self.pods_range_name, "services_range_name": self.services_range_name,
            "nat_name": self.nat_name, "perimeter_name": self.perimeter_name, "psc_subnet_id": self.psc_subnet_id,
            "proxy_only_cidr": self.proxy_only_cidr,
            "service_connection_policies": {k: p.id for k, p in policies.items()},
        })
