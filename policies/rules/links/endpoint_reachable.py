"""LNK-007: the endpoint the stack exports is reachable from where its consumers are."""

from __future__ import annotations

import re
from typing import Any, Optional

from ...props import UNKNOWN, get, host_of_url, is_unknown, truthy
from ...rulekit import Rule, StackContext, stack_policy
from ...workloads import ECS_TASK, VERTEX_DEPLOYMENT, containers_of

SERVICE = "kubernetes:core/v1:Service"
SAGEMAKER_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
VERTEX_ENDPOINTS = (VERTEX_DEPLOYMENT, "gcp:vertex/aiEndpoint:AiEndpoint")
VPC = "aws:ec2/vpc:Vpc"
GCP_NETWORK = "gcp:compute/network:Network"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
DNS_ZONE = "gcp:dns/managedZone:ManagedZone"
DNS_RECORD = "gcp:dns/recordSet:RecordSet"
AWS_ZONE = "aws:route53/zone:Zone"
AWS_RECORD = "aws:route53/record:Record"
AWS_LBS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
GCP_ADDRESS = "gcp:compute/address:Address"
# The serverless front doors: an ALB before the gateway's ECS service (AWS), an internal Application Load Balancer
# before its Cloud Run service (GCP).
AWS_LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
AWS_LISTENER_RULES = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
AWS_TARGET_GROUPS = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
ECS_SERVICE = "aws:ecs/service:Service"
GCP_FORWARDING_RULES = ("gcp:compute/forwardingRule:ForwardingRule", "gcp:compute/globalForwardingRule:GlobalForwardingRule")
GCP_HTTPS_PROXIES = ("gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
                     "gcp:compute/targetHttpsProxy:TargetHttpsProxy")
GCP_HTTP_PROXIES = ("gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy", "gcp:compute/targetHttpProxy:TargetHttpProxy")
GCP_URL_MAPS = ("gcp:compute/regionUrlMap:RegionUrlMap", "gcp:compute/uRLMap:URLMap")
GCP_BACKENDS = ("gcp:compute/regionBackendService:RegionBackendService", "gcp:compute/backendService:BackendService")
GCP_NEGS = ("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup",)
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
# Cloud Run ingress that keeps the service's run.app URL off the internet (INGRESS_TRAFFIC_ALL is the API's default).
CLOUD_RUN_PRIVATE_INGRESS = ("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_INTERNAL_ONLY")
INTERNAL_SCHEMES = ("INTERNAL_MANAGED", "INTERNAL", "INTERNAL_SELF_MANAGED")
# The gateway's container in the ECS task definition, the name its service registers in the target group.
GATEWAY_CONTAINER = "litellm"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
# .internal is reserved for private use (ICANN, 2024): such a name resolves only through a private zone.
PRIVATE_TLD = "internal"
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"
ALB_NAME = "alb.ingress.kubernetes.io/load-balancer-name"
# GKE Gateway classes: regional internal Application Load Balancers, and the internet-facing ones.
INTERNAL_GATEWAY_CLASSES = ("gke-l7-rilb", "gke-l7-rilb-mc")
EXTERNAL_GATEWAY_CLASSES = ("gke-l7-global-external-managed", "gke-l7-global-external-managed-mc",
                            "gke-l7-regional-external-managed", "gke-l7-gxlb", "gke-l7-gxlb-mc")
CLUSTER_LOCAL = re.compile(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$|^([a-z0-9-]+)\.([a-z0-9-]+)$")
SAGEMAKER_RUNTIME = re.compile(r"^runtime(-fips)?\.sagemaker\.([a-z0-9-]+)\.amazonaws\.com$")
# Vertex AI Private Service Connect endpoints are named under vertexai.goog (prediction.vertexai.goog, and
# prediction.p.vertexai.goog for private endpoints); only a private zone makes them resolve inside a network.
VERTEX_PSC_SUFFIX = "vertexai.goog"
INTERNAL_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
}
FRONT_DOORS = ("gateway", "model-server")  # app.kubernetes.io/component of the Service the kit exports, in order

RULE = Rule(
    id="LNK-007-endpoint-reachable",
    title="The exported endpoint is reachable from where the stack's consumers are",
    area="links",
    kind="stack",
    description="The endpoint the stack exports resolves and routes for its consumers: in its VPC for endpoint "
                "audience `vpc` (the default, whatever the network variant), anywhere for audience `internet`.",
    checks="Once per stack. The endpoint is the stack's `endpoint_url` output when the offline preview has it "
           "(`llmhost preview`); a stack policy under `pulumi preview` cannot see outputs, so there it is the front "
           "door the resources render: the gateway's Service (app.kubernetes.io/component gateway), else the model "
           "server's Service, else the gateway's ECS service (container litellm) or Cloud Run service, else the "
           "SageMaker endpoint or the Vertex AI endpoint. A `*.svc.cluster.local` host, or "
           "a ClusterIP Service, is reachable only from inside its cluster. A LoadBalancer Service is reachable from "
           "the VPC; from anywhere only without an internal-load-balancer annotation. A SageMaker runtime host "
           "(runtime.sagemaker.<region>.amazonaws.com) is reachable from a private or air-gapped VPC only through an "
           "Interface VPC endpoint for com.amazonaws.<region>.sagemaker.runtime with private DNS enabled. A Vertex AI "
           "Private Service Connect host (*.vertexai.goog) resolves in a private network only through a "
           "Cloud DNS private zone attached to the stack's network with a record for that host (under `pulumi "
           "preview`, where the host is not known yet, a record in a zone under vertexai.goog), and is not "
           "reachable from outside the network at all. An https URL whose host is in a DNS zone of the stack (or under "
           ".internal) is reachable when a record for that host in a private zone attached to the stack's network "
           "(Route 53 `vpcs`, Cloud DNS visibility private) points at an internal load balancer of the stack (a "
           "Route 53 alias or Cloud DNS A record made from it: an alb Ingress, whose scheme is internal unless "
           "annotated internet-facing; a Gateway of class gke-l7-rilb, directly or through the reserved address it "
           "names; an internal aws:lb), and that load balancer has an HTTPS listener and forwards (Ingress backends, "
           "the Gateway's HTTPRoutes) to the front-door Service. Without a cluster the chain is followed hop by hop "
           "to the gateway: on AWS an internal aws:lb whose HTTPS listener (load_balancer_arn) forwards (its default "
           "actions, or a listener rule whose host-header condition admits the exported host) to a target group that an ECS service registers its `litellm` container in (load_balancers), "
           "with a task definition declaring that container; on GCP a Cloud DNS A record holding the reserved "
           "internal address (or the forwarding rule's), an INTERNAL_MANAGED forwarding rule on 443 whose target is "
           "a target HTTPS proxy, its URL map, a backend service, a SERVERLESS network endpoint group in its "
           "backends, and the Cloud Run service that group names, whose ingress is "
           "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER (or INTERNAL_ONLY) rather than ALL. The first hop that is "
           "missing or points elsewhere is reported on the resource that holds the broken reference. Under `pulumi "
           "preview` a ClusterIP front door with such an Ingress or Gateway in front of it, or an ECS or Cloud Run "
           "gateway with such a load balancer in front of it, is reachable through it. A public stack needs a public zone "
           "and an internet-facing load balancer.",
    why="An endpoint its consumers cannot resolve or route to is an outage on day one: the stack deploys cleanly and "
        "every client call fails with a DNS or connection error.",
    severity="high",
    controls=("FedRAMP SC-7", "FedRAMP SC-6", "GDPR art. 32"),
    remediation="Expose the in-cluster endpoint on an internal load balancer (a LoadBalancer Service with the "
                "internal annotation, or an internal Ingress/Gateway) in the stack's network and export that address; "
                "add the sagemaker.runtime interface endpoint with private DNS; add a Cloud DNS private zone for the "
                "Vertex endpoint's host on the stack's network. This policy is advisory in the generated policy "
                "config until the kit exposes its in-cluster endpoints; set its `enforcementLevel` to mandatory in "
                "stacks/<stack>.policy-config.json to enforce it sooner.",
    applies_to=(SERVICE, SAGEMAKER_ENDPOINT, *VERTEX_ENDPOINTS, VPC_ENDPOINT, DNS_ZONE, DNS_RECORD, AWS_ZONE, AWS_RECORD,
                INGRESS, GATEWAY, HTTP_ROUTE, *AWS_LBS, GCP_ADDRESS, *AWS_LISTENERS, *AWS_LISTENER_RULES, *AWS_TARGET_GROUPS, ECS_SERVICE,
                ECS_TASK, *GCP_FORWARDING_RULES, *GCP_HTTPS_PROXIES, *GCP_HTTP_PROXIES, *GCP_URL_MAPS, *GCP_BACKENDS,
                *GCP_NEGS, CLOUD_RUN),
    level="advisory",
    limits="Under `pulumi preview` the exported endpoint is inferred from the rendered front door (stack outputs are "
           "not visible to a stack policy). Security groups, firewall rules and peering between the consumers and "
           "the endpoint are not checked; an exported third-party API is left to the boundary and air-gap policies. An "
           "Ingress's scheme set through IngressClassParams, and Gateway classes other than GKE's, are not read; "
           "whether the certificate names the host is not checked (ENC-009 checks that listeners serve TLS). The "
           "references along the serverless chains (ARNs, ids, self links, the ALB's DNS name) are outputs: a known "
           "value is matched by the name it carries, and one not known yet (or, under the offline preview's mocks, "
           "an id that carries no name) by the holder's dependency on the resource it was made from, so two "
           "candidates the same resource depends on are not told apart. Listener rule conditions other than the "
           "host header, and which of several Cloud Run services is the gateway, are not read.",
)


