"""The engine modules: `EngineInputs` in, the exact vLLM / TGI command line, environment and routes out.

Tables of inputs against exact arguments, the derived concurrency, the memory-fit refusals (with the context or
GPU count they suggest), air-gapped and hub-token handling, shared memory, and the version-pinned queue metrics.
"""

from __future__ import annotations

import dataclasses

import pytest

from components.versions import VERSIONS
from serving.engine import EngineInputs
from serving.tgi import tgi_spec
from serving.vllm import vllm_spec

VLLM_IMAGE = "docker.io/vllm/vllm-openai:v0.30.0"
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"
L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"
DIGEST = "sha256:" + "ab" * 32

CACHE_ENV = {
    "HOME": "/cache",
    "XDG_CACHE_HOME": "/cache",
    "XDG_CONFIG_HOME": "/cache/config",
    "HF_HOME": "/cache/huggingface",
    "TRITON_CACHE_DIR": "/cache/triton",
}
VLLM_ENV = {**CACHE_ENV, "VLLM_CACHE_ROOT": "/cache/vllm", "NUMBA_CACHE_DIR": "/cache/numba",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def vllm_inputs(**kw) -> EngineInputs:
    base = dict(model_id=L8, size_class="8b", gpu="H100", gpus_per_replica=1, max_context_tokens=8192, image=VLLM_IMAGE)
    return EngineInputs(**{**base, **kw})


def tgi_inputs(**kw) -> EngineInputs:
    return vllm_inputs(**{"image": TGI_IMAGE, **kw})


ENGINES = [pytest.param(vllm_spec, vllm_inputs, id="vllm"), pytest.param(tgi_spec, tgi_inputs, id="tgi")]


# ---------------------------------------------------------------------------------------------------------------
# Exact arguments


@pytest.mark.parametrize("inputs, args", [
    pytest.param(
        vllm_inputs(model_id=L70, size_class="70b", gpu="H100", gpus_per_replica=2, max_context_tokens=8192,
                    weights_uri="s3://models/llama-3.1-70b-instruct"),
        ["s3://models/llama-3.1-70b-instruct", "--served-model-name", L70, "--host", "0.0.0.0", "--port", "8000",
         "--tensor-parallel-size", "2", "--max-model-len", "8192", "--max-num-seqs", "16", "--gpu-memory-utilization", "0.9",
         "--quantization", "fp8", "--kv-cache-dtype", "fp8",
         "--load-format", "runai_streamer", "--model-loader-extra-config", '{"distributed":true}',
         "--shutdown-timeout", "45"],
        id="70b-2xH100-fp8-streamed"),
    pytest.param(
        vllm_inputs(size_class="8b", gpu="A10G", gpus_per_replica=1, max_context_tokens=2048),
        [L8, "--served-model-name", L8, "--host", "0.0.0.0", "--port", "8000",
         "--tensor-parallel-size", "1", "--max-model-len", "2048", "--max-num-seqs", "16", "--gpu-memory-utilization", "0.9",
         "--shutdown-timeout", "45"],
        id="8b-1xA10G-fp16-hub"),
    pytest.param(
        vllm_inputs(size_class="8b", gpu="L4", gpus_per_replica=1, max_context_tokens=4096, weights_uri="gs://models/llama-8b",
                    shutdown_timeout_seconds=90),
        ["gs://models/llama-8b", "--served-model-name", L8, "--host", "0.0.0.0", "--port", "8000",
         "--tensor-parallel-size", "1", "--max-model-len", "4096", "--max-num-seqs", "16", "--gpu-memory-utilization", "0.9",
         "--quantization", "fp8", "--kv-cache-dtype", "fp8", "--load-format", "runai_streamer",
         "--shutdown-timeout", "90"],
        id="8b-1xL4-fp8-streamed-single-gpu"),
])
def test_vllm_args(catalog, inputs, args):
    spec = vllm_spec(inputs, catalog)
    assert spec.command == ["vllm", "serve"]
    assert spec.args == args
    assert spec.env == VLLM_ENV
    assert (spec.engine, spec.version, spec.image, spec.port) == ("vllm", "v0.30.0", VLLM_IMAGE, 8000)
    assert (spec.health_path, spec.ready_path, spec.metrics_path) == ("/health", "/health", "/metrics")
    assert spec.queue_metric == "vllm:num_requests_waiting"
    assert spec.shutdown_timeout_seconds == inputs.shutdown_timeout_seconds


@pytest.mark.parametrize("inputs, args", [
    pytest.param(
        tgi_inputs(model_id=L70, size_class="70b", gpu="A10G", gpus_per_replica=8, max_context_tokens=4096,
                   weights_uri="s3://models/llama-3.1-70b-instruct"),
        ["--model-id", "/models", "--hostname", "0.0.0.0", "--port", "8000", "--num-shard", "8",
         "--max-input-tokens", "3072", "--max-total-tokens", "4096", "--max-concurrent-requests", "32",
         "--usage-stats", "off"],
        id="70b-8xA10G-fp16-prefilled"),
    pytest.param(
        tgi_inputs(model_id=L70, size_class="70b", gpu="H100", gpus_per_replica=2, max_context_tokens=8192),
        ["--model-id", L70, "--hostname", "0.0.0.0", "--port", "8000", "--num-shard", "2",
         "--max-input-tokens", "7168", "--max-total-tokens", "8192", "--max-concurrent-requests", "32",
         "--quantize", "fp8", "--kv-cache-dtype", "fp8_e4m3fn", "--usage-stats", "off"],
        id="70b-2xH100-fp8-hub"),
    pytest.param(
        # A small context keeps half of it for the answer rather than the whole 1024-token budget.
        tgi_inputs(size_class="8b", gpu="A10G", gpus_per_replica=1, max_context_tokens=1024, max_num_seqs=8),
        ["--model-id", L8, "--hostname", "0.0.0.0", "--port", "8000", "--num-shard", "1",
         "--max-input-tokens", "512", "--max-total-tokens", "1024", "--max-concurrent-requests", "16",
         "--usage-stats", "off"],
        id="8b-1xA10G-small-context"),
])
def test_tgi_args(catalog, inputs, args):
    spec = tgi_spec(inputs, catalog)
    assert spec.command == ["text-generation-launcher"]
    assert spec.args == args
    assert spec.env == CACHE_ENV
    assert (spec.engine, spec.version, spec.image, spec.port) == ("tgi", "3.3.5", TGI_IMAGE, 8000)
    assert (spec.health_path, spec.ready_path, spec.metrics_path) == ("/health", "/health", "/metrics")
    assert spec.queue_metric == "tgi_queue_size"


def _arg(spec, flag: str) -> str:
    return spec.args[spec.args.index(flag) + 1]


# ---------------------------------------------------------------------------------------------------------------
# Concurrency from the KV budget


@pytest.mark.parametrize("kw, seqs", [
    pytest.param({}, 16, id="default-budget-is-kv_cache_sequences-contexts"),
    # The planner's design point (16 average requests) stands even when few full contexts fit: typical requests are short.
    pytest.param({"kv_cache_tokens": 3 * 8192 + 100}, 16, id="few-full-contexts-keep-the-design-point"),
    pytest.param({"kv_cache_tokens": 40 * 8192}, 40, id="budget-of-40-contexts-raises-it"),
    pytest.param({"max_context_tokens": 1024, "kv_cache_tokens": 300_000}, 256, id="capped-at-256"),
    pytest.param({"max_num_seqs": 64}, 64, id="given"),
])
def test_max_num_seqs(catalog, kw, seqs):
    assert _arg(vllm_spec(vllm_inputs(**kw), catalog), "--max-num-seqs") == str(seqs)
    # TGI's limit counts queued requests too: as many may wait as run, so tgi_queue_size can grow.
    assert _arg(tgi_spec(tgi_inputs(**kw), catalog), "--max-concurrent-requests") == str(2 * seqs)


# ---------------------------------------------------------------------------------------------------------------
# Memory fit


@pytest.mark.parametrize("make, spec_fn, engine", [(vllm_inputs, vllm_spec, "vllm"), (tgi_inputs, tgi_spec, "tgi")])
@pytest.mark.parametrize("kw, message", [
    pytest.param(
        dict(size_class="8b", gpu="A10G", max_context_tokens=4096),
        "8b in fp16 needs 24.6 GB (weights + KV cache for 65536 tokens) but 1 x A10G offer 20.6 GB; use gpusPerReplica: 2; "
        "or keep 1 x A10G with max_context_tokens: 2048, the longest context whose KV cache fits there",
        id="8b-A10G-suggests-context"),
    pytest.param(
        dict(model_id=L70, size_class="70b", gpu="A10G", gpus_per_replica=8, max_context_tokens=8192),
        "70b in fp16 needs 184.1 GB (weights + KV cache for 131072 tokens) but 8 x A10G offer 164.8 GB and does not fit "
        "on 8 of them; GPUs that fit: L4, L40S, A100-40GB, A100-80GB, H100, H200; "
        "or keep 8 x A10G with max_context_tokens: 4096, the longest context whose KV cache fits there",
        id="70b-8xA10G-suggests-context"),
    pytest.param(
        dict(model_id=L70, size_class="70b", gpu="A10G", max_context_tokens=4096, weights_uri="s3://models/l70"),
        "70b in fp16 needs 162.7 GB (weights + KV cache for 65536 tokens) but 1 x A10G offer 20.6 GB; "
        "use gpusPerReplica: 8 on e.g. g5.48xlarge",
        id="weights-alone-too-big-suggests-gpus-with-aws-host"),
    pytest.param(
        dict(model_id=L70, size_class="70b", gpu="H100", max_context_tokens=8192, weights_uri="gs://models/l70"),
        "70b in fp8 needs 92.1 GB (weights + KV cache for 131072 tokens) but 1 x H100 offer 71.0 GB; "
        "use gpusPerReplica: 2 on e.g. a3-highgpu-2g",
        id="gcs-weights-name-a-gcp-host-and-no-context-fits-beside-the-weights"),
    pytest.param(
        dict(model_id=L70, size_class="70b", gpu="T4", gpus_per_replica=8, max_context_tokens=4096),
        "70b in fp16 needs 162.7 GB (weights + KV cache for 65536 tokens) but 8 x T4 offer 107.2 GB and does not fit on "
        "8 of them; GPUs that fit: L4, A10G, L40S, A100-40GB, A100-80GB, H100, H200",
        id="no-context-fits-suggests-gpus"),
    pytest.param(
        dict(size_class="8b", gpu="A10G", max_context_tokens=8192, kv_cache_tokens=100_000),
        "8b in fp16 needs 29.2 GB (weights + KV cache for 100000 tokens) but 1 x A10G offer 20.6 GB; use gpusPerReplica: 2",
        id="explicit-budget-too-big-no-shorter-context-helps"),
])
def test_memory_fit_refusals(catalog, make, spec_fn, engine, kw, message):
    with pytest.raises(ValueError) as err:
        spec_fn(make(**kw), catalog)
    assert str(err.value) == f"{engine}: {message}"


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_the_suggested_context_is_accepted(catalog, spec_fn, make):
    spec = spec_fn(make(size_class="8b", gpu="A10G", max_context_tokens=2048), catalog)
    assert spec.args  # 2048, the suggestion for 4096 above, fits
    with pytest.raises(ValueError, match="max_context_tokens: 2048"):
        spec_fn(make(size_class="8b", gpu="A10G", max_context_tokens=3072), catalog)


# ---------------------------------------------------------------------------------------------------------------
# Air-gapped stacks and the hub token


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_airgapped_is_offline_and_never_uses_the_token(catalog, spec_fn, make):
    spec = spec_fn(make(airgapped=True, weights_uri="s3://models/llama-8b", hub_token_secret="hf-token"), catalog)
    assert OFFLINE.items() <= spec.env.items()
    assert spec.secret_env == {}
    assert "hf-token" not in spec.env.values() and "HF_TOKEN" not in spec.env


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_airgapped_without_weights_uri_is_refused(catalog, spec_fn, make):
    with pytest.raises(ValueError, match="air-gapped stack cannot download meta-llama/Llama-3.1-8B-Instruct from the hub"):
        spec_fn(make(airgapped=True), catalog)


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_connected_stacks_may_use_the_hub(catalog, spec_fn, make):
    spec = spec_fn(make(), catalog)
    assert not OFFLINE.keys() & spec.env.keys()
    assert spec.model_dir == "/cache/huggingface/hub"


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_hub_token_only_as_secret_reference(catalog, spec_fn, make):
    spec = spec_fn(make(hub_token_secret="hf-token"), catalog)
    assert spec.secret_env == {"HF_TOKEN": ("hf-token", "token")}
    assert "HF_TOKEN" not in spec.env and "hf-token" not in spec.env.values()
    assert not {"hf-token", "HF_TOKEN"} & {part for a in spec.args for part in a.split("=")}
    # Weights from a bucket never need the hub, so the token is not mounted at all.
    assert spec_fn(make(hub_token_secret="hf-token", weights_uri="s3://models/llama-8b"), catalog).secret_env == {}


# ---------------------------------------------------------------------------------------------------------------
# Shared memory, writable paths


@pytest.mark.parametrize("spec_fn, make", ENGINES)
@pytest.mark.parametrize("gpus, shm", [(1, False), (2, True), (4, True), (8, True)])
def test_shm_when_sharded(catalog, spec_fn, make, gpus, shm):
    assert spec_fn(make(gpus_per_replica=gpus), catalog).needs_shm is shm


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_read_only_root_with_every_cache_on_the_cache_volume(catalog, spec_fn, make):
    spec = spec_fn(make(), catalog)
    assert spec.read_only_root is True
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "HF_HOME", "TRITON_CACHE_DIR"):
        assert spec.env[var].startswith("/cache"), var
    if spec.engine == "vllm":
        assert spec.env["VLLM_CACHE_ROOT"].startswith("/cache")


