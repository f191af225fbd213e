"""Text Generation Inference: the `text-generation-launcher` command line, environment and routes for one replica.

`tgi_spec` turns `EngineInputs` into an `EngineSpec`, with the same refusals as vLLM (see `serving/vllm.py`, whose
shared helpers it uses). One difference matters to the model server: TGI cannot read weights from S3 or GCS, so
when `weights_uri` is set the model server must copy that prefix into `model_dir` (a volume mounted at /models)
before the engine starts, and `--model-id` names that local directory.
"""

from __future__ import annotations

from planner.catalog import Catalog

from .engine import EngineInputs, EngineSpec
from .vllm import (
    BASE_CACHE_ENV,
    HF_HUB_CACHE,
    HOST,
    OFFLINE_ENV,
    PORT,
    check_inputs,
    check_memory_fit,
    hub_token_env,
    image_version,
    max_sequences,
    metric_for_version,
    uses_fp8,
    weights_cloud,
)

ENGINE = "tgi"
# The image's entrypoint; set anyway so a mirrored image cannot change it.
COMMAND = ["text-generation-launcher"]

# The waiting-requests gauge by TGI release line: `tgi_queue_size` (router/src/server.rs in huggingface/text-generation-inference).
# Only 3.x is listed because the arguments below (--kv-cache-dtype, --usage-stats) were checked against the 3.x
# launcher; an unknown release is refused rather than assumed.
QUEUE_METRIC_BY_RELEASE = {"3": "tgi_queue_size"}

# The router only listens once every shard has loaded; /health then asks the shards, and runs a one-token
# generation when no generation has succeeded since the last check failed (router/src/infer/health.rs), answering
# 503 when that fails: it proves the model answers, so it serves liveness and readiness alike.
HEALTH_PATH = "/health"
READY_PATH = "/health"
METRICS_PATH = "/metrics"

# Where the model server puts weights copied from weights_uri (TGI reads only local directories or the hub).
PREFILLED_MODEL_DIR = "/models"

# Tokens of every request's context kept for the answer: --max-input-tokens = --max-total-tokens - this. TGI
# refuses a prompt longer than --max-input-tokens, and otherwise lets it use the whole total, leaving a client that
# sends a near-limit prompt one token of answer; 1024 tokens hold a long chat answer. Small contexts keep half.
OUTPUT_BUDGET_TOKENS = 1024

# --max-concurrent-requests counts queued and running requests, and TGI answers 429 beyond it. At exactly what the
# batch holds the queue would stay empty and `tgi_queue_size` could never ask for another replica, so as many
# requests may wait as run.
QUEUE_FACTOR = 2

# TGI's image sets HF_HOME=/data; the base cache env moves it (and Triton's, and ~) under the /cache volume.
TGI_CACHE_ENV = dict(BASE_CACHE_ENV)


def max_input_tokens(max_total_tokens: int) -> int:
    return max_total_tokens - min(OUTPUT_BUDGET_TOKENS, max_total_tokens // 2)


def tgi_spec(inputs: EngineInputs, catalog: Catalog) -> EngineSpec:
    """The TGI container for one replica of `inputs.model_id` on `inputs.gpus_per_replica` x `inputs.gpu`."""
    check_inputs(ENGINE, inputs, catalog)
    if inputs.max_context_tokens < 2:
        raise ValueError(f"{ENGINE}: max_context_tokens must leave room for at least one input and one output token")
    version = image_version(inputs.image)
    queue_metric = metric_for_version(ENGINE, version, QUEUE_METRIC_BY_RELEASE)
    check_memory_fit(ENGINE, inputs, catalog)

    prefilled = weights_cloud(inputs) is not None
    total = inputs.max_context_tokens
    args = [
        "--model-id", PREFILLED_MODEL_DIR if prefilled else inputs.model_id,
        "--hostname", HOST,
        "--port", str(PORT),
        "--num-shard", str(inputs.gpus_per_replica),
        "--max-input-tokens", str(max_input_tokens(total)),
        "--max-total-tokens", str(total),
        "--max-concurrent-requests", str(max_sequences(inputs, catalog) * QUEUE_FACTOR),
    ]
    if uses_fp8(inputs, catalog):
        # FP8 weights, and an FP8 KV cache as the memory-fit check assumed (flashinfer, TGI's default on CUDA).
        args += ["--quantize", "fp8", "--kv-cache-dtype", "fp8_e4m3fn"]
    # TGI sends anonymous usage and crash reports to Hugging Face by default; off for privacy and air-gapped pods.
    args += ["--usage-stats", "off"]

    env = dict(TGI_CACHE_ENV)
    if inputs.airgapped:
        env.update(OFFLINE_ENV)

    return EngineSpec(
        engine=ENGINE,
        version=version,
        image=inputs.image,
        command=list(COMMAND),
        args=args,
        env=env,
        port=PORT,
        health_path=HEALTH_PATH,
        ready_path=READY_PATH,
        metrics_path=METRICS_PATH,
        queue_metric=queue_metric,
        shutdown_timeout_seconds=inputs.shutdown_timeout_seconds,
        # Shards exchange tensors over NCCL, which needs a memory-backed /dev/shm (TGI #869, README --shm-size).
        needs_shm=inputs.gpus_per_replica > 1,
        model_dir=PREFILLED_MODEL_DIR if prefilled else HF_HUB_CACHE,
        secret_env=hub_token_env(inputs),
        read_only_root=True,
    )
