"""ENC-009: every listener the stack creates serves TLS, so prompts and completions never cross the network in clear."""

from __future__ import annotations

import json
import re
from typing import Any

from ...props import UNKNOWN, is_unknown
from ...rulekit import ResourceContext, Rule, applies, resource_policy

AWS_LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
SERVICE = "kubernetes:core/v1:Service"
GCP_PLAIN_PROXIES = ("gcp:compute/targetHttpProxy:TargetHttpProxy", "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy",
                     "gcp:compute/targetTcpProxy:TargetTcpProxy", "gcp:compute/regionTargetTcpProxy:RegionTargetTcpProxy")
GCP_TLS_PROXIES = ("gcp:compute/targetHttpsProxy:TargetHttpsProxy", "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
                   "gcp:compute/targetSslProxy:TargetSslProxy")
GCP_FORWARDING_RULES = ("gcp:compute/forwardingRule:ForwardingRule", "gcp:compute/globalForwardingRule:GlobalForwardingRule")
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
TYPES = (*AWS_LISTENERS, INGRESS, GATEWAY, SERVICE, *GCP_PLAIN_PROXIES, *GCP_TLS_PROXIES, *GCP_FORWARDING_RULES,
         CLOUD_RUN)
TLS_PROTOCOLS = ("HTTPS", "TLS")
# Elastic Load Balancing's predefined security policies that accept TLS 1.2 and later only (TLS13-1-2/1-3 with their
# -Res, -Ext, -FIPS and -PQ forms, TLS-1-2 and FS-1-2). A listener without ssl_policy gets ELBSecurityPolicy-2016-08
# when created through the API (Pulumi, CLI, CloudFormation), which still accepts TLS 1.0 and 1.1.
TLS12_SSL_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]|TLS-1-2|FS-1-2)-")
API_DEFAULT_SSL_POLICY = "ELBSecurityPolicy-2016-08"
# A forwarding rule whose target is a target HTTP or TCP proxy (a self link or id: .../targetHttpProxies/<name>)
# answers in plain text whatever port it listens on.
PLAIN_PROXY_REF = re.compile(r"target(Http|Tcp)Prox", re.IGNORECASE)
# Cloud Run: only this ingress setting keeps the service's own run.app URL closed, so every request crosses the load
# balancer's HTTPS listener (and its certificate and TLS policy); INGRESS_TRAFFIC_ALL is the API's default.
CLOUD_RUN_LB_ONLY = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
# The certificate fields of the GCP proxies that terminate TLS (any one is enough).
GCP_CERT_FIELDS = ("sslCertificates", "certificateManagerCertificates", "certificateMap")

# AWS Load Balancer Controller annotations on an Ingress (the controller's own names).
ALB_CLASS = "alb"
ALB = "alb.ingress.kubernetes.io/"
LISTEN_PORTS = ALB + "listen-ports"
CERTIFICATE_ARN = ALB + "certificate-arn"
SSL_REDIRECT = ALB + "ssl-redirect"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# GKE Ingress: a pre-shared certificate stands in for spec.tls, and HTTP is served too unless switched off.
GKE_CLASSES = ("gce", "gce-internal")
GKE_PRE_SHARED_CERT = "ingress.gcp.kubernetes.io/pre-shared-cert"
GKE_ALLOW_HTTP = "kubernetes.io/ingress.allow-http"
GKE_CERTMAP = "networking.gke.io/certmap"
# A Service of type LoadBalancer terminates TLS on the cloud's load balancer only with these annotations (AWS: the
# in-tree provider and the AWS Load Balancer Controller read the same keys). GKE's L4 load balancer has none.
AWS_SSL_CERT = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
AWS_SSL_PORTS = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"