def _network(ctx: StackContext) -> Optional[Any]:
    return next((r for r in ctx.resources if r.type in (VPC, GCP_NETWORK)), None)


def _where(network: str, net: Optional[Any], audience: str = "vpc", variant: Optional[str] = None) -> str:
    if network == "public":
        return "anywhere (endpoint audience internet)"
    return (f"the stack's network {net.name if net else '(none in the stack)'} "
            f"(network {variant or network}, endpoint audience {audience})")


def _expose(network: str, net: Optional[Any]) -> str:
    if network == "public":
        return ("expose it on a load balancer (type LoadBalancer, or an Ingress/Gateway) with TLS and authentication, "
                "and export that address")
    return (f"expose it on an internal load balancer in {net.name if net else 'the network'} (type LoadBalancer with "
            "the internal annotation, or an internal Ingress/Gateway) and export that address")


def _service(ctx: StackContext, name: str, namespace: str) -> Optional[Any]:
    for r in ctx.resources:
        if r.type == SERVICE and get(r.props, "metadata.name") == name and \
                (get(r.props, "metadata.namespace") or "default") == namespace:
            return r
    return None


def _front_door(ctx: StackContext) -> tuple[str, Optional[Any], Optional[str]]:
    """(kind, resource, host) of the endpoint the stack exports; host None when only the resource is known."""
    outputs = ctx.outputs
    url = outputs.get("endpoint_url") if isinstance(outputs, dict) else None
    if url is UNKNOWN or is_unknown(url):
        return "unknown", None, None
    if isinstance(url, str):
        host = host_of_url(url) or ""
        m = CLUSTER_LOCAL.match(host)
        if m and (host.endswith(".svc") or host.endswith(".cluster.local")):
            return "cluster-dns", _service(ctx, m.group(1), m.group(2)), host
        if SAGEMAKER_RUNTIME.match(host):
            return "sagemaker", next((r for r in ctx.resources if r.type == SAGEMAKER_ENDPOINT), None), host
        if host.endswith("." + VERTEX_PSC_SUFFIX):
            return "vertex-psc", next((r for r in ctx.resources if r.type in VERTEX_ENDPOINTS), None), host
        if host.endswith("aiplatform.googleapis.com"):
            return "vertex-public", next((r for r in ctx.resources if r.type in VERTEX_ENDPOINTS), None), host
        if host.endswith("." + PRIVATE_TLD) or _zones_for(ctx, host):
            return "stack-dns", None, host
        return "external", None, host
    services = [r for r in ctx.resources if r.type == SERVICE]
    for component in FRONT_DOORS:
        for r in services:
            if (get(r.props, "metadata.labels") or {}).get("app.kubernetes.io/component") == component:
                return "service", r, None
    # A stack without a cluster runs the gateway on ECS or Cloud Run, in front of its managed or third-party model.
    for r in ctx.resources:
        if r.type == ECS_SERVICE and _gateway_task(ctx, r) is not False:
            return "ecs", r, None
    for r in ctx.resources:
        if r.type == CLOUD_RUN:
            return "cloud-run", r, None
    for r in ctx.resources:
        if r.type == SAGEMAKER_ENDPOINT:
            return "sagemaker", r, None
    for r in ctx.resources:
        if r.type in VERTEX_ENDPOINTS:
            psc = get(r.props, "endpointConfig.privateServiceConnectConfig.enablePrivateServiceConnect") if \
                r.type == VERTEX_DEPLOYMENT else get(r.props, "privateServiceConnectConfig.enablePrivateServiceConnect")
            return ("vertex-psc" if psc in (True, "true") else "vertex-public"), r, None
    return "none", None, None


def _service_reachable(ctx: StackContext, svc: Any, network: str, net: Optional[Any], where: str) -> None:
    kind = get(svc.props, "spec.type") or "ClusterIP"
    name = f"{get(svc.props, 'metadata.namespace') or 'default'}/{get(svc.props, 'metadata.name')}"
    if is_unknown(kind):
        ctx.cannot_verify(f"{svc.name}.spec.type", "how the Service is exposed")
        return
    if kind == "ClusterIP":
        # Under `pulumi preview` (no outputs): an Ingress or Gateway of the stack in front of the Service exposes it.
        fronts = [lb for lb in _load_balancers(ctx) if lb.type in (INGRESS, GATEWAY) and
                  (get(svc.props, "metadata.namespace") or "default", get(svc.props, "metadata.name")) in
                  _backends(ctx, lb)]
        if fronts:
            _check_lb(ctx, fronts[0], False, network, net, where, f"the stack exposes {name} through")
            return
        ctx.violation(f"the stack exports the ClusterIP Service {name}, reachable only from pods inside its cluster, "
                      f"but its consumers are {where}. Fix: {_expose(network, net)}.", svc.urn)
        return
    if kind == "LoadBalancer":
        annotations = get(svc.props, "metadata.annotations") or {}
        internal = any(str(annotations.get(k, "")).lower() in v for k, v in INTERNAL_ANNOTATIONS.items())
        if internal and network == "public":
            ctx.violation(f"the stack exports {name} on an internal load balancer, but its consumers are {where}. "
                          "Fix: drop the internal annotation (and keep the data classification's boundary in mind), "
                          "or set the stack's endpoint audience to vpc.", svc.urn)
        return
    if kind == "NodePort" and network == "public":
        ctx.violation(f"the stack exports {name} as a NodePort, reached on the nodes' private addresses only, but "
                      f"its consumers are {where}. Fix: use a LoadBalancer Service.", svc.urn)


