"""The model server's failover, start-up, drain and scaling defaults, on the objects it renders."""

from __future__ import annotations

import dataclasses
import math

import pytest

import inventory
from components.versions import VERSIONS
from planner.sizing import pod_size, startup_budget, weights_gb
from preview.harness import run_program
from serving.engine import EngineInputs
from components.node_labels import PREFERRED_ON_DEMAND, gpu_node_selector
from serving.model_server import ModelServer, ModelServerArgs, grace_period_seconds, rollout_wait_seconds
from serving.tgi import tgi_spec
from serving.vllm import vllm_spec

CONFIG = {"aws:region": "us-east-1"}
PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"


def make_args(catalog, engine="vllm", size_class="70b", gpu="L40S", gpus=2, instance="g6e.12xlarge", airgapped=False,
              weights_uri="s3://weights/llama-3.1-70b/", hub_token_secret=None, min_replicas=2, claim=None,
              kv_cache_tokens=30400) -> ModelServerArgs:
    image = (VERSIONS.tgi_serving_image if engine == "tgi" else VERSIONS.vllm_serving_image)(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror" if airgapped else None)
    inputs = EngineInputs(model_id=f"meta-llama/Llama-3.1-{size_class.upper()}-Instruct", size_class=size_class, gpu=gpu,
                          gpus_per_replica=gpus, max_context_tokens=8192, image=image, weights_uri=weights_uri,
                          airgapped=airgapped, hub_token_secret=hub_token_secret,
                          kv_cache_tokens=kv_cache_tokens)  # the planner's budget: 16 requests of 1,900 tokens
    spec = (tgi_spec if engine == "tgi" else vllm_spec)(inputs, catalog)
    precision = "fp8" if catalog.gpus[gpu].supports_fp8 else "fp16"
    weights = weights_gb(catalog, size_class, precision)
    size = pod_size(catalog, "aws", instance, gpus, weights)
    return ModelServerArgs(name=engine, spec=spec, min_replicas=min_replicas, max_replicas=6, gpus_per_replica=gpus,
                           node_selector=gpu_node_selector(gpu), preferred_node_labels=PREFERRED_ON_DEMAND,
                           node_provisioning_seconds=catalog.serving.gpu_node_provisioning_seconds,
                           image_pull_seconds=catalog.serving.image_pull_seconds,
                           startup_budget_seconds=startup_budget(catalog, weights).total_seconds, cpu=size.cpu,
                           memory_gib=size.memory_gib, cache_size_gib=size.cache_gib, model_volume_claim=claim,
                           allow_single_replica=min_replicas < 2, prometheus_url=PROMETHEUS)


def render(catalog, engine="vllm", **kw):
    args = make_args(catalog, engine=engine, **kw)
    return run_program(lambda: ModelServer(engine, args), "llm-hosting", "t", CONFIG), args


def pod(result, engine="vllm"):
    return result.named(f"{engine}-deployment").inputs["spec"]["template"]["spec"]


def container(result, engine="vllm"):
    return pod(result, engine)["containers"][0]


@pytest.fixture(scope="module")
def vllm_tp2(catalog):
    return render(catalog)


@pytest.fixture(scope="module")
def tgi(catalog):
    return render(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge", weights_uri=None,
                  hub_token_secret="hf-token")


@pytest.mark.parametrize("stack,engine", [("serving-vllm-tp2", "vllm"), ("serving-tgi", "tgi")])
def test_matches_inventory(stack, engine, vllm_tp2, tgi):
    result = (vllm_tp2 if engine == "vllm" else tgi)[0]
    problems = inventory.differences(result, inventory.load(stack))
    assert not problems, "\n".join(problems)


def test_two_replicas_spread_across_zones(vllm_tp2):
    result, _ = vllm_tp2
    deployment = result.named("vllm-deployment").inputs["spec"]
    assert deployment["replicas"] == 2
    (spread,) = deployment["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["maxSkew"], spread["whenUnsatisfiable"]) == ("topology.kubernetes.io/zone", 1, "DoNotSchedule")


def test_a_single_replica_needs_an_explicit_opt_out():
    from serving.engine import EngineSpec

    spec = EngineSpec(engine="vllm", version="v0.30.0", image="docker.io/vllm/vllm-openai:v0.30.0", command=[], args=[], env={},
                      port=8000, health_path="/health", ready_path="/health", metrics_path="/metrics",
                      queue_metric="vllm:num_requests_waiting", shutdown_timeout_seconds=45, needs_shm=False, model_dir="/models")
    with pytest.raises(ValueError, match="^min_replicas: 1 leaves no failover"):
        ModelServerArgs(name="vllm", spec=spec, min_replicas=1, max_replicas=2, gpus_per_replica=1,
                        node_selector=gpu_node_selector("L4"),
                        startup_budget_seconds=600, cpu=4, memory_gib=16, cache_size_gib=20)


def test_gpu_pool_placement_prefers_on_demand(vllm_tp2):
    spec = pod(vllm_tp2[0])
    assert spec["nodeSelector"] == {"llm-hosting/gpu": "L40S"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    (pref,) = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert pref["preference"]["matchExpressions"] == [{"key": "llm-hosting/capacity", "operator": "In", "values": ["on-demand"]}]


@pytest.mark.parametrize("size_class,gpu,gpus,instance", [("8b", "L40S", 1, "g6e.xlarge"), ("70b", "L40S", 2, "g6e.12xlarge")])
def test_startup_probe_budget_is_derived_from_the_model(catalog, size_class, gpu, gpus, instance):
    result, args = render(catalog, size_class=size_class, gpu=gpu, gpus=gpus, instance=instance)
    probe = container(result)["startupProbe"]
    budget = startup_budget(catalog, weights_gb(catalog, size_class, "fp8")).total_seconds
    assert args.startup_budget_seconds == budget
    assert probe["periodSeconds"] * probe["failureThreshold"] >= budget
    assert probe["failureThreshold"] == math.ceil(budget / probe["periodSeconds"])


def test_bigger_models_get_longer_startup_budgets(catalog):
    small = container(render(catalog, size_class="8b", gpus=1, instance="g6e.xlarge")[0])["startupProbe"]
    large = container(render(catalog)[0])["startupProbe"]
    assert large["failureThreshold"] > small["failureThreshold"]


def test_readiness_and_liveness_use_the_health_route_and_liveness_waits_for_startup(vllm_tp2):
    c = container(vllm_tp2[0])
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    # Kubernetes runs liveness only after the startup probe succeeded: no initial delay can kill a loading pod.
    assert "initialDelaySeconds" not in c["livenessProbe"] and "startupProbe" in c


def test_shm_only_with_tensor_parallelism(vllm_tp2, tgi):
    tp2_volumes = {v["name"]: v for v in pod(vllm_tp2[0])["volumes"]}
    assert tp2_volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(vllm_tp2[0])["volumeMounts"]
    assert "dshm" not in {v["name"] for v in pod(tgi[0], "tgi")["volumes"]}


def test_model_cache_volume(vllm_tp2, catalog):
    volumes = {v["name"]: v for v in pod(vllm_tp2[0])["volumes"]}
    assert volumes["model-cache"]["emptyDir"]["sizeLimit"] == f"{math.ceil(70.6 * 1.1)}Gi"


def test_prefilled_volume_replaces_the_cache(catalog):
    result, _ = render(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge", weights_uri=None,
                       claim="llama-8b-weights")
    volumes = {v["name"]: v for v in pod(result, "tgi")["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "llama-8b-weights", "readOnly": True}


def test_graceful_drain(vllm_tp2, tgi):
    for (result, args), engine in ((vllm_tp2, "vllm"), (tgi, "tgi")):
        c, spec = container(result, engine), pod(result, engine)
        prestop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert spec["terminationGracePeriodSeconds"] == grace_period_seconds(args)
        assert spec["terminationGracePeriodSeconds"] > prestop + args.spec.shutdown_timeout_seconds
    assert "--shutdown-timeout" in container(vllm_tp2[0])["args"]


@pytest.mark.parametrize("engine,metric", [("vllm", "vllm:num_requests_waiting"), ("tgi", "tgi_queue_size")])
def test_keda_scales_on_queue_depth_read_from_the_stacks_prometheus(vllm_tp2, tgi, engine, metric):
    result, args = vllm_tp2 if engine == "vllm" else tgi
    scaled = result.named(f"{engine}-scaledobject")
    spec = scaled.inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == engine and (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        args.min_replicas, args.max_replicas)
    queue = spec["triggers"][0]
    assert queue["type"] == "prometheus" and queue["metadata"]["serverAddress"] == PROMETHEUS
    assert metric in queue["metadata"]["query"] and f'deployment="{engine}"' in queue["metadata"]["query"]
    assert queue["metadata"]["threshold"] == str(args.queue_target_per_replica)
    # KEDA holds the planned peak fleet while it cannot read Prometheus, and scales down slowly
    assert spec["fallback"]["replicas"] == args.max_replicas
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    # no HPA of our own: KEDA owns the Deployment's (keda-hpa-<name>), and two HPAs on one Deployment fight
    assert not [r for r in result.resources if r.type.endswith("HorizontalPodAutoscaler")]
    # created after the releases that define the CRDs, and after the Deployment it scales
    assert result.named(f"{engine}-deployment").urn in scaled.dependencies


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_prometheus_scrapes_the_engine_pods_on_their_metrics_port(vllm_tp2, tgi, engine):
    result, args = vllm_tp2 if engine == "vllm" else tgi
    monitor = result.named(f"{engine}-podmonitor").inputs["spec"]
    pod_labels = result.named(f"{engine}-deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", args.spec.metrics_path)
    # the netpol admits the monitoring namespace, where the stack's Prometheus runs
    ingress = result.named(f"{engine}-netpol").inputs["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in ingress


def test_gpus_requested_and_limited_non_root(vllm_tp2):
    c = container(vllm_tp2[0])
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_disruption_budget_lets_a_drain_take_one_replica_at_a_time(vllm_tp2):
    # A static minAvailable (min replicas - 1) would let a drain take all but one replica of a scaled-out fleet.
    pdb = vllm_tp2[0].named("vllm-pdb").inputs["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb


def test_pulumi_waits_for_node_provisioning_image_pull_and_the_startup_budget(vllm_tp2, catalog):
    # pulumi-kubernetes waits 10 minutes for a Deployment unless told otherwise; a loading 70B replica needs more.
    result, args = vllm_tp2
    deployment = result.named("vllm-deployment")
    probe = container(result)["startupProbe"]
    loading = probe["periodSeconds"] * probe["failureThreshold"]  # what the probe really allows, >= the budget
    one = catalog.serving.gpu_node_provisioning_seconds + catalog.serving.image_pull_seconds + loading
    assert rollout_wait_seconds(args) == (one, one * args.max_replicas)
    assert deployment.options["customTimeouts"] == {"create": f"{one}s", "update": f"{one * args.max_replicas}s"}
    assert loading >= args.startup_budget_seconds > 600


def test_pods_wait_for_what_they_need_at_admission(catalog):
    import pulumi_aws as aws

    def program():
        association = aws.eks.PodIdentityAssociation("association", cluster_name="c", namespace="llm-serving",
                                                     service_account="vllm", role_arn="arn:aws:iam::123456789012:role/r")
        ModelServer("vllm", dataclasses.replace(make_args(catalog), wait_for=[association]))

    result = run_program(program, "llm-hosting", "t", CONFIG)
    assert result.named("association").urn in result.named("vllm-deployment").dependencies


def test_the_selector_is_the_pools_own(catalog):
    with pytest.raises(ValueError, match="^node_selector: a GPU workload must select"):
        dataclasses.replace(make_args(catalog), node_selector={})


def test_airgapped_server_is_offline_and_uses_the_mirror(catalog):
    result, _ = render(catalog, airgapped=True)
    c = container(result)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert c["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/")
    assert "HF_TOKEN" not in env


def test_hub_token_only_through_secret_key_ref(tgi):
    (token,) = [e for e in container(tgi[0], "tgi")["env"] if e["name"] == "HF_TOKEN"]
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}


def test_streaming_engines_mount_the_cache_at_a_path(vllm_tp2):
    mounts = {m["name"]: m["mountPath"] for m in container(vllm_tp2[0])["volumeMounts"]}
    assert mounts["model-cache"] == "/models"  # not the s3:// URI vLLM streams from


def test_tgi_from_a_bucket_needs_a_prefilled_volume_or_a_fetch(catalog):
    args = make_args(catalog, engine="tgi", size_class="8b", gpu="A10G", gpus=1, instance="g5.xlarge",
                     weights_uri="s3://weights/llama-8b/")
    assert args.spec.fetch is not None  # the kit copies the bucket into the model volume itself
    with pytest.raises(ValueError, match="^model_volume_claim: TGI reads the weights from /models"):
        dataclasses.replace(args, spec=dataclasses.replace(args.spec, fetch=None))
