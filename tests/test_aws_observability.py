"""The AWS side of autoscaling, alerting and logs under the recording mocks.

AwsAlertTopic (the SNS topic alarms publish to), ClusterAutoscaler (cluster-autoscaler for the EKS managed node
groups), EksContainerLogs (the CloudWatch observability add-on and its log groups) and the statements form of
EksPodIdentity that the last two use. The chart values are read against the chart's own values.yaml.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pulumi
import pytest
import yaml

from components import aws_alert_topic
from components.aws_alert_topic import AwsAlertTopic, AwsAlertTopicArgs
from components.aws_kms_key import key_policy
from components.cluster_autoscaler import (
    ON_DEMAND_PRIORITY, SPOT_PRIORITY, ClusterAutoscaler, ClusterAutoscalerArgs,
)
from components.eks_container_logs import ADDON_VERSION, LOG_KINDS, EksContainerLogs, EksContainerLogsArgs
from components.eks_pod_identity import EksPodIdentity, EksPodIdentityArgs
from components.node_labels import system_node_labels
from components.versions import VERSIONS, chart_source
from policies.rules.links.node_pools_scaled import SCALERS
from preview.harness import run_program
from preview.mocks import ACCOUNT_ID

ROOT = Path(__file__).resolve().parent.parent
CHART_VALUES = ROOT.parent / "shared" / "schemas" / "cluster-autoscaler" / "chart" / "values.yaml"
PROJECT, STACK, REGION = "llm-hosting", "test", "eu-central-1"
CLUSTER = f"llm-hosting-{STACK}"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/11111111-2222-3333-4444-555555555555"
MIRROR = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/llm-mirror"
SYSTEM = system_node_labels("system")

RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ADDON = "aws:eks/addon:Addon"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(result, name: str) -> list[dict]:
    return json.loads(result.named(name).inputs["policy"])["Statement"]


# -- AwsAlertTopic --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def topic_run(protect: bool = True):
    def program():
        topic = AwsAlertTopic("alerts", AwsAlertTopicArgs(stack=STACK, protect=protect, tags={"team": "ml"}))
        pulumi.export("topic_arn", topic.topic_arn)
        pulumi.export("kms_key_arn", topic.kms_key_arn)

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def test_alert_topic_has_the_stack_name_and_is_encrypted_with_its_own_key():
    result = topic_run()
    topic = one(result, "aws:sns/topic:Topic")
    assert topic.inputs["name"] == "llm-hosting-test-alerts"
    assert topic.inputs["kmsMasterKeyId"] == result.outputs["kms_key_arn"]
    assert result.outputs["kms_key_arn"].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/")
    assert result.named("alerts-cmk-alias").inputs["name"] == "alias/llm-hosting-test-alerts"
    assert topic.inputs["tags"] == {"team": "ml"}


def test_alert_key_lets_cloudwatch_and_budgets_make_data_keys_and_nothing_more():
    result = topic_run()
    key = one(result, "aws:kms/key:Key")
    assert key.options.get("protect") is True and key.inputs["enableKeyRotation"] is True
    policy = json.loads(key.inputs["policy"])["Statement"]
    services = [s for s in policy if "Service" in s["Principal"]]
    assert len(services) == 1
    [grant] = services
    assert sorted(as_list(grant["Principal"]["Service"])) == ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]
    assert sorted(as_list(grant["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_topic_policy_lets_only_this_accounts_alarms_and_budgets_publish():
    result = topic_run()
    topic_arn = result.outputs["topic_arn"]
    policy = json.loads(one(result, "aws:sns/topicPolicy:TopicPolicy").inputs["policy"])["Statement"]
    assert one(result, "aws:sns/topicPolicy:TopicPolicy").inputs["arn"] == topic_arn
    allows = {s["Sid"]: s for s in policy if s["Effect"] == "Allow"}
    assert set(allows) == {"CloudWatchAlarmsOfThisAccount", "BudgetsOfThisAccount"}
    assert allows["BudgetsOfThisAccount"]["Principal"] == {"Service": "budgets.amazonaws.com"}
    assert allows["BudgetsOfThisAccount"]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{ACCOUNT_ID}:*"}}
    allow = allows["CloudWatchAlarmsOfThisAccount"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == topic_arn
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    [deny] = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alert_topic_leaves_subscriptions_to_the_team_and_says_how():
    result = topic_run()
    assert not result.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert "aws sns subscribe" in aws_alert_topic.__doc__


def test_alert_key_protection_follows_the_argument():
    assert "protect" not in one(topic_run(protect=False), "aws:kms/key:Key").options


def test_other_keys_grant_no_service_publishing_rights():
    assert not [s for s in key_policy(ACCOUNT_ID, "aws", REGION, True)["Statement"]
                if s["Sid"] == "AllowServicesToPublishEncrypted"]


# -- EksPodIdentity with statements --------------------------------------------------------------------------------

STATEMENT = {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}


@lru_cache(maxsize=None)
def identity_run(weights: bool, with_statements: bool):
    def program():
        EksPodIdentity("id", EksPodIdentityArgs(
            stack=STACK, cluster_name=CLUSTER, namespace="ns", service_account="sa",
            weights_uri="s3://weights/llama/" if weights else None,
            statements=[STATEMENT] if with_statements else []))

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def test_weights_only_role_keeps_its_single_weights_policy():
    result = identity_run(True, False)
    assert [r.name for r in result.by_type(ROLE_POLICY)] == ["id-weights"]
    assert {s["Sid"] for s in statements(result, "id-weights")} == {"ReadWeights", "ListWeights"}


def test_statements_go_into_their_own_policy_and_the_association_waits_for_them():
    result = identity_run(False, True)
    assert [r.name for r in result.by_type(ROLE_POLICY)] == ["id-policy"]
    assert statements(result, "id-policy") == [STATEMENT]
    assert result.named("id-policy").urn in result.named("id-association").dependencies


def test_weights_and_statements_together_make_two_policies():
    result = identity_run(True, True)
    assert sorted(r.name for r in result.by_type(ROLE_POLICY)) == ["id-policy", "id-weights"]


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"^statements: a Pod Identity role needs"),
    ({"statements": [{"Effect": "Allow", "Action": "s3:GetObject"}]}, r"^statements\[0\]: "),
    ({"statements": [{"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]}, r"^statements\[0\]: "),
    ({"weights_uri": "https://example.com/w/"}, r"^weights_uri: "),
])
def test_pod_identity_refuses_a_role_without_clear_permissions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EksPodIdentityArgs(stack=STACK, cluster_name=CLUSTER, namespace="ns", service_account="sa", **kwargs)


# -- ClusterAutoscaler ----------------------------------------------------------------------------------------------

def ca_args(**overrides) -> ClusterAutoscalerArgs:
    base = dict(stack=STACK, cluster_name=CLUSTER, region=REGION, node_selector=SYSTEM,
                spot_node_groups=["gpu-spot"], on_demand_node_groups=["gpu-on-demand"])
    return ClusterAutoscalerArgs(**{**base, **overrides})


@lru_cache(maxsize=None)
def ca_run(registry=None):
    def program():
        ca = ClusterAutoscaler("ca", ca_args(registry=registry))
        pulumi.export("role_arn", ca.role_arn)

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def values(registry=None) -> dict:
    return one(ca_run(registry), RELEASE).inputs["values"]


@lru_cache(maxsize=None)
def chart_defaults() -> dict:
    return yaml.safe_load(CHART_VALUES.read_text())


def test_release_is_the_pinned_public_chart_in_kube_system():
    release = one(ca_run(), RELEASE).inputs
    assert (release["chart"], release["version"]) == ("cluster-autoscaler", VERSIONS.cluster_autoscaler_chart)
    assert release["repositoryOpts"]["repo"] == "https://kubernetes.github.io/autoscaler"
    assert release["namespace"] == "kube-system"
    assert SCALERS.search(release["name"]) and SCALERS.search(release["chart"])  # what LNK-003 looks for
    assert values()["image"] == {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler",
                                 "tag": VERSIONS.cluster_autoscaler_tag}


def test_airgapped_release_takes_chart_and_image_from_the_registry():
    release = one(ca_run(MIRROR), RELEASE).inputs
    assert release["chart"] == chart_source("cluster-autoscaler", VERSIONS.cluster_autoscaler_chart, MIRROR).chart
    assert release["chart"] == f"oci://{MIRROR}/charts/cluster-autoscaler"
    assert "repositoryOpts" not in release or not release["repositoryOpts"].get("repo")
    assert values(MIRROR)["image"]["repository"] == f"{MIRROR}/cluster-autoscaler"


def test_image_minor_is_the_clusters_kubernetes_minor():
    tag = values()["image"]["tag"]
    assert re.match(rf"^v{re.escape(VERSIONS.eks_version)}\.\d+$", tag)


def test_version_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"^versions.cluster_autoscaler_tag: v1.35.0 does not match"):
        ca_args(versions=replace(VERSIONS, cluster_autoscaler_tag="v1.35.0"))


def _missing_keys(given, default, path=""):
    """Keys of `given` the chart's values.yaml does not have, descending into mappings it spells out."""
    if not isinstance(given, dict):
        return []
    missing = []
    for key, value in given.items():
        where = f"{path}.{key}" if path else key
        if not isinstance(default, dict) or key not in default:
            missing.append(where)
        elif isinstance(default[key], dict) and default[key] and key not in OPEN_MAPS:
            missing += _missing_keys(value, default[key], where)
    return missing