def _sagemaker(ctx: StackContext, endpoint: Any, host: Optional[str], network: str, net: Optional[Any], where: str) -> None:
    if network == "public":
        return
    region = None
    m = SAGEMAKER_RUNTIME.match(host or "")
    if m:
        region = m.group(2)
    elif endpoint is not None:
        region = (endpoint.provider_props or {}).get("region")
    want = f"com.amazonaws.{region}.sagemaker.runtime" if region else None
    found = None
    for r in ctx.resources:
        if r.type != VPC_ENDPOINT:
            continue
        service = get(r.props, "serviceName")
        if is_unknown(service):
            ctx.cannot_verify(f"{r.name}.serviceName", "which service the VPC endpoint reaches")
            continue
        if isinstance(service, str) and (service == want or service == f"{want}-fips" or
                                         (want is None and service.endswith(".sagemaker.runtime"))):
            found = r
            break
    target = endpoint if endpoint is not None else net
    url = host or f"runtime.sagemaker.{region or '<region>'}.amazonaws.com"
    if found is None:
        ctx.violation(f"the stack exports the SageMaker runtime ({url}), but its consumers are {where} and the stack "
                      f"has no interface VPC endpoint for {want or 'sagemaker.runtime'}: calls from the VPC resolve to "
                      "the public runtime and leave through NAT (or fail in an air-gapped network). Fix: add an "
                      f"Interface VPC endpoint for {want or 'com.amazonaws.<region>.sagemaker.runtime'} with "
                      f"privateDnsEnabled in {net.name if net else 'the VPC'}.", target.urn if target else None)
        return
    kind, dns = get(found.props, "vpcEndpointType"), get(found.props, "privateDnsEnabled")
    if is_unknown(kind) or is_unknown(dns):
        ctx.cannot_verify(f"{found.name} type and private DNS", "how the VPC endpoint is reached")
        return
    if kind != "Interface" or dns not in (True, "true"):
        ctx.violation(f"the stack exports the SageMaker runtime ({url}) for consumers in {where}, but its VPC endpoint "
                      f"{found.name} is {'not an Interface endpoint' if kind != 'Interface' else 'without private DNS'}, "
                      f"so {url} still resolves to the public runtime. Fix: make {found.name} an Interface endpoint with "
                      "privateDnsEnabled true.", target.urn if target else found.urn)


def _refers_to(value: Any, resource: Any, deps: list[str]) -> Optional[bool]:
    name = get(resource.props, "name")
    if is_unknown(value):
        return True if resource.urn in deps else None
    return isinstance(value, str) and isinstance(name, str) and (value == name or value.endswith("/" + name))


def _vertex(ctx: StackContext, endpoint: Any, host: Optional[str], network: str, net: Optional[Any], where: str) -> None:
    who = endpoint.urn if endpoint is not None else None
    if network == "public":
        ctx.violation(f"the stack exports a Vertex AI Private Service Connect endpoint ({host or VERTEX_PSC_SUFFIX}), "
                      f"reachable only inside networks with a PSC connection, but its consumers are {where}. Fix: "
                      "serve it on Vertex AI's public endpoint, or set the stack's endpoint audience to vpc.", who)
        return
    zones = []
    for z in (r for r in ctx.resources if r.type == DNS_ZONE):
        dns = get(z.props, "dnsName")
        visibility = get(z.props, "visibility")
        if is_unknown(dns) or is_unknown(visibility):
            ctx.cannot_verify(f"{z.name} dnsName and visibility", "which names the zone answers")
            continue
        if visibility != "private" or not isinstance(dns, str):
            continue
        suffix = dns.rstrip(".")
        if host is not None and not (host == suffix or host.endswith("." + suffix)):
            continue
        if host is None and not (suffix == VERTEX_PSC_SUFFIX or suffix.endswith("." + VERTEX_PSC_SUFFIX)):
            continue
        nets = get(z.props, "privateVisibilityConfig.networks") or []
        attached = [_refers_to(n.get("networkUrl") if isinstance(n, dict) else None, net, z.dependency_urns)
                    for n in nets] if net is not None else []
        if None in attached and True not in attached:
            ctx.cannot_verify(f"{z.name}.privateVisibilityConfig", "which network the zone is attached to")
            continue
        if True in attached:
            zones.append(z)
    covering = []
    for rec in (r for r in ctx.resources if r.type == DNS_RECORD):
        name, zone_ref = get(rec.props, "name"), get(rec.props, "managedZone")
        in_zone = [z for z in zones if _refers_to(zone_ref, z, rec.dependency_urns)]
        if not in_zone:
            continue
        if is_unknown(name):
            if host is None:
                covering.append(rec)
            else:
                ctx.cannot_verify(f"{rec.name}.name", "which host the record answers")
            continue
        label = str(name).rstrip(".")
        if host is None or label == host or (label.startswith("*.") and host.endswith(label[1:])):
            covering.append(rec)
    if covering:
        return
    net_name = net.name if net else "the stack's network"
    if zones:
        ctx.violation(f"the stack exports the Vertex AI endpoint {host or '(its PSC host)'} for consumers in {where}; "
                      f"the private zone {', '.join(z.name for z in zones)} on {net_name} has no record for it, so the "
                      f"name does not resolve there. Fix: add an A record for {host or 'the endpoint host'} pointing at "
                      "the PSC forwarding rule's address.", who)
    else:
        shown = host or f"(*.{VERTEX_PSC_SUFFIX})"
        ctx.violation(f"the stack exports the Vertex AI Private Service Connect endpoint {shown} for consumers in "
                      f"{where}, but no Cloud DNS private zone attached to {net_name} answers for it, so the name does "
                      f"not resolve in the network. Fix: add a private zone for "
                      f"{VERTEX_PSC_SUFFIX}. on {net_name} with an A record for the endpoint's host pointing at the PSC "
                      "forwarding rule's address.", who)


# --- the private-DNS front door: <stack>.llm.internal -> internal load balancer -> the gateway's Service -------------

def _zone_suffix(ctx: StackContext, zone: Any) -> Optional[str]:
    name = get(zone.props, "name" if zone.type == AWS_ZONE else "dnsName")
    if is_unknown(name):
        ctx.cannot_verify(f"{zone.name}.{'name' if zone.type == AWS_ZONE else 'dnsName'}", "which names the zone answers")
        return None
    return str(name).rstrip(".").lower() if isinstance(name, str) else None


def _zones_for(ctx: StackContext, host: str) -> list[Any]:
    """The stack's DNS zones (Route 53 or Cloud DNS, private or not) whose domain holds `host`."""
    out = []
    for z in (r for r in ctx.resources if r.type in (AWS_ZONE, DNS_ZONE)):
        suffix = _zone_suffix(ctx, z)
        if suffix and (host == suffix or host.endswith("." + suffix)):
            out.append(z)
    return out