RULE = Rule(
    id="ENC-009-tls-listeners",
    title="Every listener serves TLS",
    area="encryption",
    description="Load balancer listeners, Ingresses, Gateways, target proxies, forwarding rules and LoadBalancer "
                "Services of the stack accept only TLS 1.2+ (HTTPS), or redirect plain HTTP to it; Cloud Run services "
                "are reached only through their load balancer.",
    checks="`aws:lb`/`aws:alb` listeners: `protocol` is HTTPS or TLS with an `sslPolicy` that accepts TLS 1.2 and "
           "later only (ELBSecurityPolicy-TLS13-1-2-*, -TLS13-1-3-*, -TLS-1-2-*, -FS-1-2-*; without one the API "
           "applies ELBSecurityPolicy-2016-08, which accepts TLS 1.0), or HTTP (the ALB default) whose only default "
           "action is a redirect with protocol HTTPS. Kubernetes `Ingress` of class alb (`spec.ingressClassName` or "
           "the `kubernetes.io/ingress.class` annotation): every port of `alb.ingress.kubernetes.io/listen-ports` is "
           "HTTPS (an HTTP port only with `alb.ingress.kubernetes.io/ssl-redirect`), and a certificate comes from "
           "`alb.ingress.kubernetes.io/certificate-arn` or `spec.tls`; without listen-ports the controller opens "
           "HTTPS 443 when there is a certificate and HTTP 80 when there is none. GKE Ingress (class gce, "
           "gce-internal): `spec.tls` or `ingress.gcp.kubernetes.io/pre-shared-cert`, and "
           "`kubernetes.io/ingress.allow-http: \"false\"`. Any other Ingress class: `spec.tls`. Gateway API "
           "`Gateway`: every listener's protocol is HTTPS or TLS and it has a `tls` block (on GKE an HTTPS listener "
           "may take its certificates from the `networking.gke.io/certmap` annotation instead). GCP target HTTP and TCP "
           "proxies (global and regional) are plain: always reported; target HTTPS and SSL proxies need a "
           "certificate (`sslCertificates`, `certificateManagerCertificates` or `certificateMap`). GCP forwarding "
           "rules (regional and global): a `target` that names a target HTTP or TCP proxy is reported. Cloud Run "
           "services (`gcp:cloudrunv2/service:Service`): `ingress` is INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER, so "
           "requests reach them only through the load balancer's HTTPS listener. Kubernetes "
           "`Service` of type LoadBalancer: `service.beta.kubernetes.io/aws-load-balancer-ssl-cert`, with "
           "`...-ssl-ports` (when set) covering every port. A value unknown during preview is reported as cannot "
           "verify, never passed.",
    why="A plain-text listener carries prompts, completions and API keys across the network in clear, readable and "
        "alterable by anything on the path; transmission security is required for regulated data even inside a VPC.",
    severity="high",
    controls=("FedRAMP SC-8", "FedRAMP SC-8(1)", "HIPAA 164.312(e)(1)", "GDPR art. 32"),
    remediation="Serve HTTPS with a certificate (ACM on AWS, Certificate Manager or a Kubernetes Secret on GCP): set "
                "`protocol=\"HTTPS\"`, `certificate_arn` and `ssl_policy=\"ELBSecurityPolicy-TLS13-1-2-2021-06\"` on "
                "AWS listeners (keep port 80 only as a redirect to HTTPS); annotate an alb Ingress with `listen-ports: '[{\"HTTPS\":443}]'` and `certificate-arn`; give "
                "every Gateway listener `protocol: HTTPS` and `tls`; use target HTTPS proxies on GCP; set Cloud Run ingress to "
                "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER; put a "
                "LoadBalancer Service behind an Ingress or Gateway, or annotate it with `aws-load-balancer-ssl-cert`.",
    applies_to=TYPES,
    limits="Only the first hop is checked: whether the load balancer re-encrypts to its targets is not, and the TLS "
           "policy (minimum version) only on `aws:lb` listeners (not an alb Ingress's ssl-policy annotation, nor a GCP "
           "proxy's sslPolicy). A forwarding rule whose target is not known yet is judged through that proxy's own "
           "check. An HTTP-to-HTTPS redirect on GCP lives in the URL map, which this "
           "per-resource check does not read, so a redirect-only target HTTP proxy is reported (record an "
           "exception for it). A GKE LoadBalancer Service has no TLS annotation: one whose pods terminate TLS "
           "themselves needs an exception. Listeners the controllers create from Ingresses and Gateways are checked "
           "through those objects.",
)


