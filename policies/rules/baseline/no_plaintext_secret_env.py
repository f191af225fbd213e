"""BAS-003: secrets are never written into a container's environment as plain values."""

from __future__ import annotations

import re

from ...props import SECRET_MASK, UNKNOWN, pod_spec_path
from ...rulekit import ResourceContext, Rule, resource_policy
from ...workloads import ECS_TASK, LAMBDA, SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, containers_of

SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|ACCESS_?KEY|SECRET(?:_?KEY)?|TOKEN|PASSWORD|PASSWD|PASSPHRASE|"
                         r"CREDENTIALS?|PRIVATE_?KEY|AUTH)(?:_|$)", re.I)
FLAG_VALUES = ("", "0", "1", "true", "false", "yes", "no", "on", "off")
TYPES = (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, ECS_TASK, LAMBDA)

RULE = Rule(
    id="BAS-003-no-plaintext-secret-env",
    title="No secrets as plain environment values",
    area="baseline",
    description="Container environments hold no secret as a plain value: secrets come from a secret reference.",
    checks="Environment variables of Kubernetes workloads, SageMaker models, the Vertex AI deployment, ECS task "
           "definitions and Lambda functions: a variable whose name says it is a secret (`*_API_KEY`, `*_TOKEN`, "
           "`*_SECRET`, `*_PASSWORD`, `*_CREDENTIALS`, ...) set to a literal value (flags like 0/1/true are allowed), "
           "or any variable whose value is a Pulumi secret. References (`valueFrom.secretKeyRef`, ECS `secrets`) pass.",
    why="A plain environment value is stored in the workload's spec: anyone who can read Deployments, task "
        "definitions or the endpoint description reads the secret, and it lands in state, diffs and logs.",
    severity="high",
    controls=("FedRAMP IA-5(7)", "HIPAA 164.312(a)(1)", "GDPR art. 32"),
    remediation="Put the value in a Kubernetes Secret (ideally synced from Secrets Manager / Secret Manager) and "
                "reference it with `value_from.secret_key_ref`, as the kit's model server does for HF_TOKEN; on ECS use "
                "`secrets`, on SageMaker/Lambda read it from Secrets Manager at start-up.",
    applies_to=("kubernetes workloads", *TYPES),
)


def check(ctx: ResourceContext) -> None:
    if pod_spec_path(ctx.type) is None and ctx.type not in TYPES:
        ctx.not_applicable(f"{ctx.type} declares no container environment")
    for c in containers_of(ctx.type, ctx.props):
        if c.env_unknown:
            ctx.cannot_verify(c.env_path, "the environment")
        for var in c.env:
            if var.from_reference:
                continue
            name, value = var.name, var.value
            if value == SECRET_MASK:
                ctx.violation(f"{var.path} sets {name} to a Pulumi secret as a plain value: it is stored unencrypted "
                              "in the spec")
            elif isinstance(name, str) and SECRET_NAME.search(name) and value is not None and \
                    (value is UNKNOWN or str(value).strip().lower() not in FLAG_VALUES):
                ctx.violation(f"{var.path} sets {name} as a plain value: it is stored unencrypted in the spec")


POLICY = resource_policy(RULE, check)