def _zone_private(ctx: StackContext, zone: Any, net: Optional[Any]) -> Optional[bool]:
    """True when the zone answers only inside the stack's network; None when that is not known yet."""
    if zone.type == AWS_ZONE:
        vpcs = get(zone.props, "vpcs")
        if is_unknown(vpcs):
            ctx.cannot_verify(f"{zone.name}.vpcs", "which VPCs the zone answers in")
            return None
        ids = [v.get("vpcId") if isinstance(v, dict) else None for v in (vpcs or [])]
        if not ids:
            return False
        if net is None or net.type != VPC:
            return True
        # The VPC's id is an output: a policy sees it only where the engine passes outputs. Without it, a zone whose
        # vpcs entry was made from that VPC (it depends on it) is attached to it.
        net_id = get(net.props, "id")
        attached = [True if ((is_unknown(i) or net_id is None) and net.urn in zone.dependency_urns) or i == net_id else
                    (None if is_unknown(i) else False) for i in ids]
    else:
        visibility = get(zone.props, "visibility")
        if is_unknown(visibility):
            ctx.cannot_verify(f"{zone.name}.visibility", "whether the zone is private")
            return None
        if visibility != "private":
            return False
        if net is None:
            return True
        nets = get(zone.props, "privateVisibilityConfig.networks") or []
        attached = [_refers_to(n.get("networkUrl") if isinstance(n, dict) else None, net, zone.dependency_urns)
                    for n in nets]
    if True in attached:
        return True
    if None in attached:
        ctx.cannot_verify(f"{zone.name} networks", "which network the zone is attached to")
        return None
    return False


def _in_zone(ctx: StackContext, rec: Any, zone: Any) -> Optional[bool]:
    ref = get(rec.props, "zoneId" if rec.type == AWS_RECORD else "managedZone")
    if is_unknown(ref):
        return True if zone.urn in rec.dependency_urns else None
    if rec.type == AWS_RECORD:
        return isinstance(ref, str) and ref in (get(zone.props, "zoneId"), get(zone.props, "id"))
    return _refers_to(ref, zone, rec.dependency_urns)


def _record_host(ctx: StackContext, rec: Any, suffix: str) -> Optional[str]:
    name = get(rec.props, "name")
    if is_unknown(name):
        ctx.cannot_verify(f"{rec.name}.name", "which host the record answers")
        return None
    name = str(name).rstrip(".").lower()
    return name if name == suffix or name.endswith("." + suffix) else f"{name}.{suffix}"  # Route 53 takes a relative name


def _targets(rec: Any) -> list[Any]:
    """What the record answers with: alias targets and values (Route 53), rrdatas (Cloud DNS)."""
    if rec.type == AWS_RECORD:
        aliases = get(rec.props, "aliases")
        values = [a.get("name") if isinstance(a, dict) else a for a in aliases] if isinstance(aliases, list) else []
        records = get(rec.props, "records")
        return values + (records if isinstance(records, list) else [])
    rrdatas = get(rec.props, "rrdatas")
    return rrdatas if isinstance(rrdatas, list) else ([rrdatas] if is_unknown(rrdatas) else [])


def _namespace(r: Any) -> str:
    return get(r.props, "metadata.namespace") or "default"


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _gateway_addresses(gw: Any) -> list[str]:
    return [a.get("value") for a in _list(get(gw.props, "spec.addresses")) if isinstance(a, dict)]


def _load_balancers(ctx: StackContext) -> list[Any]:
    return [r for r in ctx.resources if r.type in (INGRESS, GATEWAY, *AWS_LBS, *GCP_FORWARDING_RULES) or
            (r.type == SERVICE and get(r.props, "spec.type") == "LoadBalancer")]


def _lb_for_value(ctx: StackContext, value: Any, rec: Any) -> Optional[Any]:
    """The stack's load balancer a record value names: by its address or host name, or (a value known only after
    `pulumi up`) the one the record was made from, directly or through the reserved address a Gateway takes."""
    lbs = _load_balancers(ctx)
    addresses = [r for r in ctx.resources if r.type == GCP_ADDRESS]
    # What the record was made from decides first: a forwarding rule, or the reserved address it holds. (Addresses
    # the cloud assigns may repeat across a stack's previews; the dependency does not.)
    made_from = [a for a in addresses if a.urn in rec.dependency_urns]
    rules = [fr for fr in lbs if fr.type in GCP_FORWARDING_RULES and
             (fr.urn in rec.dependency_urns or _linked(fr, get(fr.props, "ipAddress"), made_from))]
    if rules:
        return rules[0]
    if isinstance(value, str) and not is_unknown(value):
        value = value.rstrip(".").lower()
        for lb in lbs:
            known = [get(lb.props, "dnsName"), get(lb.props, "status.loadBalancer.ingress[0].hostname"),
                     get(lb.props, "status.loadBalancer.ingress[0].ip"), get(lb.props, "status.addresses[0].value"),
                     get(lb.props, "ipAddress")]
            if lb.type == GATEWAY:
                known += _gateway_addresses(lb)
                known += [get(a.props, "address") for a in addresses if get(a.props, "name") in _gateway_addresses(lb)]
            if value in [str(k).rstrip(".").lower() for k in known if isinstance(k, str) and not is_unknown(k)]:
                return lb
            # An ALB's DNS name is [internal-]<name>-<id>.<region>.elb.amazonaws.com.
            name = _annotation(lb, ALB_NAME) if lb.type == INGRESS else get(lb.props, "name")
            if isinstance(name, str) and not is_unknown(name) and value.endswith(".elb.amazonaws.com") and \
                    re.match(rf"^(internal-)?{re.escape(name.lower())}-[0-9a-z]+\.", value):
                return lb
    direct = [lb for lb in lbs if lb.urn in rec.dependency_urns]
    if direct:
        return direct[0]
    named = [get(a.props, "name") for a in addresses if a.urn in rec.dependency_urns]
    return next((g for g in lbs if g.type == GATEWAY and set(named) & set(_gateway_addresses(g))), None)


def _annotation(r: Any, key: str) -> Any:
    """One annotation of a Kubernetes object: UNKNOWN when the annotations are not known yet."""
    annotations = get(r.props, "metadata.annotations")
    if is_unknown(annotations):
        return UNKNOWN
    return annotations.get(key) if isinstance(annotations, dict) else None


def _lb_internal(lb: Any) -> Optional[bool]:
    if lb.type in AWS_LBS:
        return truthy(get(lb.props, "internal")) is True
    if lb.type in GCP_FORWARDING_RULES:
        scheme = _scheme(lb)
        return None if is_unknown(scheme) else scheme in INTERNAL_SCHEMES
    annotations = get(lb.props, "metadata.annotations") or {}
    if is_unknown(annotations):
        return None
    if lb.type == SERVICE:
        return any(str(annotations.get(k, "")).lower() in v for k, v in INTERNAL_ANNOTATIONS.items())
    if lb.type == GATEWAY:
        cls = get(lb.props, "spec.gatewayClassName")
        return True if cls in INTERNAL_GATEWAY_CLASSES else False if cls in EXTERNAL_GATEWAY_CLASSES else None
    cls = get(lb.props, "spec.ingressClassName") or annotations.get("kubernetes.io/ingress.class")
    if cls == "alb":
        if is_unknown(annotations.get(ALB_SCHEME)):
            return None  # the AWS Load Balancer Controller makes an internal ALB unless told internet-facing
        return str(annotations.get(ALB_SCHEME) or "internal").lower() == "internal"
    return True if cls == "gce-internal" else False if cls == "gce" else None


