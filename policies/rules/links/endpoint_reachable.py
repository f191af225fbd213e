"""LNK-007: the endpoint the stack exports is reachable from where its consumers are."""

from __future__ import annotations

import re
from typing import Any, Optional

from ...props import UNKNOWN, get, host_of_url, is_unknown
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
           "reachable from outside the network at all.",
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
    applies_to=(SERVICE, SAGEMAKER_ENDPOINT, *VERTEX_ENDPOINTS, VPC_ENDPOINT, DNS_ZONE, DNS_RECORD),
    level="advisory",
    limits="Under `pulumi preview` the exported endpoint is inferred from the rendered front door (stack outputs are "
           "not visible to a stack policy). Security groups, firewall rules and peering between the consumers and "
           "the endpoint are not checked; an exported third-party API is left to the boundary and air-gap policies.",
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


POLICY = stack_policy(RULE, check)
