"""vLLM's OpenAI-compatible server: the `vllm serve` command line, environment and routes for one replica.

`vllm_spec` turns `EngineInputs` into an `EngineSpec`. It refuses what would fail at start-up or at runtime instead
of letting a pod crash-loop: a model that does not fit on the replica's GPUs (with the largest context that does), a
context longer than the model's, hub downloads in an air-gapped stack, and an image whose release has no known
queue-metric name. The helpers below the engine constants are shared with `serving/tgi.py`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Optional, TypeVar

from planner.catalog import Catalog
from planner.costmodel import TP_SIZES, fit_replica
from planner.sizing import fit_problem

from .engine import SHED_QUEUE_REQUESTS, EngineInputs, EngineMetrics, EngineSpec

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------------
# Shared by both engines

# The port both engines listen on (vLLM's own default; TGI's image defaults to 80, which needs root).
PORT = 8000
# Listen on every interface of the pod, or the Service and the probes cannot reach the server.
HOST = "0.0.0.0"

# Writable paths: the model server mounts emptyDirs at /cache and /tmp, so the root filesystem can be read-only.
CACHE_DIR = "/cache"
HF_HOME = f"{CACHE_DIR}/huggingface"
# Where hub downloads land (huggingface_hub puts them under $HF_HOME/hub).
HF_HUB_CACHE = f"{HF_HOME}/hub"
TRITON_CACHE_DIR = f"{CACHE_DIR}/triton"  # Triton kernels JIT-compiled at warm-up (default ~/.triton/cache)
XDG_CONFIG_HOME = f"{CACHE_DIR}/config"  # libraries that keep state under ~/.config (vLLM's usage-stats file)

# Every cache the engines and their libraries write, redirected under /cache. HOME and XDG_CACHE_HOME catch the
# rest (~/.cache/flashinfer, ~/.nv/ComputeCache, outlines/xgrammar caches) so nothing writes to the image.
BASE_CACHE_ENV = {
    "HOME": CACHE_DIR,
    "XDG_CACHE_HOME": CACHE_DIR,
    "XDG_CONFIG_HOME": XDG_CONFIG_HOME,
    "HF_HOME": HF_HOME,
    "TRITON_CACHE_DIR": TRITON_CACHE_DIR,
}

# Air-gapped: huggingface_hub and transformers must not try huggingface.co (vLLM issues #1910, #8458, #3719).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# The Kubernetes Secret key that holds a hub token, and the variable both engines read it from.
HUB_TOKEN_KEY = "token"
HUB_TOKEN_ENV = "HF_TOKEN"

# In-cloud buckets the kit reads weights from.
BUCKET_SCHEMES = {"s3://": "aws", "gs://": "gcp"}

# A suggested context is a whole number of these (and never below one of them).
CONTEXT_STEP_TOKENS = 1024
# Upper bound on the derived number of concurrent sequences: vLLM's own default and the Lambda benchmark's
# setting (LambdaLabsML/vllm-benchmark); beyond it batching adds latency faster than throughput.
MAX_DERIVED_SEQS = 256


def image_version(image: str) -> str:
    """The reference part of an image: `tag`, `sha256:...`, or `tag@sha256:...`; an unpinned image is refused."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if digest:
        return f"{tag}@{digest}" if tag else digest
    if not tag:
        raise ValueError(f"image {image!r} has no tag or digest; pin the serving image to a release (components/versions.py)")
    return tag


def metric_for_version(engine: str, version: str, table: dict[str, T]) -> T:
    """The queue gauge's name (or the metric set) for this release, from `table` keyed by release prefix (`v0.30`
    matches `v0.30.1`)."""
    release = version.split("@", 1)[0]
    if not release or release.startswith("sha256:"):
        raise ValueError(f"{engine} image is pinned by digest only ({version}); the queue metric name depends on the release, "
                         f"so pin it as <repository>:<tag>@sha256:<digest>")
    for prefix, metric in table.items():
        if release == prefix or release.startswith((prefix + ".", prefix + "-")):
            return metric
    raise ValueError(f"{engine} release {release!r} is not in the queue-metric table (known: {', '.join(table)}); "
                     f"check the name of the waiting-requests gauge on that release's /metrics and add it to the table")


def weights_cloud(inputs: EngineInputs) -> Optional[str]:
    """The cloud the weights bucket is in, or None for hub weights; refuses any other kind of URI."""
    if inputs.weights_uri is None:
        return None
    for scheme, cloud in BUCKET_SCHEMES.items():
        if inputs.weights_uri.startswith(scheme) and len(inputs.weights_uri) > len(scheme):
            return cloud
    raise ValueError(f"weights_uri {inputs.weights_uri!r} must be an s3:// or gs:// prefix")


