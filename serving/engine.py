"""What every engine module produces: the container's command, arguments, environment and health routes.

`serving/vllm.py` and `serving/tgi.py` turn an `EngineInputs` into an `EngineSpec`; `serving/model_server.py`
turns a spec into Kubernetes objects. The spec is plain data, so engine rules are tested without Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass(frozen=True)
class EngineInputs:
    model_id: str  # the model as clients name it (--served-model-name)
    size_class: str  # catalog size class: 8b, 70b, ...
    gpu: str  # catalog GPU class: L4, L40S, A100-80GB, H100, ...
    gpus_per_replica: int  # tensor parallel / shards
    max_context_tokens: int  # per sequence (prompt + output)
    image: str  # pinned serving image (tag or digest), from the stack's registry when it has one
    weights_uri: Optional[str] = None  # s3:// or gs:// prefix; None = model_id from the hub (never when air-gapped)
    airgapped: bool = False
    kv_cache_tokens: Optional[int] = None  # KV budget per replica; default max_context_tokens x catalog kv_cache_sequences
    max_num_seqs: Optional[int] = None  # concurrent sequences per replica; default derived from the KV budget
    hub_token_secret: Optional[str] = None  # name of a Kubernetes Secret (key "token") for gated hub models
    shutdown_timeout_seconds: int = 45  # let in-flight requests finish on SIGTERM
    # Refuse requests beyond the replica's sequences plus a short queue (HTTP 503) instead of queueing them without
    # bound: behind a burst-overflow gateway the refusal is what sends the request to the API at once, and it follows
    # the replicas that are running, whatever the autoscaler has done.
    shed_when_full: bool = False
    # The stack's precision (selfHosted.precision): what the fit was checked at, and so what the engine must load.
    # None: fp8 where the GPU has FP8 tensor cores, else fp16 (the planner's choice).
    precision: Optional[Literal["fp16", "fp8"]] = None


# Waiting requests per replica the autoscaler aims for (the model server's queue target). A shedding engine admits
# twice this many waiting requests before it refuses, so the autoscaler sees its target, and scales out, before any
# request overflows.
QUEUE_TARGET_PER_REPLICA = 5
SHED_QUEUE_REQUESTS = 2 * QUEUE_TARGET_PER_REPLICA


@dataclass(frozen=True)
class EngineMetrics:
    """The Prometheus series an engine release exports, beyond its waiting-requests gauge (`EngineSpec.queue_metric`).

    Names are as scraped (counters with their exposition suffix; histograms by base name, `_bucket`/`_sum`/`_count`
    appended by the consumer). None means this engine has no such series: the scaler, the alerts and the dashboard
    skip what needs it, and say so where they do.
    """

    running: Optional[str] = None  # gauge: requests in the running batch
    kv_cache_usage: Optional[str] = None  # gauge: fraction (0-1) of the replica's KV-cache blocks in use
    ttft_histogram: Optional[str] = None  # seconds from arrival to the first output token
    inter_token_latency_histogram: Optional[str] = None  # seconds between output tokens
    queue_time_histogram: Optional[str] = None  # seconds a request waited before running (a lower bound of TTFT)
    prompt_tokens: Optional[str] = None  # counter of prompt (prefill) tokens
    generation_tokens: Optional[str] = None  # counter of generated (output) tokens
    request_success: Optional[str] = None  # counter of requests that finished normally
    requests_total: Optional[str] = None  # counter of every request answered, the denominator of the error ratio
    server_errors: Optional[str] = None  # counter of requests the server failed...
    server_error_matchers: str = ""  # ...restricted by these label matchers (PromQL, without braces)
    # Counter of requests refused on purpose because the replica is full (HTTP 503 by design, counted in
    # server_errors): subtracted from the errors, since a full replica's refusal is what sends a request to overflow.
    admission_rejections: Optional[str] = None


@dataclass(frozen=True)
class WeightsFetch:
    """A container that copies the weights prefix into the model volume before the engine starts, for an engine that
    reads only local directories (TGI). It runs as the pod's own identity (EKS Pod Identity, GKE Workload Identity)."""

    image: str  # the cloud's CLI, pinned in components/versions.py, from the stack's registry when it has one
    command: list[str]
    source_uri: str  # the s3:// or gs:// prefix copied
    target_dir: str  # where the model volume is mounted (the engine's model_dir)
    env: dict[str, str] = field(default_factory=dict)
    name: str = "fetch-weights"
    cpu: int = 2  # the copy is network- and disk-bound: a few cores keep the CLI's parallel transfers busy
    memory_gib: int = 4


@dataclass(frozen=True)
class EngineSpec:
    engine: Literal["vllm", "tgi"]
    version: str  # the image's tag or digest, for pinning metric names
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    port: int
    health_path: str  # liveness: the process is up (must not depend on the model being loaded)
    ready_path: str  # readiness: the model answers
    metrics_path: str
    queue_metric: str  # the Prometheus gauge of waiting requests, as this engine version names it
    shutdown_timeout_seconds: int
    needs_shm: bool  # tensor parallelism over NCCL needs a memory-backed /dev/shm
    model_dir: str  # where weights are read from inside the container
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)  # env var -> (Secret name, key)
    read_only_root: bool = True  # whether the engine runs with a read-only root filesystem (caches on volumes)
    metrics: EngineMetrics = field(default_factory=EngineMetrics)  # the other series, pinned per release like queue_metric
    fetch: Optional[WeightsFetch] = None  # fills model_dir from the bucket before the engine starts (None: not needed)