# Mappings whose keys are the user's: labels, resources, the autoscaler's own flags, priority levels.
OPEN_MAPS = {"nodeSelector", "resources", "extraArgs", "expanderPriorities"}


def test_every_chart_value_key_exists_in_the_charts_values_yaml():
    assert _missing_keys(values(), chart_defaults()) == []
    assert _missing_keys(values(MIRROR), chart_defaults()) == []


def test_every_extra_arg_is_an_autoscaler_flag_the_chart_documents():
    text = CHART_VALUES.read_text()
    block = text[text.index("\nextraArgs:"):text.index("\ncustomArgs:")]
    documented = set(re.findall(r"^\s+#?\s*([a-z][a-z0-9-]+):", block, flags=re.M))
    assert set(values()["extraArgs"]) <= documented


def test_auto_discovery_finds_the_tags_eks_puts_on_this_clusters_groups():
    v = values()
    assert v["cloudProvider"] == "aws" and v["awsRegion"] == REGION
    assert v["autoDiscovery"] == {"clusterName": CLUSTER}
    # The chart's default tags (not overridden) are exactly the two EKS sets on managed node group ASGs.
    assert "tags" not in v["autoDiscovery"]
    assert chart_defaults()["autoDiscovery"]["tags"] == [
        "k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/{{ .Values.autoDiscovery.clusterName }}"]


