"""BAS-001: no AWS managed *FullAccess / AdministratorAccess policy and no GCP basic role is granted."""

from __future__ import annotations

import re

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy

AWS_ATTACHMENTS = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                   "aws:iam/userPolicyAttachment:UserPolicyAttachment",
                   "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
                   "aws:iam/policyAttachment:PolicyAttachment")
AWS_ROLE = "aws:iam/role:Role"
AWS_ROLE_ATTACHMENTS = "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive"
GCP_GRANTS = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
              "gcp:organizations/iAMMember:IAMMember", "gcp:organizations/iAMBinding:IAMBinding",
              "gcp:folder/iAMMember:IAMMember", "gcp:folder/iAMBinding:IAMBinding")
TYPES = (*AWS_ATTACHMENTS, AWS_ROLE, AWS_ROLE_ATTACHMENTS, *GCP_GRANTS)
MANAGED = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(?:.+/)?([A-Za-z0-9_+=,.@-]+)$")
BASIC_ROLES = ("roles/owner", "roles/editor")

RULE = Rule(
    id="BAS-001-no-full-access-policies",
    title="No *FullAccess or AdministratorAccess managed policies, no basic GCP roles",
    area="baseline",
    description="No IAM principal is granted an AWS managed *FullAccess, AdministratorAccess or PowerUserAccess "
                "policy, or the GCP basic roles owner/editor.",
    checks="AWS policy attachments (role, user, group, policy attachment), a role's `managedPolicyArns` and "
           "exclusive attachments: the AWS managed policy name contains `FullAccess` or is `AdministratorAccess*` / "
           "`PowerUserAccess`. GCP project, folder and organisation IAM members and bindings: the role is "
           "`roles/owner` or `roles/editor`.",
    why="These grant every action of a service (or of every service) on every resource: a compromised workload "
        "or node can read all data, disable logging and delete keys. Least privilege is a baseline control in "
        "every framework the kit maps to.",
    severity="high",
    controls=("FedRAMP AC-6", "HIPAA 164.308(a)(4)(ii)(B)", "CIS AWS 1.16", "CIS GCP 1.5", "GDPR art. 32"),
    remediation="Replace the managed policy with a customer-managed or inline policy that lists only the actions "
                "and resources the principal needs (the kit's SageMaker role is an example); on GCP grant predefined "
                "or custom roles.",
    applies_to=TYPES,
)


def _broad(arn) -> str | None:
    m = MANAGED.match(arn) if isinstance(arn, str) else None
    if not m:
        return None
    name = m.group(1)
    if name.startswith("AdministratorAccess"):
        return f"{name}: every action on every resource"
    if name == "PowerUserAccess":
        return f"{name}: every action except IAM on every resource"
    if "FullAccess" in name:
        return f"{name}: every action of the service on every resource"
    return None


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type in GCP_GRANTS:
        role = ctx.get("role", "the granted role")
        if role in BASIC_ROLES:
            ctx.violation(f"role {role} is a basic role: it grants broad access across the whole "
                          f"{ctx.type.split(':')[1].split('/')[0].rstrip('s')}")
        return
    if ctx.type in AWS_ATTACHMENTS:
        arns = [("policyArn", ctx.peek("policyArn"))]
    else:
        key = "managedPolicyArns" if ctx.type == AWS_ROLE else "policyArns"
        arns = ctx.items(key, "the attached policies")  # an unknown list hides which managed policies are attached
    for path, arn in arns:
        if arn is UNKNOWN:
            continue  # the ARN of a policy this stack creates: customer-managed, so not an AWS managed policy
        broad = _broad(arn)
        if broad:
            ctx.violation(f"{path} {arn} grants {broad}")


POLICY = resource_policy(RULE, check)