# ---------------------------------------------------------------------------------------------------------------
# Weights: streamed by vLLM, pre-filled for TGI


def test_vllm_streams_weights_from_the_bucket(catalog):
    spec = vllm_spec(vllm_inputs(weights_uri="s3://models/llama-8b"), catalog)
    assert spec.args[0] == "s3://models/llama-8b"
    assert _arg(spec, "--load-format") == "runai_streamer"
    assert "--model-loader-extra-config" not in spec.args  # one GPU: nothing to distribute
    assert spec.model_dir == "s3://models/llama-8b"  # read in place; nothing for the model server to copy


def test_vllm_from_the_hub_has_no_load_format(catalog):
    spec = vllm_spec(vllm_inputs(), catalog)
    assert spec.args[0] == L8 and "--load-format" not in spec.args


def test_tgi_reads_a_prefilled_directory(catalog):
    spec = tgi_spec(tgi_inputs(weights_uri="gs://models/llama-8b"), catalog)
    assert _arg(spec, "--model-id") == "/models"
    assert spec.model_dir == "/models"
    assert "gs://models/llama-8b" not in spec.args


@pytest.mark.parametrize("spec_fn, make", ENGINES)
@pytest.mark.parametrize("uri", ["https://example.com/llama", "/local/llama", "s3://", "az://c/llama"])
def test_weights_uri_must_be_a_bucket(catalog, spec_fn, make, uri):
    with pytest.raises(ValueError, match="must be an s3:// or gs:// prefix"):
        spec_fn(make(weights_uri=uri), catalog)


