"""AIR-004: model servers of an air-gapped stack run with the Hugging Face hub offline variables set."""

from __future__ import annotations

import re

from ...props import SECRET_MASK, UNKNOWN, host_matches, host_of_url, image_name, pod_labels, pod_spec_path
from ...rulekit import ResourceContext, Rule, resource_policy
from ...workloads import SAGEMAKER_MODEL, VERTEX_DEPLOYMENT, containers_of, env_value
from . import require_airgapped

OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
ON = ("1", "true", "yes", "on")
SERVING_LABEL = ("app.kubernetes.io/component", "model-server")
SERVING_IMAGE = re.compile(r"(vllm|text-generation-inference|tgi|sglang|lmdeploy|tensorrt-llm|tritonserver|"
                           r"djl-inference|ollama|llama[-_.]?cpp|lorax|aphrodite)", re.I)
SERVING_COMMAND = re.compile(r"^(vllm|text-generation-launcher|python3? -m (vllm|sglang)\b)", re.I)
# Public model hubs, and the tools that download from them by default (the Hugging Face tools go to HF_ENDPOINT,
# huggingface.co unless it is set).
HUB_HOSTS = ("huggingface.co", "hf.co", "modelscope.cn", "ollama.com", "registry.ollama.ai")
HF_FETCH = re.compile(r"\b(huggingface-cli|hf)\s+download\b|\b(snapshot_download|hf_hub_download)\b", re.I)
OTHER_FETCH = re.compile(r"\b(ollama\s+pull|modelscope\s+download)\b", re.I)
URL = re.compile(r"https?://[^\s\"'<>,;)\]]+", re.I)

RULE = Rule(
    id="AIR-004-hub-offline-serving",
    title="Model servers run with the hub offline variables in an air-gapped stack",
    area="airgap",
    description="Every model-serving container of an air-gapped stack sets HF_HUB_OFFLINE=1 and "
                "TRANSFORMERS_OFFLINE=1, and no container, init containers included, fetches from a public model hub.",
    checks="Serving containers: Kubernetes workloads labelled `app.kubernetes.io/component: model-server` or whose "
           "container image/command is a model server (vLLM, TGI, SGLang, LMDeploy, TensorRT-LLM, Triton, DJL, Ollama, "
           "llama.cpp), SageMaker model containers and the Vertex AI deployment's container. Each sets both "
           "variables to 1/true in its own environment. Every container of any workload, init containers included: its "
           "command, arguments and environment name no public hub URL (huggingface.co, hf.co, modelscope.cn, "
           "ollama.com) and run no hub download (`huggingface-cli download`, `hf download`, `snapshot_download`, "
           "`ollama pull`, `modelscope download`) unless HF_ENDPOINT points at a private mirror.",
    why="Without them huggingface_hub and transformers try huggingface.co at start-up and on every tokenizer or "
        "config lookup: in an air-gapped network that hangs on timeouts, and any gap in the air-gap becomes a "
        "silent download path for unreviewed code and weights.",
    severity="medium",
    controls=("FedRAMP SC-7", "FedRAMP CM-7"),
    remediation="Set HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 on the container (the kit's serving/ engines do "
                "for network airgapped) and load weights from the in-region bucket or volume; point a downloading "
                "(init) container at the in-region bucket or at a private mirror through HF_ENDPOINT.",
    applies_to=("kubernetes workloads (all containers, init containers included)", SAGEMAKER_MODEL, VERTEX_DEPLOYMENT),
    limits="Variables set through `envFrom` (a ConfigMap or Secret) are not visible to the rule and are reported "
           "as cannot-verify. A download written in a script the container reads from a volume is not seen.",
)


def _serving(ctx: ResourceContext, c) -> bool:
    if ctx.type in (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT):
        return True
    if isinstance(c.image, str) and SERVING_IMAGE.search(image_name(c.image)):
        return True
    command = " ".join(str(x) for x in c.command[:3] if isinstance(x, str))
    return bool(SERVING_COMMAND.search(command))


def _who(c) -> str:
    kind = "init container" if c.init else "container"
    return f"{kind} {c.name} ({c.path})" if c.name != c.path else c.path


def _hub_fetch(ctx: ResourceContext, c) -> None:
    """Report a container that downloads from a public hub: a hub URL it names, or a hub tool left at its default."""
    words = [(f"{c.path}.command", x) for x in c.command if isinstance(x, str)]
    words += [(e.path, e.value) for e in c.env if isinstance(e.value, str) and e.value != SECRET_MASK]
    for path, text in words:
        for url in URL.findall(text):
            host = host_of_url(url)
            if host and host_matches(host, HUB_HOSTS):
                ctx.violation(f"{_who(c)} fetches from the public hub {host} ({path}); an air-gapped stack loads "
                              "weights from its in-region bucket or a private mirror")
                return
    command = " ".join(x for x in c.command if isinstance(x, str))
    m = OTHER_FETCH.search(command)
    if m:
        ctx.violation(f"{_who(c)} runs {m.group(0)!r}, which downloads from a public hub; an air-gapped stack loads "
                      "weights from its in-region bucket or a private mirror")
        return
    m = HF_FETCH.search(command)
    if not m:
        return
    endpoint, certain = env_value(c, "HF_ENDPOINT")
    offline, _ = env_value(c, "HF_HUB_OFFLINE")
    if offline is not None and isinstance(offline.value, str) and offline.value.lower() in ON:
        return  # the hub libraries refuse to download; only the local cache is read
    if endpoint is not None and (endpoint.from_reference or endpoint.value is UNKNOWN):
        ctx.cannot_verify(endpoint.path, "where HF_ENDPOINT points")
    elif endpoint is None and not certain:
        ctx.cannot_verify(c.env_path, "whether HF_ENDPOINT points at a private mirror")
    elif endpoint is None or not isinstance(endpoint.value, str) or not endpoint.value \
            or host_matches(host_of_url(endpoint.value) or "", HUB_HOSTS):
        ctx.violation(f"{_who(c)} runs {m.group(0)!r} with no HF_ENDPOINT for a private mirror, so it downloads "
                      "from huggingface.co; an air-gapped stack loads weights from its in-region bucket or a private "
                      "mirror")


def check(ctx: ResourceContext) -> None:
    require_airgapped(ctx)
    if pod_spec_path(ctx.type) is None and ctx.type not in (SAGEMAKER_MODEL, VERTEX_DEPLOYMENT):
        ctx.not_applicable(f"{ctx.type} runs no model server")
    labelled = pod_labels(ctx.type, ctx.props).get(SERVING_LABEL[0]) == SERVING_LABEL[1]
    every = containers_of(ctx.type, ctx.props)
    serving = [c for c in every if not c.init and (labelled or _serving(ctx, c))]
    for c in every:  # init containers included: the weights downloader is usually one
        _hub_fetch(ctx, c)
    if not serving and not ctx.violations:
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
            ctx.violation(f"{_who(c)} does not set {', '.join(missing)}")

POLICY = resource_policy(RULE, check)
