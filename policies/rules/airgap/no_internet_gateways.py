"""AIR-001: an air-gapped stack has no internet gateway, NAT, public address or external IP."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_airgapped

# Resources that exist only to connect to the internet.
ALWAYS = {
    "aws:ec2/internetGateway:InternetGateway": "an internet gateway gives the VPC a route to and from the internet",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway":
        "an egress-only internet gateway gives the VPC outbound IPv6 internet access",
    "aws:ec2/eip:Eip": "an Elastic IP is a public IPv4 address",
    "gcp:compute/routerNat:RouterNat": "a Cloud NAT gives the network outbound internet access",
}
NAT = "aws:ec2/natGateway:NatGateway"
SUBNET = "aws:ec2/subnet:Subnet"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
GCP_ADDRESSES = ("gcp:compute/address:Address", "gcp:compute/globalAddress:GlobalAddress")
GCP_VMS = ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate")
GKE = "gcp:container/cluster:Cluster"
GKE_POOL = "gcp:container/nodePool:NodePool"
TYPES = (*ALWAYS, NAT, SUBNET, LAUNCH_TEMPLATE, INSTANCE, *GCP_ADDRESSES, *GCP_VMS, GKE, GKE_POOL)

RULE = Rule(
    id="AIR-001-no-internet-gateways",
    title="No internet gateway, NAT, public address or external IP in an air-gapped stack",
    area="airgap",
    description="An air-gapped stack creates no internet gateway, NAT gateway, Elastic IP, Cloud NAT, external IP "
                "address, or node and subnet that hands out public IPs.",
    checks="AWS: any `InternetGateway`, `EgressOnlyInternetGateway`, `Eip`, public `NatGateway`; subnets with "
           "`mapPublicIpOnLaunch`; launch templates and instances that associate a public IP. GCP: any `RouterNat`; "
           "`Address`/`GlobalAddress` of type EXTERNAL (the default); VMs and templates with `accessConfigs`; GKE "
           "clusters without `privateClusterConfig.enablePrivateNodes` and node pools that turn private nodes off.",
    why="An air-gapped stack's promise is that nothing in it can reach or be reached from the internet; each of these "
        "is such a path (and a NAT lets a compromised workload exfiltrate data).",
    severity="critical",
    controls=("FedRAMP SC-7", "FedRAMP SC-7(5)", "HIPAA 164.312(e)(1)", "CIS GKE 5.6.5"),
    remediation="Remove the gateway, NAT or address; reach AWS and Google APIs through VPC interface/gateway "
                "endpoints or Private Google Access (restricted.googleapis.com), as the kit's airgapped network "
                "variant does. If the stack needs egress, it is not air-gapped: plan it as network private.",
    applies_to=TYPES,
)


def check(ctx: ResourceContext) -> None:
    require_airgapped(ctx)
    applies(ctx, ctx.type, TYPES)
    t = ctx.type
    if t in ALWAYS:
        ctx.violation(ALWAYS[t])
    elif t == NAT:
        kind = ctx.get("connectivityType", "the NAT gateway's connectivity type")
        if kind is not UNKNOWN and kind in (None, "public"):
            ctx.violation("a NAT gateway (connectivityType public) gives private subnets outbound internet access")
    elif t == SUBNET:
        if truthy(ctx.get("mapPublicIpOnLaunch", "whether instances get public IPs")) is True:
            ctx.violation("mapPublicIpOnLaunch is true: instances launched here get public IP addresses")
    elif t == LAUNCH_TEMPLATE:
        for path, nic in ctx.items("networkInterfaces", "the network interfaces"):
            if isinstance(nic, dict) and truthy(ctx.get(f"{path}.associatePublicIpAddress")) is True:
                ctx.violation(f"{path}.associatePublicIpAddress is true: instances get public IP addresses")
    elif t == INSTANCE:
        if truthy(ctx.get("associatePublicIpAddress", "whether the instance gets a public IP")) is True:
            ctx.violation("associatePublicIpAddress is true: the instance gets a public IP address")
    elif t in GCP_ADDRESSES:
        kind = ctx.get("addressType", "the address type")
        if kind is not UNKNOWN and kind in (None, "EXTERNAL"):
            shown = "EXTERNAL" if kind else "not set (EXTERNAL by default)"
            ctx.violation(f"addressType is {shown}: a public IP address")
    elif t in GCP_VMS:
        for path, _nic in ctx.items("networkInterfaces", "the network interfaces"):
            configs = ctx.get(f"{path}.accessConfigs", "the access configs")
            if isinstance(configs, list) and configs:
                ctx.violation(f"{path}.accessConfigs gives the VM an external IP address")
    elif t == GKE:
        private = ctx.get("privateClusterConfig.enablePrivateNodes", "whether nodes are private")
        if private is not UNKNOWN and truthy(private) is not True:
            ctx.violation("privateClusterConfig.enablePrivateNodes is not true: nodes get external IP addresses")
    elif t == GKE_POOL:
        if truthy(ctx.get("networkConfig.enablePrivateNodes", "whether nodes are private")) is False:
            ctx.violation("networkConfig.enablePrivateNodes is false: the pool's nodes get external IP addresses")


POLICY = resource_policy(RULE, check)