def _lb_https(lb: Any) -> Optional[bool]:
    """Whether the load balancer has an HTTPS listener for an https:// URL; None where the stack does not say."""
    if lb.type == GATEWAY:
        return any(isinstance(l, dict) and l.get("protocol") == "HTTPS" for l in _list(get(lb.props, "spec.listeners")))
    if lb.type != INGRESS:
        return None
    annotations = get(lb.props, "metadata.annotations") or {}
    if is_unknown(annotations):
        return None
    certificate = bool(get(lb.props, "spec.tls") or annotations.get("alb.ingress.kubernetes.io/certificate-arn") or
                       annotations.get("ingress.gcp.kubernetes.io/pre-shared-cert"))
    ports = annotations.get("alb.ingress.kubernetes.io/listen-ports")
    if isinstance(ports, str) and not is_unknown(ports):
        return '"HTTPS"' in ports.upper().replace("'", '"')
    return certificate


def _backends(ctx: StackContext, lb: Any) -> list[tuple[str, str]]:
    """(namespace, name) of the Services the Ingress or Gateway (through its HTTPRoutes) forwards to."""
    out = []
    if lb.type == INGRESS:
        ns = _namespace(lb)
        backends = [get(lb.props, "spec.defaultBackend")]
        for rule in _list(get(lb.props, "spec.rules")):
            backends += [p.get("backend") for p in _list(get(rule, "http.paths")) if isinstance(p, dict)]
        out = [(ns, get(b, "service.name")) for b in backends if isinstance(b, dict) and get(b, "service.name")]
    elif lb.type == GATEWAY:
        name, ns = get(lb.props, "metadata.name"), _namespace(lb)
        for route in (r for r in ctx.resources if r.type == HTTP_ROUTE):
            rns = _namespace(route)
            parents = _list(get(route.props, "spec.parentRefs"))
            if not any(isinstance(p, dict) and p.get("name") == name and (p.get("namespace") or rns) == ns
                       for p in parents):
                continue
            for rule in _list(get(route.props, "spec.rules")):
                out += [(b.get("namespace") or rns, b.get("name")) for b in _list(get(rule, "backendRefs"))
                        if isinstance(b, dict) and (b.get("kind") or "Service") == "Service"]
    return out


def _lb_label(lb: Any) -> str:
    kind = {INGRESS: "Ingress", GATEWAY: "Gateway", SERVICE: "Service"}.get(lb.type)
    if kind:
        return f"the {kind} {_namespace(lb)}/{get(lb.props, 'metadata.name')}"
    if lb.type in GCP_FORWARDING_RULES:
        return f"the load balancer's forwarding rule {lb.name}"
    return f"the load balancer {lb.name}"


def _front_service(ctx: StackContext) -> Optional[Any]:
    services = [r for r in ctx.resources if r.type == SERVICE]
    for component in FRONT_DOORS:
        for r in services:
            if (get(r.props, "metadata.labels") or {}).get("app.kubernetes.io/component") == component:
                return r
    return None


def _check_lb(ctx: StackContext, lb: Any, https: bool, network: str, net: Optional[Any], where: str,
              via: str, host: Optional[str] = None) -> None:
    """The load balancer a front door reaches: internal for a private stack, forwarding to the front-door Service, and
    serving HTTPS for an https:// URL."""
    internal = _lb_internal(lb)
    if network != "public" and internal is False:
        ctx.violation(f"{via} {_lb_label(lb)}, an internet-facing load balancer, but the stack's consumers are {where}. "
                      "Fix: make it internal (alb.ingress.kubernetes.io/scheme: internal, gatewayClassName "
                      "gke-l7-rilb, internal=True, load_balancing_scheme INTERNAL_MANAGED).", lb.urn)
    elif network == "public" and internal is True:
        ctx.violation(f"{via} {_lb_label(lb)}, an internal load balancer, but its consumers are {where}. Fix: use an "
                      "internet-facing load balancer, or set the stack's endpoint audience to vpc.", lb.urn)
    if lb.type in (INGRESS, GATEWAY):
        backends = _backends(ctx, lb)
        front = _front_service(ctx)
        want = (_namespace(front), get(front.props, "metadata.name")) if front is not None else None
        known = {(_namespace(s), get(s.props, "metadata.name")) for s in ctx.resources if s.type == SERVICE}
        if not backends:
            ctx.violation(f"{via} {_lb_label(lb)}, which forwards to no Service (no backend"
                          f"{' and no HTTPRoute attached' if lb.type == GATEWAY else ''}). Fix: route it to "
                          f"{'/'.join(want) if want else 'the gateway Service'}.", lb.urn)
        elif want is not None and want not in backends:
            shown = ", ".join("/".join(b) for b in backends)
            ctx.violation(f"{via} {_lb_label(lb)}, which forwards to {shown}, not to the stack's front door "
                          f"{'/'.join(want)}. Fix: route it to {'/'.join(want)}.", lb.urn)
        elif want is None and not set(backends) & known:
            shown = ", ".join("/".join(b) for b in backends)
            ctx.violation(f"{via} {_lb_label(lb)}, which forwards to {shown}, a Service the stack does not create.",
                          lb.urn)
    if lb.type in AWS_LBS:
        _aws_chain(ctx, lb, https, via, host)
    elif lb.type in GCP_FORWARDING_RULES:
        _gcp_chain(ctx, lb, https, network, via)
    if https and _lb_https(lb) is False:
        ctx.violation(f"{via} {_lb_label(lb)} over https, but it has no HTTPS listener: every client call fails the "
                      "TLS handshake. Fix: listen on HTTPS 443 with the endpoint's certificate.", lb.urn)


# --- the serverless front doors: an ALB before ECS (AWS), an internal Application Load Balancer before Cloud Run (GCP)
#
# The references between these resources are outputs (ARNs, ids, self links) that a policy sees only once they are
# known; a value made from another resource's output always makes the holder depend on it. So a reference names its
# target by the name a known value carries (an ARN or self link ends in it) or, failing that, by the dependency.

def _named_by(value: str, resource: Any) -> bool:
    """Whether a known reference (a name, an ARN, an id or a self link) carries the resource's own name."""
    for key in ("name", "family"):
        name = get(resource.props, key)
        if isinstance(name, str) and name and not is_unknown(name) and \
                re.search(rf"(^|/){re.escape(name)}($|[/:])", value):
            return True
    return False


def _linked(holder: Any, value: Any, candidates: list[Any], by_name_only: bool = False) -> Optional[list[Any]]:
    """The candidates a reference held by `holder` points at; None when that cannot be told yet (the value is unknown
    and the holder depends on none of them). `by_name_only`: the value is the target's name itself, so a known value
    that differs from a known name points elsewhere even when the holder depends on that target."""
    known = isinstance(value, str) and not is_unknown(value)
    if known:
        named = [c for c in candidates if _named_by(value, c)]
        if named:
            return named
    deps = [c for c in candidates if c.urn in holder.dependency_urns]
    if by_name_only and known:
        deps = [c for c in deps if not isinstance(get(c.props, "name"), str) or is_unknown(get(c.props, "name"))]
    if deps:
        return deps
    return None if value is UNKNOWN or is_unknown(value) else []


