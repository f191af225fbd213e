"""BAS-004: resources that hold state (keys, secrets, data, clusters, logs) are protected from deletion."""

from __future__ import annotations

from ...rulekit import Rule, StackContext, stack_policy

STATEFUL = (
    "aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey", "aws:secretsmanager/secret:Secret",
    "aws:cloudwatch/logGroup:LogGroup", "aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2", "aws:ebs/volume:Volume",
    "aws:efs/fileSystem:FileSystem", "aws:rds/instance:Instance", "aws:rds/cluster:Cluster",
    "aws:dynamodb/table:Table", "aws:ecr/repository:Repository", "aws:eks/cluster:Cluster",
    "aws:sagemaker/endpoint:Endpoint",
    "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey", "gcp:secretmanager/secret:Secret",
    "gcp:storage/bucket:Bucket", "gcp:container/cluster:Cluster", "gcp:artifactregistry/repository:Repository",
    "gcp:sql/databaseInstance:DatabaseInstance", "gcp:compute/disk:Disk", "gcp:filestore/instance:Instance",
    "gcp:logging/projectBucketConfig:ProjectBucketConfig",
    "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment",
    "kubernetes:core/v1:PersistentVolumeClaim",
)

RULE = Rule(
    id="BAS-004-protect-stateful",
    title="Stateful resources are protected",
    area="baseline",
    kind="stack",
    description="Resources that hold keys, secrets, data, logs or a cluster's state are created with Pulumi's "
                "`protect` option.",
    checks="Once per stack, over every resource's options: each resource of a stateful type (KMS keys and key "
           "rings, secrets, log groups, buckets, volumes, databases, registries, EKS/GKE clusters, model endpoints, "
           "persistent volume claims) has `protect` set.",
    why="`pulumi destroy`, a stack rename or a replacing change deletes unprotected resources without further "
        "confirmation; for a key that makes everything it encrypted unreadable, for logs it destroys audit "
        "evidence, and for a cluster or endpoint it is an outage.",
    severity="medium",
    controls=("FedRAMP CP-9", "HIPAA 164.308(a)(7)(ii)(A)", "FedRAMP AU-9"),
    remediation="Create the resource with `opts=pulumi.ResourceOptions(protect=True)` (the kit does so unless "
                "`llm-hosting:protect` is false, which turns this policy advisory for that stack). To remove a "
                "protected resource deliberately, `pulumi state unprotect` it first.",
    applies_to=STATEFUL,
)


def check(ctx: StackContext) -> None:
    stateful = [r for r in ctx.resources if r.type in STATEFUL]
    if not stateful:
        ctx.not_applicable("the stack has no stateful resource")
    for r in stateful:
        if not r.protect:
            ctx.violation("holds state but is not protected (protect=True): a destroy or a replacing change deletes it "
                          "and what it holds", r.urn)


POLICY = stack_policy(RULE, check)
