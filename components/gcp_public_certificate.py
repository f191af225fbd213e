"""The pieces every internet-facing HTTPS endpoint on GCP shares: the opt-in arguments and their validation, a
publicly trusted certificate for a domain the team owns, the regional external address, and the domain's A record.

Both GcpPrivateEndpoint (a GKE Gateway) and GcpServerlessEndpoint (a load balancer before Cloud Run) take the same
three arguments, checked here once:

  internet_facing  False (the default): the private endpoint, nothing here is used
  domain           the public name clients call, e.g. llm.example.com: required when internet_facing, refused otherwise
  public_zone      the Cloud DNS *public* managed zone (its name, in the stack's project) that holds `domain`

and build, as children of their own component:

  <name>-dns-authorization         Certificate Manager: a regional DNS authorization for `domain`
  <name>-dns-authorization-record  Cloud DNS: its CNAME, in the public zone, from the authorization's own record
  <name>-certificate               Certificate Manager: a regional Google-managed certificate for `domain`
  <name>-address                   Compute Engine: the regional EXTERNAL address the load balancer listens on
  <name>-record                    Cloud DNS: `domain` A -> that address, in the public zone

Regional, not global, everywhere: the regional external Application Load Balancer (EXTERNAL_MANAGED) runs its Envoy
proxies in the stack's region, so TLS is terminated, and prompts and completions are in clear text, only there
(data residency); the global one would terminate TLS at whichever Google front end is nearest the client. A regional
load balancer takes only regional Certificate Manager certificates, and a regional Google-managed certificate can be
authorized only through a regional DNS authorization (load-balancer authorization is global-only), whose CNAME
record is per project (PER_PROJECT_RECORD, the type the API gives regional authorizations), so its name is read
from the authorization rather than written here. Certificate Manager renews the certificate itself as long as the CNAME stays in place.

The certificate chains to a public root every client already trusts, so the endpoints export no CA certificate
(`ca_certificate` is None) and clients need no trust configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .gcp_network import name_prefix
from .gcp_private_ca import DNS_TTL, is_dns_domain

# The regional external Application Load Balancer (Envoy proxies in the region, from its proxy-only subnet).
EXTERNAL_SCHEME = "EXTERNAL_MANAGED"
# STANDARD rather than PREMIUM: with Standard Tier the client's traffic enters Google's network at the region itself
# (over the public internet up to it), where Premium Tier would take it in at the Google edge nearest the client, in
# whatever country that is, and carry it over Google's backbone. TLS ends at the regional proxies either way, so
# Premium would move only ciphertext; Standard keeps even that path regional, and its internet egress (the
# completions) costs less. What it gives up: lower latency for far-away clients, and availability in every region
# (Standard Tier is not offered in a few; the API refuses the address there).
NETWORK_TIER = "STANDARD"
# One CNAME per project and domain, the API's default for regional authorizations (FIXED_RECORD is global ones').
DNS_AUTHORIZATION_TYPE = "PER_PROJECT_RECORD"
# Physical name of every resource of the internet-facing mode, `<prefix>-endpoint-public`: not the private mode's
# `<prefix>-endpoint`, so switching a stack between the modes creates the new load balancer before deleting the old
# one instead of failing on a name GCP still holds.
PUBLIC_NAME_SUFFIX = "endpoint-public"
# Top-level domains no public CA issues for and no public resolver answers (RFC 6761, RFC 2606, ICANN's .internal).
PRIVATE_TLDS = ("internal", "local", "localhost", "test", "invalid", "example", "home", "lan", "corp")
_MANAGED_ZONE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # Cloud DNS managed zone names


def check_internet_facing(internet_facing: bool, domain: Optional[str], public_zone: Optional[str]) -> None:
    """The opt-in's arguments agree: `domain` and `public_zone` are given exactly when `internet_facing` is, and are
    a public DNS name and a managed zone's name."""
    if not isinstance(internet_facing, bool):
        raise ValueError(f"internet_facing must be True or False, not {internet_facing!r}")
    if not internet_facing:
        for field_name, value in (("domain", domain), ("public_zone", public_zone)):
            if value is not None:
                raise ValueError(f"{field_name} is set but internet_facing is False: the private endpoint takes its "
                                 "name from zone_name (set internet_facing=True for a public endpoint)")
        return
    if not domain:
        raise ValueError("domain is required when internet_facing: the public name clients call, such as "
                         "llm.example.com, in a zone the team owns")
    name = domain.rstrip(".")
    if not is_dns_domain(name):
        raise ValueError(f"domain {domain!r} is not a DNS name of two or more labels such as llm.example.com "
                         "(lowercase letters, digits and dashes, separated by dots; no wildcard)")
    if name.rsplit(".", 1)[-1] in PRIVATE_TLDS:
        raise ValueError(f"domain {domain!r} is under a private top-level domain: no public CA issues for it and no "
                         "public resolver answers it")
    if not public_zone:
        raise ValueError("public_zone is required when internet_facing: the name of the Cloud DNS public managed "
                         f"zone that holds {name}")
    if not _MANAGED_ZONE_NAME.match(public_zone):
        raise ValueError(f"public_zone {public_zone!r} is not a Cloud DNS managed zone's name (its name, such as "
                         "example-com, not its DNS name: 1-63 lowercase letters, digits and dashes)")


