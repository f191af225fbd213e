"""The GCP side of alerting and logs under the recording mocks: the alert channel (Pub/Sub), the cluster's regional
log bucket, the GKE alert path (GMP federation + one PromQL policy), and whether every GKE example stack's GPU pools
can hold the replica range the stack asks for."""

from __future__ import annotations

import json
import re
from functools import lru_cache

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.gcp_alert_channel import GcpAlertChannel, GcpAlertChannelArgs, topic_name
from components.gcp_log_bucket import AUDIT_LOG_IDS, GKE_RESOURCE_TYPES, GcpLogBucket, GcpLogBucketArgs
from components.gke_alert_forwarding import (FEDERATE_PATH, HEARTBEAT_ALERT, GkeAlertForwarding,
                                             GkeAlertForwardingArgs)
from conftest import ROOT
from preview.harness import run_program
from preview.mocks import PROJECT_NUMBER

STACK, REGION, GCP_PROJECT = "t", "europe-west4", "acme-llm"
CONFIG = {"gcp:region": REGION, "gcp:project": GCP_PROJECT}
KEY = f"projects/{GCP_PROJECT}/locations/{REGION}/keyRings/llm-hosting-{STACK}-gke/cryptoKeys/gke"
CLUSTER_NAME = f"llm-hosting-{STACK}"
CHANNEL = f"projects/{GCP_PROJECT}/notificationChannels/1234567890"
SCHEMAS = ROOT.parent / "shared" / "schemas"
PODMONITORING_CRD = SCHEMAS / "gmp" / "crds" / "monitoring.googleapis.com_podmonitorings.yaml"
KPS_VALUES = SCHEMAS / "kube-prometheus-stack" / "chart" / "values.yaml"
needs_schemas = pytest.mark.skipif(not PODMONITORING_CRD.exists(), reason="the shared schemas are not beside the repo")

TOPIC = "gcp:pubsub/topic:Topic"
TOPIC_MEMBER = "gcp:pubsub/topicIAMMember:TopicIAMMember"
CHANNEL_TYPE = "gcp:monitoring/notificationChannel:NotificationChannel"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
AGENT = "gcp:projects/serviceIdentity:ServiceIdentity"
BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"
SINK = "gcp:logging/projectSink:ProjectSink"
EXCLUSION = "gcp:logging/projectExclusion:ProjectExclusion"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def one(result, type_):
    found = result.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def depends_on(dependant, dependency) -> bool:
    return dependency.urn in dependant.dependencies


# -- GcpAlertChannel ------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def channel_run(protect: bool = True, key: str | None = KEY):
    def program():
        c = GcpAlertChannel("alerts", GcpAlertChannelArgs(stack=STACK, project=GCP_PROJECT, region=REGION,
                                                            kms_key_id=key, labels={"llm-hosting-stack": STACK},
                                                            protect=protect))
        pulumi.export("topic_id", c.topic_id)
        pulumi.export("kms_key_id", c.kms_key_id)

    return run_program(program, "llm-hosting", STACK, CONFIG)


def test_alert_topic_is_named_for_the_stack_encrypted_and_stored_in_region():
    topic = one(channel_run(), TOPIC)
    assert topic.inputs["name"] == topic_name(STACK) == f"llm-hosting-{STACK}-alerts"
    assert topic.inputs["kmsKeyName"] == KEY
    assert topic.inputs["messageStoragePolicy"]["allowedPersistenceRegions"] == [REGION]
    assert topic.options.get("protect") is True
    assert "protect" not in one(channel_run(protect=False), TOPIC).options


def test_pubsub_agent_holds_the_key_before_the_topic_exists():
    result = channel_run()
    agent, topic = one(result, AGENT), one(result, TOPIC)
    assert agent.inputs["service"] == "pubsub.googleapis.com"
    (grant,) = [g for g in result.by_type(KEY_GRANT) if g.inputs["cryptoKeyId"] == KEY]
    assert grant.inputs["role"] == ENCRYPTER
    assert grant.inputs["member"].startswith("serviceAccount:service-") and "pubsub" in grant.inputs["member"]
    assert depends_on(topic, grant)


