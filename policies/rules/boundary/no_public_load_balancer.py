"""BND-003: nothing in a confidential or regulated stack is published through an internet-facing load balancer."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_boundary

SERVICE = "kubernetes:core/v1:Service"
AWS_LBS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer", "aws:elb/loadBalancer:LoadBalancer")
GCP_RULES = ("gcp:compute/forwardingRule:ForwardingRule", "gcp:compute/globalForwardingRule:GlobalForwardingRule")
INTERNAL_SCHEMES = ("INTERNAL", "INTERNAL_MANAGED", "INTERNAL_SELF_MANAGED")
ECS_SERVICE = "aws:ecs/service:Service"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
# Cloud Run ingress settings that keep the service off the internet (INGRESS_TRAFFIC_ALL, the default, does not).
CLOUD_RUN_PRIVATE_INGRESS = ("INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"
# GKE's Gateway classes that make an internet-facing load balancer (gke-l7-rilb is the regional internal one).
EXTERNAL_GATEWAY_CLASSES = ("gke-l7-global-external-managed", "gke-l7-global-external-managed-mc",
                            "gke-l7-regional-external-managed", "gke-l7-gxlb", "gke-l7-gxlb-mc")
# Annotations that make a Service of type LoadBalancer internal (AWS load balancer controller / in-tree, GKE).
INTERNAL_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
}

RULE = Rule(
    id="BND-003-no-public-load-balancer",
    title="No internet-facing load balancer for confidential or regulated data",
    area="boundary",
    description="Services, load balancers, forwarding rules, ECS tasks and Cloud Run services of a confidential or "
                "regulated stack are internal.",
    checks="Kubernetes `Service` of type LoadBalancer: carries an internal-load-balancer annotation "
           "(`service.beta.kubernetes.io/aws-load-balancer-scheme: internal`, `...-internal: \"true\"`, "
           "`networking.gke.io/load-balancer-type: Internal`). `aws:lb`/`aws:alb`/`aws:elb` load balancers: "
           "`internal` is true. GCP forwarding rules: `loadBalancingScheme` is INTERNAL* (EXTERNAL is the default; "
           "EXTERNAL and EXTERNAL_MANAGED are internet-facing), or the rule is a Private Service Connect endpoint. ECS "
           "services: `networkConfiguration.assignPublicIp` is not true (a public address puts each task on the "
           "internet beside the load balancer). Cloud Run services (`gcp:cloudrunv2/service:Service`): `ingress` is "
           "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_INTERNAL_ONLY (INGRESS_TRAFFIC_ALL, the "
           "default, answers the internet on the service's run.app URL). Kubernetes `Ingress` of class alb: "
           "`alb.ingress.kubernetes.io/scheme` is not internet-facing (the controller's default is internal); of "
           "class gce: reported (GKE's external load balancer; gce-internal is internal). Gateway API `Gateway`: "
           "its gatewayClassName is not one of GKE's external classes (gke-l7-global-external-managed, "
           "gke-l7-regional-external-managed, gke-l7-gxlb and their -mc forms).",
    why="An internet-facing load balancer in front of the model server publishes the endpoint, and the data it "
        "returns, outside the private network the boundary is drawn around.",
    severity="high",
    controls=("FedRAMP SC-7", "HIPAA 164.312(e)(1)", "GDPR art. 32"),
    remediation="Keep the model server's Service as ClusterIP (the kit's default) or add the internal annotation; "
                "set `internal=True` on AWS load balancers and an INTERNAL_MANAGED scheme on GCP forwarding rules; run ECS "
                "tasks with `assign_public_ip=False` in private subnets; set Cloud Run ingress to "
                "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER. "
                "Reach the endpoint through the VPC, a VPN or Private Service Connect.",
    applies_to=(SERVICE, *AWS_LBS, *GCP_RULES, INGRESS, GATEWAY, ECS_SERVICE, CLOUD_RUN),
    limits="Ingresses of other classes and Gateways of other classes are not judged: whether they are public depends "
           "on the controller installed in the cluster, which the program does not describe; nor is a scheme set "
           "through an alb IngressClassParams.",
)


def check(ctx: ResourceContext) -> None:
    require_boundary(ctx)
    applies(ctx, ctx.type, (SERVICE, *AWS_LBS, *GCP_RULES, INGRESS, GATEWAY, ECS_SERVICE, CLOUD_RUN))
    if ctx.type == ECS_SERVICE:
        public = ctx.get("networkConfiguration.assignPublicIp", "whether the tasks get public addresses")
        if public is not UNKNOWN and truthy(public) is True:
            ctx.violation("networkConfiguration.assignPublicIp is true: every task gets a public IP address, reachable "
                          "from the internet around the internal load balancer")
        return
    if ctx.type == CLOUD_RUN:
        ingress = ctx.get("ingress", "who may reach the service")
        if ingress is not UNKNOWN and ingress not in CLOUD_RUN_PRIVATE_INGRESS:
            shown = ingress or "not set (INGRESS_TRAFFIC_ALL, the default)"
            ctx.violation(f"ingress is {shown}: the service answers the internet on its run.app URL (set "
                          "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER)")
        return
    if ctx.type == INGRESS:
        annotations = ctx.get("metadata.annotations", "the Ingress's annotations")
        cls = ctx.get("spec.ingressClassName", "the Ingress class")
        if annotations is UNKNOWN or cls is UNKNOWN:
            return
        cls = cls or (annotations or {}).get("kubernetes.io/ingress.class")
        scheme = (annotations or {}).get(ALB_SCHEME)
        if cls == "alb" and isinstance(scheme, str) and scheme.lower() == "internet-facing":
            ctx.violation(f"{ALB_SCHEME} is internet-facing: the AWS Load Balancer Controller provisions an "
                          "internet-facing ALB")
        elif cls == "gce":
            ctx.violation("ingress class gce: GKE provisions an external Application Load Balancer (use gce-internal)")
        return
    if ctx.type == GATEWAY:
        cls = ctx.get("spec.gatewayClassName", "the Gateway class")
        if cls in EXTERNAL_GATEWAY_CLASSES:
            ctx.violation(f"gatewayClassName is {cls}: GKE provisions an internet-facing load balancer (use "
                          "gke-l7-rilb)")
        return
    if ctx.type == SERVICE:
        kind = ctx.get("spec.type", "the Service type")
        if kind != "LoadBalancer":
            return
        annotations = ctx.get("metadata.annotations", "the Service's annotations")
        if annotations is UNKNOWN:
            return
        for key, values in INTERNAL_ANNOTATIONS.items():
            value = (annotations or {}).get(key)
            if isinstance(value, str) and value.lower() in values:
                return
        ctx.violation("spec.type is LoadBalancer with no internal-load-balancer annotation, so the cloud provisions "
                      "an internet-facing load balancer")
    elif ctx.type in AWS_LBS:
        internal = ctx.get("internal", "whether the load balancer is internal")
        if internal is not UNKNOWN and truthy(internal) is not True:
            ctx.violation("internal is not true: the load balancer is internet-facing")
    else:
        scheme = ctx.get("loadBalancingScheme", "the load-balancing scheme")
        target = ctx.get("target")
        if scheme is UNKNOWN or scheme in INTERNAL_SCHEMES:
            return
        psc = isinstance(target, str) and ("serviceAttachments/" in target or target in ("all-apis", "vpc-sc"))
        if scheme == "" or (scheme is None and psc):
            return  # a Private Service Connect endpoint
        shown = scheme if scheme else "not set (EXTERNAL by default)"
        ctx.violation(f"loadBalancingScheme is {shown}: the forwarding rule has an internet-facing address")


POLICY = resource_policy(RULE, check)
