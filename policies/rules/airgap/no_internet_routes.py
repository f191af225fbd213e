"""AIR-002: an air-gapped stack has no default route and no route to an internet gateway."""

from __future__ import annotations

import ipaddress

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_airgapped

ROUTE_TABLES = ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable")
AWS_ROUTE = "aws:ec2/route:Route"
GCP_ROUTE = "gcp:compute/route:Route"
GCP_NETWORK = "gcp:compute/network:Network"
TYPES = (*ROUTE_TABLES, AWS_ROUTE, GCP_ROUTE, GCP_NETWORK)
DEFAULTS = ("0.0.0.0/0", "::/0")
# The only destinations that may use GCP's default internet gateway in an isolated VPC: Google's API VIPs.
GOOGLE_API_VIPS = (ipaddress.ip_network("199.36.153.8/30"), ipaddress.ip_network("199.36.153.4/30"),
                   ipaddress.ip_network("2600:2d00:2:2000::/64"), ipaddress.ip_network("2600:2d00:2:1000::/64"))
TARGET_KEYS = ("gatewayId", "natGatewayId", "egressOnlyGatewayId", "transitGatewayId", "networkInterfaceId",
               "vpcPeeringConnectionId", "vpcEndpointId", "carrierGatewayId", "localGatewayId", "coreNetworkArn")

RULE = Rule(
    id="AIR-002-no-internet-routes",
    title="No default route and no route to the internet in an air-gapped stack",
    area="airgap",
    description="An air-gapped stack has no 0.0.0.0/0 or ::/0 route and no route through an internet gateway.",
    checks="AWS route tables (inline `routes[]`, default route tables) and `aws:ec2/route`: no 0.0.0.0/0 or ::/0 "
           "destination, whatever the target, and no route whose target is an internet gateway (`igw-...`) or an "
           "egress-only gateway. GCP routes: no 0.0.0.0/0 and no `default-internet-gateway` next hop except for "
           "Google's API addresses (private.googleapis.com 199.36.153.8/30, restricted.googleapis.com "
           "199.36.153.4/30). GCP networks: `deleteDefaultRoutesOnCreate` is true (otherwise GCP adds 0.0.0.0/0 to the "
           "internet gateway).",
    why="A default route is how traffic leaves the network; even without a gateway today it is one resource away "
        "from internet egress, and it hides that intent from review.",
    severity="critical",
    controls=("FedRAMP SC-7", "FedRAMP SC-7(5)", "HIPAA 164.312(e)(1)"),
    remediation="Delete the default route (GCP: create the network with `delete_default_routes_on_create=True`); "
                "route only to VPC endpoints / Private Google Access. Kit stacks: network airgapped does this.",
    applies_to=TYPES,
)


def _is_default(dest) -> bool:
    return isinstance(dest, str) and dest in DEFAULTS


def _target(route) -> str:
    for key in TARGET_KEYS:
        value = route.get(key) if isinstance(route, dict) else None
        if value:
            return f"{key} {value}"
    return "no target"


def _check_aws_route(ctx: ResourceContext, prefix: str, dest_keys: tuple[str, ...]) -> None:
    route = ctx.get(prefix) if prefix else ctx.props
    if not isinstance(route, dict):
        return
    at = f"{prefix}." if prefix else ""
    dest = next((ctx.get(f"{at}{k}", "the route's destination") for k in dest_keys if route.get(k) is not None), None)
    if dest is UNKNOWN:
        return
    gateway = ctx.get(f"{at}gatewayId", "the route's gateway")
    to_igw = isinstance(gateway, str) and gateway.startswith("igw-")
    egress_only = bool(route.get("egressOnlyGatewayId"))
    where = prefix or "the route"
    if _is_default(dest):
        ctx.violation(f"{where} sends {dest} to {_target(route)}: a default route out of the network")
    elif to_igw or egress_only:
        ctx.violation(f"{where} sends {dest or 'traffic'} to the internet gateway {gateway or route.get('egressOnlyGatewayId')}")


def check(ctx: ResourceContext) -> None:
    require_airgapped(ctx)
    applies(ctx, ctx.type, TYPES)
    if ctx.type in ROUTE_TABLES:
        for path, _ in ctx.items("routes", "the route table's routes"):
            _check_aws_route(ctx, path, ("cidrBlock", "ipv6CidrBlock", "destinationPrefixListId"))
    elif ctx.type == AWS_ROUTE:
        _check_aws_route(ctx, "", ("destinationCidrBlock", "destinationIpv6CidrBlock", "destinationPrefixListId"))
    elif ctx.type == GCP_ROUTE:
        dest = ctx.get("destRange", "the route's destination")
        hop = ctx.get("nextHopGateway", "the route's next hop")
        if dest is UNKNOWN:
            return
        if _is_default(dest):
            ctx.violation(f"destRange {dest} is a default route out of the network")
        elif isinstance(hop, str) and hop.endswith("default-internet-gateway"):
            try:
                net = ipaddress.ip_network(dest, strict=False)
                google = any(net.version == vip.version and net.subnet_of(vip) for vip in GOOGLE_API_VIPS)
            except ValueError:
                google = False
            if not google:
                ctx.violation(f"destRange {dest} goes to the default internet gateway; only Google's API addresses "
                              "(199.36.153.8/30, 199.36.153.4/30) may use it")
    else:
        drop = ctx.get("deleteDefaultRoutesOnCreate", "whether the default route is deleted")
        if drop is not UNKNOWN and truthy(drop) is not True:
            ctx.violation("deleteDefaultRoutesOnCreate is not true: GCP creates a 0.0.0.0/0 route to the default "
                          "internet gateway with the network")


POLICY = resource_policy(RULE, check)
