"""SageMakerEndpoint under the recording mocks: what it registers, how it is wired, and what it refuses."""

from __future__ import annotations

import json
from functools import lru_cache

import pulumi
import pytest
import yaml

from components.sagemaker_endpoint import SageMakerEndpoint, SageMakerEndpointArgs
from components.versions import VERSIONS
from conftest import ROOT
from preview.harness import run_preview, run_program
from preview.mocks import ACCOUNT_ID

REGION = "us-east-1"
ENDPOINT = "llm-hosting-test"
LOG_GROUP = f"/aws/sagemaker/Endpoints/{ENDPOINT}"
BASE = dict(
    stack="test", region=REGION, model_id="meta-llama/Llama-3.1-70B-Instruct",
    image_uri=VERSIONS.sagemaker_image(REGION, None),
    weights_uri="s3://llm-weights-use1/llama-3.1-70b-instruct/", instance_type="ml.g6e.12xlarge",
    gpus_per_replica=4, precision="fp8", max_context_tokens=32768, min_instances=2, max_instances=6,
    target_invocations_per_instance=12.5, startup_timeout_seconds=1500, download_timeout_seconds=1200,
    subnet_ids=["subnet-0aaa", "subnet-0bbb"], security_group_ids=["sg-0ccc"],
)
MODEL = "aws:sagemaker/model:Model"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT_TYPE = "aws:sagemaker/endpoint:Endpoint"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def make_args(**overrides) -> SageMakerEndpointArgs:
    return SageMakerEndpointArgs(**{**BASE, **overrides})


@lru_cache(maxsize=None)
def _run(overrides: tuple):
    holder = {}

    def program():
        ep = SageMakerEndpoint("llm", make_args(**dict(overrides)))
        holder["component"] = ep
        for key in ("endpoint_name", "endpoint_arn", "execution_role_arn", "kms_key_arn", "model_name",
                    "endpoint_config_name"):
            pulumi.export(key, getattr(ep, key))
        pulumi.export("endpoint_url", ep.contract.endpoint_url)
        pulumi.export("api_key_secret", ep.contract.api_key_secret)
        pulumi.export("model", ep.contract.model)
        pulumi.export("tier", ep.contract.tier)

    result = run_program(program, "llm-hosting", "test", {"aws:region": REGION})
    return result, holder["component"]


