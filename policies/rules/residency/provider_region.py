"""RES-002: every AWS and GCP provider of the stack deploys to an allowed region."""

from __future__ import annotations

from ...props import UNKNOWN, get, region_of_location
from ...rulekit import Rule, StackContext, stack_policy

PROVIDER_TYPES = ("pulumi:providers:aws", "pulumi:providers:gcp")

RULE = Rule(
    id="RES-002-provider-region",
    title="AWS and GCP providers deploy to an allowed region",
    area="residency",
    kind="stack",
    description="Every AWS and GCP provider the stack uses, default or explicit, is configured with an allowed "
                "region, or for GCP a zone in one (AWS providers must name a region).",
    checks="Once per stack, over all resources: each explicit provider resource (`pulumi:providers:aws`, "
           "`pulumi:providers:gcp`) and the provider each resource was registered with (the default provider "
           "carries `aws:region` / `gcp:region` / `gcp:zone` from the stack config). Its `region` must be an allowed region, "
           "and a GCP provider's `zone` must lie in one (a zone's region is the zone without its last `-x` part). An AWS "
           "provider without a region would take it from AWS_REGION or the profile at run time, which no policy can "
           "see, so it is a violation; a GCP provider may omit it because GCP resources name their location (RES-001).",
    why="Most AWS resources and many GCP ones name no region in their own inputs: they are created wherever their "
        "provider points. The provider region therefore decides where the data lives for the whole stack.",
    severity="critical",
    controls=("GDPR art. 44", "FedRAMP SA-9(5)", "HIPAA 164.308(b)(1)"),
    remediation="Set `aws:region` / `gcp:region` (or `gcp:zone`) in the stack file (for kit stacks `llmhost plan` writes it from the "
                "residency decision) or the explicit provider's `region` to an allowed region.",
    applies_to=PROVIDER_TYPES,
    limits="A stack policy sees resources after the program registered them; a provider region overridden by "
           "environment variables at run time is invisible to it (hence the AWS no-region violation).",
)


def check(ctx: StackContext) -> None:
    allowed = ctx.config["allowedRegions"]
    providers: dict[str, tuple[str, str, object]] = {}  # urn -> (type, name, props)
    for r in ctx.resources:
        if r.type.startswith(PROVIDER_TYPES):
            providers.setdefault(r.urn, (r.type, r.name, r.props))
        if r.provider_type and r.provider_type.startswith(PROVIDER_TYPES) and r.provider_urn:
            providers.setdefault(r.provider_urn, (r.provider_type, r.provider_name or "default", r.provider_props))
    if not providers:
        ctx.not_applicable("the stack uses no AWS or GCP provider")
    shown = ", ".join(allowed)
    for urn, (typ, name, props) in providers.items():
        cloud = typ.split(":")[2]
        region = get(props, "region")
        # A GCP provider configured with gcp:zone alone places zonal resources (instances, disks, zonal clusters)
        # that name no location of their own in that zone, so the zone decides residency as a region would.
        zone = get(props, "zone") if cloud == "gcp" else None
        if region is UNKNOWN:
            ctx.cannot_verify(f"{name}.region", f"the {cloud} provider's region")
        elif region and region not in allowed:
            ctx.violation(f"the {cloud} provider {name} deploys to {region}, outside the allowed regions ({shown})", urn)
        if zone is UNKNOWN:
            ctx.cannot_verify(f"{name}.zone", f"the {cloud} provider's zone")
        elif isinstance(zone, str) and zone and zone not in allowed:
            zone_region, _ = region_of_location(zone)
            if zone_region not in allowed:
                ctx.violation(f"the {cloud} provider {name} deploys to the zone {zone} (region {zone_region}), outside "
                              f"the allowed regions ({shown})", urn)
        if not region and cloud == "aws":
            ctx.violation(f"the aws provider {name} sets no region: it would come from AWS_REGION or the AWS profile "
                          "at run time, which no policy can check; set aws:region (or the provider's region)", urn)


POLICY = stack_policy(RULE, check)
