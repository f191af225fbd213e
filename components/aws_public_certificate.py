"""The internet-facing mode of the AWS endpoints: its arguments' checks and its publicly trusted certificate, shared by
the EKS endpoint (AwsPrivateEndpoint) and the ECS one (AwsAlbEndpoint) so the two ask for and build it alike.

An endpoint is private by default (an internal ALB, a private-CA certificate, a private zone). A stack whose
consumers are on the internet (network variant `public`, data neither confidential nor regulated: the caller decides
that, the policy pack's BND-003 holds it to it) may instead set `internet_facing=True` with:

- `domain`: the public name its clients call (e.g. `llm.example.com`), in a domain the team owns;
- `public_zone_id`: the Route 53 public hosted zone that holds `domain` (the kit does not create or delegate it);
- `public_subnet_ids`: where the internet-facing ALB goes, never the private subnets.

The certificate is then an ACM public certificate for `domain`, validated by DNS: ACM names a CNAME record, this
module writes it into the public zone, and an `aws.acm.CertificateValidation` waits until ACM has issued the
certificate; its ARN (the validation's, not the request's) is what a listener or an Ingress takes, so neither is made
with a certificate still pending. ACM renews it by itself for as long as that record stays. No private CA is made:
the certificate chains to a public root every client already trusts, so the endpoint has no `ca_certificate` to hand
out (the output is None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from .aws_private_ca import KEY_ALGORITHM

# DNS: a label is 1-63 lower-case letters, digits and inner hyphens (as the private endpoint's names are).
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
COMMON_NAME_MAX = 64  # a certificate's common name (the domain) is at most 64 characters
# Names no public CA issues for: special-use top-level domains (RFC 6761, 6762, 7686, 8375, 9476, ICANN's .internal).
SPECIAL_USE_TLDS = frozenset({"internal", "local", "localhost", "test", "invalid", "example", "onion", "alt", "arpa"})
# A Route 53 hosted zone's id as the API returns it without its "/hostedzone/" prefix.
HOSTED_ZONE_ID = re.compile(r"^Z[0-9A-Z]{1,31}$")
VALIDATION_RECORD_TTL = 60  # seconds: ACM looks the record up repeatedly until it sees it


def check_domain(domain: Any, field: str = "domain") -> None:
    """Refuse a name that cannot be the endpoint's public DNS name and certificate's common name, naming the field."""
    labels = domain.split(".") if isinstance(domain, str) else []
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"{field}: {domain!r} is not a DNS name of two or more labels (lower-case letters, digits, "
                         "inner '-'; no trailing dot), e.g. llm.example.com")
    if len(domain) > COMMON_NAME_MAX:
        raise ValueError(f"{field}: {domain!r} is longer than the {COMMON_NAME_MAX} characters a certificate's common "
                         "name allows")
    if labels[-1] in SPECIAL_USE_TLDS:
        raise ValueError(f"{field}: {domain!r} is under the special-use domain .{labels[-1]}, for which no public CA "
                         "issues a certificate; name a domain the team owns in public DNS")


def check_internet_facing(*, internet_facing: Any, domain: Any, public_zone_id: Any, public_subnet_ids: Any,
                          subnet_ids: Any = None, certificate_authority_arn: Any = None) -> None:
    """The internet-facing arguments of an endpoint's Args, checked alike for both endpoints, naming the field.

    Private mode refuses them all (they would be silently ignored); internet-facing mode needs all three, and refuses
    a private CA (its certificate would be trusted by nobody on the internet)."""
    if not isinstance(internet_facing, bool):
        raise ValueError(f"internet_facing: {internet_facing!r} must be True or False")
    if not internet_facing:
        for name, value in (("domain", domain), ("public_zone_id", public_zone_id),
                            ("public_subnet_ids", public_subnet_ids)):
            if value is not None:
                raise ValueError(f"{name}: only an internet-facing endpoint (internet_facing=True) takes one; a "
                                 "private endpoint is <stack>.<zone_name> in its private zone and private subnets")
        return
    if domain is None:
        raise ValueError("domain: an internet-facing endpoint needs the public DNS name its clients call "
                         "(e.g. llm.example.com), in a domain the team owns")
    check_domain(domain)
    if public_zone_id is None:
        raise ValueError("public_zone_id: an internet-facing endpoint needs the Route 53 public hosted zone that "
                         f"holds {domain} (for the certificate's validation record and the endpoint's alias)")
    if isinstance(public_zone_id, str) and not HOSTED_ZONE_ID.match(public_zone_id):
        raise ValueError(f"public_zone_id: {public_zone_id!r} is not a Route 53 hosted zone id "
                         "(e.g. Z0123456789ABCDEFGHIJ, without /hostedzone/)")
    if public_subnet_ids is None:
        raise ValueError("public_subnet_ids: an internet-facing endpoint needs the public subnets its load balancer "
                         "goes in (e.g. network.public_subnet_ids); it never goes in the private ones")
    if isinstance(public_subnet_ids, (list, tuple)):
        if not public_subnet_ids:
            raise ValueError("public_subnet_ids: name the public subnets the load balancer goes in")
        if isinstance(subnet_ids, (list, tuple)):
            shared = sorted({s for s in public_subnet_ids if isinstance(s, str)} & {s for s in subnet_ids
                                                                                     if isinstance(s, str)})
            if shared:
                raise ValueError(f"public_subnet_ids: {shared} are also in subnet_ids (the private subnets)")
    if certificate_authority_arn is not None:
        raise ValueError("certificate_authority_arn: an internet-facing endpoint serves a publicly trusted ACM "
                         "certificate; a private CA's would be trusted by none of its clients")


@dataclass(frozen=True)
class PublicCertificate:
    # The ACM certificate's ARN as the validation returns it: known only once ACM has issued the certificate, so a
    # listener or Ingress that takes it is made after the validation.
    certificate_arn: pulumi.Output[str]
    certificate: aws.acm.Certificate
    validation_record: aws.route53.Record
    validation: aws.acm.CertificateValidation


def _option_for(options, domain: str):
    """ACM's validation record for `domain` (the certificate names no other, so there is exactly one)."""
    matching = [o for o in options or [] if o.domain_name == domain]
    if len(matching) != 1:
        raise ValueError(f"ACM returned {len(matching)} validation options for {domain}, expected one")
    return matching[0]


