"""LNK-005: every model server's model fits its GPUs' memory at the precision and parallelism it is configured with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from ...placement import DAEMONSET, WORKLOADS, place
from ...props import get, image_name, is_unknown
from ...rulekit import Rule, StackContext, stack_policy
from ...workloads import SAGEMAKER_MODEL, VERTEX_DEPLOYMENT
from . import node_pools, workloads

ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
TP_SIZES = (1, 2, 4, 8)
FP8 = ("fp8", "fp8_e4m3", "fp8_e4m3fn", "fp8_e5m2", "fbgemm_fp8")  # TGI names the e4m3 KV cache fp8_e4m3fn
SIXTEEN_BIT = ("auto", "half", "float16", "fp16", "bfloat16", "bf16")
THIRTY_TWO_BIT = ("float", "float32", "fp32")

RULE = Rule(
    id="LNK-005-model-fits-gpu",
    title="Every model fits its GPUs' memory at the configured precision and parallelism",
    area="links",
    kind="stack",
    description="The weights and KV cache of each model server (vLLM, TGI, SageMaker, Vertex AI) fit the memory of "
                "the GPUs it shards over, at the precision and tensor-parallel degree it is configured with.",
    checks="Once per stack, for each model server: vLLM containers (`--tensor-parallel-size` x "
           "`--pipeline-parallel-size`, `--quantization fp8`, `--dtype`, `--kv-cache-dtype`, `--max-model-len`, "
           "`--gpu-memory-utilization`), TGI containers (`--num-shard`, default every GPU of the pod; `--quantize`, "
           "`--kv-cache-dtype`, `--max-total-tokens`, `--cuda-memory-fraction`), SageMaker models (LMI "
           "`TENSOR_PARALLEL_DEGREE`/`OPTION_TENSOR_PARALLEL_DEGREE`, `max` or unset meaning every GPU; "
           "`OPTION_QUANTIZE`, `OPTION_DTYPE`, `OPTION_KV_CACHE_DTYPE`, `OPTION_MAX_MODEL_LEN`; the TGI container's "
           "`SM_NUM_GPUS`/`NUM_SHARD`, `HF_MODEL_QUANTIZE`, `MAX_TOTAL_TOKENS`) on the instance type of the endpoint "
           "configuration that serves them, and Vertex AI deployments (container args, `machineSpec`). Weights are "
           "the catalog's parameter count at 2 bytes (1 with fp8, 4 in float32); the KV cache holds the larger of "
           "the longest sequence (max model length, default the model's own limit) and the KV budget the stack was "
           "planned with, at the catalog's KV bytes per token (halved in fp8). They must fit in tensor-parallel "
           "GPUs x (GPU memory x the memory utilization - the activation reserve per GPU), the same sum the planner "
           "fits replicas with; GPU memory, parameters and KV sizes come from the catalog through the policy config. "
           "The parallel degree also cannot exceed the GPUs the server has.",
    why="A model that does not fit never serves: the engine runs out of memory while loading or refuses to start "
        "without room for one sequence, after the whole download, and the deployment fails or crash-loops with "
        "nothing at plan time to say why.",
    severity="high",
    controls=("FedRAMP SC-6", "FedRAMP CP-2(2)", "GDPR art. 32"),
    remediation="Serve at the precision the plan chose (fp8 weights and KV cache on GPUs with FP8: vLLM "
                "`--quantization fp8 --kv-cache-dtype fp8`, LMI `OPTION_QUANTIZE=fp8`, TGI `--quantize fp8`) and "
                "shard over the GPUs the plan counted (`--tensor-parallel-size`, `TENSOR_PARALLEL_DEGREE`), or lower "
                "the maximum model length; take both from the stack config rather than retyping them. The finding "
                "says which change fits.",
    applies_to=(*WORKLOADS[:2], SAGEMAKER_MODEL, ENDPOINT_CONFIG, VERTEX_DEPLOYMENT),
    limits="Quantizations other than fp8 (AWQ, GPTQ, bitsandbytes) are reported as cannot-verify. Only the model "
           "servers' own arguments are read: an engine configured through a file or ConfigMap is not seen.",
)


@dataclass
class Server:
    resource: Any
    engine: str  # vllm | tgi | lmi | tgi-sagemaker
    flags: dict[str, Any]
    model: Optional[str]
    gpus: Optional[int]  # GPUs the server has; None: every GPU of the instance
    targets: list[tuple[str, Any]]  # (instance type, where: the resource that puts the server there)


def flags_of(tokens: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """`--name value`, `--name=value` and bare `--name` flags, and the positional arguments."""
    out: dict[str, Any] = {}
    positional: list[str] = []
    items = [t for t in tokens if isinstance(t, str)]
    i = 0
    while i < len(items):
        t = items[i]
        if t.startswith("--"):
            name, eq, value = t[2:].partition("=")
            if eq:
                out[name] = value
            elif i + 1 < len(items) and not items[i + 1].startswith("--"):
                out[name] = items[i + 1]
                i += 1
            else:
                out[name] = True
        else:
            positional.append(t)
        i += 1
    return out, positional


def _engine(container: dict) -> Optional[str]:
    command = [c for c in (container.get("command") or []) if isinstance(c, str)]
    image = container.get("image")
    name = image_name(image) if isinstance(image, str) else ""
    if "text-generation-launcher" in command or re.search(r"text-generation-inference|^tgi", name):
        return "tgi"
    if "vllm" in command or re.search(r"vllm", name) or "vllm.entrypoints.openai.api_server" in " ".join(command):
        return "vllm"
    return None


def _model_name(engine: str, flags: dict, positional: list[str]) -> Optional[str]:
    for key in ("served-model-name", "model", "model-id"):
        if isinstance(flags.get(key), str):
            return flags[key]
    rest = [p for p in positional if p not in ("vllm", "serve", "python", "python3", "-m")]
    return rest[0] if rest and engine == "vllm" else None


def _k8s_servers(ctx: StackContext) -> list[Server]:
    pods = [p for p in workloads(ctx) if p.resource.type != DAEMONSET]
    pools = node_pools(ctx)
    shapes = ctx.config.get("nodeShapes") or {}
    daemons = [p for p in workloads(ctx) if p.resource.type == DAEMONSET]
    out = []
    for pod in pods:
        for c in pod.spec.get("containers") or []:
            if not isinstance(c, dict):
                continue
            engine = _engine(c)
            if engine is None:
                continue
            flags, positional = flags_of([*(c.get("command") or []), *(c.get("args") or [])])
            placements = place(pod, pools, shapes, daemons)
            hosts = [pl for pl in placements if pl.admitted is not False] or \
                [pl for pl in placements if any(g for g in pl.pool.gpus_per_node.values() if isinstance(g, int))]
            targets = [(t, pl.pool.resource) for pl in hosts for t in pl.pool.instance_types]
            out.append(Server(pod.resource, engine, flags, _model_name(engine, flags, positional),
                              int(pod.gpus) if pod.gpus else None, targets))
    return out


def _sagemaker_servers(ctx: StackContext) -> list[Server]:
    configs = [r for r in ctx.resources if r.type == ENDPOINT_CONFIG]
    out = []
    for m in (r for r in ctx.resources if r.type == SAGEMAKER_MODEL):
        env = get(m.props, "primaryContainer.environment") or {}
        if is_unknown(env):
            ctx.cannot_verify(f"{m.name}.primaryContainer.environment", "the engine's settings")
            continue
        names = {n for n in (get(m.props, "name"),) if isinstance(n, str)}
        autonamed = re.compile(re.escape(m.name) + r"-[0-9a-f]{7}$")
        targets = []
        for cfg in configs:
            for v in get(cfg.props, "productionVariants") or []:
                ref = v.get("modelName") if isinstance(v, dict) else None
                if ref in names or (isinstance(ref, str) and autonamed.match(ref)) or \
                        (is_unknown(ref) and m.urn in cfg.dependency_urns):
                    if isinstance(v.get("instanceType"), str):
                        targets.append((v["instanceType"], cfg))
        engine = "tgi-sagemaker" if ("SM_NUM_GPUS" in env or "HF_MODEL_ID" in env) and "OPTION_MODEL_ID" not in env else "lmi"
        model = env.get("OPTION_SERVED_MODEL_NAME") or env.get("HF_MODEL_ID") or env.get("OPTION_MODEL_ID")
        out.append(Server(m, engine, dict(env), model if isinstance(model, str) else None, None, targets))
    return out


def _vertex_servers(ctx: StackContext) -> list[Server]:
    out = []
    for r in (r for r in ctx.resources if r.type == VERTEX_DEPLOYMENT):
        spec = get(r.props, "modelConfig.containerSpec") or {}
        machine = get(r.props, "deployConfig.dedicatedResources.machineSpec") or {}
        tokens = [*(spec.get("commands") or []), *(spec.get("args") or [])] if isinstance(spec, dict) else []
        flags, positional = flags_of(tokens)
        model = _model_name("vllm", flags, positional) or get(r.props, "huggingFaceModelId") or \
            get(r.props, "publisherModelName")
        count = machine.get("acceleratorCount") if isinstance(machine, dict) else None
        mtype = machine.get("machineType") if isinstance(machine, dict) else None
        out.append(Server(r, "vllm", flags, model if isinstance(model, str) else None,
                          count if isinstance(count, int) else None, [(mtype, r)] if isinstance(mtype, str) else []))
    return out


def _bytes_for(value: Any, default: float) -> Optional[float]:
    if value in (None, True):
        return default
    v = str(value).lower()
    if v in FP8:
        return 1.0
    if v in SIXTEEN_BIT:
        return 2.0
    if v in THIRTY_TWO_BIT:
        return 4.0
    return None


def _settings(s: Server, gpus_available: int) -> tuple[Any, Any, Any, Any, Any, Optional[str]]:
    """(parallel degree, weight bytes, KV bytes, max sequence length, memory utilization, quantization not modelled)."""
    f = s.flags
    if s.engine == "vllm":
        dtype = _bytes_for(f.get("dtype"), 2.0)
        q = f.get("quantization")
        weights = dtype if q in (None, True) else (1.0 if str(q).lower() in FP8 else None)
        kv = dtype if str(f.get("kv-cache-dtype", "auto")).lower() == "auto" else _bytes_for(f.get("kv-cache-dtype"), dtype)
        tp = _int(f.get("tensor-parallel-size"), 1) * _int(f.get("pipeline-parallel-size"), 1)
        return tp, weights, kv, _int(f.get("max-model-len"), None), _num(f.get("gpu-memory-utilization")), \
            (None if weights else f"--quantization {q}")
    if s.engine == "tgi":
        q = f.get("quantize")
        weights = 2.0 if q in (None, True) else (1.0 if str(q).lower() in FP8 else None)
        kv = _bytes_for(f.get("kv-cache-dtype"), 2.0)
        return _int(f.get("num-shard"), gpus_available), weights, kv, _int(f.get("max-total-tokens"), None), \
            _num(f.get("cuda-memory-fraction")), (None if weights else f"--quantize {q}")
    if s.engine == "tgi-sagemaker":
        q = f.get("HF_MODEL_QUANTIZE") or f.get("QUANTIZE")
        weights = 2.0 if q is None else (1.0 if str(q).lower() in FP8 else None)
        tp = _int(f.get("SM_NUM_GPUS") or f.get("NUM_SHARD"), gpus_available)
        return tp, weights, 2.0, _int(f.get("MAX_TOTAL_TOKENS"), None), _num(f.get("CUDA_MEMORY_FRACTION")), \
            (None if weights else f"HF_MODEL_QUANTIZE={q}")
    degree = f.get("OPTION_TENSOR_PARALLEL_DEGREE", f.get("TENSOR_PARALLEL_DEGREE"))
    tp = gpus_available if degree in (None, "max") else _int(degree, None)
    dtype = _bytes_for(f.get("OPTION_DTYPE"), 2.0)
    q = f.get("OPTION_QUANTIZE")
    weights = dtype if q is None else (1.0 if str(q).lower() in FP8 else None)
    kv_setting = f.get("OPTION_KV_CACHE_DTYPE")
    kv = dtype if kv_setting in (None, "auto") else _bytes_for(kv_setting, dtype)
    return tp, weights, kv, _int(f.get("OPTION_MAX_MODEL_LEN"), None), _num(f.get("OPTION_GPU_MEMORY_UTILIZATION")), \
        (None if weights else f"OPTION_QUANTIZE={q}")


def _int(value: Any, default: Any) -> Any:
    if value is None or value is True:
        return default
    try:
        return int(str(value))
    except ValueError:
        return None


def _num(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in (None, True) else None
    except (TypeError, ValueError):
        return None


def _fix(s: Server, shape: dict, gpus: int, need, usable_per_gpu: float) -> str:
    fixes = []
    weights_b, kv_b, tp = need["weights_bytes"], need["kv_bytes"], need["tp"]
    at_fp8 = need["params"] + need["tokens"] * need["kv_per_token"] / 2 / 1e9
    if shape.get("fp8") and (weights_b > 1 or kv_b > 1) and at_fp8 <= tp * usable_per_gpu:
        fixes.append({"vllm": "--quantization fp8 --kv-cache-dtype fp8", "tgi": "--quantize fp8 --kv-cache-dtype fp8_e4m3fn",
                      "lmi": "OPTION_QUANTIZE=fp8 and OPTION_KV_CACHE_DTYPE=fp8",
                      "tgi-sagemaker": "HF_MODEL_QUANTIZE=fp8"}[s.engine] + f" (fits on {tp} GPU(s))")
    total = need["weights"] + need["kv"]
    for n in TP_SIZES:
        if tp < n <= gpus and total <= n * usable_per_gpu:
            flag = {"vllm": "--tensor-parallel-size", "tgi": "--num-shard", "lmi": "TENSOR_PARALLEL_DEGREE",
                    "tgi-sagemaker": "SM_NUM_GPUS"}[s.engine]
            fixes.append(f"{flag} {n} (of the {gpus} GPUs there)")
            break
    return " or ".join(fixes) or "a GPU with more memory, or a shorter maximum model length"


def check(ctx: StackContext) -> None:
    servers = _k8s_servers(ctx) + _sagemaker_servers(ctx) + _vertex_servers(ctx)
    if not servers:
        ctx.not_applicable("the stack runs no model server (vLLM, TGI, SageMaker model or Vertex AI deployment)")
    cfg = ctx.config
    missing = [k for k in ("nodeShapes", "models", "gpuMemoryUtilization", "activationReserveGbPerGpu") if k not in cfg]
    if missing:
        for s in servers:
            ctx.unplanned(f"{s.resource.name} memory fit", ", ".join(missing))
        return
    models = {m["id"]: m for m in cfg["models"]}
    for s in servers:
        model = models.get(s.model) if s.model else None
        if model is None and len(models) == 1:
            model = next(iter(models.values()))
        if model is None:
            ctx.unplanned(f"{s.resource.name} model", f"{s.model or 'its model'} is not a model of the stack's plan")
            continue
        if not s.targets:
            ctx.cannot_verify(f"{s.resource.name} GPUs", "where it runs (no pool, endpoint configuration or machine "
                                                         "spec names an instance type)")
            continue
        for instance_type, where in s.targets:
            shape = cfg["nodeShapes"].get(instance_type)
            if shape is None:
                ctx.unplanned(f"{s.resource.name} on {instance_type}", "the GPUs of that instance type")
                continue
            _check_one(ctx, s, model, instance_type, where, shape)


def _check_one(ctx: StackContext, s: Server, model: dict, instance_type: str, where: Any, shape: dict) -> None:
    cfg = ctx.config
    gpus = s.gpus if isinstance(s.gpus, int) and s.gpus > 0 else int(shape["gpuCount"])
    tp, wb, kvb, max_len, util, unmodelled = _settings(s, gpus)
    at = f"{where.name}'s {instance_type}" if where is not s.resource else instance_type
    if unmodelled:
        ctx.cannot_verify(f"{s.resource.name} {unmodelled}", "the weight size of that quantization is not modelled")
        return
    if tp is None or kvb is None:
        ctx.cannot_verify(f"{s.resource.name} parallel degree or KV-cache dtype", "an unreadable engine setting")
        return
    if tp > gpus:
        ctx.violation(f"shards {model['id']} over {tp} GPUs (tensor x pipeline parallel) but has {gpus} on {at}: the "
                      f"engine fails to start. Fix: give it {tp} GPUs or shard over {gpus}.", s.resource.urn)
        return
    util = util if util is not None else float(cfg["gpuMemoryUtilization"])
    reserve = float(cfg["activationReserveGbPerGpu"])
    length = max_len or model.get("modelMaxTokens") or model.get("contextTokens") or 0
    tokens = max(length, model.get("kvCacheTokens") or 0)
    weights = model["paramsBillion"] * wb
    kv = tokens * model["kvBytesPerTokenFp16"] * kvb / 2 / 1e9
    per_gpu = float(shape["gpuMemoryGb"]) * util - reserve
    usable = tp * per_gpu
    if weights + kv <= usable:
        return
    precision = {1.0: "fp8", 2.0: "16-bit", 4.0: "float32"}
    need = {"weights": weights, "kv": kv, "weights_bytes": wb, "kv_bytes": kvb, "tp": tp, "tokens": tokens,
            "params": model["paramsBillion"], "kv_per_token": model["kvBytesPerTokenFp16"]}
    ctx.violation(
        f"serves {model['id']} ({model['paramsBillion']}B parameters) with {precision[wb]} weights and a "
        f"{precision[kvb]} KV cache on {tp} x {shape['gpu']} ({shape['gpuMemoryGb']} GB) of {at}: weights "
        f"{weights:.1f} GB + KV cache for {tokens} tokens {kv:.1f} GB = {weights + kv:.1f} GB, but {tp} x "
        f"({shape['gpuMemoryGb']} GB x {util:g} - {reserve:g} GB) leaves {usable:.1f} GB, so the engine cannot load "
        f"it. Fix: {_fix(s, shape, gpus, need, per_gpu)}.", s.resource.urn)


POLICY = stack_policy(RULE, check)
