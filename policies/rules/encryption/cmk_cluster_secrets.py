"""ENC-006: Kubernetes secrets are envelope-encrypted with a customer-managed key."""

from __future__ import annotations

from ...props import UNKNOWN
from ...rulekit import ResourceContext, Rule, applies, resource_policy

EKS = "aws:eks/cluster:Cluster"
GKE = "gcp:container/cluster:Cluster"

RULE = Rule(
    id="ENC-006-cmk-cluster-secrets",
    title="Cluster secrets are envelope-encrypted with customer-managed keys",
    area="encryption",
    description="EKS and GKE clusters encrypt Kubernetes Secrets in etcd with a customer-managed key.",
    checks="`aws:eks/cluster`: `encryptionConfig.resources` includes `secrets` and `encryptionConfig.provider.keyArn` "
           "is set. `gcp:container/cluster`: `databaseEncryption.state` is ENCRYPTED with a `keyName`.",
    why="Kubernetes Secrets hold hub tokens, registry credentials and service-account keys; without envelope "
        "encryption under the organisation's key, an etcd backup or snapshot exposes them.",
    severity="high",
    controls=("FedRAMP SC-28", "HIPAA 164.312(a)(2)(iv)", "CIS EKS 5.3.1", "CIS GKE 5.3.1"),
    remediation="EKS: `encryption_config` with `resources=[\"secrets\"]` and the cluster's KMS key. GKE: "
                "`database_encryption` with `state=\"ENCRYPTED\"` and a Cloud KMS key the GKE service agent can use. "
                "The kit's clusters do both.",
    applies_to=(EKS, GKE),
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, (EKS, GKE))
    if ctx.type == EKS:
        config = ctx.get("encryptionConfig", "the encryption config")
        if config is UNKNOWN:
            return
        if not config:
            ctx.violation("encryptionConfig is not set: Kubernetes secrets are not encrypted with a customer-managed key")
            return
        resources = ctx.get("encryptionConfig.resources", "what is encrypted")
        if isinstance(resources, list) and "secrets" not in resources:
            ctx.violation("encryptionConfig.resources does not include secrets")
        if ctx.peek("encryptionConfig.provider.keyArn") is None:
            ctx.violation("encryptionConfig.provider.keyArn is not set: no customer-managed key encrypts the secrets")
        return
    state = ctx.get("databaseEncryption.state", "the database encryption state")
    if state is UNKNOWN:
        return
    if state != "ENCRYPTED":
        ctx.violation(f"databaseEncryption.state is {state or 'not set'}: Kubernetes secrets are not encrypted with a "
                      "customer-managed key")
    elif ctx.peek("databaseEncryption.keyName") is None:
        ctx.violation("databaseEncryption.keyName is not set: no customer-managed key encrypts the secrets")


POLICY = resource_policy(RULE, check)
