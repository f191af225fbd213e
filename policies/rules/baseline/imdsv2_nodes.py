"""BAS-002: nodes require IMDSv2 (AWS) or hide the node metadata server from pods (GKE)."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GKE_POOL = "gcp:container/nodePool:NodePool"
GKE = "gcp:container/cluster:Cluster"
TYPES = (LAUNCH_TEMPLATE, INSTANCE, NODE_GROUP, GKE_POOL, GKE)

RULE = Rule(
    id="BAS-002-imdsv2-nodes",
    title="Nodes require IMDSv2 / the GKE metadata server",
    area="baseline",
    description="EC2 nodes and instances require IMDSv2 session tokens, and GKE nodes run the GKE metadata server "
                "so pods cannot read node credentials.",
    checks="Launch templates and instances: `metadataOptions.httpTokens` is `required` (or the endpoint is "
           "disabled). EKS node groups: have a launch template (otherwise nothing in the program requires IMDSv2 on "
           "the nodes). GKE node pools (and a kept default pool): `nodeConfig.workloadMetadataConfig.mode` is "
           "GKE_METADATA.",
    why="IMDSv1 answers any local HTTP request, so one server-side request forgery in a model server or gateway "
        "leaks the node role's credentials; IMDSv2's session token (with hop limit 1) and GKE's metadata server "
        "close that path.",
    severity="high",
    controls=("AWS FSBP EC2.8", "CIS GKE 5.4.2", "FedRAMP AC-3", "FedRAMP SC-7"),
    remediation="Set `metadata_options` with `http_tokens=\"required\"` and `http_put_response_hop_limit=1` on the "
                "launch template and attach it to the node group (the kit's EKS node groups do); set "
                "`workload_metadata_config.mode=\"GKE_METADATA\"` on GKE node pools.",
    applies_to=TYPES,
)


def _imds(ctx: ResourceContext) -> None:
    endpoint = ctx.get("metadataOptions.httpEndpoint", "whether the metadata endpoint is on")
    tokens = ctx.get("metadataOptions.httpTokens", "whether IMDSv2 is required")
    if endpoint == "disabled" or tokens is UNKNOWN or endpoint is UNKNOWN:
        return
    if tokens != "required":
        ctx.violation(f"metadataOptions.httpTokens is {tokens or 'not set'}: instances accept IMDSv1, whose "
                      "credentials a server-side request forgery can read")


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type in (LAUNCH_TEMPLATE, INSTANCE):
        _imds(ctx)
    elif ctx.type == NODE_GROUP:
        if ctx.peek("launchTemplate") is None:
            ctx.violation("launchTemplate is not set: nothing requires IMDSv2 on the nodes (it is left to the AMI's "
                          "default)")
    else:
        if ctx.type == GKE:
            removed = ctx.get("removeDefaultNodePool", "whether the default node pool is removed")
            if removed is UNKNOWN or truthy(removed) is True:
                return
        mode = ctx.get("nodeConfig.workloadMetadataConfig.mode", "the node metadata mode")
        if mode is not UNKNOWN and mode != "GKE_METADATA":
            ctx.violation(f"nodeConfig.workloadMetadataConfig.mode is {mode or 'not set'}: pods can read the node's "
                          "metadata server and its service-account credentials")


POLICY = resource_policy(RULE, check)