def test_without_a_key_the_channel_makes_its_own_in_region_for_the_pubsub_agent():
    result = channel_run(key=None)
    own = f"projects/{GCP_PROJECT}/locations/{REGION}/keyRings/llm-hosting-{STACK}-alerts/cryptoKeys/alerts"
    assert result.outputs["kms_key_id"] == own
    topic = one(result, TOPIC)
    assert topic.inputs["kmsKeyName"] == own
    (grant,) = [g for g in result.by_type(KEY_GRANT) if g.inputs["cryptoKeyId"] == own]
    assert "pubsub" in grant.inputs["member"] and grant.inputs["role"] == ENCRYPTER
    assert depends_on(topic, grant)
    assert not channel_run().by_type("gcp:kms/cryptoKey:CryptoKey")  # a given key is used, not a second one


def test_monitoring_notification_agent_may_publish_to_the_topic_only():
    result = channel_run()
    member = one(result, TOPIC_MEMBER).inputs
    assert member == {**member, "role": "roles/pubsub.publisher", "topic": topic_name(STACK),
                      "member": f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"}
    assert not result.by_type("gcp:projects/iAMMember:IAMMember")  # no project-wide publisher role


def test_channel_is_pubsub_on_the_topic_and_waits_for_the_publisher_grant():
    result = channel_run()
    channel = one(result, CHANNEL_TYPE)
    assert channel.inputs["type"] == "pubsub"
    assert channel.inputs["labels"] == {"topic": result.outputs["topic_id"]}
    assert channel.inputs["userLabels"] == {"llm-hosting-stack": STACK}
    assert depends_on(channel, one(result, TOPIC_MEMBER))


def test_alert_channel_refuses_a_missing_region():
    with pytest.raises(ValueError, match="region"):
        GcpAlertChannelArgs(stack=STACK, project=None, region="", kms_key_id=KEY)


# -- GcpLogBucket ---------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def bucket_run(exclude_from_default: bool = True, retention_days: int = 30):
    def program():
        b = GcpLogBucket("logs", GcpLogBucketArgs(stack=STACK, project=GCP_PROJECT, region=REGION, kms_key_id=KEY,
                                                   retention_days=retention_days, cluster_name=CLUSTER_NAME,
                                                   exclude_from_default=exclude_from_default))
        pulumi.export("bucket_id", b.bucket_id)
        pulumi.export("filter", b.filter)

    return run_program(program, "llm-hosting", STACK, CONFIG)


def test_log_bucket_is_regional_cmek_unlocked_with_the_stacks_retention():
    bucket = one(bucket_run(retention_days=90), BUCKET)
    assert bucket.inputs == {**bucket.inputs, "location": REGION, "retentionDays": 90, "locked": False,
                             "project": GCP_PROJECT, "bucketId": f"llm-hosting-{STACK}-logs"}
    assert bucket.inputs["cmekSettings"]["kmsKeyName"] == KEY
    assert bucket.options.get("protect") is True
    assert bucket_run().outputs["bucket_id"] == f"projects/{GCP_PROJECT}/locations/{REGION}/buckets/llm-hosting-{STACK}-logs"


def test_logging_service_account_holds_the_key_before_the_bucket_exists():
    result = bucket_run()
    grant, bucket = one(result, KEY_GRANT), one(result, BUCKET)
    assert grant.inputs == {**grant.inputs, "cryptoKeyId": KEY, "role": ENCRYPTER,
                            "member": f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-logging.iam.gserviceaccount.com"}
    assert depends_on(bucket, grant)


def test_sink_routes_the_clusters_logs_into_the_bucket():
    result = bucket_run()
    sink = one(result, SINK).inputs
    assert sink["destination"] == f"logging.googleapis.com/{result.outputs['bucket_id']}"
    assert sink["name"] != "_Default" and not sink["name"].startswith("_")
    f = sink["filter"]
    assert f'resource.labels.cluster_name="{CLUSTER_NAME}"' in f
    assert f'resource.labels.location="{REGION}"' in f
    for resource_type in ("k8s_container", "k8s_pod", "k8s_node"):
        assert f'"{resource_type}"' in f
    assert set(GKE_RESOURCE_TYPES) >= {"k8s_container", "k8s_node"}


def test_audit_logs_are_never_routed_or_excluded():
    f = bucket_run().outputs["filter"]
    for log in AUDIT_LOG_IDS:
        assert f'NOT log_id("{log}")' in f
    assert {"cloudaudit.googleapis.com/activity", "cloudaudit.googleapis.com/data_access"} <= set(AUDIT_LOG_IDS)


def test_default_bucket_exclusion_matches_the_sink_and_follows_it():
    result = bucket_run()
    sink, exclusion = one(result, SINK), one(result, EXCLUSION)
    assert exclusion.inputs["filter"] == sink.inputs["filter"]
    assert exclusion.inputs.get("disabled") in (None, False)
    assert depends_on(exclusion, sink)  # never a moment when the entries go nowhere


def test_the_default_sink_is_never_taken_over_and_the_exclusion_can_be_turned_off():
    assert not bucket_run(exclude_from_default=False).by_type(EXCLUSION)
    assert all(s.inputs["name"] != "_Default" for s in bucket_run().by_type(SINK))


@pytest.mark.parametrize("retention, region", [(0, REGION), (3651, REGION), (30, "global"), (30, "")])
def test_log_bucket_refuses_bad_retention_and_region(retention, region):
    with pytest.raises(ValueError, match="retention_days" if region == REGION else "region"):
        GcpLogBucketArgs(stack=STACK, project=None, region=region, kms_key_id=KEY, retention_days=retention,
                         cluster_name=CLUSTER_NAME)


# -- GkeAlertForwarding ---------------------------------------------------------------------------------------------

RUNBOOKS = {"VllmKvCacheFull": "Add replicas or lower max context: see docs/runbooks.md#kv-cache",
            "ModelServerDown": "kubectl -n llm-serving describe pods; check GPU node pool events"}
POD_LABELS = {"llm-hosting/monitoring": "prometheus"}


@lru_cache(maxsize=None)
def forwarding_run(heartbeat: str | None = HEARTBEAT_ALERT):
    def program():
        provider = k8s.Provider("gke-k8s", kubeconfig="{}")
        # Stands in for the monitoring stack's release, which creates the namespace.
        release = k8s.core.v1.Namespace("monitoring-ns", metadata={"name": "monitoring"},
                                        opts=pulumi.ResourceOptions(provider=provider))
        f = GkeAlertForwarding("alerting", GkeAlertForwardingArgs(
            stack=STACK, project=GCP_PROJECT, cluster_name=pulumi.Output.from_input(CLUSTER_NAME),
            notification_channels=[CHANNEL], prometheus_pod_labels=POD_LABELS, runbooks=RUNBOOKS,
            heartbeat_alert=heartbeat), opts=pulumi.ResourceOptions(provider=provider, depends_on=[release]))
        pulumi.export("query", f.query)
        pulumi.export("pod_monitoring_name", f.pod_monitoring_name)

    return run_program(program, "llm-hosting", STACK, CONFIG)


def pod_monitoring(result) -> dict:
    return one(result, POD_MONITORING).inputs


def condition(result) -> dict:
    (cond,) = one(result, POLICY).inputs["conditions"]
    return cond["conditionPrometheusQueryLanguage"]


def test_pod_monitoring_scrapes_only_firing_alerts_from_federate():
    cr = pod_monitoring(forwarding_run())
    (endpoint,) = cr["spec"]["endpoints"]
    assert endpoint["path"] == FEDERATE_PATH == "/federate"
    assert endpoint["params"] == {"match[]": ['ALERTS{alertstate="firing"}']}
    assert cr["metadata"]["namespace"] == "monitoring"
    assert cr["spec"]["selector"] == {"matchLabels": POD_LABELS}
    # No pod/container metadata labels: the alerts' own `pod` label arrives unchanged.
    assert cr["spec"]["targetLabels"] == {"metadata": []}


@needs_schemas
def test_pod_monitoring_port_is_the_charts_prometheus_port_name():
    values = yaml.safe_load(KPS_VALUES.read_text())
    (endpoint,) = pod_monitoring(forwarding_run())["spec"]["endpoints"]
    assert endpoint["port"] == values["prometheus"]["prometheusSpec"]["portName"] == "http-web"


def crd_problems(cr: dict) -> list[str]:
    """Problems of a custom resource against its CRD: the shared validator if present, else the CRD's schema."""
    try:
        from crd_schemas import validate_custom_resource
    except ImportError:
        validate_custom_resource = None
    if validate_custom_resource is not None:
        return list(validate_custom_resource(cr))
    import jsonschema

    crd = yaml.safe_load(PODMONITORING_CRD.read_text())
    group, version = cr["apiVersion"].split("/")
    assert (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (group, cr["kind"])
    (schema,) = [v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(cr)]


@needs_schemas
def test_pod_monitoring_is_valid_against_the_gmp_crd():
    cr = pod_monitoring(forwarding_run())
    assert crd_problems(cr) == []
    # The check can fail: a metadata label GMP does not offer is refused.
    broken = json.loads(json.dumps(cr))
    broken["spec"]["targetLabels"]["metadata"] = ["namespace"]
    assert crd_problems(broken)


def test_pod_monitoring_goes_through_the_clusters_provider_and_the_policy_through_gcp():
    result = forwarding_run()
    assert one(result, POD_MONITORING).options["provider"] == "gke-k8s"
    assert "provider" not in one(result, POLICY).options


def test_cluster_objects_wait_for_what_the_component_depends_on():
    result = forwarding_run()
    release = result.named("monitoring-ns")
    assert depends_on(one(result, POD_MONITORING), release)


def test_policy_query_reads_what_the_pod_monitoring_sends_for_this_cluster():
    result = forwarding_run()
    query = condition(result)["query"]
    assert result.outputs["query"] == query
    job = pod_monitoring(result)["metadata"]["name"]
    assert job == result.outputs["pod_monitoring_name"]
    firing = re.search(r"ALERTS\{([^}]*)\}", query).group(1)
    matchers = dict(re.findall(r'(\w+)(?:=)"([^"]*)"', firing))
    # GMP's target labels: the cluster's name and the PodMonitoring's name as the job.
    assert matchers == {"cluster": CLUSTER_NAME, "job": job, "alertstate": "firing"}
    assert f'alertname!="{HEARTBEAT_ALERT}"' in firing
    assert query.startswith("max without (instance, prometheus_replica) (")  # one incident per alert, not per replica


def test_policy_pages_when_the_heartbeat_stops_arriving():
    query = condition(forwarding_run())["query"]
    assert re.search(r'absent_over_time\(ALERTS\{[^}]*alertname="Watchdog"[^}]*\}\[10m\]\)', query)
    assert "absent" not in condition(forwarding_run(heartbeat=None))["query"]


@needs_schemas
def test_heartbeat_alert_ships_with_the_charts_default_rules():
    values = yaml.safe_load(KPS_VALUES.read_text())
    assert values["defaultRules"]["create"] is True and values["defaultRules"]["rules"]["general"] is True


def test_policy_notifies_the_channels_and_names_the_alert_with_its_runbook():
    result = forwarding_run()
    policy = one(result, POLICY).inputs
    assert policy["notificationChannels"] == [CHANNEL]
    assert len(policy["conditions"]) == 1  # ONE policy, ONE PromQL condition for every alert of the cluster
    cond = condition(result)
    assert cond["disableMetricValidation"] is True  # ALERTS appears only after the first scrape
    assert cond["labels"]["alertname"] == "{{ $labels.alertname }}"
    doc = policy["documentation"]
    assert "${metric.label.alertname}" in doc["subject"] and "${metric.label.alertname}" in doc["content"]
    for alert, line in RUNBOOKS.items():
        assert f"**{alert}**: {line}" in doc["content"]
    assert CLUSTER_NAME in doc["content"]
    assert set(policy["alertStrategy"]["notificationPrompts"]) == {"OPENED", "CLOSED"}


@pytest.mark.parametrize("change, field", [
    ({"notification_channels": []}, "notification_channels"),
    ({"prometheus_pod_labels": {}}, "prometheus_pod_labels"),
    ({"runbooks": {f"Alert{i}": "x" * 200 for i in range(60)}}, "runbooks"),
])
def test_alert_forwarding_refuses(change, field):
    args = {**dict(stack=STACK, project=None, cluster_name=CLUSTER_NAME, notification_channels=[CHANNEL],
                   prometheus_pod_labels=POD_LABELS), **change}
    with pytest.raises(ValueError, match=field):
        GkeAlertForwardingArgs(**args)


# -- GKE example stacks: the GPU pools hold the replica range ---------------------------------------------------------

def gke_stacks() -> list[str]:
    stacks = []
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        if config.get("llm-hosting:cloud") == "gcp" and (config.get("llm-hosting:selfHosted") or {}).get("cluster") == "gke":
            stacks.append(path.name[len("Pulumi."):-len(".yaml")])
    return stacks


def spread_capacity(slots_per_zone: list[int]) -> int:
    """Replicas a zone spread (maxSkew 1, DoNotSchedule) places on these per-zone slots: fill the emptiest zone
    that still has a slot, while no zone would get more than one above the emptiest."""
    placed = [0] * len(slots_per_zone)
    while True:
        open_zones = [z for z in range(len(placed)) if placed[z] < slots_per_zone[z]]
        if not open_zones:
            return sum(placed)
        z = min(open_zones, key=lambda i: placed[i])
        after = placed[:z] + [placed[z] + 1] + placed[z + 1:]
        if max(after) - min(after) > 1:
            return sum(placed)
        placed = after


def balanced(nodes: int, zones: int, start: list[int]) -> list[int]:
    """A pool's nodes over its zones the way GKE balances them: the odd ones to the zones with the fewest."""
    per_zone = list(start)
    for _ in range(nodes):
        per_zone[per_zone.index(min(per_zone))] += 1
    return per_zone


def test_spread_capacity_is_the_emptiest_zone_plus_one_per_zone():
    assert spread_capacity([3, 3, 2]) == 8
    assert spread_capacity([6, 6, 4]) == 14  # 16 slots, but a zone with 4 holds the others to 5
    assert spread_capacity([4, 0, 0]) == 1


@pytest.mark.parametrize("stack", gke_stacks())
def test_gpu_pools_hold_the_stacks_replica_range(stack, catalog):
    from preview.harness import run_preview

    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    wanted = config["llm-hosting:selfHosted"]
    result = run_preview(ROOT, stack)
    gpu_pools = {p.inputs["name"]: p.inputs for p in result.by_type("gcp:container/nodePool:NodePool")
                 if p.inputs["nodeConfig"].get("guestAccelerators")}
    machine = gpu_pools["gpu-on-demand"]["nodeConfig"]["machineType"]
    per_node = catalog.instance_shapes.gcp[machine].gpu_count // wanted["gpusPerReplica"]
    assert per_node >= 1, (stack, machine)
    zones = gpu_pools["gpu-on-demand"]["nodeLocations"]
    for name, pool in gpu_pools.items():
        # Totals across the zones (not per zone), so the counts below are what the autoscaler is held to.
        assert {"totalMinNodeCount", "totalMaxNodeCount"} <= pool["autoscaling"].keys(), (stack, name)
        assert "minNodeCount" not in pool["autoscaling"] and "maxNodeCount" not in pool["autoscaling"], (stack, name)
        assert pool["nodeLocations"] == zones, (stack, name)
    on_demand = gpu_pools["gpu-on-demand"]["autoscaling"]
    # The floor: the minimum replicas fit on the on-demand minimum, on at least two nodes when there are two.
    assert on_demand["totalMinNodeCount"] * per_node >= wanted["minReplicas"], stack
    assert on_demand["totalMinNodeCount"] >= min(wanted["minReplicas"], 2), stack
    # The ceiling: at the pools' maxima, the zone spread can place every replica the stack allows.
    per_zone = [0] * len(zones)
    for name in ("gpu-on-demand", "gpu-spot"):
        if name in gpu_pools:
            per_zone = balanced(gpu_pools[name]["autoscaling"]["totalMaxNodeCount"], len(zones), per_zone)
    capacity = spread_capacity([n * per_node for n in per_zone])
    assert capacity >= wanted["maxReplicas"], (stack, per_zone, per_node, capacity)


def test_forwarding_defaults_agree_with_the_monitoring_stack():
    monitoring = pytest.importorskip("components.monitoring_stack")
    assert GkeAlertForwardingArgs.__dataclass_fields__["prometheus_port_name"].default == monitoring.PROMETHEUS_PORT_NAME
    assert GkeAlertForwardingArgs.__dataclass_fields__["prometheus_namespace"].default == monitoring.NAMESPACE
