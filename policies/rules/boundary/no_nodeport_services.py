"""BND-006: a confidential or regulated stack exposes no Service on a port of every node."""

from __future__ import annotations

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_boundary

SERVICE = "kubernetes:core/v1:Service"

RULE = Rule(
    id="BND-006-no-nodeport-services",
    title="No NodePort Services for confidential or regulated data",
    area="boundary",
    description="Kubernetes Services of a confidential or regulated stack are not of type NodePort.",
    checks="`kubernetes:core/v1:Service`: `spec.type` is not NodePort.",
    why="A NodePort opens the Service on a port of every node, outside the ingress path, its TLS and its access "
        "control; any host that reaches a node (or a node with a public address) reaches the data.",
    severity="high",
    controls=("FedRAMP SC-7", "HIPAA 164.312(e)(1)", "GDPR art. 32"),
    remediation="Use a ClusterIP Service (the kit's default) behind the internal gateway or an internal load "
                "balancer; with the AWS Load Balancer Controller use target type ip instead of instance.",
    applies_to=(SERVICE,),
    limits="The node ports a LoadBalancer Service also allocates are judged by BND-003, not here.",
)


def check(ctx: ResourceContext) -> None:
    require_boundary(ctx)
    applies(ctx, ctx.type, (SERVICE,))
    kind = ctx.get("spec.type", "the Service type")
    if kind is not UNKNOWN and kind == "NodePort":
        ports = [p.get("nodePort") for p in (ctx.peek("spec.ports") or []) if isinstance(p, dict)]
        shown = ", ".join(str(p) for p in ports if p) or "ports the cluster allocates"
        ctx.violation(f"spec.type is NodePort: the Service answers on every node ({shown}), outside the private "
                      "ingress path")


POLICY = resource_policy(RULE, check)