# ---------------------------------------------------------------------------------------------------------------
# Versions and queue metrics


@pytest.mark.parametrize("image, version", [
    ("docker.io/vllm/vllm-openai:v0.30.0", "v0.30.0"),
    ("docker.io/vllm/vllm-openai:v0.18.1", "v0.18.1"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai:v0.30.0", "v0.30.0"),
    ("registry.internal:5000/vllm-openai:v0.29.2", "v0.29.2"),
    (f"docker.io/vllm/vllm-openai:v0.30.0@{DIGEST}", f"v0.30.0@{DIGEST}"),
])
def test_vllm_version_and_metric(catalog, image, version):
    spec = vllm_spec(vllm_inputs(image=image), catalog)
    assert spec.version == version
    assert spec.queue_metric == "vllm:num_requests_waiting"


@pytest.mark.parametrize("image, message", [
    ("docker.io/vllm/vllm-openai:v0.17.0", "vllm release 'v0.17.0' is not in the queue-metric table"),
    ("docker.io/vllm/vllm-openai:v0.3.0", "vllm release 'v0.3.0' is not in the queue-metric table"),
    ("docker.io/vllm/vllm-openai:v1.0.0", "vllm release 'v1.0.0' is not in the queue-metric table"),
    ("docker.io/vllm/vllm-openai:latest", "vllm release 'latest' is not in the queue-metric table"),
    (f"docker.io/vllm/vllm-openai@{DIGEST}", "vllm image is pinned by digest only"),
    ("registry.internal:5000/vllm-openai", "has no tag or digest"),
])
def test_vllm_unknown_version_is_refused(catalog, image, message):
    with pytest.raises(ValueError, match=message):
        vllm_spec(vllm_inputs(image=image), catalog)


def test_tgi_version_and_metric(catalog):
    assert tgi_spec(tgi_inputs(image=f"{TGI_IMAGE}@{DIGEST}"), catalog).version == f"3.3.5@{DIGEST}"
    with pytest.raises(ValueError, match="tgi release '2.4.1' is not in the queue-metric table"):
        tgi_spec(tgi_inputs(image="ghcr.io/huggingface/text-generation-inference:2.4.1"), catalog)


@pytest.mark.parametrize("registry", [None, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror"])
def test_the_kits_pinned_images_have_known_metrics(catalog, registry):
    """A bump in components/versions.py must come with the metric table's line for that release."""
    assert vllm_spec(vllm_inputs(image=VERSIONS.vllm_serving_image(registry)), catalog).version == VERSIONS.vllm_tag
    assert tgi_spec(tgi_inputs(image=VERSIONS.tgi_serving_image(registry)), catalog).version == VERSIONS.tgi_tag


# ---------------------------------------------------------------------------------------------------------------
# Other refusals


@pytest.mark.parametrize("spec_fn, make", ENGINES)
@pytest.mark.parametrize("kw, message", [
    ({"size_class": "13b"}, "size class '13b' is not in the catalog"),
    ({"gpu": "V100"}, "GPU 'V100' is not in the catalog"),
    ({"gpus_per_replica": 3}, "gpus_per_replica must be one of 1, 2, 4, 8, not 3"),
    ({"max_context_tokens": 131073}, "max_context_tokens 131073 is outside 1..131072"),
    ({"max_context_tokens": 0}, "max_context_tokens 0 is outside"),
    ({"max_num_seqs": 0}, "max_num_seqs must be at least 1"),
])
def test_bad_inputs_are_refused(catalog, spec_fn, make, kw, message):
    with pytest.raises(ValueError, match=message):
        spec_fn(make(**kw), catalog)


@pytest.mark.parametrize("spec_fn, make", ENGINES)
def test_inputs_are_not_mutated_and_specs_are_stable(catalog, spec_fn, make):
    inputs = make(weights_uri="s3://models/llama-8b", gpus_per_replica=2)
    before = dataclasses.asdict(inputs)
    assert spec_fn(inputs, catalog) == spec_fn(inputs, catalog)
    assert dataclasses.asdict(inputs) == before


# ---------------------------------------------------------------------------------------------------------------
# Load shedding for burst overflow


def test_a_shedding_vllm_refuses_past_its_sequences_plus_a_short_queue(catalog):
    from serving.engine import SHED_QUEUE_REQUESTS

    args = vllm_spec(vllm_inputs(shed_when_full=True), catalog).args
    seqs = int(args[args.index("--max-num-seqs") + 1])
    assert args[args.index("--max-num-queued-reqs") + 1] == str(seqs + SHED_QUEUE_REQUESTS)
    assert "--max-num-queued-reqs" not in vllm_spec(vllm_inputs(), catalog).args  # queueing is the default


def test_shedding_needs_a_release_with_the_admission_limit(catalog):
    old = "docker.io/vllm/vllm-openai:v0.28.1"
    assert "--max-num-queued-reqs" not in vllm_spec(vllm_inputs(image=old), catalog).args
    with pytest.raises(ValueError, match=r"v0\.28\.1 cannot refuse requests when full .* v0\.29 or later"):
        vllm_spec(vllm_inputs(image=old, shed_when_full=True), catalog)


def test_the_stacks_precision_reaches_the_engine(catalog):
    # selfHosted.precision is what the memory fit was checked at, so it is what the engine loads.
    fp16 = vllm_spec(vllm_inputs(precision="fp16"), catalog).args  # 8B in 16 bits fits one H100
    assert "--quantization" not in fp16 and "--kv-cache-dtype" not in fp16
    fp8 = vllm_spec(vllm_inputs(precision="fp8"), catalog).args
    assert fp8[fp8.index("--quantization") + 1] == "fp8" and fp8[fp8.index("--kv-cache-dtype") + 1] == "fp8"
    with pytest.raises(ValueError, match="vllm: 70b in fp16"):
        vllm_spec(vllm_inputs(model_id=L70, size_class="70b", gpu="L40S", gpus_per_replica=2, precision="fp16"), catalog)
