"""Each consumer's own gateway key: generated, a Pulumi secret, in the cloud's secret store under a customer-managed
key, readable only by that consumer's role or member; rotating one consumer's key touches no other."""

from __future__ import annotations

import json

import pytest

from components.aws_consumer_keys import AwsConsumerKeys, AwsConsumerKeysArgs
from components.consumer_keys import Consumer
from components.gcp_consumer_keys import GcpConsumerKeys, GcpConsumerKeysArgs
from planner.errors import InputError
from planner.stack_config import load_stack_config
from preview.harness import load_config, run_program
from conftest import ROOT

URL = "https://t.llm.internal/v1"
CONSUMERS = [Consumer("support", 1, "support-app"), Consumer("batch", 3, None)]


def aws_run(consumers=CONSUMERS):
    return run_program(lambda: AwsConsumerKeys("consumer-keys", AwsConsumerKeysArgs(
        stack="t", region="us-east-1", consumers=consumers, endpoint_url=URL, model="llm")),
        "llm-hosting", "t", {"aws:region": "us-east-1"})


def gcp_run(consumers=(Consumer("support", 1, "serviceAccount:support@p.iam.gserviceaccount.com"),)):
    return run_program(lambda: GcpConsumerKeys("consumer-keys", GcpConsumerKeysArgs(
        stack="t", region="europe-west4", consumers=list(consumers), endpoint_url=URL, model="llm", project="p")),
        "llm-hosting", "t", {"gcp:project": "p", "gcp:region": "europe-west4"})


def test_each_consumer_has_its_own_generated_key_kept_by_its_own_rotation():
    result = aws_run()
    passwords = {r.name: r for r in result.by_type("random:index/randomPassword:RandomPassword")}
    assert set(passwords) == {"consumer-keys-support-key", "consumer-keys-batch-key"}
    # the keeper is the consumer's own rotation counter: raising it replaces that key and no other
    assert passwords["consumer-keys-support-key"].inputs["keepers"] == {"rotation": "1"}
    assert passwords["consumer-keys-batch-key"].inputs["keepers"] == {"rotation": "3"}
    assert all(p.inputs["length"] >= 32 and p.inputs["special"] is False for p in passwords.values())
    assert all("result" in p.options.get("additionalSecretOutputs", []) for p in passwords.values())


def test_aws_secrets_are_encrypted_with_the_stacks_key_protected_and_readable_only_by_the_consumers_role():
    result = aws_run()
    secrets = {r.name: r for r in result.by_type("aws:secretsmanager/secret:Secret")}
    assert {s.inputs["name"] for s in secrets.values()} == {"llm-hosting/t/consumers/support", "llm-hosting/t/consumers/batch"}
    assert all(s.inputs.get("kmsKeyId") and s.options.get("protect") for s in secrets.values())
    versions = result.by_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert all(v.inputs["secretString"] == "[secret]" for v in versions)
    (policy,) = result.by_type("aws:iam/rolePolicy:RolePolicy")  # only the consumer that names a role gets one
    assert policy.inputs["role"] == "support-app"


def test_gcp_secret_stays_in_the_region_under_cmek_with_one_accessor():
    result = gcp_run()
    (secret,) = result.by_type("gcp:secretmanager/secret:Secret")
    (replica,) = secret.inputs["replication"]["userManaged"]["replicas"]
    assert replica["location"] == "europe-west4" and replica["customerManagedEncryption"]["kmsKeyName"]
    (accessor,) = result.by_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    assert accessor.inputs["member"] == "serviceAccount:support@p.iam.gserviceaccount.com"
    assert accessor.inputs["role"] == "roles/secretmanager.secretAccessor"
    assert secret.inputs["deletionProtection"] is True


def test_duplicate_or_missing_consumers_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        AwsConsumerKeysArgs(stack="t", region="us-east-1", consumers=[Consumer("a"), Consumer("a")], endpoint_url=URL,
                            model="llm")
    with pytest.raises(ValueError, match="distinct"):
        GcpConsumerKeysArgs(stack="t", region="us-east-1", consumers=[], endpoint_url=URL, model="llm")


def stack(name: str) -> dict:
    _, merged, _, _ = load_config(ROOT, name)
    return merged


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.__setitem__("llm-hosting:consumers", []), "llm-hosting:consumers"),
    (lambda c: c["llm-hosting:consumers"].append(dict(c["llm-hosting:consumers"][0])), "llm-hosting:consumers[2].name"),
    (lambda c: c["llm-hosting:consumers"][0].__setitem__("member", "user:a@b.c"), "llm-hosting:consumers[0].member"),
    (lambda c: c["llm-hosting:consumers"][0].__setitem__("requestsPerMinute", 0),
     "llm-hosting:consumers[0].requestsPerMinute"),
])
def test_the_stack_config_refuses_consumers_the_gateway_cannot_serve(edit, field):
    config = json.loads(json.dumps(stack("tiered-sensitivity")))
    edit(config)
    with pytest.raises(InputError) as exc:
        load_stack_config(config, "stacks/Pulumi.tiered-sensitivity.yaml")
    assert exc.value.problems[0][0] == field


def test_consumer_limits_are_their_share_of_the_projected_peak_with_headroom():
    import math

    import yaml

    from planner.profile import Profile
    from planner.stackgen import CONSUMER_HEADROOM

    profile = Profile.model_validate(yaml.safe_load((ROOT / "stacks/profiles/tiered-sensitivity.yaml").read_text()))
    t = profile.traffic
    peak_per_minute = (t.daily_requests * (1 + t.growth_monthly_percent / 100) ** t.horizon_months
                       * t.peak_to_average / 1440)
    written = {c["name"]: c for c in stack("tiered-sensitivity")["llm-hosting:consumers"]}
    for consumer in profile.consumers:
        rpm = math.ceil(peak_per_minute * consumer.share_percent / 100 * CONSUMER_HEADROOM)
        assert written[consumer.name]["requestsPerMinute"] == rpm
        assert written[consumer.name]["tokensPerMinute"] == rpm * (t.avg_input_tokens + t.avg_output_tokens)
        assert written[consumer.name]["roleName"] == consumer.aws_role_name
