"""The pieces every private HTTPS endpoint on GCP shares: a certificate from the stack's own private CA, and the
private DNS zone that gives the endpoint its name inside the VPC.

Both the GKE endpoint (GcpPrivateEndpoint, a Gateway) and the serverless one (GcpServerlessEndpoint, a load balancer
made directly in front of Cloud Run) build them the same way, as children of their own component and under their own
logical names, so neither component's resources change URN by sharing them:

  <name>-ca-pool, <name>-ca            Certificate Authority Service: a DevOps-tier pool and its self-signed root
  <name>-certmanager-agent             Certificate Manager's service agent ...
  <name>-ca-requester                  ... allowed to request certificates from the pool
  <name>-issuance, <name>-certificate  Certificate Manager: the issuance config and the regional certificate
  <name>-zone, <name>-record           Cloud DNS: the private zone on the stack's VPC and the endpoint's A record

The certificate is regional, as regional internal Application Load Balancers take only regional Certificate Manager
certificates; Certificate Manager renews it from the pool before it runs out. Clients trust the root's PEM
(`PrivateCertificate.ca_certificate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .gcp_network import name_prefix

# DevOps tier: issues without storing certificates or keeping revocation lists; what short-lived, automatically
# renewed server certificates need, at a tenth of the Enterprise tier's monthly price.
CA_TIER = "DEVOPS"
CA_LIFETIME = "315360000s"  # 10 years: the root clients are given once
CA_KEY_ALGORITHM = "EC_P256_SHA256"
CERT_LIFETIME = "2592000s"  # 30 days; Certificate Manager renews before it runs out
CERT_ROTATION_PERCENT = 66  # renew two thirds into the lifetime, leaving ten days to notice a failing renewal
CERT_KEY_ALGORITHM = "ECDSA_P256"
# Certificate Manager asks the pool for certificates as this service agent, which needs this role on the pool.
CERT_MANAGER_SERVICE = "certificatemanager.googleapis.com"
CA_REQUESTER_ROLE = "roles/privateca.certificateRequester"
DNS_TTL = 300
# Physical names: `<prefix>-endpoint` for the pool, issuance config, certificate and zone; the CA's ends in -cas.
NAME_SUFFIX = "endpoint"
CA_NAME_SUFFIX = "endpoint-cas"
_ZONE = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def is_dns_domain(name: str, max_length: int = 253) -> bool:
    """`name` (no trailing dot) is a DNS domain of two or more labels in lowercase letters, digits and dashes: what
    the private zones, the public endpoint's domain and the certificates covering them must all be."""
    return bool(_ZONE.match(name)) and "." in name and len(name) <= max_length


def check_zone_name(zone_name: str) -> str:
    """The zone without its trailing dot; refuses what Cloud DNS (or the VPC's own names) would not take."""
    zone = zone_name.rstrip(".")
    if not is_dns_domain(zone, max_length=200):
        # A single label such as `internal` would shadow Compute Engine's own internal DNS names in the VPC.
        raise ValueError(f"zone_name {zone_name!r} is not a DNS domain of two or more labels such as "
                         "llm.internal (lowercase letters, digits and dashes, separated by dots)")
    return zone


@dataclass(frozen=True)
class PrivateCertificate:
    certificate_name: pulumi.Output[str]  # the Certificate Manager certificate's short name
    certificate_id: pulumi.Output[str]  # projects/<p>/locations/<region>/certificates/<name>
    ca_certificate: pulumi.Output[str]  # PEM of the self-signed root clients must trust


