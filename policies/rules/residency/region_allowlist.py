"""RES-001: every region, zone or location a resource names lies in the allowed regions."""

from __future__ import annotations

import re

from ...props import UNKNOWN, leaves, region_of_location, region_of_reference
from ...rulekit import ResourceContext, Rule, resource_policy

# Input keys whose value is a region, a zone or a location (a list of them for the plural keys).
LOCATION_KEYS = frozenset({
    "region", "location", "availabilityZone", "availabilityZones", "zone", "zones", "nodeLocations", "locations",
    "replicaRegion", "replicaRegions", "destinationRegion", "sourceRegion", "storageLocation", "storageLocations",
})
SKIP_TOP_KEYS = frozenset({"tags", "tagsAll", "labels", "effectiveLabels", "pulumiLabels", "resourceLabels",
                           "description", "policy", "assumeRolePolicy", "annotations"})

RULE = Rule(
    id="RES-001-region-allowlist",
    title="Resources, replicas and keys stay in the allowed regions",
    area="residency",
    description="Every region, zone or location a resource names (its own, its replicas', its keys' and its log "
                "destinations') is one of the stack's allowed regions.",
    checks="Each AWS and GCP resource's inputs: region/location/zone keys at any depth (secret replicas "
           "`replicas[].region`, Secret Manager `replication.userManaged.replicas[].location`, bucket and key-ring "
           "locations, subnet zones, node-pool `nodeLocations`, SageMaker and Vertex `location`), and the region inside "
           "references it makes (KMS key ARNs, log destinations, GCP `projects/*/locations/*` paths, VPC endpoint "
           "service names). A zone counts as its region; a multi-region location (`EU`, `global`) must itself be "
           "listed. Resources that name no region are placed in their provider's region, which "
           "RES-002-provider-region checks. A reference "
           "still unknown during preview points at another resource of the same stack, whose own region these two "
           "policies check; an unknown region/location key is reported as cannot-verify.",
    why="Personal and regulated data may only be stored and processed where the stack's residency decision says "
        "(GDPR Chapter V transfers, contractual data-location commitments, FedRAMP's U.S.-only storage). A "
        "replica, a key or a log copy in another region is a transfer even when the primary is compliant.",
    severity="critical",
    controls=("GDPR art. 44", "GDPR art. 46", "FedRAMP SA-9(5)", "HIPAA 164.308(b)(1)"),
    remediation="Move the resource, replica, key or log destination to an allowed region (for kit stacks: change "
                "`residency.allowedRegions` / `api.replicaRegions` in the profile and re-plan), or widen the stack's "
                "allowed regions through the residency decision (which regenerates the policy config).",
    applies_to=("every aws:* and gcp:* resource",),
    limits="Image registries are not a residency question here (no data is stored there); AIR-003 covers them for "
           "air-gapped stacks. Free-text fields (descriptions, tags, IAM policy documents) are not parsed.",
)


def check(ctx: ResourceContext) -> None:
    if not ctx.type.startswith(("aws:", "gcp:")):
        ctx.not_applicable(f"{ctx.type} is not an AWS or GCP resource")
    allowed = ctx.config["allowedRegions"]
    shown = ", ".join(allowed)
    named = False
    for path, value in leaves(ctx.props):
        top = path.split(".", 1)[0].split("[", 1)[0]
        if top in SKIP_TOP_KEYS:
            continue
        key = re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])
        if key in LOCATION_KEYS:
            named = True
            if value is UNKNOWN:
                ctx.cannot_verify(path, "a location")
                continue
            if not isinstance(value, str) or not value:
                continue
            region, kind = region_of_location(value)
            if value in allowed or region in allowed:
                continue
            if kind == "zone":
                ctx.violation(f"{path} is {value} (region {region}), outside the allowed regions ({shown})")
            elif kind == "location":
                ctx.violation(f"{path} is the multi-region location {value}, not one of the allowed regions ({shown})")
            else:
                ctx.violation(f"{path} is {value}, outside the allowed regions ({shown})")
        elif isinstance(value, str):
            region = region_of_reference(value)
            if region is None:
                continue
            named = True
            if region not in allowed:
                ctx.violation(f"{path} is in {region} ({value}), outside the allowed regions ({shown})")
    if not named and not ctx.violations and not ctx.unknown:
        ctx.not_applicable("names no region or location; it is created in its provider's region (RES-002)")


POLICY = resource_policy(RULE, check)
