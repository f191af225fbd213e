"""Text Generation Inference: the `text-generation-launcher` command line, environment and routes for one replica.

`tgi_spec` turns `EngineInputs` into an `EngineSpec`, with the same refusals as vLLM (see `serving/vllm.py`, whose
shared helpers it uses). One difference matters to the model server: TGI cannot read weights from S3 or GCS, so
when `weights_uri` is set the spec carries a `WeightsFetch`, an init container that copies that prefix into
`model_dir` (the pod's model volume, mounted at /models) before the engine starts, and `--model-id` names that
local directory.
"""

from __future__ import annotations

import re
from typing import Optional

from components.versions import VERSIONS, mirror_registry
from planner.catalog import Catalog

from .engine import EngineInputs, EngineMetrics, EngineSpec, WeightsFetch
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

# The router's other series on 3.x (docs/source/reference/metrics.md, router/src/infer/*.rs). They carry no model
# label. TGI has no KV-cache usage gauge (its block allocator is not exported) and no time-to-first-token histogram:
# the scaler then scales on the queue alone, and the TTFT alert falls back to the queue-time histogram, a lower bound
# of TTFT (a request waits, then prefills). Token counts exist only as per-request histograms, whose `_sum` is a
# counter. `tgi_request_failure{err}` also counts client-side outcomes (validation: 422, overloaded: 429, dropped:
# the client went away), which are not server errors.
TGI_METRICS = EngineMetrics(
    running="tgi_batch_current_size",
    kv_cache_usage=None,
    ttft_histogram=None,
    inter_token_latency_histogram="tgi_request_mean_time_per_token_duration",
    queue_time_histogram="tgi_request_queue_duration",
    prompt_tokens="tgi_request_input_length_sum",
    generation_tokens="tgi_request_generated_tokens_sum",
    request_success="tgi_request_success",
    requests_total="tgi_request_count",
    server_errors="tgi_request_failure",
    server_error_matchers='err!~"validation|overloaded|dropped"',
)
METRICS_BY_RELEASE = {"3": TGI_METRICS}

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


# The CLIs write their config and caches under HOME; the root filesystem is read-only, /tmp is a volume.
FETCH_ENV = {"aws": {"HOME": "/tmp", "AWS_EC2_METADATA_DISABLED": "true"},  # credentials come from Pod Identity only
             "gcp": {"HOME": "/tmp", "CLOUDSDK_CONFIG": "/tmp/gcloud", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true"}}
_ECR_REGION = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/")


def weights_fetch(inputs: EngineInputs) -> Optional[WeightsFetch]:
    """The init container that copies `inputs.weights_uri` into PREFILLED_MODEL_DIR, or None for hub weights.

    Its image comes from where the serving image comes from: the stack's registry mirror (an air-gapped pod reaches
    nothing else), or upstream. `sync`/`rsync` copy only what the volume lacks, so a restarted init container resumes."""
    cloud = weights_cloud(inputs)
    if cloud is None:
        return None
    registry = mirror_registry(inputs.image, VERSIONS.tgi_image)
    uri = inputs.weights_uri.rstrip("/") + "/"
    env = dict(FETCH_ENV[cloud])
    if cloud == "aws":
        command = ["aws", "s3", "sync", uri, PREFILLED_MODEL_DIR, "--no-progress", "--only-show-errors"]
        # An ECR mirror names the stack's region: the bucket is in-region, and an air-gapped VPC reaches S3 only through
        # its regional endpoint, so the CLI must not start at the global one.
        region = _ECR_REGION.match(registry + "/") if registry else None
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region.group(1)
    else:
        command = ["gcloud", "storage", "rsync", "--recursive", uri, PREFILLED_MODEL_DIR]
    return WeightsFetch(image=VERSIONS.weights_fetch_image(cloud, registry), command=command, source_uri=uri,
                        target_dir=PREFILLED_MODEL_DIR, env=env)


def max_input_tokens(max_total_tokens: int) -> int:
    return max_total_tokens - min(OUTPUT_BUDGET_TOKENS, max_total_tokens // 2)


def tgi_spec(inputs: EngineInputs, catalog: Catalog) -> EngineSpec:
    """The TGI container for one replica of `inputs.model_id` on `inputs.gpus_per_replica` x `inputs.gpu`."""
    check_inputs(ENGINE, inputs, catalog)
    if inputs.max_context_tokens < 2:
        raise ValueError(f"{ENGINE}: max_context_tokens must leave room for at least one input and one output token")
    version = image_version(inputs.image)
    queue_metric = metric_for_version(ENGINE, version, QUEUE_METRIC_BY_RELEASE)
    metrics = metric_for_version(ENGINE, version, METRICS_BY_RELEASE)
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
        metrics=metrics,
        shutdown_timeout_seconds=inputs.shutdown_timeout_seconds,
        # Shards exchange tensors over NCCL, which needs a memory-backed /dev/shm (TGI #869, README --shm-size).
        needs_shm=inputs.gpus_per_replica > 1,
        model_dir=PREFILLED_MODEL_DIR if prefilled else HF_HUB_CACHE,
        secret_env=hub_token_env(inputs),
        read_only_root=True,
        # TGI cannot read a bucket: an init container fills the model volume from it first.
        fetch=weights_fetch(inputs),
    )
