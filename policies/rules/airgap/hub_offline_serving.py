"""AIR-004: model servers of an air-gapped stack run with the Hugging Face hub offline variables set."""

from __future__ import annotations

import re

from ...props import UNKNOWN, image_name, pod_labels, pod_spec_path
from ...rulekit import ResourceContext, Rule, resource_policy
from ...workloads import SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, containers_of, env_value
from . import require_airgapped

OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
ON = ("1", "true", "yes", "on")
SERVING_LABEL = ("app.kubernetes.io/component", "model-server")
SERVING_IMAGE = re.compile(r"(vllm|text-generation-inference|tgi|sglang|lmdeploy|tensorrt-llm|tritonserver|"
                           r"djl-inference|ollama|llama[-_.]?cpp|lorax|aphrodite)", re.I)
SERVING_COMMAND = re.compile(r"^(vllm|text-generation-launcher|python3? -m (vllm|sglang)\b)", re.I)

RULE = Rule(
    id="AIR-004-hub-offline-serving",
    title="Model servers run with the hub offline variables in an air-gapped stack",
    area="airgap",
    description="Every model-serving container of an air-gapped stack sets HF_HUB_OFFLINE=1 and "
                "TRANSFORMERS_OFFLINE=1.",
    checks="Serving containers: Kubernetes workloads labelled `app.kubernetes.io/component: model-server` or whose "
           "container image/command is a model server (vLLM, TGI, SGLang, LMDeploy, TensorRT-LLM, Triton, DJL, Ollama, "
           "llama.cpp), SageMaker model containers and the Vertex AI deployment's container. Each sets both "
           "variables to 1/true in its own environment.",
    why="Without them huggingface_hub and transformers try huggingface.co at start-up and on every tokenizer or "
        "config lookup: in an air-gapped network that hangs on timeouts, and any gap in the air-gap becomes a "
        "silent download path for unreviewed code and weights.",
    severity="medium",
    controls=("FedRAMP SC-7", "FedRAMP CM-7"),
    remediation="Set HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 on the container (the kit's serving/ engines do "
                "for network airgapped) and load weights from the in-region bucket or volume.",
    applies_to=("kubernetes workloads running a model server", SAGEMAKER_MODEL, VERTEX_DEPLOYMENT),
    limits="Variables set through `envFrom` (a ConfigMap or Secret) are not visible to the rule and are reported "
           "as cannot-verify.",
)


def _serving(ctx: ResourceContext, c) -> bool:
    if ctx.type in (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT):
        return True
    if isinstance(c.image, str) and SERVING_IMAGE.search(image_name(c.image)):
        return True
    command = " ".join(str(x) for x in c.command[:3] if isinstance(x, str))
    return bool(SERVING_COMMAND.search(command))


def check(ctx: ResourceContext) -> None:
    require_airgapped(ctx)
    if pod_spec_path(ctx.type) is None and ctx.type not in (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT):
        ctx.not_applicable(f"{ctx.type} runs no model server")
    labelled = pod_labels(ctx.type, ctx.props).get(SERVING_LABEL[0]) == SERVING_LABEL[1]
    serving = [c for c in containers_of(ctx.type, ctx.props) if not c.init and (labelled or _serving(ctx, c))]
    if not serving:
        ctx.not_applicable("not a model-serving workload (no model-server label, image or command)")
    for c in serving:
        missing = []
        for name in OFFLINE:
            var, certain = env_value(c, name)
            if var is not None and var.value is UNKNOWN:
                ctx.cannot_verify(var.path, f"the value of {name}")
            elif var is not None and var.from_reference:
                ctx.cannot_verify(var.path, f"{name} comes from a reference")
            elif var is not None and str(var.value).lower() in ON:
                continue
            elif var is None and not certain:
                ctx.cannot_verify(c.env_path, f"whether {name} is set")
            else:
                missing.append(f"{name}=1")
        if missing:
            who = f"container {c.name} ({c.path})" if c.name != c.path else c.path
            ctx.violation(f"{who} does not set {', '.join(missing)}")


POLICY = resource_policy(RULE, check)
