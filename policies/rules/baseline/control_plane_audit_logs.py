"""BAS-008: the Kubernetes control plane keeps its audit trail."""

from __future__ import annotations

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy

EKS = "aws:eks/cluster:Cluster"
GKE = "gcp:container/cluster:Cluster"
# GKE requires SYSTEM_COMPONENTS whenever any component is enabled; an empty list turns cluster logging off.
GKE_SYSTEM = "SYSTEM_COMPONENTS"

RULE = Rule(
    id="BAS-008-control-plane-audit-logs",
    title="Kubernetes control-plane audit logging is on",
    area="baseline",
    description="EKS clusters send the audit log to CloudWatch; GKE clusters keep Cloud Logging on.",
    checks="`aws:eks/cluster`: `enabledClusterLogTypes` includes audit (EKS sends no control-plane logs unless asked). "
           "`gcp:container/cluster`: `loggingService` is not none and, when `loggingConfig.enableComponents` is set, it "
           "includes SYSTEM_COMPONENTS. GKE writes the Kubernetes API's audit events to Cloud Audit Logs (Admin "
           "Activity is always on), so APISERVER control-plane logs are not required.",
    why="Without the audit log nobody can tell who read a secret, exec'd into the model server or changed a "
        "deployment; it is the evidence every framework's audit control asks for.",
    severity="high",
    controls=("FedRAMP AU-2", "FedRAMP AU-12", "HIPAA 164.312(b)", "CIS EKS 2.1.1", "CIS GKE 5.7.1",
              "AWS FSBP EKS.8"),
    remediation="EKS: `enabled_cluster_log_types=[\"api\", \"audit\", \"authenticator\", \"controllerManager\", "
                "\"scheduler\"]`, as the kit's cluster does. GKE: leave `logging_service` at its default and set "
                "`logging_config.enable_components` with SYSTEM_COMPONENTS (and WORKLOADS).",
    applies_to=(EKS, GKE),
    limits="Cloud Audit Logs' Data Access logs for the Kubernetes Engine API are configured on the project's IAM audit "
           "config, which a cluster program rarely holds, and are not judged.",
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, (EKS, GKE))
    if ctx.type == EKS:
        types = ctx.get("enabledClusterLogTypes", "the control-plane log types")
        if types is UNKNOWN:
            return
        if not isinstance(types, list) or "audit" not in types:
            shown = ", ".join(map(str, types)) if isinstance(types, list) and types else "not set"
            ctx.violation(f"enabledClusterLogTypes is {shown}: the Kubernetes audit log is not sent to CloudWatch")
        return
    service = ctx.get("loggingService", "the logging service")
    if service == "none":
        ctx.violation("loggingService is none: the cluster sends no logs to Cloud Logging")
    components = ctx.get("loggingConfig.enableComponents", "the logged components")
    if isinstance(components, list) and GKE_SYSTEM not in components:
        shown = ", ".join(map(str, components)) or "empty"
        ctx.violation(f"loggingConfig.enableComponents is {shown}: without {GKE_SYSTEM} the cluster's logging is off")


POLICY = resource_policy(RULE, check)
