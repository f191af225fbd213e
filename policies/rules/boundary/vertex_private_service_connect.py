"""BND-005: a Vertex AI endpoint of a confidential or regulated stack is reached through Private Service Connect."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_boundary

DEPLOYMENT = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"
ENDPOINT = "gcp:vertex/aiEndpoint:AiEndpoint"

RULE = Rule(
    id="BND-005-vertex-private-service-connect",
    title="Vertex AI endpoints sit behind Private Service Connect",
    area="boundary",
    description="Vertex AI endpoints of a confidential or regulated stack are private, reached through Private "
                "Service Connect.",
    checks="`gcp:vertex/aiEndpointWithModelGardenDeployment`: "
           "`endpointConfig.privateServiceConnectConfig.enablePrivateServiceConnect` is true. `gcp:vertex/aiEndpoint`: "
           "`privateServiceConnectConfig.enablePrivateServiceConnect` is true (a VPC-peering `network` is not enough).",
    why="A Vertex AI endpoint without Private Service Connect is served on Google's public endpoint; prompts and "
        "completions then cross the internet and any caller with a token can reach it.",
    severity="high",
    controls=("FedRAMP SC-7", "HIPAA 164.312(e)(1)", "GDPR art. 32"),
    remediation="Enable Private Service Connect on the endpoint with the stack's network and project allowlist; the "
                "kit's managed GCP tier does this for network private and airgapped.",
    applies_to=(DEPLOYMENT, ENDPOINT),
)


def check(ctx: ResourceContext) -> None:
    require_boundary(ctx)
    applies(ctx, ctx.type, (DEPLOYMENT, ENDPOINT))
    path = ("endpointConfig." if ctx.type == DEPLOYMENT else "") + "privateServiceConnectConfig.enablePrivateServiceConnect"
    psc = ctx.get(path, "whether Private Service Connect is on")
    if psc is UNKNOWN or truthy(psc) is True:
        return
    network = ctx.get("network") if ctx.type == ENDPOINT else None
    if isinstance(network, str) and network:
        ctx.violation(f"{path} is not true: the endpoint uses VPC peering ({network}) instead of Private Service Connect")
    else:
        ctx.violation(f"{path} is not true: the endpoint is served on Vertex AI's public endpoint")


POLICY = resource_policy(RULE, check)