def _annotations(ctx: ResourceContext) -> Any:
    value = ctx.get("metadata.annotations", "the annotations")
    return UNKNOWN if value is UNKNOWN else (value if isinstance(value, dict) else {})


def _aws_listener(ctx: ResourceContext) -> None:
    protocol = ctx.get("protocol", "the listener protocol")
    if protocol is UNKNOWN:
        return
    shown = protocol or "not set (HTTP, the default)"
    protocol = (protocol or "HTTP").upper()
    if protocol in TLS_PROTOCOLS:
        policy = ctx.get("sslPolicy", "the listener's TLS policy")
        if policy is UNKNOWN:
            return
        if not policy:
            ctx.violation(f"protocol is {protocol} without sslPolicy: the listener gets {API_DEFAULT_SSL_POLICY}, "
                          "which still accepts TLS 1.0 and 1.1 (set ELBSecurityPolicy-TLS13-1-2-2021-06)")
        elif not TLS12_SSL_POLICY.match(str(policy)):
            ctx.violation(f"sslPolicy is {policy}, which accepts TLS versions below 1.2 (use "
                          "ELBSecurityPolicy-TLS13-1-2-2021-06 or another TLS 1.2+ policy)")
        return
    if protocol == "HTTP":
        actions = ctx.get("defaultActions", "the listener's default actions")
        if actions is UNKNOWN:
            return
        actions = actions if isinstance(actions, list) else []
        kinds = [a.get("type") if isinstance(a, dict) else None for a in actions]
        if any(is_unknown(k) for k in kinds):
            ctx.cannot_verify("defaultActions", "what the HTTP listener does")
            return
        if len(actions) == 1 and kinds[0] == "redirect":
            target = (actions[0].get("redirect") or {}).get("protocol")
            if is_unknown(target):
                ctx.cannot_verify("defaultActions[0].redirect.protocol", "where the redirect goes")
                return
            if str(target).upper() == "HTTPS":
                return
        ctx.violation(f"protocol is {shown} and its default action is not only a redirect to HTTPS: the listener "
                      "serves plain HTTP")
        return
    ctx.violation(f"protocol is {shown}: the listener accepts connections without TLS")


def _listen_ports(raw: str) -> list[tuple[str, Any]] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        return None
    return [(str(k).upper(), v) for d in doc for k, v in d.items()]


def _alb_ingress(ctx: ResourceContext, annotations: dict) -> None:
    cert = annotations.get(CERTIFICATE_ARN)
    tls = ctx.get("spec.tls", "the Ingress tls section")
    ports_raw = annotations.get(LISTEN_PORTS)
    redirect = annotations.get(SSL_REDIRECT)
    # An unknown certificate ARN is the certificate the stack issues: set, its value known at `pulumi up`.
    if is_unknown(ports_raw) or is_unknown(redirect):
        ctx.cannot_verify("metadata.annotations", "the load balancer's listeners")
        return
    if tls is UNKNOWN:
        return
    has_cert = is_unknown(cert) or bool(cert) or bool(tls)
    if ports_raw is None:
        ports = [("HTTPS", 443)] if has_cert else [("HTTP", 80)]
        shown = "not set (the controller opens HTTP 80, as there is no certificate)"
    else:
        ports = _listen_ports(str(ports_raw))
        shown = str(ports_raw)
        if ports is None:
            ctx.violation(f"{LISTEN_PORTS} is {ports_raw!r}, not a JSON list of {{\"HTTPS\": port}} objects: the "
                          "controller refuses it")
            return
    plain = [f"{p}:{n}" for p, n in ports if p != "HTTPS" and not (p == "HTTP" and redirect)]
    if plain:
        ctx.violation(f"{LISTEN_PORTS} is {shown}: the load balancer listens in plain text on {', '.join(plain)} "
                      f"(set '[{{\"HTTPS\":443}}]', or {SSL_REDIRECT} to send HTTP to HTTPS)")
    if any(p == "HTTPS" for p, _ in ports) and not has_cert:
        ctx.violation(f"no certificate: neither {CERTIFICATE_ARN} nor spec.tls is set, so the HTTPS listener has "
                      "nothing to serve")


