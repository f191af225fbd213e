"""AIR-003: every container image of an air-gapped stack comes from its in-region private registry."""

from __future__ import annotations

from ...props import UNKNOWN, pod_spec_path
from ...rulekit import ResourceContext, Rule, resource_policy
from ...workloads import ECS_TASK, LAMBDA, SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, containers_of
from . import require_airgapped

RULE = Rule(
    id="AIR-003-private-registry-images",
    title="Images only from the in-region private registry in an air-gapped stack",
    area="airgap",
    description="Every container image of an air-gapped stack is pulled from the stack's in-region private "
                "registry (`registry`).",
    checks="The `image` of every container and init container of Kubernetes workloads (Deployment, StatefulSet, "
           "DaemonSet, ReplicaSet, Job, CronJob, Pod), SageMaker model containers, the Vertex AI deployment's "
           "`containerSpec.imageUri`, ECS task definitions and Lambda `imageUri`: it starts with `<registry>/`.",
    why="An air-gapped cluster cannot reach Docker Hub, NGC or public ECR, so a public image either fails to start "
        "or reveals an unapproved egress path; mirroring into a reviewed in-region registry is also the supply-chain "
        "control (only scanned, approved images run).",
    severity="high",
    controls=("FedRAMP CM-7(5)", "FedRAMP SC-7", "FedRAMP SA-9(5)"),
    remediation="Mirror the image into the private registry (e.g. `crane copy`) and reference it there; for kit "
                "stacks set `llm-hosting:registry` and image versions in components/versions.py resolve under it.",
    applies_to=("kubernetes workloads", SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, ECS_TASK, LAMBDA),
    limits="Helm charts are seen only through the objects they render; a chart repository URL is not checked.",
)


def check(ctx: ResourceContext) -> None:
    require_airgapped(ctx)
    if pod_spec_path(ctx.type) is None and ctx.type not in (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, ECS_TASK, LAMBDA):
        ctx.not_applicable(f"{ctx.type} runs no containers")
    registry = ctx.config["registry"].rstrip("/")
    for c in containers_of(ctx.type, ctx.props):
        if c.image is UNKNOWN:
            ctx.cannot_verify(c.image_path, "the image")
        elif c.image is None:
            continue  # a Lambda from a zip package, or a container without an image (rejected by the API anyway)
        elif not str(c.image).startswith(registry + "/"):
            ctx.violation(f"{c.image_path} {c.image} is not from the private registry {registry}")


POLICY = resource_policy(RULE, check)