def _of_type(ctx: StackContext, types: tuple[str, ...]) -> list[Any]:
    return [r for r in ctx.resources if r.type in types]


def _gateway_task(ctx: StackContext, svc: Any) -> Optional[bool]:
    """Whether the ECS service runs the gateway container; None when its task definition is not known yet."""
    names = [get(e, "containerName") for e in _list(get(svc.props, "loadBalancers")) if isinstance(e, dict)]
    if GATEWAY_CONTAINER in names:
        return True
    tasks = _linked(svc, get(svc.props, "taskDefinition"), _of_type(ctx, (ECS_TASK,))) or []
    if any(is_unknown(get(t.props, "containerDefinitions")) for t in tasks):
        return None
    return any(c.name == GATEWAY_CONTAINER for t in tasks for c in containers_of(ECS_TASK, t.props))


def _aws_listeners(ctx: StackContext, lb: Any) -> list[Any]:
    return [l for l in _of_type(ctx, AWS_LISTENERS) if _linked(l, get(l.props, "loadBalancerArn"), [lb])]


def _is_tls(listener: Any) -> Optional[bool]:
    protocol = get(listener.props, "protocol")
    return None if is_unknown(protocol) else str(protocol or "HTTP").upper() in ("HTTPS", "TLS")


def _forwards(actions: Any) -> list[Any]:
    refs = []
    for action in _list(actions):
        if not isinstance(action, dict) or action.get("type") != "forward":
            continue
        if action.get("targetGroupArn") is not None:
            refs.append(action["targetGroupArn"])
        refs += [t.get("arn") for t in _list(get(action, "forward.targetGroups")) if isinstance(t, dict)]
    return refs


def _host_matches(rule: Any, host: Optional[str]) -> bool:
    """Whether a listener rule's host-header condition (if any) admits the exported host; ALB patterns take * and ?."""
    if host is None:
        return True
    for condition in _list(get(rule.props, "conditions")):
        values = get(condition, "hostHeader.values") if isinstance(condition, dict) else None
        if not isinstance(values, list) or any(is_unknown(v) for v in values):
            continue
        patterns = [re.escape(str(v).lower()).replace(r"\*", ".*").replace(r"\?", ".") for v in values]
        if not any(re.fullmatch(p, host.lower()) for p in patterns):
            return False
    return True


def _forward_refs(ctx: StackContext, listener: Any, host: Optional[str] = None) -> list[tuple[Any, Any]]:
    """(holder, target group ARN) for every forward of the listener: its default actions, and the actions of the
    listener rules attached to it whose host condition admits the exported host."""
    refs = [(listener, r) for r in _forwards(get(listener.props, "defaultActions"))]
    for rule in _of_type(ctx, AWS_LISTENER_RULES):
        if _linked(rule, get(rule.props, "listenerArn"), [listener]) and _host_matches(rule, host):
            refs += [(rule, r) for r in _forwards(get(rule.props, "actions"))]
    return refs


def _registrations(ctx: StackContext, tg: Any, refs: list[Any]) -> list[tuple[Any, dict]]:
    """(ECS service, its loadBalancers entry) that register their tasks in the target group: the entry holds the ARN
    the listener forwards to, or names the group, or (an ARN known only later) the service depends on the group."""
    known = [r for r in refs if isinstance(r, str) and not is_unknown(r)]
    out = []
    for svc in _of_type(ctx, (ECS_SERVICE,)):
        for entry in _list(get(svc.props, "loadBalancers")):
            if not isinstance(entry, dict):
                continue
            ref = entry.get("targetGroupArn")
            if (isinstance(ref, str) and ref in known) or tg in (_linked(svc, ref, [tg]) or []):
                out.append((svc, entry))
    return out


def _aws_chain(ctx: StackContext, lb: Any, https: bool, via: str, host: Optional[str]) -> None:
    """An aws:lb front door: a listener (HTTPS for an https URL) forwards to a target group that the gateway's ECS
    service (container litellm) registers its tasks in."""
    label = _lb_label(lb)
    listeners = _aws_listeners(ctx, lb)
    if not listeners:
        ctx.violation(f"{via} {label}, which has no listener of the stack: nothing answers on it. Fix: add an HTTPS "
                      f"listener on 443 (load_balancer_arn {lb.name}) forwarding to the gateway's target group.", lb.urn)
        return
    serving = listeners
    if https:
        if any(_is_tls(l) is None for l in listeners):
            ctx.cannot_verify(f"{label} listeners' protocol", "whether the load balancer serves HTTPS")
        serving = [l for l in listeners if _is_tls(l)]
        if not serving:
            shown = ", ".join(f"{l.name} ({get(l.props, 'protocol') or 'HTTP'}:{get(l.props, 'port')})" for l in listeners)
            if not ctx.unknown:
                ctx.violation(f"{via} {label} over https, but it has no HTTPS listener ({shown}): every client call "
                              "fails the TLS handshake. Fix: listen on HTTPS 443 with the endpoint's certificate and "
                              "an ELBSecurityPolicy-TLS13-1-2 policy.", listeners[0].urn)
            return
    groups = _of_type(ctx, AWS_TARGET_GROUPS)
    reached: list[tuple[Any, Any, list[Any]]] = []  # (listener, target group, the ARNs it is forwarded by)
    for l in serving:
        pairs = _forward_refs(ctx, l, host)
        refs = [r for _, r in pairs]
        for holder, ref in pairs:
            linked = _linked(holder, ref, groups)
            where = "actions" if holder is not l else "defaultActions"
            if linked is None:
                ctx.cannot_verify(f"{holder.name}.{where}", "which target group the listener forwards to")
            elif not linked:
                ctx.violation(f"{via} {label}, whose listener {l.name} forwards to {ref}"
                              f"{f' (rule {holder.name})' if holder is not l else ''}, not a target group of the "
                              "stack. Fix: forward to the gateway's target group.", holder.urn)
            reached += [(l, tg, refs) for tg in linked or [] if tg not in [t for _, t, _ in reached]]
    if not reached:
        if not any(_forward_refs(ctx, l, host) for l in serving):
            shown = f" for {host}" if host else ""
            ctx.violation(f"{via} {label}, whose listener {serving[0].name} forwards to no target group{shown} (no "
                          "forward default action, and no listener rule forwarding that host): requests never reach "
                          "the gateway. Fix: forward to the gateway's target group.", serving[0].urn)
        return
    for listener, tg, refs in reached:
        registered = _registrations(ctx, tg, refs)
        port = get(tg.props, "port")
        if not registered:
            ctx.violation(f"{via} {label}, whose listener {listener.name} forwards to the target group {tg.name}, but "
                          "no ECS service registers its tasks there (no load_balancers entry names it): the target "
                          f"group stays empty and the load balancer answers 503. Fix: add {tg.name} to the gateway ECS "
                          f"service's load_balancers (container {GATEWAY_CONTAINER}"
                          f"{f', port {port}' if port else ''}).", tg.urn)
            continue
        gateway = [(s, e) for s, e in registered if e.get("containerName") == GATEWAY_CONTAINER]
        if not gateway:
            shown = ", ".join(f"{s.name} (container {e.get('containerName')})" for s, e in registered)
            ctx.violation(f"{via} {label}, whose target group {tg.name} sends to {shown}, not the gateway container "
                          f"{GATEWAY_CONTAINER}. Fix: register the gateway service's {GATEWAY_CONTAINER} container in "
                          f"{tg.name}.", tg.urn)
            continue
        svc = gateway[0][0]
        tasks = _linked(svc, get(svc.props, "taskDefinition"), _of_type(ctx, (ECS_TASK,))) or []
        for task in tasks:
            defs = get(task.props, "containerDefinitions")
            if isinstance(defs, str) and all(c.name != GATEWAY_CONTAINER for c in containers_of(ECS_TASK, task.props)):
                ctx.violation(f"{via} {label}, whose target group {tg.name} sends to container {GATEWAY_CONTAINER} of "
                              f"{svc.name}, but its task definition {task.name} declares no container "
                              f"{GATEWAY_CONTAINER}: ECS refuses the service. Fix: run the gateway's task definition.",
                              svc.urn)