def _gke_ingress(ctx: ResourceContext, annotations: dict) -> None:
    tls = ctx.get("spec.tls", "the Ingress tls section")
    cert, allow_http = annotations.get(GKE_PRE_SHARED_CERT), annotations.get(GKE_ALLOW_HTTP)
    if is_unknown(allow_http):
        ctx.cannot_verify(f"metadata.annotations.{GKE_ALLOW_HTTP}", "whether the load balancer serves HTTP")
        return
    if tls is UNKNOWN:
        return
    if not tls and not cert and not is_unknown(cert):
        ctx.violation(f"neither spec.tls nor {GKE_PRE_SHARED_CERT} is set: the load balancer serves plain HTTP only")
    if str(allow_http).lower() != "false":
        ctx.violation(f"{GKE_ALLOW_HTTP} is not \"false\": the load balancer also serves plain HTTP on port 80")


def _ingress(ctx: ResourceContext) -> None:
    annotations = _annotations(ctx)
    if annotations is UNKNOWN:
        return
    cls = ctx.get("spec.ingressClassName", "the Ingress class")
    if cls is None:
        cls = annotations.get(INGRESS_CLASS_ANNOTATION)
        if is_unknown(cls):
            ctx.cannot_verify(f"metadata.annotations.{INGRESS_CLASS_ANNOTATION}", "the Ingress class")
    if cls is UNKNOWN or is_unknown(cls):
        return
    if cls == ALB_CLASS:
        _alb_ingress(ctx, annotations)
    elif cls in GKE_CLASSES:
        _gke_ingress(ctx, annotations)
    else:
        tls = ctx.get("spec.tls", "the Ingress tls section")
        if tls is not UNKNOWN and not tls:
            ctx.violation(f"spec.tls is not set: the Ingress (class {cls or 'the cluster default'}) is served over "
                          "plain HTTP")


def _gateway(ctx: ResourceContext) -> None:
    listeners = ctx.get("spec.listeners", "the Gateway's listeners")
    if listeners is UNKNOWN:
        return
    if not isinstance(listeners, list) or not listeners:
        ctx.violation("spec.listeners is empty: nothing shows the Gateway serves TLS")
        return
    annotations = _annotations(ctx)
    # A GKE Gateway may take every HTTPS listener's certificates from a Certificate Manager map instead of `tls`.
    certmap = annotations.get(GKE_CERTMAP) if isinstance(annotations, dict) else None
    for i, listener in enumerate(listeners):
        listener = listener if isinstance(listener, dict) else {}
        protocol, tls = listener.get("protocol"), listener.get("tls")
        name = listener.get("name") or i
        if is_unknown(protocol) or is_unknown(tls):
            ctx.cannot_verify(f"spec.listeners[{i}]", "the listener's protocol and tls")
            continue
        if protocol not in TLS_PROTOCOLS:
            ctx.violation(f"spec.listeners[{i}] ({name}) has protocol {protocol or 'not set'}: it accepts connections "
                          "without TLS")
        elif not tls and not (protocol == "HTTPS" and certmap):
            ctx.violation(f"spec.listeners[{i}] ({name}) has protocol {protocol} but no tls: it has no certificate to "
                          "serve")