def _cloud_of(inputs: EngineInputs) -> Optional[str]:
    """The stack's cloud as far as the inputs tell (for naming an instance type in a suggestion)."""
    cloud = weights_cloud(inputs)
    if cloud:
        return cloud
    registry = inputs.image.split("/", 1)[0]
    if ".dkr.ecr." in registry:
        return "aws"
    if registry.endswith(("-docker.pkg.dev", "gcr.io")):
        return "gcp"
    return None


def check_inputs(engine: str, inputs: EngineInputs, catalog: Catalog) -> None:
    """What both engines refuse before any sizing: unknown classes, odd TP sizes, hub use when air-gapped."""
    if inputs.size_class not in catalog.models:
        raise ValueError(f"{engine}: size class {inputs.size_class!r} is not in the catalog ({', '.join(catalog.models)})")
    if inputs.gpu not in catalog.gpus:
        raise ValueError(f"{engine}: GPU {inputs.gpu!r} is not in the catalog ({', '.join(catalog.gpus)})")
    if inputs.gpus_per_replica not in TP_SIZES:
        # Tensor parallelism splits attention heads evenly; the catalog's models (8 KV heads) take 1, 2, 4 or 8.
        raise ValueError(f"{engine}: gpus_per_replica must be one of {', '.join(map(str, TP_SIZES))}, not {inputs.gpus_per_replica}")
    limit = catalog.models[inputs.size_class].max_context_tokens
    if not 0 < inputs.max_context_tokens <= limit:
        raise ValueError(f"{engine}: max_context_tokens {inputs.max_context_tokens} is outside 1..{limit}, "
                         f"the context {inputs.size_class} models are trained for")
    if inputs.max_num_seqs is not None and inputs.max_num_seqs < 1:
        raise ValueError(f"{engine}: max_num_seqs must be at least 1, not {inputs.max_num_seqs}")
    if inputs.shutdown_timeout_seconds < 0:
        raise ValueError(f"{engine}: shutdown_timeout_seconds must not be negative")
    weights_cloud(inputs)
    if inputs.airgapped and inputs.weights_uri is None:
        raise ValueError(f"{engine}: an air-gapped stack cannot download {inputs.model_id} from the hub; "
                         f"set weights_uri to the s3:// or gs:// prefix the weights were copied to")


def kv_budget_tokens(inputs: EngineInputs, catalog: Catalog, context: Optional[int] = None) -> int:
    """The replica's KV budget: the given one, or `kv_cache_sequences` full contexts; never below one context."""
    context = inputs.max_context_tokens if context is None else context
    budget = inputs.kv_cache_tokens if inputs.kv_cache_tokens is not None else context * catalog.serving.kv_cache_sequences
    return max(budget, context)


def max_sequences(inputs: EngineInputs, catalog: Catalog) -> int:
    """Concurrent sequences per replica: as given, or the planner's design point (`kv_cache_sequences` requests of
    average length share the KV budget), raised to as many full contexts as the budget holds, at most 256.

    A cap of budget // max context alone would throttle a replica to a few sequences although typical requests
    are far shorter than the maximum context; vLLM pre-empts rather than fails when the cache runs short.
    """
    if inputs.max_num_seqs is not None:
        return inputs.max_num_seqs
    full_contexts = kv_budget_tokens(inputs, catalog) // inputs.max_context_tokens
    return max(1, min(MAX_DERIVED_SEQS, max(catalog.serving.kv_cache_sequences, full_contexts)))