def private_certificate(name: str, parent: pulumi.Resource, *, stack: str, project: Optional[str], region: str,
                        dns_name: str, zone: str, labels: dict[str, str], protect: bool) -> PrivateCertificate:
    """A private CA of the stack's own (pool + self-signed root, constrained to `zone`) and a regional Certificate
    Manager certificate for `dns_name` issued from it, created as children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    # The CA and its pool: deleting them invalidates every client's trust anchor; GCP also keeps their names.
    kept = pulumi.ResourceOptions(parent=parent, protect=protect)
    prefix = name_prefix(stack)
    ca = gcp.certificateauthority

    pool = ca.CaPool(
        f"{name}-ca-pool", name=f"{prefix}-{NAME_SUFFIX}", project=project, location=region, tier=CA_TIER,
        # No CRL or CA certificate published to a bucket: clients get the root from this stack's output, and
        # nothing in an air-gapped VPC could fetch them anyway.
        publishing_options=ca.CaPoolPublishingOptionsArgs(publish_ca_cert=False, publish_crl=False),
        labels=labels, opts=kept)
    authority = ca.Authority(
        f"{name}-ca", certificate_authority_id=f"{prefix}-{CA_NAME_SUFFIX}", project=project,
        location=region, pool=pool.name, type="SELF_SIGNED", lifetime=CA_LIFETIME,
        key_spec=ca.AuthorityKeySpecArgs(algorithm=CA_KEY_ALGORITHM),
        config=ca.AuthorityConfigArgs(
            subject_config=ca.AuthorityConfigSubjectConfigArgs(
                subject=ca.AuthorityConfigSubjectConfigSubjectArgs(
                    organization="llm-hosting", common_name=f"llm-hosting {stack} private endpoint CA")),
            x509_config=ca.AuthorityConfigX509ConfigArgs(
                ca_options=ca.AuthorityConfigX509ConfigCaOptionsArgs(is_ca=True, max_issuer_path_length=0),
                key_usage=ca.AuthorityConfigX509ConfigKeyUsageArgs(
                    base_key_usage=ca.AuthorityConfigX509ConfigKeyUsageBaseKeyUsageArgs(cert_sign=True, crl_sign=True),
                    extended_key_usage=ca.AuthorityConfigX509ConfigKeyUsageExtendedKeyUsageArgs(server_auth=True)),
                # The root clients are told to trust can vouch for names in this zone only.
                name_constraints=ca.AuthorityConfigX509ConfigNameConstraintsArgs(
                    critical=True, permitted_dns_names=[zone]))),
        deletion_protection=protect, labels=labels, opts=kept)

    # Certificate Manager requests the certificates from the pool as its own service agent.
    agent = gcp.projects.ServiceIdentity(f"{name}-certmanager-agent", service=CERT_MANAGER_SERVICE, project=project,
                                         opts=child)
    requester = ca.CaPoolIamMember(f"{name}-ca-requester", ca_pool=pool.id, role=CA_REQUESTER_ROLE,
                                   member=agent.member, opts=child)
    cm = gcp.certificatemanager
    issuance = cm.CertificateIssuanceConfig(
        f"{name}-issuance", name=f"{prefix}-{NAME_SUFFIX}", project=project, location=region,
        description=f"llm-hosting {stack}: certificates from the stack's private CA",
        certificate_authority_config=cm.CertificateIssuanceConfigCertificateAuthorityConfigArgs(
            certificate_authority_service_config=cm
            .CertificateIssuanceConfigCertificateAuthorityConfigCertificateAuthorityServiceConfigArgs(ca_pool=pool.id)),
        lifetime=CERT_LIFETIME, rotation_window_percentage=CERT_ROTATION_PERCENT, key_algorithm=CERT_KEY_ALGORITHM,
        labels=labels, opts=pulumi.ResourceOptions(parent=parent, depends_on=[authority, requester]))
    certificate = cm.Certificate(
        f"{name}-certificate", name=f"{prefix}-{NAME_SUFFIX}", project=project, location=region,
        description=f"llm-hosting {stack}: {dns_name}",
        managed=cm.CertificateManagedArgs(domains=[dns_name], issuance_config=issuance.id),
        labels=labels, opts=child)

    return PrivateCertificate(
        certificate_name=certificate.name, certificate_id=certificate.id,
        # A self-signed root: its chain is itself.
        ca_certificate=authority.pem_ca_certificates.apply(lambda pems: pems[0] if pems else None))


def private_zone_record(name: str, parent: pulumi.Resource, *, stack: str, project: Optional[str], zone: str,
                        network: pulumi.Input[str], dns_name: str, address: pulumi.Input[str],
                        labels: Optional[dict[str, str]] = None) -> gcp.dns.ManagedZone:
    """A Cloud DNS private zone for `zone`, visible on the VPC `network` only, with an A record `dns_name` ->
    `address`; children of `parent`. Returns the zone."""
    child = pulumi.ResourceOptions(parent=parent)
    private_zone = gcp.dns.ManagedZone(
        f"{name}-zone", name=f"{name_prefix(stack)}-{NAME_SUFFIX}", project=project, dns_name=f"{zone}.",
        description=f"llm-hosting {stack}: the private endpoint's name, inside the VPC only",
        visibility="private", private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network)]),
        labels=labels, opts=child)
    gcp.dns.RecordSet(
        f"{name}-record", project=project, managed_zone=private_zone.name, name=f"{dns_name}.", type="A",
        ttl=DNS_TTL, rrdatas=[address], opts=child)
    return private_zone