def public_domain(domain: str) -> str:
    """The domain as the certificate, the listener and the record all take it: no trailing dot."""
    return domain.rstrip(".")


def public_resource_name(stack: str) -> str:
    return f"{name_prefix(stack)}-{PUBLIC_NAME_SUFFIX}"


@dataclass(frozen=True)
class PublicCertificate:
    certificate_name: pulumi.Output[str]  # the Certificate Manager certificate's short name
    certificate_id: pulumi.Output[str]  # projects/<p>/locations/<region>/certificates/<name>
    dns_authorization_id: pulumi.Output[str]  # projects/<p>/locations/<region>/dnsAuthorizations/<name>


def _challenge(records, field_name: str):
    """One field of the authorization's CNAME: its name, type or data (a regional authorization has exactly one)."""
    if not records:
        return None
    record = records[0]
    return record.get(field_name) if isinstance(record, dict) else getattr(record, field_name)


def public_certificate(name: str, parent: pulumi.Resource, *, stack: str, project: Optional[str], region: str,
                       domain: str, public_zone: str, labels: dict[str, str]) -> PublicCertificate:
    """A regional Google-managed certificate for `domain`, authorized by a regional DNS authorization whose CNAME is
    created in `public_zone`; children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    cm = gcp.certificatemanager
    resource_name = public_resource_name(stack)
    authorization = cm.DnsAuthorization(
        f"{name}-dns-authorization", name=resource_name, project=project, location=region, domain=domain,
        type=DNS_AUTHORIZATION_TYPE, description=f"llm-hosting {stack}: {domain} is ours to certify",
        labels=labels, opts=child)
    records = authorization.dns_resource_records
    # The CNAME Certificate Manager looks up to prove control of the domain, for as long as it renews.
    challenge = gcp.dns.RecordSet(
        f"{name}-dns-authorization-record", project=project, managed_zone=public_zone,
        name=records.apply(lambda rs: _challenge(rs, "name")), type="CNAME", ttl=DNS_TTL,
        rrdatas=records.apply(lambda rs: [_challenge(rs, "data")]), opts=child)
    certificate = cm.Certificate(
        f"{name}-certificate", name=resource_name, project=project, location=region,
        description=f"llm-hosting {stack}: {domain}, publicly trusted",
        managed=cm.CertificateManagedArgs(domains=[domain], dns_authorizations=[authorization.id]),
        labels=labels,
        # Issuance starts at creation: the challenge record is there first, or the first attempt fails.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[challenge]))
    return PublicCertificate(certificate_name=certificate.name, certificate_id=certificate.id,
                             dns_authorization_id=authorization.id)


def external_address(name: str, parent: pulumi.Resource, *, stack: str, project: Optional[str], region: str,
                     labels: dict[str, str]) -> gcp.compute.Address:
    """The regional external IPv4 address the load balancer listens on, reserved so the A record does not wait for
    (or change with) the load balancer."""
    return gcp.compute.Address(
        f"{name}-address", name=public_resource_name(stack), project=project, region=region, address_type="EXTERNAL",
        network_tier=NETWORK_TIER, description=f"llm-hosting {stack}: the internet-facing endpoint's load balancer",
        labels=labels, opts=pulumi.ResourceOptions(parent=parent))


def public_record(name: str, parent: pulumi.Resource, *, project: Optional[str], public_zone: str, domain: str,
                  address: pulumi.Input[str]) -> gcp.dns.RecordSet:
    """`domain` A -> `address` in the public zone; a child of `parent`."""
    return gcp.dns.RecordSet(
        f"{name}-record", project=project, managed_zone=public_zone, name=f"{domain}.", type="A", ttl=DNS_TTL,
        rrdatas=[address], opts=pulumi.ResourceOptions(parent=parent))
