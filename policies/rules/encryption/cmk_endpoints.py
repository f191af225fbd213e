"""ENC-005: model endpoints encrypt their storage and captured data with a customer-managed key."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy

ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
VERTEX_ENDPOINT = "gcp:vertex/aiEndpoint:AiEndpoint"
VERTEX_DEPLOYMENT = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"
TYPES = (ENDPOINT_CONFIG, VERTEX_ENDPOINT, VERTEX_DEPLOYMENT)
# Instance families with local NVMe instance storage: SageMaker refuses a KmsKeyId for them and encrypts that
# storage with a hardware module on the instance. Same list as components/sagemaker_endpoint.py (a test checks).
INSTANCE_STORE_FAMILIES = frozenset({
    "c5d", "c6gd", "c6id", "m5d", "m6gd", "m6id", "r5d", "r6gd", "r6id", "x2iedn",
    "g4dn", "g5", "g6", "g6e", "gr6", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200",
    "trn1", "trn1n", "trn2",
})

RULE = Rule(
    id="ENC-005-cmk-endpoints",
    title="Model endpoints use customer-managed keys",
    area="encryption",
    description="SageMaker endpoint configurations and Vertex AI endpoints encrypt their storage and captured "
                "data with a customer-managed key.",
    checks="`aws:sagemaker/endpointConfiguration`: `kmsKeyArn` is set, unless every production variant runs on an "
           "instance family with local NVMe storage (SageMaker refuses a key there and encrypts it in hardware); "
           "`dataCaptureConfig.kmsKeyId` when capture is on; `asyncInferenceConfig.outputConfig.kmsKeyId` when async. "
           "`gcp:vertex/aiEndpoint`: `encryptionSpec.kmsKeyName`. `gcp:vertex/aiEndpointWithModelGardenDeployment` "
           "cannot carry a key in pulumi-gcp 10.2.0, so it is always reported.",
    why="The endpoint's volumes hold the model and, with data capture or async inference, the prompts and "
        "completions themselves.",
    severity="high",
    controls=("HIPAA 164.312(a)(2)(iv)", "FedRAMP SC-28", "GDPR art. 32"),
    remediation="Set `kms_key_arn` (and the capture/async output keys) on the endpoint configuration; on Vertex, "
                "create a `gcp.vertex.AiEndpoint` with `encryption_spec` and deploy into it. Where the provider "
                "cannot express the key (Model Garden deployment), record a time-limited exception and create the "
                "endpoint with `--encryption-kms-key-name` out of band (see components/vertex_endpoint.py).",
    applies_to=TYPES,
)


def _family(instance_type) -> str:
    parts = str(instance_type).split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "ml" else str(instance_type)


def check(ctx: ResourceContext) -> None:
    applies(ctx, ctx.type, TYPES)
    if ctx.type == VERTEX_DEPLOYMENT:
        ctx.violation("cannot carry a customer-managed key: pulumi-gcp's AiEndpointWithModelGardenDeployment has no "
                      "encryptionSpec, so Vertex AI encrypts the endpoint with a Google-managed key")
        return
    if ctx.type == VERTEX_ENDPOINT:
        if ctx.peek("encryptionSpec.kmsKeyName") is None:
            ctx.violation("encryptionSpec.kmsKeyName is not set: the endpoint uses a Google-managed key")
        return
    key = ctx.peek("kmsKeyArn")
    if key is None:
        variants = ctx.items("productionVariants", "the production variants")
        needs = []
        for path, v in variants:
            itype = v.get("instanceType") if isinstance(v, dict) else None
            if itype is UNKNOWN:
                ctx.cannot_verify(f"{path}.instanceType", "whether the instance has local storage")
            elif itype and _family(itype) not in INSTANCE_STORE_FAMILIES:
                needs.append(f"{path} ({itype})")
        if needs:
            ctx.violation(f"kmsKeyArn is not set: the ML storage volumes of {', '.join(needs)} use an AWS-managed key")
    capture = ctx.get("dataCaptureConfig", "the data capture config")
    if isinstance(capture, dict) and truthy(capture.get("enableCapture")) is not False:
        if ctx.peek("dataCaptureConfig.kmsKeyId") is None:
            ctx.violation("dataCaptureConfig.kmsKeyId is not set: captured prompts and completions are written to S3 "
                          "without a customer-managed key")
    if isinstance(ctx.get("asyncInferenceConfig"), dict):
        if ctx.peek("asyncInferenceConfig.outputConfig.kmsKeyId") is None:
            ctx.violation("asyncInferenceConfig.outputConfig.kmsKeyId is not set: async responses are written to S3 "
                          "without a customer-managed key")


POLICY = resource_policy(RULE, check)