def public_certificate(name: str, parent: pulumi.Resource, *, domain: str, zone_id: pulumi.Input[str],
                       tags: dict[str, str]) -> PublicCertificate:
    """An ACM public certificate for `domain`, validated through a record in the public zone `zone_id`.

    Children of `parent`: `<name>-certificate`, `<name>-certificate-validation-record`, `<name>-certificate-validation`.
    """
    child = pulumi.ResourceOptions(parent=parent)
    certificate = aws.acm.Certificate(
        f"{name}-certificate", domain_name=domain,
        # DNS, not e-mail: ACM renews a DNS-validated certificate by itself for as long as the record exists.
        validation_method="DNS", key_algorithm=KEY_ALGORITHM,
        tags={**tags, "Name": domain}, opts=child)
    option = certificate.domain_validation_options.apply(lambda options: _option_for(options, domain))
    record = aws.route53.Record(
        f"{name}-certificate-validation-record", zone_id=zone_id,
        name=option.apply(lambda o: o.resource_record_name), type=option.apply(lambda o: o.resource_record_type),
        records=[option.apply(lambda o: o.resource_record_value)], ttl=VALIDATION_RECORD_TTL,
        # ACM's record for a name is the same for every certificate of that name in the account: a replacing
        # certificate (a new key algorithm) or a retried stack finds it there already and takes it over.
        allow_overwrite=True,
        opts=child)
    validation = aws.acm.CertificateValidation(
        f"{name}-certificate-validation", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn],
        opts=child)
    return PublicCertificate(certificate_arn=validation.certificate_arn, certificate=certificate,
                             validation_record=record, validation=validation)


def endpoint_certificate(name: str, parent: pulumi.Resource, *, stack: str, host: str, internet_facing: bool,
                         public_zone_id: Optional[pulumi.Input[str]], certificate_authority_arn: Optional[str],
                         tags: dict[str, str], protect: bool) -> tuple[pulumi.Output[str], pulumi.Output[Optional[str]]]:
    """(certificate ARN for the listener or Ingress, the CA certificate clients trust) for either endpoint: a public
    certificate validated in the public zone (no CA to hand out), or one from the stack's own private CA or the
    organisation's."""
    from .aws_private_ca import private_certificate  # the private CA module imports nothing from here

    if internet_facing:
        # The validation's ARN: what takes it is made only once ACM has issued the certificate.
        issued = public_certificate(name, parent, domain=host, zone_id=public_zone_id, tags=tags)
        return issued.certificate_arn, pulumi.Output.from_input(None)
    tls = private_certificate(name, parent, stack=stack, host=host, tags=tags, protect=protect,
                              certificate_authority_arn=certificate_authority_arn)
    return tls.certificate_arn, tls.ca_certificate
