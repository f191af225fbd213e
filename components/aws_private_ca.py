"""The private TLS certificate and the private DNS zone of an endpoint, shared by the EKS and the ECS endpoints.

Plain functions, not a component: they create their resources as children of the endpoint that calls them, under the
names that endpoint has always used (`<name>-ca`, `<name>-ca-root`, `<name>-ca-activation`, `<name>-ca-acm-renewal`,
`<name>-certificate`, `<name>-zone`), so moving the code here changed no resource's URN.

The certificate is an ACM private certificate, which ACM renews by itself and the load balancer serves; it is issued
by an AWS Private CA in general-purpose mode, the only mode ACM can issue from (a short-lived-mode CA issues 7-day
certificates that would need a renewal job and a listener update every week). Where that CA comes from is a cost
and trust trade-off:

- By default each stack makes its own ROOT CA. It is self-contained (no other team or account involved) but costs
  about USD 400 a month per stack for the CA alone, and every client must be given each stack's root to trust.
- With `certificate_authority_arn`, the certificate is issued from an existing general-purpose CA of the
  organisation, typically a subordinate shared from a central PKI account through AWS RAM. No CA, root certificate,
  activation or ACM permission is created here, so the stack adds nothing to the CA bill, and clients that already
  trust the organisation's hierarchy need nothing new. The CA must be in the stack's region (ACM issues only from a
  CA in its own region). Across accounts, ACM's right to issue and to renew comes from the CA's resource policy
  (the RAM share attaches it), not from an `acmpca.Permission`, which only works within one account.

An internet-facing endpoint uses neither: its certificate is an ACM public one (components/aws_public_certificate.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

# arn:<partition>:acm-pca:<region>:<account>:certificate-authority/<uuid>
CA_ARN = re.compile(r"^arn:(aws[a-z-]*):acm-pca:([a-z]{2}(?:-[a-z]+)+-\d):(\d{12}):certificate-authority/"
                    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KEY_ALGORITHM = "RSA_2048"  # the certificate's key: what every TLS client and the ELB security policies accept
SIGNING_ALGORITHM = "SHA256WITHRSA"


def check_certificate_authority_arn(arn: str, region: Optional[str] = None,
                                    field: str = "certificate_authority_arn") -> None:
    """Refuse an ARN that is not an AWS Private CA's (or, given `region`, not in that region), naming the field."""
    match = CA_ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        raise ValueError(f"{field}: {arn!r} is not an AWS Private CA ARN "
                         "(arn:<partition>:acm-pca:<region>:<account>:certificate-authority/<id>)")
    if region is not None and match.group(2) != region:
        raise ValueError(f"{field}: the CA is in {match.group(2)}, but ACM issues only from a CA in the "
                         f"certificate's own region ({region})")


@dataclass(frozen=True)
class PrivateCertificate:
    certificate_arn: pulumi.Output[str]  # the ACM certificate a listener serves
    ca_certificate: pulumi.Output[str]  # PEM that clients must trust (the CA, then its chain if it is a subordinate)


def private_certificate(name: str, parent: pulumi.Resource, *, stack: str, host: str, tags: dict[str, str],
                        protect: bool, certificate_authority_arn: Optional[pulumi.Input[str]] = None,
                        ) -> PrivateCertificate:
    """An ACM private certificate for `host`, from a new root CA of the stack or from `certificate_authority_arn`."""
    if isinstance(certificate_authority_arn, str):
        check_certificate_authority_arn(certificate_authority_arn)
    if certificate_authority_arn is not None:
        authority = aws.acmpca.get_certificate_authority_output(
            arn=certificate_authority_arn, opts=pulumi.InvokeOutputOptions(parent=parent))
        # Issued from the organisation's CA: its resource policy lets ACM issue and renew; nothing to create here.
        certificate = aws.acm.Certificate(
            f"{name}-certificate", domain_name=host, certificate_authority_arn=certificate_authority_arn,
            key_algorithm=KEY_ALGORITHM, tags={**tags, "Name": host}, opts=pulumi.ResourceOptions(parent=parent))
        # A subordinate CA's own certificate is not self-signed: hand clients its chain too, so a trust store built
        # from this output alone verifies (some TLS libraries refuse a non-root trust anchor).
        ca_certificate = pulumi.Output.all(authority.certificate, authority.certificate_chain).apply(
            lambda pems: "\n".join(p.strip() for p in pems if p) + "\n")
        return PrivateCertificate(certificate_arn=certificate.arn, ca_certificate=ca_certificate)

    child = pulumi.ResourceOptions(parent=parent)
    prefix = f"llm-hosting-{stack}"
    identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).partition
    ca = aws.acmpca.CertificateAuthority(
        f"{name}-ca", type="ROOT", usage_mode="GENERAL_PURPOSE",  # ACM issues only from general-purpose CAs
        certificate_authority_configuration=aws.acmpca.CertificateAuthorityCertificateAuthorityConfigurationArgs(
            key_algorithm=KEY_ALGORITHM, signing_algorithm=SIGNING_ALGORITHM,
            subject=aws.acmpca.CertificateAuthorityCertificateAuthorityConfigurationSubjectArgs(
                common_name=f"{prefix} private root CA", organization="llm-hosting")),
        permanent_deletion_time_in_days=7,
        tags={**tags, "Name": f"{prefix}-private-ca"},
        # Deleting the CA invalidates every certificate clients were told to trust.
        opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    root = aws.acmpca.Certificate(
        f"{name}-ca-root", certificate_authority_arn=ca.arn,
        certificate_signing_request=ca.certificate_signing_request, signing_algorithm=SIGNING_ALGORITHM,
        template_arn=partition.apply(lambda p: f"arn:{p}:acm-pca:::template/RootCACertificate/V1"),
        # Longer than any certificate ACM issues from it (13 months) plus renewals, short of forever.
        validity=aws.acmpca.CertificateValidityArgs(type="YEARS", value="10"),
        opts=child)
    activation = aws.acmpca.CertificateAuthorityCertificate(
        f"{name}-ca-activation", certificate_authority_arn=ca.arn, certificate=root.certificate,
        certificate_chain=root.certificate_chain, opts=child)
    # ACM renews private certificates by itself only when the CA grants it these actions.
    renewal = aws.acmpca.Permission(
        f"{name}-ca-acm-renewal", certificate_authority_arn=ca.arn, principal="acm.amazonaws.com",
        actions=["IssueCertificate", "GetCertificate", "ListPermissions"], source_account=identity.account_id,
        opts=child)
    certificate = aws.acm.Certificate(
        f"{name}-certificate", domain_name=host, certificate_authority_arn=ca.arn, key_algorithm=KEY_ALGORITHM,
        tags={**tags, "Name": host},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[activation, renewal]))
    return PrivateCertificate(certificate_arn=certificate.arn, ca_certificate=root.certificate)


def private_zone(name: str, parent: pulumi.Resource, *, stack: str, zone_name: str, vpc_id: pulumi.Input[str],
                 region: str, tags: dict[str, str]) -> aws.route53.Zone:
    """The Route 53 private hosted zone of the stack's endpoints, resolvable only inside the stack's VPC."""
    return aws.route53.Zone(
        f"{name}-zone", name=zone_name,
        comment=f"llm-hosting {stack}: private names of the stack's endpoints",
        vpcs=[aws.route53.ZoneVpcArgs(vpc_id=vpc_id, vpc_region=region)],
        tags={**tags, "Name": f"llm-hosting-{stack}-{zone_name}"}, opts=pulumi.ResourceOptions(parent=parent))
