"""LNK-007: the endpoint the stack exports is reachable from where its consumers are."""

from __future__ import annotations

import re
from typing import Any, Optional

from ...props import UNKNOWN, get, host_of_url, is_unknown, truthy
from ...rulekit import Rule, StackContext, stack_policy
from ...workloads import VERTEX_DEPLOYMENT

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
    description="The endpoint the stack exports resolves and routes for its consumers: in its VPC for private and "
                "air-gapped stacks, anywhere for public ones. Advisory until the kit exposes its in-cluster "
                "endpoints.",
    checks="Once per stack. The endpoint is the stack's `endpoint_url` output when the offline preview has it "
           "(`llmhost preview`); a stack policy under `pulumi preview` cannot see outputs, so there it is the front "
           "door the resources render: the gateway's Service (app.kubernetes.io/component gateway), else the model "
           "server's Service, else the SageMaker endpoint or the Vertex AI endpoint. A `*.svc.cluster.local` host, or "
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
           "the Gateway's HTTPRoutes) to the front-door Service. Under `pulumi preview` a ClusterIP front door with "
           "such an Ingress or Gateway in front of it is reachable through it. A public stack needs a public zone "
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
                INGRESS, GATEWAY, HTTP_ROUTE, *AWS_LBS, GCP_ADDRESS),
    level="advisory",
    limits="Under `pulumi preview` the exported endpoint is inferred from the rendered front door (stack outputs are "
           "not visible to a stack policy). Security groups, firewall rules and peering between the consumers and "
           "the endpoint are not checked; an exported third-party API is left to the boundary and air-gap policies. An "
           "Ingress's scheme set through IngressClassParams, and Gateway classes other than GKE's, are not read; "
           "whether the certificate names the host is not checked (ENC-009 checks that listeners serve TLS).",
)


def _network(ctx: StackContext) -> Optional[Any]:
    return next((r for r in ctx.resources if r.type in (VPC, GCP_NETWORK)), None)


def _where(network: str, net: Optional[Any]) -> str:
    if network == "public":
        return "anywhere (network public)"
    return f"the stack's network {net.name if net else '(none in the stack)'} (network {network})"


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
                          "or mark the stack's network private.", svc.urn)
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
                      "serve it on Vertex AI's public endpoint, or mark the stack's network private.", who)
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
    return [r for r in ctx.resources if r.type in (INGRESS, GATEWAY, *AWS_LBS) or
            (r.type == SERVICE and get(r.props, "spec.type") == "LoadBalancer")]


def _lb_for_value(ctx: StackContext, value: Any, rec: Any) -> Optional[Any]:
    """The stack's load balancer a record value names: by its address or host name, or (a value known only after
    `pulumi up`) the one the record was made from, directly or through the reserved address a Gateway takes."""
    lbs = _load_balancers(ctx)
    addresses = [r for r in ctx.resources if r.type == GCP_ADDRESS]
    if isinstance(value, str) and not is_unknown(value):
        value = value.rstrip(".").lower()
        for lb in lbs:
            known = [get(lb.props, "dnsName"), get(lb.props, "status.loadBalancer.ingress[0].hostname"),
                     get(lb.props, "status.loadBalancer.ingress[0].ip"), get(lb.props, "status.addresses[0].value")]
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
    return f"the load balancer {lb.name}"


def _front_service(ctx: StackContext) -> Optional[Any]:
    services = [r for r in ctx.resources if r.type == SERVICE]
    for component in FRONT_DOORS:
        for r in services:
            if (get(r.props, "metadata.labels") or {}).get("app.kubernetes.io/component") == component:
                return r
    return None


def _check_lb(ctx: StackContext, lb: Any, https: bool, network: str, net: Optional[Any], where: str,
              via: str) -> None:
    """The load balancer a front door reaches: internal for a private stack, forwarding to the front-door Service, and
    serving HTTPS for an https:// URL."""
    internal = _lb_internal(lb)
    if network != "public" and internal is False:
        ctx.violation(f"{via} {_lb_label(lb)}, an internet-facing load balancer, but the stack's consumers are {where}. "
                      "Fix: make it internal (alb.ingress.kubernetes.io/scheme: internal, gatewayClassName "
                      "gke-l7-rilb, internal=True).", lb.urn)
    elif network == "public" and internal is True:
        ctx.violation(f"{via} {_lb_label(lb)}, an internal load balancer, but its consumers are {where}. Fix: use an "
                      "internet-facing load balancer, or mark the stack's network private.", lb.urn)
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
    if https and _lb_https(lb) is False:
        ctx.violation(f"{via} {_lb_label(lb)} over https, but it has no HTTPS listener: every client call fails the "
                      "TLS handshake. Fix: listen on HTTPS 443 with the endpoint's certificate.", lb.urn)


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
              f"the stack exports {url}, whose record {rec.name} points at")


def check(ctx: StackContext) -> None:
    network = ctx.config["network"]
    net = _network(ctx)
    where = _where(network, net)
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
    elif kind == "sagemaker":
        _sagemaker(ctx, resource, host, network, net, where)
    elif kind == "vertex-psc":
        _vertex(ctx, resource, host, network, net, where)
    elif kind == "stack-dns":
        _private_dns(ctx, ctx.outputs["endpoint_url"], host, network, net, where)


POLICY = stack_policy(RULE, check)