def largest_fitting_context(inputs: EngineInputs, catalog: Catalog) -> Optional[int]:
    """The longest context (a multiple of 1024, below the asked one) whose KV budget fits on these GPUs, or None."""
    top = (inputs.max_context_tokens // CONTEXT_STEP_TOKENS) * CONTEXT_STEP_TOKENS
    for context in range(top, 0, -CONTEXT_STEP_TOKENS):
        if context >= inputs.max_context_tokens:
            continue
        kv = kv_budget_tokens(inputs, catalog, context)
        if fit_replica(catalog, inputs.size_class, inputs.gpu, kv, max_gpus=inputs.gpus_per_replica,
                       precision=inputs.precision) is not None:
            return context
    return None


def check_memory_fit(engine: str, inputs: EngineInputs, catalog: Catalog) -> None:
    """Weights plus the KV budget must fit on `gpus_per_replica` GPUs (the planner's rule), else a clear refusal."""
    cloud = _cloud_of(inputs)
    problem = fit_problem(catalog, cloud or "aws", inputs.size_class, inputs.gpu, inputs.gpus_per_replica,
                          kv_budget_tokens(inputs, catalog), precision=inputs.precision)
    if problem is None:
        return
    if cloud is None:  # the instance type fit_problem names would be a guess at the cloud
        problem = re.sub(r" on e\.g\. \S+$", "", problem)
    context = largest_fitting_context(inputs, catalog)
    if context is not None:
        problem += (f"; or keep {inputs.gpus_per_replica} x {inputs.gpu} with max_context_tokens: {context}, "
                    f"the longest context whose KV cache fits there")
    raise ValueError(f"{engine}: {problem}")


def uses_fp8(inputs: EngineInputs, catalog: Catalog) -> bool:
    """8-bit weights and KV cache: the stack's precision, else where the GPU has FP8 tensor cores (the fit's default)."""
    if inputs.precision is not None:
        return inputs.precision == "fp8"
    return catalog.gpus[inputs.gpu].supports_fp8


def hub_token_env(inputs: EngineInputs) -> dict[str, tuple[str, str]]:
    """The hub token as a Secret reference, only when weights come from the hub (never when air-gapped)."""
    if inputs.hub_token_secret and inputs.weights_uri is None and not inputs.airgapped:
        return {HUB_TOKEN_ENV: (inputs.hub_token_secret, HUB_TOKEN_KEY)}
    return {}


# ---------------------------------------------------------------------------------------------------------------
# vLLM

ENGINE = "vllm"
# The image's entrypoint is `vllm serve`; the command is set anyway so a mirrored image cannot change it.
COMMAND = ["vllm", "serve"]

# The waiting-requests gauge by vLLM release line. The kit's arguments need --shutdown-timeout (vLLM >= 0.18,
# KServe PR #5496), so the table starts there; the gauge has been `vllm:num_requests_waiting` on every release
# since (vllm/v1/metrics/loggers.py). Renames do happen (gpu_cache_usage_perc -> kv_cache_usage_perc, GAIE PR #1905),
# so an unknown release is refused rather than assumed: check its /metrics, then add a line.
QUEUE_METRIC_BY_RELEASE = {f"v0.{minor}": "vllm:num_requests_waiting" for minor in range(18, 31)}

# The other series by release line, as vllm/v1/metrics/loggers.py (PrometheusStatLogger) names them; every series
# carries `model_name` (the --served-model-name) and `engine` (the engine-core index). V1 renamed two that older
# dashboards use: vllm:gpu_cache_usage_perc -> vllm:kv_cache_usage_perc (0.9, hidden since), and
# vllm:time_per_output_token_seconds -> vllm:inter_token_latency_seconds. Server errors come from the API server's
# FastAPI instrumentator (`http_requests_total`, status grouped as "2xx"/"4xx"/"5xx"); the engine has no failure
# counter of its own.
VLLM_V1_METRICS = EngineMetrics(
    running="vllm:num_requests_running",
    kv_cache_usage="vllm:kv_cache_usage_perc",
    ttft_histogram="vllm:time_to_first_token_seconds",
    inter_token_latency_histogram="vllm:inter_token_latency_seconds",
    queue_time_histogram="vllm:request_queue_time_seconds",
    prompt_tokens="vllm:prompt_tokens_total",
    generation_tokens="vllm:generation_tokens_total",
    request_success="vllm:request_success_total",
    requests_total="http_requests_total",
    server_errors="http_requests_total",
    server_error_matchers='status="5xx"',
)
METRICS_BY_RELEASE = {f"v0.{minor}": VLLM_V1_METRICS for minor in range(18, 31)}

# `--max-num-queued-reqs` (vLLM PR #49445, in releases since v0.29): a cap on the requests a replica holds, running
# plus waiting; beyond it the server answers 503 at once (PR #55812 counts them as vllm:admission_rejections_total).
ADMISSION_LIMIT_SINCE = (0, 29)
for _minor in range(ADMISSION_LIMIT_SINCE[1], 31):
    METRICS_BY_RELEASE[f"v0.{_minor}"] = dataclasses.replace(
        VLLM_V1_METRICS, admission_rejections="vllm:admission_rejections_total")


def release_tuple(version: str) -> Optional[tuple[int, int]]:
    """`v0.30.1` or `v0.30.1@sha256:...` -> (0, 30); None when the release cannot be read."""
    match = re.match(r"^v?(\d+)\.(\d+)", version.split("@", 1)[0])
    return (int(match.group(1)), int(match.group(2))) if match else None


# Liveness and readiness both use /health. The HTTP server only binds once the weights are loaded and the KV cache
# is allocated (the startup probe covers that time), and /health asks the engine core, answering 503 once it has
# died; /v1/models is served from the API process's own state and keeps answering 200 after the engine is gone.
HEALTH_PATH = "/health"
READY_PATH = "/health"
METRICS_PATH = "/metrics"

# Caches vLLM itself writes: torch.compile artefacts and the config/tokenizer files the Run:ai streamer pulls
# next to streamed weights (both under VLLM_CACHE_ROOT), and numba's JIT cache.
VLLM_CACHE_ROOT = f"{CACHE_DIR}/vllm"
NUMBA_CACHE_DIR = f"{CACHE_DIR}/numba"
VLLM_CACHE_ENV = {
    **BASE_CACHE_ENV,
    "VLLM_CACHE_ROOT": VLLM_CACHE_ROOT,
    "NUMBA_CACHE_DIR": NUMBA_CACHE_DIR,
    # vLLM reports anonymous usage data to its maintainers unless told not to; prompts stay private either way,
    # and an air-gapped pod must not try. (Request logging is already off by default since vLLM PR #21739, and
    # --disable-log-requests is deprecated, so no flag is passed for it.)
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}

# Stream safetensors straight from S3/GCS to GPU memory (docs.vllm.ai models/extensions/runai_model_streamer);
# with tensor parallelism each rank reads its own part instead of every rank reading the whole checkpoint.
STREAMER_LOAD_FORMAT = "runai_streamer"
STREAMER_DISTRIBUTED = json.dumps({"distributed": True}, separators=(",", ":"))


def vllm_spec(inputs: EngineInputs, catalog: Catalog) -> EngineSpec:
    """The vLLM container for one replica of `inputs.model_id` on `inputs.gpus_per_replica` x `inputs.gpu`."""
    check_inputs(ENGINE, inputs, catalog)
    version = image_version(inputs.image)
    queue_metric = metric_for_version(ENGINE, version, QUEUE_METRIC_BY_RELEASE)
    metrics = metric_for_version(ENGINE, version, METRICS_BY_RELEASE)
    check_memory_fit(ENGINE, inputs, catalog)

    streamed = inputs.weights_uri is not None
    # The model is vLLM's positional argument (`--model` is deprecated under `vllm serve`): the bucket prefix when
    # streaming, else the hub id, downloaded into HF_HOME.
    args = [
        inputs.weights_uri if streamed else inputs.model_id,
        "--served-model-name", inputs.model_id,
        "--host", HOST,
        "--port", str(PORT),
        "--tensor-parallel-size", str(inputs.gpus_per_replica),
        # Always explicit: left unset vLLM takes the model's 128k and refuses to start when the KV cache cannot
        # hold one such sequence (vLLM #2418, #10517).
        "--max-model-len", str(inputs.max_context_tokens),
        "--max-num-seqs", str(max_sequences(inputs, catalog)),
        "--gpu-memory-utilization", f"{catalog.serving.gpu_memory_utilization:g}",
    ]
    if uses_fp8(inputs, catalog):
        args += ["--quantization", "fp8", "--kv-cache-dtype", "fp8"]
    if streamed:
        args += ["--load-format", STREAMER_LOAD_FORMAT]
        if inputs.gpus_per_replica > 1:
            args += ["--model-loader-extra-config", STREAMER_DISTRIBUTED]
    if inputs.shed_when_full:
        release = release_tuple(version)
        if release is None or release < ADMISSION_LIMIT_SINCE:
            raise ValueError(f"{ENGINE}: release {version} cannot refuse requests when full (--max-num-queued-reqs needs "
                             f"v{ADMISSION_LIMIT_SINCE[0]}.{ADMISSION_LIMIT_SINCE[1]} or later), which burst overflow relies on")
        args += ["--max-num-queued-reqs", str(max_sequences(inputs, catalog) + SHED_QUEUE_REQUESTS)]
    # Finish in-flight requests on SIGTERM for this long before exiting (the pod's grace period must exceed it).
    args += ["--shutdown-timeout", str(inputs.shutdown_timeout_seconds)]

    env = dict(VLLM_CACHE_ENV)
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
        needs_shm=inputs.gpus_per_replica > 1,
        # Streamed weights are read from the bucket itself (nothing to pre-fill); hub weights from HF's cache.
        model_dir=inputs.weights_uri if streamed else HF_HUB_CACHE,
        secret_env=hub_token_env(inputs),
        read_only_root=True,
    )