def _behind_aws_lb(ctx: StackContext, svc: Any) -> Optional[Any]:
    """The aws:lb whose listener forwards to a target group the ECS service registers in."""
    for lb in _of_type(ctx, AWS_LBS):
        for l in _aws_listeners(ctx, lb):
            pairs = _forward_refs(ctx, l)
            refs = [r for _, r in pairs]
            for holder, ref in pairs:
                for tg in _linked(holder, ref, _of_type(ctx, AWS_TARGET_GROUPS)) or []:
                    if any(s is svc for s, _ in _registrations(ctx, tg, refs)):
                        return lb
    return None


def _scheme(fr: Any) -> Any:
    return get(fr.props, "loadBalancingScheme")


def _url_map_services(url_map: Any) -> list[Any]:
    """Every backend service a URL map routes to: its default, its path matchers' defaults, path and route rules."""
    refs = [get(url_map.props, "defaultService")]
    for pm in _list(get(url_map.props, "pathMatchers")):
        refs.append(get(pm, "defaultService"))
        refs += [get(r, "service") for r in _list(get(pm, "pathRules"))]
        refs += [get(r, "service") for r in _list(get(pm, "routeRules"))]
    return [r for r in refs if r is not None]


def _gcp_hops(ctx: StackContext, fr: Any) -> dict[str, Any]:
    """The chain behind a forwarding rule, hop by hop; each hop is (resources, the resource holding the reference,
    the reference, "unknown" | "missing" | "ok")."""
    hops: dict[str, Any] = {}

    def follow(key: str, holders: list[Any], refs_of, candidates: list[Any], by_name_only: bool = False) -> list[Any]:
        found: list[Any] = []
        unknown = first = None
        for h in holders:
            for ref in refs_of(h):
                linked = _linked(h, ref, candidates, by_name_only)
                if linked is None and unknown is None:
                    unknown = (h, ref)
                if first is None:
                    first = (h, ref)
                found += [c for c in linked or [] if c not in found]
        if found:
            hops[key] = (found, None, None, "ok")
        elif unknown is not None:
            hops[key] = (found, *unknown, "unknown")
        else:
            hops[key] = (found, *(first or (holders[0] if holders else None, None)), "missing")
        return found

    proxies = follow("proxy", [fr], lambda h: [get(h.props, "target")], _of_type(ctx, (*GCP_HTTPS_PROXIES, *GCP_HTTP_PROXIES)))
    maps = follow("url map", proxies, lambda h: [get(h.props, "urlMap")], _of_type(ctx, GCP_URL_MAPS))
    backends = follow("backend service", maps, _url_map_services, _of_type(ctx, GCP_BACKENDS))
    negs = follow("network endpoint group", backends,
                  lambda h: [get(b, "group") for b in _list(get(h.props, "backends")) if isinstance(b, dict)],
                  _of_type(ctx, GCP_NEGS))
    follow("Cloud Run service", negs, lambda h: [get(h.props, "cloudRun.service")], _of_type(ctx, (CLOUD_RUN,)),
           by_name_only=True)
    return hops


HOP_FIX = {
    "proxy": "target the region target HTTPS proxy of the load balancer",
    "url map": "give the proxy the load balancer's URL map",
    "backend service": "route the URL map's default service to the backend service of the gateway",
    "network endpoint group": "add the serverless network endpoint group of the gateway's Cloud Run service to the "
                              "backend service's backends",
    "Cloud Run service": "set the network endpoint group's cloud_run.service to the gateway's Cloud Run service",
}


def _gcp_chain(ctx: StackContext, fr: Any, https: bool, network: str, via: str) -> None:
    """A forwarding-rule front door: INTERNAL_MANAGED (for a private stack) on 443, to a target HTTPS proxy, its URL
    map, a backend service, a serverless NEG, and the Cloud Run service behind it, whose ingress admits only load
    balancers."""
    label = _lb_label(fr)
    scheme = _scheme(fr)
    if network != "public" and isinstance(scheme, str) and scheme in ("INTERNAL", "INTERNAL_SELF_MANAGED"):
        ctx.violation(f"{via} {label}, whose loadBalancingScheme is {scheme}, not INTERNAL_MANAGED: only an internal "
                      "Application Load Balancer's forwarding rule carries a target HTTPS proxy to a serverless "
                      "backend. Fix: set load_balancing_scheme INTERNAL_MANAGED on the rule and its backend "
                      "service.", fr.urn)
    ports = get(fr.props, "portRange")
    if https and isinstance(ports, str) and not is_unknown(ports) and ports:
        low, _, high = ports.partition("-")
        if low.isdigit() and not int(low) <= 443 <= int(high or low):
            ctx.violation(f"{via} {label} over https, but the rule listens on port {ports}, not 443. Fix: set "
                          "port_range \"443\".", fr.urn)
    hops = _gcp_hops(ctx, fr)
    for key, (found, holder, ref, state) in hops.items():
        if state == "unknown":
            ctx.cannot_verify(f"{holder.name} {key}", f"which {key} it points at")
            return
        if state == "missing":
            holder = holder or fr
            what = f"names {ref}, not a {key} of the stack" if ref is not None else f"names no {key}"
            ctx.violation(f"{via} {label}, whose chain to the gateway breaks at {holder.name}: it {what}. Fix: "
                          f"{HOP_FIX[key]}.", holder.urn)
            return
        if key == "proxy" and https:
            plain = [p for p in found if p.type in GCP_HTTP_PROXIES]
            if plain and len(plain) == len(found):
                ctx.violation(f"{via} {label} over https, but the rule targets the target HTTP proxy {plain[0].name}: "
                              "there is no TLS listener and every client call fails the handshake. Fix: target a "
                              "target HTTPS proxy with the endpoint's certificate.", fr.urn)
                return
        if key == "network endpoint group":
            for neg in found:
                kind = get(neg.props, "networkEndpointType")
                if isinstance(kind, str) and not is_unknown(kind) and kind != "SERVERLESS":
                    ctx.violation(f"{via} {label}, whose backend reaches the network endpoint group {neg.name} of type "
                                  f"{kind}, not SERVERLESS: it does not front a Cloud Run service. Fix: "
                                  "network_endpoint_type SERVERLESS with cloud_run.service.", neg.urn)
                    return
    if network == "public":
        return
    for run in hops["Cloud Run service"][0]:
        ingress = get(run.props, "ingress")
        if is_unknown(ingress):
            ctx.cannot_verify(f"{run.name}.ingress", "who may reach the Cloud Run service")
        elif ingress not in CLOUD_RUN_PRIVATE_INGRESS:
            ctx.violation(f"{via} {label}, which reaches the Cloud Run service {run.name}, but its ingress is "
                          f"{ingress or 'not set (INGRESS_TRAFFIC_ALL)'}: the gateway also answers the internet on its "
                          "run.app URL, around the private load balancer. Fix: set ingress "
                          "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER.", run.urn)


