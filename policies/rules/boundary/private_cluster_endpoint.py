"""BND-002: the Kubernetes API of a confidential or regulated stack has no public endpoint."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_boundary

EKS = "aws:eks/cluster:Cluster"
GKE = "gcp:container/cluster:Cluster"

RULE = Rule(
    id="BND-002-private-cluster-endpoint",
    title="No public Kubernetes API endpoint for confidential or regulated data",
    area="boundary",
    description="EKS and GKE clusters of a confidential or regulated stack expose their control plane only on a "
                "private endpoint.",
    checks="`aws:eks/cluster`: `vpcConfig.endpointPublicAccess` is false (EKS turns it on when it is not set). "
           "`gcp:container/cluster`: `privateClusterConfig.enablePrivateEndpoint` is true and "
           "`controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint` is not true.",
    why="A public control-plane endpoint puts the cluster's API, and with it every secret and workload, one stolen "
        "credential away from the internet; the boundary must have no inbound path.",
    severity="high",
    controls=("FedRAMP SC-7", "HIPAA 164.312(e)(1)", "CIS EKS 5.4.2", "CIS GKE 5.6.4", "GDPR art. 32"),
    remediation="EKS: set `vpc_config.endpoint_public_access=False` (and `endpoint_private_access=True`); reach the "
                "API from inside the VPC (bastion, VPN, SSM). GKE: set `private_cluster_config.enable_private_endpoint"
                "=True`. Kit stacks do this for network private and airgapped.",
    applies_to=(EKS, GKE),
)


def check(ctx: ResourceContext) -> None:
    require_boundary(ctx)
    applies(ctx, ctx.type, (EKS, GKE))
    if ctx.type == EKS:
        public = ctx.get("vpcConfig.endpointPublicAccess", "whether the API endpoint is public")
        if public is UNKNOWN:
            return
        cidrs = ctx.get("vpcConfig.publicAccessCidrs")
        reach = f"publicAccessCidrs {', '.join(cidrs)}" if isinstance(cidrs, list) and cidrs else "from any address"
        if public is None:
            ctx.violation("vpcConfig.endpointPublicAccess is not set, and EKS then gives the cluster a public API "
                          f"endpoint ({reach})")
        elif truthy(public) is not False:
            ctx.violation(f"vpcConfig.endpointPublicAccess is true: the Kubernetes API is reachable from the internet "
                          f"({reach})")
        return
    private = ctx.get("privateClusterConfig.enablePrivateEndpoint", "whether the control plane is private")
    if private is not UNKNOWN and truthy(private) is not True:
        ctx.violation("privateClusterConfig.enablePrivateEndpoint is not true: the control plane has a public endpoint")
    dns_public = ctx.get("controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint")
    if dns_public is not UNKNOWN and truthy(dns_public) is True:
        ctx.violation("controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint is true: the control plane "
                      "has a public IP endpoint")


POLICY = resource_policy(RULE, check)