def _priority_of(asg_name: str) -> int:
    priorities = values()["expanderPriorities"]
    matched = [int(level) for level, patterns in priorities.items() if any(re.search(p, asg_name) for p in patterns)]
    return max(matched)


def test_priority_expander_prefers_spot_then_on_demand_then_anything_else():
    v = values()
    assert v["extraArgs"]["expander"] == "priority"
    spot = _priority_of("eks-gpu-spot-4ec6b1c2-1f3a-4b8d-9e0f-1234567890ab")
    on_demand = _priority_of("eks-gpu-on-demand-7d1e2f3a-aaaa-bbbb-cccc-1234567890ab")
    system = _priority_of("eks-system-0a1b2c3d-aaaa-bbbb-cccc-1234567890ab")
    assert (spot, on_demand) == (SPOT_PRIORITY, ON_DEMAND_PRIORITY)
    assert spot > on_demand > system


def test_spot_pattern_does_not_catch_a_similarly_named_group():
    assert _priority_of("eks-gpu-spot2-4ec6b1c2") != SPOT_PRIORITY


def _minutes(duration: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", duration):
        total += float(number) * {"h": 60, "m": 1, "s": 1 / 60}[unit]
    return total


def test_spot_shortage_falls_back_and_idle_gpu_nodes_go_in_ten_to_fifteen_minutes():
    flags = values()["extraArgs"]
    assert 5 <= _minutes(flags["max-node-provision-time"]) <= 15  # give up on spot, try on-demand
    assert 5 <= _minutes(flags["scale-down-unneeded-time"]) <= 15
    assert flags["skip-nodes-with-local-storage"] is False  # emptyDir model caches do not pin nodes
    assert flags["balance-similar-node-groups"] is True
    # A node whose GPUs are requested (a loading or serving replica) is far above the threshold.
    assert 0 < flags["scale-down-utilization-threshold"] < 1


def test_autoscaler_runs_on_the_system_pool_under_the_associated_service_account():
    v = values()
    assert v["nodeSelector"] == SYSTEM == {"llm-hosting/pool": "system"}
    association = one(ca_run(), ASSOCIATION).inputs
    assert (association["namespace"], association["serviceAccount"]) == ("kube-system", v["rbac"]["serviceAccount"]["name"])
    assert association["clusterName"] == CLUSTER
    result = ca_run()
    assert one(result, ASSOCIATION).urn in one(result, RELEASE).dependencies


def test_autoscaler_role_scales_only_this_clusters_groups():
    result = ca_run()
    by_sid = {s["Sid"]: s for s in statements(result, "ca-identity-policy")}
    scale = by_sid["ScaleThisClustersGroups"]
    assert sorted(as_list(scale["Action"])) == ["autoscaling:SetDesiredCapacity",
                                                "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{CLUSTER}": "owned"}}
    assert scale["Resource"].startswith(f"arn:aws:autoscaling:{REGION}:{ACCOUNT_ID}:autoScalingGroup:")
    nodegroups = by_sid["ReadThisClustersNodegroups"]
    assert nodegroups["Action"] == "eks:DescribeNodegroup"
    assert nodegroups["Resource"] == f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:nodegroup/{CLUSTER}/*/*"
    assert fnmatch.fnmatch(f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:nodegroup/{CLUSTER}/gpu-spot/0a1b-2c3d", nodegroups["Resource"])
    assert not fnmatch.fnmatch(f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:nodegroup/other/gpu-spot/0a1b", nodegroups["Resource"])
    # "*" only for actions that have no resource-level permissions.
    for s in by_sid.values():
        if "*" in as_list(s["Resource"]):
            assert all(re.match(r"^[a-z0-9]+:(Describe|Get)", a) for a in as_list(s["Action"])), s
    assert not result.by_type(ATTACHMENT)  # no managed policies


@pytest.mark.parametrize("overrides, field", [
    ({"spot_node_groups": [], "on_demand_node_groups": []}, "spot_node_groups/on_demand_node_groups"),
    ({"spot_node_groups": ["gpu spot"]}, "node groups"),
    ({"spot_node_groups": ["gpu"], "on_demand_node_groups": ["gpu"]}, "node groups"),
    ({"node_selector": {}}, "node_selector"),
    ({"scale_down_utilization_threshold": 0}, "scale_down_utilization_threshold"),
    ({"replicas": 0}, "replicas"),
])
def test_autoscaler_refusals_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}: "):
        ca_args(**overrides)


# -- EksContainerLogs -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def logs_run(retention_days: int = 365, protect: bool = True):
    def program():
        logs = EksContainerLogs("container-logs", EksContainerLogsArgs(
            stack=STACK, cluster_name=CLUSTER, region=REGION, kms_key_arn=KEY, retention_days=retention_days,
            protect=protect))
        pulumi.export("log_group_arns", logs.log_group_arns)

    return run_program(program, PROJECT, STACK, {"aws:region": REGION})


def group_names(result) -> list[str]:
    return sorted(g.inputs["name"] for g in result.by_type(LOG_GROUP))


def test_the_four_container_insights_groups_exist_first_with_the_key_and_retention():
    result = logs_run()
    assert group_names(result) == sorted(f"/aws/containerinsights/{CLUSTER}/{k}" for k in
                                         ("application", "dataplane", "host", "performance"))
    for group in result.by_type(LOG_GROUP):
        assert group.inputs["kmsKeyId"] == KEY
        assert group.inputs["retentionInDays"] == 365
        assert group.inputs["deletionProtectionEnabled"] is True
        assert group.options.get("protect") is True and group.options.get("retainOnDelete") is True
        assert group.urn in one(result, ADDON).dependencies


def test_retention_and_protection_follow_the_arguments():
    result = logs_run(retention_days=90, protect=False)
    for group in result.by_type(LOG_GROUP):
        assert group.inputs["retentionInDays"] == 90
        assert "protect" not in group.options and group.inputs["deletionProtectionEnabled"] is False


def test_addon_is_pinned_and_turns_on_container_logs_only_what_is_needed():
    addon = one(logs_run(), ADDON).inputs
    assert addon["addonName"] == "amazon-cloudwatch-observability" and addon["clusterName"] == CLUSTER
    assert addon["addonVersion"] == ADDON_VERSION and re.match(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$", ADDON_VERSION)
    config = json.loads(addon["configurationValues"])
    assert config["containerLogs"] == {"enabled": True}
    agent = config["agent"]["config"]
    assert "traces" not in agent  # no Application Signals, so no X-Ray rights needed
    kubernetes = agent["logs"]["metrics_collected"]["kubernetes"]
    assert kubernetes["enhanced_container_insights"] is True and kubernetes["accelerated_compute_metrics"] is False


def test_agent_role_writes_only_to_the_four_groups():
    result = logs_run()
    arns = set(result.outputs["log_group_arns"].values())
    assert len(arns) == len(LOG_KINDS) == 4
    association = one(result, ASSOCIATION)
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == ("amazon-cloudwatch", "cloudwatch-agent")
    assert association.urn in one(result, ADDON).dependencies
    for s in statements(result, "container-logs-identity-policy"):
        actions = as_list(s["Action"])
        resources = as_list(s["Resource"])
        if any(a.startswith("logs:") for a in actions):
            assert all(r in arns or r.removesuffix(":*") in arns for r in resources), resources
        elif "cloudwatch:PutMetricData" in actions:
            assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": "ContainerInsights"}}
        else:
            assert all(a.startswith("ec2:Describe") for a in actions) and resources == ["*"]
    assert not result.by_type(ATTACHMENT)  # not the broad CloudWatchAgentServerPolicy


def test_the_cluster_keys_policy_lets_cloudwatch_logs_encrypt_these_groups():
    [logs] = [s for s in key_policy(ACCOUNT_ID, "aws", REGION, True)["Statement"]
              if s["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}]
    pattern = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    for arn in logs_run().outputs["log_group_arns"].values():
        assert fnmatch.fnmatch(arn, pattern), (arn, pattern)


def test_addon_waits_for_what_it_is_told_to():
    def program():
        marker = pulumi.CustomResource("test:index:Marker", "nodes", {})
        EksContainerLogs("container-logs", EksContainerLogsArgs(
            stack=STACK, cluster_name=CLUSTER, region=REGION, kms_key_arn=KEY, wait_for=[marker]))

    result = run_program(program, PROJECT, STACK, {"aws:region": REGION})
    assert result.named("nodes").urn in one(result, ADDON).dependencies


@pytest.mark.parametrize("overrides, field", [
    ({"retention_days": 42}, "retention_days"),
    ({"addon_version": "latest"}, "addon_version"),
])
def test_container_logs_refusals_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        EksContainerLogsArgs(stack=STACK, cluster_name=CLUSTER, region=REGION, kms_key_arn=KEY, **overrides)


def test_autoscaler_release_waits_for_what_it_is_told_to():
    def program():
        marker = pulumi.CustomResource("test:index:Marker", "system-nodes", {})
        ClusterAutoscaler("ca", ca_args(wait_for=[marker]))

    result = run_program(program, PROJECT, STACK, {"aws:region": REGION})
    assert result.named("system-nodes").urn in one(result, RELEASE).dependencies
