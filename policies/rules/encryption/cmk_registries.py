"""ENC-010: container registries are encrypted with a customer-managed key."""

from __future__ import annotations

from ...rulekit import ResourceContext, Rule, applies, resource_policy

ECR = "aws:ecr/repository:Repository"
ARTIFACT_REGISTRY = "gcp:artifactregistry/repository:Repository"
TYPES = (ECR, ARTIFACT_REGISTRY)

RULE = Rule(
    id="ENC-010-cmk-registries",
    title="Container registries use customer-managed keys",
    area="encryption",
    description="ECR repositories and Artifact Registry repositories are encrypted with a customer-managed key.",
    checks="`aws:ecr/repository`: an `encryptionConfigurations` entry with `encryptionType` KMS and a `kmsKey` (KMS "
           "without a key uses the AWS-managed aws/ecr key; AES256, the default, is S3-managed). "
           "`gcp:artifactregistry/repository`: `kmsKeyName` is set.",
    why="Images carry the serving stack and, for fine-tuned or baked models, the weights; the key that protects them "
        "must be one the organisation controls, can audit and can revoke.",
    severity="medium",
    controls=("FedRAMP SC-28", "HIPAA 164.312(a)(2)(iv)", "GDPR art. 32"),
    remediation="ECR: `encryption_configurations=[{\"encryption_type\": \"KMS\", \"kms_key\": key.arn}]` (set at "
                "creation; changing it replaces the repository). Artifact Registry: `kms_key_name` with a key in the "
                "repository's location (the Artifact Registry service agent needs encrypter/decrypter on it), as the "
                "kit's image mirror does.",
    applies_to=TYPES,
    limits="Repositories that an ECR pull-through cache or replication creates on its own are not resources of the "
           "stack; their encryption comes from a repository creation template, which is not judged.",
)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type == ECR:
        configs = ctx.peek("encryptionConfigurations")
        configs = configs if isinstance(configs, list) else []
        if not any(isinstance(c, dict) and c.get("encryptionType") == "KMS" and c.get("kmsKey") for c in configs):
            kms = any(isinstance(c, dict) and c.get("encryptionType") == "KMS" for c in configs)
            ctx.violation("encryptionConfigurations has encryptionType KMS without a kmsKey: the repository uses the "
                          "AWS-managed aws/ecr key" if kms else
                          "encryptionConfigurations names no KMS key: the repository is encrypted with AES256 "
                          "(Amazon S3-managed keys)")
    elif ctx.peek("kmsKeyName") is None:
        ctx.violation("kmsKeyName is not set: the repository uses a Google-managed key")


POLICY = resource_policy(RULE, check)