def run(**overrides):
    return _run(tuple(sorted(overrides.items())))[0]


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def policy_statements(result) -> dict:
    policy = json.loads(one(result, "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def as_list(value):
    return value if isinstance(value, list) else [value]


def environment(result) -> dict:
    return one(result, MODEL).inputs["primaryContainer"]["environment"]


# -- wiring ------------------------------------------------------------------------------------------------------

def test_endpoint_config_serves_the_model():
    result = run()
    variants = one(result, CONFIG).inputs["productionVariants"]
    assert [v["modelName"] for v in variants] == [result.outputs["model_name"]]


def test_endpoint_uses_the_endpoint_config():
    result = run()
    assert one(result, ENDPOINT_TYPE).inputs["endpointConfigName"] == result.outputs["endpoint_config_name"]


def test_endpoint_has_the_fixed_name_the_alarms_use():
    endpoint = one(run(), ENDPOINT_TYPE)
    assert endpoint.inputs["name"] == ENDPOINT


def test_every_resource_is_a_child_of_the_component():
    result = run()
    top = result.named("llm")
    assert top.type == "llmhost:index:SageMakerEndpoint" and top.parent is None
    assert all(r.parent is not None for r in result.resources if r.custom)


# -- model -------------------------------------------------------------------------------------------------------

def test_image_is_in_the_stacks_region():
    image = one(run(), MODEL).inputs["primaryContainer"]["image"]
    assert image == VERSIONS.sagemaker_image(REGION, None)
    assert f".dkr.ecr.{REGION}.amazonaws.com/" in image


def test_weights_come_uncompressed_from_the_s3_prefix():
    source = one(run(), MODEL).inputs["primaryContainer"]["modelDataSource"]
    assert source["s3DataSources"] == [{"s3Uri": BASE["weights_uri"], "s3DataType": "S3Prefix",
                                        "compressionType": "None"}]
    assert "modelDataUrl" not in one(run(), MODEL).inputs["primaryContainer"]


def test_vpc_config_has_the_given_subnets_and_security_groups():
    vpc = one(run(), MODEL).inputs["vpcConfig"]
    assert vpc == {"subnets": BASE["subnet_ids"], "securityGroupIds": BASE["security_group_ids"]}


def test_network_isolation_is_on():
    assert one(run(), MODEL).inputs["enableNetworkIsolation"] is True


def test_model_runs_with_the_execution_role():
    result = run()
    assert one(result, MODEL).inputs["executionRoleArn"] == result.outputs["execution_role_arn"]


def test_lmi_vllm_environment():
    env = environment(run())
    assert env["OPTION_ROLLING_BATCH"] == "disable" and env["OPTION_ASYNC_MODE"] == "true"
    assert env["OPTION_ENTRYPOINT"] == "djl_python.lmi_vllm.vllm_async_service"
    assert env["TENSOR_PARALLEL_DEGREE"] == "4"
    assert env["OPTION_MAX_MODEL_LEN"] == "32768"
    assert env["OPTION_MODEL_ID"] == "/opt/ml/model"
    assert env["OPTION_SERVED_MODEL_NAME"] == BASE["model_id"]


def test_fp8_quantises_the_16_bit_weights_and_the_kv_cache_at_load():
    env = environment(run())
    assert env["OPTION_QUANTIZE"] == "fp8" and env["OPTION_KV_CACHE_DTYPE"] == "fp8"


def test_fp16_loads_the_weights_as_they_are():
    env = environment(run(precision="fp16"))
    assert "OPTION_QUANTIZE" not in env and "OPTION_KV_CACHE_DTYPE" not in env


def test_healthcare_stack_serves_fp8_on_every_gpu_of_the_instance(catalog):
    """The plan's precision and the instance's GPU count reach the container: 70B at fp8 sharded over 4 x L40S."""
    managed = yaml.safe_load((ROOT / "stacks/Pulumi.healthcare-hipaa.yaml").read_text())["config"]["llm-hosting:managed"]
    env = environment(run_preview(ROOT, "healthcare-hipaa"))
    gpus = catalog.instance_shapes.aws[managed["instanceType"].removeprefix("ml.")].gpu_count
    assert (managed["instanceType"], managed["precision"], gpus) == ("ml.g6e.12xlarge", "fp8", 4)
    assert env["TENSOR_PARALLEL_DEGREE"] == str(gpus)
    assert env["OPTION_QUANTIZE"] == "fp8" and env["OPTION_KV_CACHE_DTYPE"] == "fp8"


def test_airgapped_sets_offline_flags():
    env = environment(run(airgapped=True))
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"


def test_not_airgapped_leaves_offline_flags_unset():
    env = environment(run())
    assert "HF_HUB_OFFLINE" not in env and "TRANSFORMERS_OFFLINE" not in env


def test_airgapped_accepts_an_in_account_mirror():
    mirror = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/mirror"
    image = one(run(airgapped=True, image_uri=VERSIONS.sagemaker_image(REGION, mirror)), MODEL)
    assert image.inputs["primaryContainer"]["image"].startswith(mirror + "/djl-inference:")


# -- endpoint config and scaling ------------------------------------------------------------------------------------

def test_initial_instance_count_is_min_instances():
    (variant,) = one(run(), CONFIG).inputs["productionVariants"]
    assert variant["initialInstanceCount"] == 2
    assert variant["variantName"] == "primary" and variant["instanceType"] == "ml.g6e.12xlarge"


def test_scalable_target_has_min_and_max():
    target = one(run(), "aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    assert target["serviceNamespace"] == "sagemaker"
    assert target["resourceId"] == f"endpoint/{ENDPOINT}/variant/primary"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"


def test_health_check_and_download_timeouts_pass_through():
    (variant,) = one(run(), CONFIG).inputs["productionVariants"]
    assert variant["containerStartupHealthCheckTimeoutInSeconds"] == 1500
    assert variant["modelDataDownloadTimeoutInSeconds"] == 1200


def test_target_tracking_on_invocations_per_instance():
    policy = one(run(), "aws:appautoscaling/policy:Policy").inputs
    assert policy["policyType"] == "TargetTrackingScaling"
    assert policy["resourceId"] == f"endpoint/{ENDPOINT}/variant/primary"
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["targetValue"] == 12.5


def test_scale_in_is_slower_than_scale_out():
    tracking = one(run(), "aws:appautoscaling/policy:Policy").inputs["targetTrackingScalingPolicyConfiguration"]
    assert tracking["scaleInCooldown"] > tracking["scaleOutCooldown"]


# -- deployment guardrails ---------------------------------------------------------------------------------------

def test_blue_green_canary_with_rollback_on_both_alarms():
    result = run()
    deployment = one(result, ENDPOINT_TYPE).inputs["deploymentConfig"]
    policy = deployment["blueGreenUpdatePolicy"]
    routing = policy["trafficRoutingConfiguration"]
    assert routing["type"] == "CANARY"
    assert routing["canarySize"] == {"type": "INSTANCE_COUNT", "value": 1}  # <= 50% of a 2-instance fleet
    assert routing["waitIntervalInSeconds"] > 0
    assert policy["terminationWaitInSeconds"] > 0
    # Long enough to download and load the model on the green fleet, within SageMaker's 600..14400 s.
    assert 1200 + 1500 < policy["maximumExecutionTimeoutInSeconds"] <= 14400
    alarms = {a["alarmName"] for a in deployment["autoRollbackConfiguration"]["alarms"]}
    assert alarms == {r.inputs["name"] for r in result.by_type(ALARM)}
    assert len(alarms) == 2


def test_single_instance_shifts_all_at_once():
    routing = one(run(min_instances=1, max_instances=2, allow_single_instance=True), ENDPOINT_TYPE).inputs[
        "deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing["type"] == "ALL_AT_ONCE" and "canarySize" not in routing


def test_alarms_watch_the_primary_variant():
    alarms = run().by_type(ALARM)
    for alarm in alarms:
        assert alarm.inputs["namespace"] == "AWS/SageMaker"
        assert alarm.inputs["dimensions"] == {"EndpointName": ENDPOINT, "VariantName": "primary"}
    assert {a.inputs["metricName"] for a in alarms} == {"Invocation5XXErrors", "ModelLatency"}


def test_5xx_alarm_fires_on_any_error_for_two_minutes():
    alarm = next(a.inputs for a in run().by_type(ALARM) if a.inputs["metricName"] == "Invocation5XXErrors")
    assert (alarm["statistic"], alarm["period"], alarm["threshold"]) == ("Sum", 60, 0)
    assert alarm["comparisonOperator"] == "GreaterThanThreshold"
    assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == 2


def test_latency_alarm_is_p95_in_microseconds():
    alarm = next(a.inputs for a in run(latency_alarm_ms=20000).by_type(ALARM) if a.inputs["metricName"] == "ModelLatency")
    assert alarm["extendedStatistic"] == "p95" and "statistic" not in alarm
    assert alarm["threshold"] == 20000 * 1000
    assert alarm["comparisonOperator"] == "GreaterThanThreshold"


# -- alerting ------------------------------------------------------------------------------------------------------

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:llm-hosting-test-alerts"


def alarms_by_name(result) -> dict:
    return {a.inputs["name"]: a.inputs for a in result.by_type(ALARM)}


def test_without_a_topic_the_alarms_only_guard_deployments():
    alarms = alarms_by_name(run())
    assert sorted(alarms) == [f"{ENDPOINT}-invocation-5xx", f"{ENDPOINT}-p95-model-latency"]
    for alarm in alarms.values():
        assert not alarm.get("alarmActions") and not alarm.get("okActions")


def test_with_a_topic_every_alarm_notifies_it_on_alarm_and_on_recovery():
    alarms = alarms_by_name(run(alarm_topic_arn=TOPIC, latency_sla_ms=4000))
    assert sorted(alarms) == sorted([f"{ENDPOINT}-invocation-5xx", f"{ENDPOINT}-p95-model-latency",
                                     f"{ENDPOINT}-p95-latency-above-sla", f"{ENDPOINT}-instances-at-maximum"])
    for name, alarm in alarms.items():
        assert alarm["alarmActions"] == [TOPIC] and alarm["okActions"] == [TOPIC], name


def test_only_the_two_guard_alarms_roll_back_a_deployment():
    result = run(alarm_topic_arn=TOPIC, latency_sla_ms=4000)
    rollback = one(result, ENDPOINT_TYPE).inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    assert sorted(a["alarmName"] for a in rollback) == [f"{ENDPOINT}-invocation-5xx", f"{ENDPOINT}-p95-model-latency"]


def test_instances_at_maximum_alarm_derives_the_count_from_invocations():
    alarm = alarms_by_name(run(alarm_topic_arn=TOPIC))[f"{ENDPOINT}-instances-at-maximum"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    [returned] = [q for q in queries.values() if q.get("returnData")]
    assert returned["expression"] == "IF(perinstance > 0, invocations / perinstance, 0)"
    for id_, metric_name in (("invocations", "Invocations"), ("perinstance", "InvocationsPerInstance")):
        metric = queries[id_]["metric"]
        assert (metric["namespace"], metric["metricName"], metric["stat"]) == ("AWS/SageMaker", metric_name, "Sum")
        assert metric["dimensions"] == {"EndpointName": ENDPOINT, "VariantName": "primary"}
        assert metric["period"] == 300
    # max_instances is 6: 6 instances alarm, 5 do not.
    assert alarm["comparisonOperator"] == "GreaterThanThreshold" and 5 < alarm["threshold"] < 6
    assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == 3
    assert alarm["treatMissingData"] == "notBreaching"


def test_a_fleet_pinned_by_design_has_no_at_maximum_alarm():
    alarms = alarms_by_name(run(alarm_topic_arn=TOPIC, min_instances=3, max_instances=3))
    assert f"{ENDPOINT}-instances-at-maximum" not in alarms


def test_latency_sla_alarm_is_p95_over_five_minutes_in_microseconds():
    alarm = alarms_by_name(run(latency_sla_ms=4000))[f"{ENDPOINT}-p95-latency-above-sla"]
    assert (alarm["metricName"], alarm["extendedStatistic"], alarm["period"]) == ("ModelLatency", "p95", 60)
    assert alarm["threshold"] == 4000 * 1000
    assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == 5
    assert not alarm.get("alarmActions")  # no topic given: visible in the console only


def test_target_tracking_on_concurrency_when_asked():
    policy = one(run(target_concurrent_requests_per_instance=8.0), "aws:appautoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == \
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    assert tracking["targetValue"] == 8.0
    assert policy["name"] == f"{ENDPOINT}-concurrent-requests-per-model"
    assert tracking["scaleInCooldown"] > tracking["scaleOutCooldown"]


def test_dashboard_shows_traffic_latency_concurrency_instances_and_gpus():
    assert not run().by_type("aws:cloudwatch/dashboard:Dashboard")
    dashboard = one(run(dashboard=True), "aws:cloudwatch/dashboard:Dashboard").inputs
    assert dashboard["dashboardName"] == ENDPOINT
    widgets = json.loads(dashboard["dashboardBody"])["widgets"]
    shown = {(m[0], m[1]) for w in widgets for m in w["properties"]["metrics"] if isinstance(m[0], str)}
    assert {("AWS/SageMaker", n) for n in ("Invocations", "Invocation5XXErrors", "ModelLatency",
                                           "ConcurrentRequestsPerModel", "InvocationsPerInstance")} <= shown
    assert {("/aws/sagemaker/Endpoints", "GPUUtilization"), ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization")} <= shown
    stats = {m[-1].get("stat") for w in widgets for m in w["properties"]["metrics"]
             if isinstance(m[0], str) and m[1] == "ModelLatency"}
    assert stats == {"p50", "p95"}
    for w in widgets:
        assert w["properties"]["region"] == REGION
        for m in w["properties"]["metrics"]:
            if isinstance(m[0], str):
                assert m[2:6] == ["EndpointName", ENDPOINT, "VariantName", "primary"], m


# -- encryption ----------------------------------------------------------------------------------------------------

def test_instance_store_family_gets_no_endpoint_config_key():
    result, component = _run(())
    assert "kmsKeyArn" not in one(result, CONFIG).inputs
    assert component.endpoint_config_kms == "instance-store-hardware"


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.c5.xlarge"])
def test_ebs_only_family_gets_the_cmk_on_the_endpoint_config(instance_type):
    result, component = _run((("instance_type", instance_type),))
    assert one(result, CONFIG).inputs["kmsKeyArn"] == result.outputs["kms_key_arn"]
    assert component.endpoint_config_kms == "cmk"


def test_log_group_is_precreated_with_the_cmk():
    result = run()
    group = one(result, "aws:cloudwatch/logGroup:LogGroup").inputs
    assert group["name"] == LOG_GROUP
    assert group["kmsKeyId"] == result.outputs["kms_key_arn"]
    assert group["retentionInDays"] == 365


def test_key_lets_cloudwatch_logs_use_it():
    key = one(run(), "aws:kms/key:Key").inputs
    principals = [s["Principal"] for s in json.loads(key["policy"])["Statement"]]
    assert {"Service": f"logs.{REGION}.amazonaws.com"} in principals


def test_key_has_the_sagemaker_alias():
    assert one(run(), "aws:kms/alias:Alias").inputs["name"] == "alias/llm-hosting-test-sagemaker"


@pytest.mark.parametrize("type_", ["aws:kms/key:Key", "aws:cloudwatch/logGroup:LogGroup", ENDPOINT_TYPE])
def test_stateful_resources_are_protected(type_):
    assert one(run(), type_).options.get("protect") is True


# -- execution role ------------------------------------------------------------------------------------------------

def test_role_trusts_only_sagemaker_for_this_account():
    trust = json.loads(one(run(), "aws:iam/role:Role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


def test_role_has_no_managed_policies():
    result = run()
    assert result.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []
    assert result.by_type("aws:iam/policyAttachment:PolicyAttachment") == []
    assert "managedPolicyArns" not in one(result, "aws:iam/role:Role").inputs
    assert "FullAccess" not in json.dumps([r.inputs for r in result.resources])


def test_s3_statements_are_scoped_to_the_weights_prefix():
    statements = policy_statements(run())
    s3 = [s for s in statements.values() if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    by_action = {a: s for s in s3 for a in as_list(s["Action"])}
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket"}
    assert by_action["s3:GetObject"]["Resource"] == "arn:aws:s3:::llm-weights-use1/llama-3.1-70b-instruct/*"
    listing = by_action["s3:ListBucket"]
    assert listing["Resource"] == "arn:aws:s3:::llm-weights-use1"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["llama-3.1-70b-instruct/*"]}}


def test_kms_statement_names_only_its_key():
    result = run()
    kms = [s for s in policy_statements(result).values() if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert len(kms) == 1
    assert set(as_list(kms[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert as_list(kms[0]["Resource"]) == [result.outputs["kms_key_arn"]]


def test_logs_statement_names_only_its_log_group():
    logs = [s for s in policy_statements(run()).values() if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert len(logs) == 1
    assert set(as_list(logs[0]["Action"])) == {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
    assert set(as_list(logs[0]["Resource"])) == {group_arn, f"{group_arn}:log-stream:*"}


def test_ecr_pull_is_scoped_to_the_image_repository():
    statements = policy_statements(run())
    pull = next(s for s in statements.values() if "ecr:BatchGetImage" in as_list(s["Action"]))
    assert set(as_list(pull["Action"])) == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert pull["Resource"] == f"arn:aws:ecr:{REGION}:763104351884:repository/djl-inference"


def test_ecr_pull_follows_a_mirror_repository():
    mirror = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/llm/mirror"
    statements = policy_statements(run(airgapped=True, image_uri=VERSIONS.sagemaker_image(REGION, mirror)))
    pull = next(s for s in statements.values() if "ecr:BatchGetImage" in as_list(s["Action"]))
    assert pull["Resource"] == f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/llm/mirror/djl-inference"


def test_vpc_network_interface_actions_are_granted():
    statements = policy_statements(run())
    actions = {a for s in statements.values() for a in as_list(s["Action"]) if a.startswith("ec2:")}
    assert actions == {"ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                       "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                       "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                       "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"}
    create = next(s for s in statements.values() if as_list(s["Action"]) == ["ec2:CreateNetworkInterface"])
    ec2 = f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}"
    assert set(as_list(create["Resource"])) == {f"{ec2}:network-interface/*", f"{ec2}:subnet/subnet-0aaa",
                                                f"{ec2}:subnet/subnet-0bbb", f"{ec2}:security-group/sg-0ccc"}


def test_only_actions_aws_grants_on_star_use_star():
    statements = policy_statements(run())
    star = {a for s in statements.values() if "*" in as_list(s["Resource"]) for a in as_list(s["Action"])}
    assert star == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"}


def test_put_metric_data_is_limited_by_namespace():
    metrics = next(s for s in policy_statements(run()).values() if s["Action"] == "cloudwatch:PutMetricData")
    assert list(metrics["Condition"]["StringEquals"]) == ["cloudwatch:namespace"]


# -- contract ------------------------------------------------------------------------------------------------------

def test_contract_is_the_invocation_url_with_iam_auth():
    outputs = run().outputs
    assert outputs["endpoint_url"] == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/{ENDPOINT}/invocations"
    assert outputs["api_key_secret"] == "aws-sigv4 (IAM sagemaker:InvokeEndpoint)"
    assert (outputs["model"], outputs["tier"]) == (BASE["model_id"], "managed")
    assert outputs["endpoint_name"] == ENDPOINT
    assert outputs["endpoint_arn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:endpoint/{ENDPOINT}"


# -- refusals ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"airgapped": True, "image_uri": "docker.io/vllm/vllm-openai:v0.11.0"}, "image_uri"),
    ({"airgapped": True, "image_uri": "public.ecr.aws/deep-learning-containers/djl-inference:latest"}, "image_uri"),
    ({"airgapped": True, "image_uri": VERSIONS.sagemaker_image("us-west-2", None)}, "image_uri"),
    ({"image_uri": "docker.io/vllm/vllm-openai:v0.11.0"}, "image_uri"),
    ({"min_instances": 1}, "min_instances"),
    ({"min_instances": 3, "max_instances": 2}, "max_instances"),
    ({"weights_uri": "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct"}, "weights_uri"),
    ({"weights_uri": "s3://llm-weights-use1/llama-3.1-70b-instruct"}, "weights_uri"),
    ({"instance_type": "g6e.12xlarge"}, "instance_type"),
    ({"startup_timeout_seconds": 3601}, "startup_timeout_seconds"),
    ({"download_timeout_seconds": 59}, "download_timeout_seconds"),
    ({"gpus_per_replica": 2}, "gpus_per_replica"),  # half of an ml.g6e.12xlarge would sit idle
    ({"precision": "int4"}, "precision"),
    ({"target_concurrent_requests_per_instance": 0}, "target_concurrent_requests_per_instance"),
    ({"latency_sla_ms": 0}, "latency_sla_ms"),
])
def test_refusals_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        make_args(**overrides)


def test_airgapped_refusal_explains_what_is_valid():
    with pytest.raises(ValueError) as exc:
        make_args(airgapped=True, image_uri=VERSIONS.sagemaker_image("eu-west-1", None))
    assert f"dkr.ecr.{REGION}.amazonaws.com" in str(exc.value)


def test_single_instance_only_when_explicitly_allowed():
    args = make_args(min_instances=1, max_instances=2, allow_single_instance=True)
    assert args.min_instances == 1