def _service(ctx: ResourceContext) -> None:
    kind = ctx.get("spec.type", "the Service type")
    if kind is UNKNOWN or kind != "LoadBalancer":
        return
    annotations = _annotations(ctx)
    if annotations is UNKNOWN:
        return
    cert, ssl_ports = annotations.get(AWS_SSL_CERT), annotations.get(AWS_SSL_PORTS)
    if is_unknown(ssl_ports):
        ctx.cannot_verify(f"metadata.annotations.{AWS_SSL_PORTS}", "which ports serve TLS")
        return
    if not cert and not is_unknown(cert):
        ctx.violation(f"spec.type is LoadBalancer without {AWS_SSL_CERT}: the load balancer passes plain TCP to the "
                      "pods, and nothing shows the traffic is encrypted")
        return
    if not ssl_ports or str(ssl_ports).strip() == "*":
        return
    covered = {p.strip() for p in str(ssl_ports).split(",")}
    ports = ctx.get("spec.ports", "the Service's ports")
    if ports is UNKNOWN:
        return
    plain = []
    for i, p in enumerate(ports if isinstance(ports, list) else []):
        p = p if isinstance(p, dict) else {}
        if str(p.get("port")) not in covered and (p.get("name") or "") not in covered:
            plain.append(str(p.get("name") or p.get("port") or i))
    if plain:
        ctx.violation(f"{AWS_SSL_PORTS} is {ssl_ports!r}: port(s) {', '.join(plain)} are served without TLS")


def _gcp_tls_proxy(ctx: ResourceContext) -> None:
    if all(ctx.peek(f) in (None, [], "") for f in GCP_CERT_FIELDS):
        ctx.violation(f"none of {', '.join(GCP_CERT_FIELDS)} is set: the proxy has no certificate to serve")


def _forwarding_rule(ctx: ResourceContext) -> None:
    # An unknown target is the proxy the stack creates: that proxy is checked on its own (a target HTTP proxy is
    # always reported), so the rule's reference adds nothing to wait for.
    target = ctx.peek("target")
    if isinstance(target, str) and PLAIN_PROXY_REF.search(target):
        kind = "HTTP" if "http" in PLAIN_PROXY_REF.search(target).group(1).lower() else "TCP"
        ctx.violation(f"target is {target}, a target {kind} proxy: the forwarding rule serves plain {kind} (target a "
                      f"target {'HTTPS' if kind == 'HTTP' else 'SSL'} proxy with a certificate)")


def _cloud_run(ctx: ResourceContext) -> None:
    ingress = ctx.get("ingress", "who may reach the service")
    if ingress is UNKNOWN or ingress == CLOUD_RUN_LB_ONLY:
        return
    shown = ingress or "not set (INGRESS_TRAFFIC_ALL, the default)"
    ctx.violation(f"ingress is {shown}: the service is reachable on its own run.app URL, around the load balancer's "
                  f"HTTPS listener and its certificate and TLS policy (set {CLOUD_RUN_LB_ONLY})")


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type in AWS_LISTENERS:
        _aws_listener(ctx)
    elif ctx.type == INGRESS:
        _ingress(ctx)
    elif ctx.type == GATEWAY:
        _gateway(ctx)
    elif ctx.type == SERVICE:
        _service(ctx)
    elif ctx.type in GCP_FORWARDING_RULES:
        _forwarding_rule(ctx)
    elif ctx.type == CLOUD_RUN:
        _cloud_run(ctx)
    elif ctx.type in GCP_PLAIN_PROXIES:
        plain = "HTTP" if "HttpProxy" in ctx.type else "TCP"
        ctx.violation(f"a target {plain} proxy serves plain {plain}: use a target "
                      f"{'HTTPS' if plain == 'HTTP' else 'SSL'} proxy with a certificate")
    else:
        _gcp_tls_proxy(ctx)


POLICY = resource_policy(RULE, check)
