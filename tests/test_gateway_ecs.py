"""The gateway on ECS on Fargate: GatewayEcs under mocks, and its bootstrap entrypoint in front of the real proxy.

The component tests run `GatewayEcs` alone with `run_program` and read what it registers: the container definition
(JSON, as ECS gets it), the IAM documents, the security group and the service. The live test runs the container's
entrypoint (serving/gateway_config.py's bootstrap) with the pinned LiteLLM's own Python, as ECS and Cloud Run do.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import subprocess
import time
from dataclasses import replace
from functools import lru_cache

import pulumi
import pytest

from components.versions import VERSIONS
from preview.harness import MASK, run_program
from serving.gateway_config import (BOOTSTRAP_ENTRYPOINT, BOOTSTRAP_SOURCE, FILES_ENV, MASTER_KEY_ENV, PROXY_ENV,
                                    Consumer, GatewayRoutes, api_upstream, config_files, consumer_key_env,
                                    packed_files, render_config, sagemaker_upstream)
from serving.gateway_ecs import GatewayEcs, GatewayEcsArgs, ecr_repository, execution_policy
from tests.tools import free_port, litellm_bin, post_json

PROJECT, STACK, REGION, ACCOUNT = "llm-hosting", "test", "eu-central-1", "123456789012"
GROQ_ENV = "LLMHOST_GROQ_API_KEY"
FAKE_MASTER = "sk-master-ecs-5d1e-never-in-state"
CONSUMERS = (Consumer("chat-app", 120, 200_000), Consumer("batch", 7, 50_001))
IMAGE = VERSIONS.gateway_image(None)
ECR_MIRROR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/llm-hosting"


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:llm-hosting/{STACK}/{name}-AbC123"


def key_arn(uuid: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid}"


GROQ_SECRET = secret_arn("groq-api-key")
CONSUMER_SECRETS = {"chat-app": secret_arn("consumers/chat-app"), "batch": secret_arn("consumers/batch")}
STACK_KEY = key_arn("11111111-1111-1111-1111-111111111111")
SECRET_KEYS = (key_arn("22222222-2222-2222-2222-222222222222"), key_arn("33333333-3333-3333-3333-333333333333"))
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/llm-hosting-test"
INVOKE = {"Sid": "InvokeManagedTier", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": ENDPOINT_ARN}
ALB_SG, TARGET_GROUP = "sg-0a1b2c3d4e5f60718", f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/gw/0123"
LISTENER = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/gw/0123/4567"

CLUSTER, SERVICE, TASK = "aws:ecs/cluster:Cluster", "aws:ecs/service:Service", "aws:ecs/taskDefinition:TaskDefinition"
ROLE, ROLE_POLICY, SG = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:ec2/securityGroup:SecurityGroup"
SECRET, SECRET_VERSION = "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretVersion:SecretVersion"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def routes(**kw) -> GatewayRoutes:
    upstreams = (sagemaker_upstream("llm-hosting-test", REGION, timeout_seconds=45),
                 api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1", timeout_seconds=20))
    return GatewayRoutes(pattern="burst-overflow", upstreams=upstreams, consumers=CONSUMERS, **kw)


def ecs_args(**overrides) -> GatewayEcsArgs:
    base = dict(stack=STACK, region=REGION, routes=routes(), image=IMAGE, master_key=pulumi.Output.secret(FAKE_MASTER),
                api_key_secrets={GROQ_ENV: GROQ_SECRET}, consumer_key_secrets=dict(CONSUMER_SECRETS),
                secret_kms_key_arns=SECRET_KEYS, kms_key_arn=STACK_KEY, vpc_id="vpc-0123456789abcdef0",
                subnet_ids=["subnet-0a", "subnet-0b", "subnet-0c"], load_balancer_security_group_id=ALB_SG,
                target_group_arn=TARGET_GROUP, listener_arn=LISTENER, task_role_statements=[INVOKE])
    return GatewayEcsArgs(**{**base, **overrides})


def _run(make_args):
    def program():
        gw = GatewayEcs("gateway", make_args())
        for name in ("cluster_name", "service_name", "task_role_arn", "execution_role_arn", "security_group_id",
                     "master_key_secret_arn", "log_group_name", "config"):
            pulumi.export(name, getattr(gw, name))

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


@lru_cache(maxsize=None)
def ecs_run():
    return _run(ecs_args)


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def container(result) -> dict:
    [c] = json.loads(one(result, TASK).inputs["containerDefinitions"])
    return c


def role(result, suffix: str):
    [r] = [r for r in result.by_type(ROLE) if r.inputs["name"].endswith(suffix)]
    return r


def policies_of(result, role_resource) -> list[dict]:
    return [json.loads(p.inputs["policy"]) for p in result.by_type(ROLE_POLICY)
            if p.inputs["role"] == role_resource.inputs["name"]]


def unpack(value: str) -> dict[str, str]:
    return json.loads(gzip.decompress(base64.b64decode(value)))


# -- the container --------------------------------------------------------------------------------------------------

def test_the_entrypoint_is_the_bootstrap_and_the_files_unpack_to_exactly_the_rendered_config():
    result = ecs_run()
    c = container(result)
    assert c["entryPoint"] == list(BOOTSTRAP_ENTRYPOINT) and c["name"] == "litellm" and c["image"] == IMAGE
    env = {e["name"]: e["value"] for e in c["environment"]}
    expected = render_config(routes(), replicas=2)
    assert unpack(env[FILES_ENV]) == config_files(expected)
    assert env == {**PROXY_ENV, FILES_ENV: packed_files(expected)}
    assert result.outputs["config"] == expected


def test_limits_are_rendered_for_the_service_s_task_count():
    result = _run(lambda: ecs_args(replicas=3))
    consumers = unpack({e["name"]: e["value"] for e in container(result)["environment"]}[FILES_ENV])
    assert "rpm_limit: 40" in consumers["config.yaml"]  # chat-app: ceil(120 / 3)
    assert one(result, SERVICE).inputs["desiredCount"] == 3


def test_every_key_is_a_secrets_manager_reference_and_no_key_value_is_in_the_task_definition():
    result = ecs_run()
    c = container(result)
    secrets = {s["name"]: s["valueFrom"] for s in c["secrets"]}
    assert result.outputs["master_key_secret_arn"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:")
    assert secrets == {
        MASTER_KEY_ENV: result.outputs["master_key_secret_arn"],
        GROQ_ENV: GROQ_SECRET,
        # ECS's JSON-key form: the api_key field of the consumer's document {base_url, api_key, model}.
        consumer_key_env("chat-app"): f"{CONSUMER_SECRETS['chat-app']}:api_key::",
        consumer_key_env("batch"): f"{CONSUMER_SECRETS['batch']}:api_key::",
    }
    dump = json.dumps([r.as_dict() for r in result.resources]) + json.dumps(result.outputs)
    assert FAKE_MASTER not in dump
    assert FAKE_MASTER not in one(result, TASK).inputs["containerDefinitions"]
    assert not {e["name"] for e in c["environment"]} & set(secrets)
    assert one(result, SECRET_VERSION).inputs["secretString"] == MASK
    assert "secretString" in one(result, SECRET_VERSION).options["additionalSecretOutputs"]


def test_the_master_key_is_kept_in_its_own_secret_under_the_stack_key_and_protected():
    result = ecs_run()
    secret = one(result, SECRET)
    assert secret.inputs["name"] == "llm-hosting/test/gateway-master-key"
    assert secret.inputs["kmsKeyId"] == STACK_KEY and secret.options.get("protect") is True
    logs = one(result, LOG_GROUP)
    assert logs.inputs["name"] == result.outputs["log_group_name"] == "/llm-hosting/test/gateway"
    assert logs.inputs["kmsKeyId"] == STACK_KEY and logs.inputs["retentionInDays"] == 30
    assert logs.options.get("protect") is True
    unprotected = _run(lambda: ecs_args(protect=False))
    assert not any(r.options.get("protect") for r in unprotected.resources)


def test_the_container_runs_read_only_as_a_user_with_tmp_logs_and_the_proxy_port():
    result = ecs_run()
    c, task = container(result), one(result, TASK).inputs
    assert c["readonlyRootFilesystem"] is True and c["user"] == "10001" and c["privileged"] is False
    [mount] = c["mountPoints"]
    assert mount["containerPath"] == "/tmp" and [v["name"] for v in task["volumes"]] == [mount["sourceVolume"]]
    assert c["portMappings"] == [{"name": "http", "containerPort": 4000, "protocol": "tcp"}]
    assert c["stopTimeout"] <= 120  # Fargate's limit
    options = c["logConfiguration"]["options"]
    assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert options["awslogs-group"] == "/llm-hosting/test/gateway" and options["awslogs-region"] == REGION
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert task["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
    assert (task["cpu"], task["memory"]) == ("1024", "2048")
    assert task["executionRoleArn"] == result.outputs["execution_role_arn"]
    assert task["taskRoleArn"] == result.outputs["task_role_arn"]


def test_a_config_change_is_a_new_task_definition():
    before = one(ecs_run(), TASK).inputs["containerDefinitions"]
    after = one(_run(lambda: ecs_args(routes=routes(num_retries=1))), TASK).inputs["containerDefinitions"]
    assert before != after


def test_routes_known_only_at_deploy_time_are_rendered_when_they_resolve():
    result = _run(lambda: ecs_args(routes=pulumi.Output.from_input("x").apply(lambda _: routes())))
    assert result.outputs["config"] == render_config(routes(), replicas=2)


# -- IAM ------------------------------------------------------------------------------------------------------------

def test_the_execution_role_reads_only_the_named_secrets_with_their_keys_and_writes_its_log_group():
    result = ecs_run()
    execution = role(result, "-execution")
    assert not execution.inputs.get("managedPolicyArns")
    [document] = policies_of(result, execution)
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert set(by_sid) == {"WriteGatewayLogs", "ReadGatewayKeys", "DecryptKeysViaSecretsManager"}  # not in ECR
    assert by_sid["ReadGatewayKeys"]["Action"] == "secretsmanager:GetSecretValue"
    assert set(by_sid["ReadGatewayKeys"]["Resource"]) == {
        result.outputs["master_key_secret_arn"], GROQ_SECRET, *CONSUMER_SECRETS.values()}
    decrypt = by_sid["DecryptKeysViaSecretsManager"]
    assert decrypt["Action"] == "kms:Decrypt" and set(decrypt["Resource"]) == {STACK_KEY, *SECRET_KEYS}
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}
    logs = by_sid["WriteGatewayLogs"]
    assert logs["Resource"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/llm-hosting/test/gateway:log-stream:*"
    assert "*" not in json.dumps([s["Resource"] for s in document["Statement"]]).replace("log-stream:*", "")
    trust = json.loads(execution.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert "Condition" not in trust  # ECS's documented execution-role trust; the task role carries the conditions


def test_an_image_in_ecr_adds_the_pull_of_that_repository_only():
    image = VERSIONS.gateway_image(ECR_MIRROR)
    assert ecr_repository(image) == (ACCOUNT, REGION, "llm-hosting/litellm")
    assert ecr_repository(IMAGE) is None and ecr_repository("public.ecr.aws/x/litellm:1") is None
    result = _run(lambda: ecs_args(image=image))
    [document] = policies_of(result, role(result, "-execution"))
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["EcrLogin"] == {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
                                  "Resource": "*"}
    assert by_sid["PullGatewayImage"]["Resource"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/llm-hosting/litellm"
    assert "ecr:*" not in json.dumps(document)


def test_the_execution_policy_is_a_pure_function_of_its_inputs():
    doc = execution_policy(IMAGE, REGION, "aws", "arn:aws:logs:r:a:log-group:g", ["s2", "s1", "s1"], ["k"])
    assert [s["Sid"] for s in doc["Statement"]] == ["WriteGatewayLogs", "ReadGatewayKeys",
                                                     "DecryptKeysViaSecretsManager"]
    assert doc["Statement"][1]["Resource"] == ["s1", "s2"]


def test_the_task_role_carries_only_the_given_statements():
    result = ecs_run()
    task = role(result, "-task")
    assert not task.inputs.get("managedPolicyArns")
    assert policies_of(result, task) == [{"Version": "2012-10-17", "Statement": [INVOKE]}]
    trust = json.loads(task.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"


def test_statements_given_as_outputs_are_resolved_into_the_task_policy():
    result = _run(lambda: ecs_args(task_role_statements=[
        {**INVOKE, "Resource": pulumi.Output.from_input(ENDPOINT_ARN)}]))
    assert policies_of(result, role(result, "-task")) == [{"Version": "2012-10-17", "Statement": [INVOKE]}]


def test_an_api_only_gateway_has_a_task_role_without_any_policy():
    api_only = GatewayRoutes(pattern="none", consumers=CONSUMERS, upstreams=(
        api_upstream("groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1"),))
    result = _run(lambda: ecs_args(routes=api_only, task_role_statements=[]))
    assert policies_of(result, role(result, "-task")) == []
    assert len(result.by_type(ROLE_POLICY)) == 1  # the execution role's


# -- network and service --------------------------------------------------------------------------------------------

def test_the_tasks_admit_only_the_load_balancer_on_the_proxy_port():
    result = ecs_run()
    sg = one(result, SG).inputs
    assert result.outputs["security_group_id"].startswith("sg-")
    [ingress] = sg["ingress"]
    assert (ingress["protocol"], ingress["fromPort"], ingress["toPort"]) == ("tcp", 4000, 4000)
    assert ingress["securityGroups"] == [ALB_SG]
    assert not ingress.get("cidrBlocks") and not ingress.get("ipv6CidrBlocks") and not ingress.get("self")
    [egress] = sg["egress"]
    assert (egress["protocol"], egress["fromPort"], egress["toPort"]) == ("tcp", 443, 443)


def test_the_service_runs_private_tasks_in_the_target_group_and_rolls_back_a_failed_deployment():
    result = ecs_run()
    service = one(result, SERVICE).inputs
    assert service["launchType"] == "FARGATE" and service["desiredCount"] == 2
    network = service["networkConfiguration"]
    assert network["assignPublicIp"] is False and network["subnets"] == ["subnet-0a", "subnet-0b", "subnet-0c"]
    assert network["securityGroups"] == [result.outputs["security_group_id"]]
    assert service["loadBalancers"] == [{"targetGroupArn": TARGET_GROUP, "containerName": "litellm",
                                         "containerPort": 4000}]
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (100, 200)
    assert service["enableExecuteCommand"] is False and service["propagateTags"] == "SERVICE"
    assert service["healthCheckGracePeriodSeconds"] > 0
    assert service["name"] == result.outputs["service_name"]
    cluster = one(result, CLUSTER).inputs
    assert cluster["name"] == result.outputs["cluster_name"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]


def test_the_component_registers_its_children_under_itself():
    result = ecs_run()
    [component] = result.by_type("llmhost:index:GatewayEcs")
    assert all(r.parent == component.name for r in result.resources if r.custom)


# -- refusals -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"replicas": 1}, "replicas: 1"),
    ({"image": "ghcr.io/berriai/litellm:latest"}, "image: .* not pinned"),
    ({"image": "ghcr.io/berriai/litellm"}, "image: .* not pinned"),
    ({"consumer_key_secrets": {"chat-app": CONSUMER_SECRETS["chat-app"]}}, "consumer_key_secrets: missing batch"),
    ({"consumer_key_secrets": {**CONSUMER_SECRETS, "old-app": secret_arn("old")}}, "old-app is not a consumer"),
    ({"consumer_key_secrets": {}}, "consumer_key_secrets: at least one"),
    ({"api_key_secrets": {GROQ_ENV: GROQ_SECRET, "LLMHOST_OPENAI_API_KEY": secret_arn("openai")}},
     "api_key_secrets: LLMHOST_OPENAI_API_KEY is not read"),
    ({"api_key_secrets": {}}, f"api_key_secrets: missing {GROQ_ENV}"),
    ({"api_key_secrets": {"OPENAI_API_KEY": GROQ_SECRET}}, "api_key_secrets: 'OPENAI_API_KEY'"),
    ({"api_key_secrets": {GROQ_ENV: "gsk-a-raw-key-not-an-arn"}}, "api_key_secrets: .* not a Secrets Manager"),
    ({"consumer_key_secrets": {**CONSUMER_SECRETS, "batch": CONSUMER_SECRETS["batch"] + ":api_key::"}},
     "consumer_key_secrets: batch"),
    ({"secret_kms_key_arns": ()}, "secret_kms_key_arns"),
    ({"kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/llm-hosting-test"}, "kms_key_arn: .* not a KMS key ARN"),
    ({"secret_kms_key_arns": ["alias/consumer-keys"]}, r"secret_kms_key_arns: 0"),
    ({"health_check_grace_period_seconds": -1}, "health_check_grace_period_seconds"),
    ({"master_key": ""}, "master_key"),
    ({"cpu": 1000}, "cpu: 1000"),
    ({"memory": 512}, "memory: 512"),
    ({"cpu_architecture": "arm64"}, "cpu_architecture"),
    ({"log_retention_days": 10}, "log_retention_days"),
    ({"stack": "Prod_EU"}, "stack"),
    ({"task_role_statements": [{"Effect": "Allow", "Action": "sagemaker:*", "Resource": ENDPOINT_ARN}]},
     r"task_role_statements\[0\]"),
    ({"task_role_statements": ["sagemaker:InvokeEndpoint"]}, r"task_role_statements\[0\]"),
    ({"routes": "llm"}, "routes"),
])
def test_bad_args_are_refused_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        ecs_args(**overrides)


def test_routes_resolved_at_deploy_time_are_checked_against_the_keys():
    other = replace(routes(), consumers=CONSUMERS[:1])
    with pytest.raises(Exception, match="consumer_key_secrets: batch is not a consumer"):
        _run(lambda: ecs_args(routes=pulumi.Output.from_input(other)))


# -- live: the entrypoint in front of the real proxy ------------------------------------------------------------------

@pytest.fixture(scope="module")
def litellm_installed():
    return litellm_bin().parent  # the bin directory of the pinned proxy's own venv, as tests/test_gateway_live.py uses


def test_the_bootstrap_entrypoint_starts_the_real_proxy_from_the_packed_files(litellm_installed, tmp_path):
    """ECS and Cloud Run run BOOTSTRAP_SOURCE with the image's Python: here, the pinned proxy venv's Python.

    The bootstrap execs `litellm --config <dir>/config.yaml --port 4000`; a `litellm` shim first on PATH records
    that command line and adds --host/--port after it (the last one wins), so the test binds a free loopback port
    instead of 0.0.0.0:4000, and then execs the real proxy."""
    port, config_dir, shim_dir = free_port(), tmp_path / "config", tmp_path / "bin"
    shim_dir.mkdir()
    argv_log = tmp_path / "argv.json"
    shim = shim_dir / "litellm"
    shim.write_text(f"#!{litellm_installed / 'python'}\nimport json, os, sys\n"
                    f"open({str(argv_log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
                    f"os.execv({str(litellm_installed / 'litellm')!r}, [{str(litellm_installed / 'litellm')!r}, "
                    f"*sys.argv[1:], '--host', '127.0.0.1', '--port', '{port}'])\n")
    shim.chmod(0o755)
    consumer_keys = {"chat-app": "llmhost-chat-app-live-8c2f", "batch": "llmhost-batch-live-41d0"}
    config = render_config(routes(), replicas=2)
    # The task's environment: PROXY_ENV (its paths moved under tmp_path), the packed files, and the keys as ECS
    # resolves them; Cloud Run hands a consumer the whole JSON document, which the bootstrap reads api_key from.
    home = tmp_path / "home"
    env = {"PATH": f"{shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "LANG": "C.UTF-8", "NO_PROXY": "*",
           **PROXY_ENV, "HOME": str(home), "LITELLM_UI_PATH": str(home / "litellm/ui"),
           "LITELLM_ASSETS_PATH": str(home / "litellm/assets"),
           FILES_ENV: packed_files(config), "LLMHOST_GATEWAY_DIR": str(config_dir),
           MASTER_KEY_ENV: "sk-live-master-ecs-3e9a", GROQ_ENV: "gsk-live-provider-ecs-77b0",
           consumer_key_env("chat-app"): consumer_keys["chat-app"],
           consumer_key_env("batch"): json.dumps({"base_url": "https://gateway.internal/v1",
                                                  "api_key": consumer_keys["batch"], "model": "llm"}),
           "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEFAKEKEY00", "AWS_SECRET_ACCESS_KEY": "fake",
           "AWS_EC2_METADATA_DISABLED": "true"}
    log = open(tmp_path / "proxy.log", "wb")
    proc = subprocess.Popen([str(litellm_installed / "python"), "-c", BOOTSTRAP_SOURCE], env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "proxy.log").read_text(errors="replace")[-3000:]
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health/liveliness")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "proxy.log").read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        # The bootstrap wrote exactly the packed files and handed them to the proxy on the gateway's port.
        assert {p.name: p.read_text() for p in config_dir.iterdir() if p.is_file()} == config_files(config)
        assert json.loads(argv_log.read_text()) == ["--config", str(config_dir / "config.yaml"), "--port", "4000"]
        body = {"model": "llm", "messages": [{"role": "user", "content": "hi"}]}
        assert post_json(base, "/v1/chat/completions", body, {}, timeout=10).status == 401
        wrong = post_json(base, "/v1/chat/completions", body, {"Authorization": "Bearer llmhost-nope"}, timeout=10)
        assert wrong.status == 401
        # Both consumer keys authenticate: the plain one (ECS's :api_key:: pick) and the JSON document's api_key.
        # An operator route refuses a consumer with 403 after authenticating it, without calling an upstream.
        for key in consumer_keys.values():
            reply = post_json(base, "/key/generate", {}, {"Authorization": f"Bearer {key}"}, timeout=10)
            assert reply.status == 403, reply
        # Offline as on the tasks: no price map, tokenizer or provider was fetched (DNS fails outside loopback).
        log.flush()
        text = (tmp_path / "proxy.log").read_text(errors="replace")
        assert not [s for s in ("Name or service not known", "Temporary failure in name resolution",
                                "huggingface.co", "raw.githubusercontent.com") if s in text], text[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