def _behind_forwarding_rule(ctx: StackContext, run: Any) -> Optional[Any]:
    """The forwarding rule whose chain ends at the Cloud Run service."""
    for fr in _of_type(ctx, GCP_FORWARDING_RULES):
        if any(r is run for r in _gcp_hops(ctx, fr)["Cloud Run service"][0]):
            return fr
    return None


def _serverless_reachable(ctx: StackContext, kind: str, front: Any, network: str, net: Optional[Any],
                          where: str) -> None:
    """Under `pulumi preview` (no outputs): the gateway's ECS service or Cloud Run service behind a load balancer."""
    lb = _behind_aws_lb(ctx, front) if kind == "ecs" else _behind_forwarding_rule(ctx, front)
    what = f"the gateway's {'ECS' if kind == 'ecs' else 'Cloud Run'} service {front.name}"
    if lb is None:
        shown = ("an internal Application Load Balancer (aws.lb.LoadBalancer internal=True) with an HTTPS listener "
                 "forwarding to a target group its tasks register in" if kind == "ecs" else
                 "an internal Application Load Balancer (an INTERNAL_MANAGED forwarding rule, target HTTPS proxy, URL "
                 "map, backend service and a serverless network endpoint group naming it)")
        ctx.violation(f"the stack's front door is {what}, but no load balancer of the stack forwards to it, so its "
                      f"consumers in {where} have no address to call. Fix: put it behind {shown}.", front.urn)
        return
    _check_lb(ctx, lb, False, network, net, where, f"the stack exposes {what} through")


def _private_dns(ctx: StackContext, url: str, host: str, network: str, net: Optional[Any], where: str) -> None:
    net_name = net.name if net else "the stack's network"
    who = net.urn if net else None
    zones = _zones_for(ctx, host)
    if not zones:
        ctx.violation(f"the stack exports {url}, but no DNS zone of the stack answers for {host} (and .internal names "
                      f"never resolve on the internet). Fix: add a private zone for the domain on {net_name} with a "
                      f"record for {host} pointing at the internal load balancer.", who)
        return
    found = []
    for zone in zones:
        suffix = _zone_suffix(ctx, zone)
        for rec in (r for r in ctx.resources if r.type in (AWS_RECORD, DNS_RECORD)):
            inside = _in_zone(ctx, rec, zone)
            if inside is None:
                ctx.cannot_verify(f"{rec.name} zone", "which zone the record is in")
            if inside and _record_host(ctx, rec, suffix) == host:
                found.append((zone, rec))
    if not found:
        ctx.violation(f"the stack exports {url}, but its zone {', '.join(z.name for z in zones)} has no record for "
                      f"{host}, so the name does not resolve. Fix: add an alias (Route 53) or A (Cloud DNS) record for "
                      f"{host} pointing at the internal load balancer.", zones[0].urn)
        return
    zone, rec = found[0]
    private = _zone_private(ctx, zone, net)
    if network != "public" and private is False:
        ctx.violation(f"the stack exports {url} from the zone {zone.name}, which is not a private zone attached to "
                      f"{net_name}: consumers in {where} may not resolve it, and the name is published outside the "
                      f"network. Fix: make {zone.name} private (Route 53 vpcs, Cloud DNS visibility private) on "
                      f"{net_name}.", zone.urn)
    elif network == "public" and private is True:
        ctx.violation(f"the stack exports {url} from the private zone {zone.name}, but its consumers are {where}, "
                      "where a private zone does not resolve. Fix: publish the name in a public zone, or mark the "
                      "stack's network private.", zone.urn)
    targets = _targets(rec)
    lbs = [lb for lb in (_lb_for_value(ctx, t, rec) for t in targets) if lb is not None]
    if not lbs:
        if any(is_unknown(t) for t in targets):
            ctx.cannot_verify(f"{rec.name} target", "which load balancer the record points at")
            return
        shown = ", ".join(map(str, targets)) or "nothing"
        ctx.violation(f"the stack exports {url}, but the record {rec.name} answers with {shown}, not the address of a "
                      "load balancer of the stack. Fix: point it at the internal load balancer (a Route 53 alias of "
                      "the ALB, or the Gateway's address).", rec.urn)
        return
    if not url.lower().startswith("https://"):
        ctx.violation(f"the stack exports {url}, a plain-http URL: clients would send prompts and API keys in clear. "
                      "Fix: export the https:// URL the load balancer serves.", rec.urn)
    _check_lb(ctx, lbs[0], url.lower().startswith("https://"), network, net, where,
              f"the stack exports {url}, whose record {rec.name} points at", host)


def check(ctx: StackContext) -> None:
    # Where the consumers are is the stack's endpoint audience, not its network variant: a `public` network (NAT,
    # public subnets, a public API server) still serves applications inside the VPC unless the stack declares an
    # internet audience. Below, "public" stands for consumers anywhere and any other value for the stack's network.
    variant = ctx.config["network"]
    audience = ctx.config.get("endpointAudience") or "vpc"
    network = "public" if audience == "internet" else ("private" if variant == "public" else variant)
    net = _network(ctx)
    where = _where(network, net, audience, variant)
    kind, resource, host = _front_door(ctx)
    if kind == "unknown":
        ctx.cannot_verify("endpoint_url", "the exported endpoint is known only after `pulumi up`")
        return
    if kind == "none":
        ctx.not_applicable("the stack exports no endpoint it serves itself (no Service, SageMaker or Vertex AI endpoint)")
    if kind == "external":
        ctx.not_applicable(f"the stack exports {host}, an address outside its resources (a third-party API is left to "
                           "the boundary and air-gap policies)")
    if kind == "cluster-dns":
        svc = f" of the Service {resource.name}" if resource is not None else ""
        ctx.violation(f"the stack exports {ctx.outputs['endpoint_url']}, a cluster DNS name{svc} that resolves only "
                      f"inside the cluster, but its consumers are {where}. Fix: {_expose(network, net)}.",
                      resource.urn if resource else None)
    elif kind == "service":
        _service_reachable(ctx, resource, network, net, where)
    elif kind in ("ecs", "cloud-run"):
        _serverless_reachable(ctx, kind, resource, network, net, where)
    elif kind == "sagemaker":
        _sagemaker(ctx, resource, host, network, net, where)
    elif kind == "vertex-psc":
        _vertex(ctx, resource, host, network, net, where)
    elif kind == "stack-dns":
        _private_dns(ctx, ctx.outputs["endpoint_url"], host, network, net, where)


POLICY = stack_policy(RULE, check)
