"""`llmhost diff` (preview/diff.py): inventories from real offline previews, edited the way a PR edits a stack."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from preview.diff import (ABSENT, DELETE_STATEFUL, HIDDEN, MASK, REPLACE_STATEFUL, SECRET_NOTE, diff_inventories,
                          forces_replacement, main, render_markdown, summary_line)
from preview.harness import run_preview


def edit_stack(root: Path, stack: str, **changes) -> None:
    """Set config keys of stacks/Pulumi.<stack>.yaml; `vpc__cidr="..."` sets llm-hosting:vpc.cidr."""
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    config = doc["config"]
    for key, value in changes.items():
        top, *rest = key.split("__")
        full = f"llm-hosting:{top}"
        if not rest:
            config[full] = value
            continue
        node = config[full]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def inventory(root: Path, stack: str) -> list[dict]:
    # Through JSON, exactly what `llmhost preview --json` writes and `llmhost diff` reads.
    return json.loads(json.dumps(run_preview(root, stack).inventory()))


# -- changes from real previews --------------------------------------------------------------------------------------
def test_vpc_cidr_and_instance_type_change(project):
    stack = "healthcare-hipaa"
    old = inventory(project, stack)
    edit_stack(project, stack, vpc__cidr="10.1.0.0/16", managed__instanceType="ml.p4d.24xlarge",
               managed__gpu="A100-40GB", managed__gpusPerReplica=8, managed__precision="fp16")
    new = inventory(project, stack)
    diff = diff_inventories(old, new)

    assert diff.added == [] and diff.removed == []
    vpc = diff.changed_resource("network-vpc", "aws:ec2/vpc:Vpc")
    cidr = vpc.change("cidrBlock")
    assert (cidr.old, cidr.new, cidr.forces_replacement) == ("10.0.0.0/16", "10.1.0.0/16", True)
    assert vpc.stateful and vpc.replace and vpc.action == REPLACE_STATEFUL
    assert [c.path for c in vpc.changes] == ["cidrBlock"]  # nothing else about the VPC changed

    subnet = diff.changed_resource("network-private-1", "aws:ec2/subnet:Subnet")
    assert (subnet.change("cidrBlock").old, subnet.change("cidrBlock").new) == ("10.0.32.0/19", "10.1.32.0/19")
    assert subnet.action == REPLACE_STATEFUL

    config = diff.changed_resource("sagemaker-config")
    variant = config.change("productionVariants[0].instanceType")
    assert (variant.old, variant.new) == ("ml.g6e.12xlarge", "ml.p4d.24xlarge")
    assert config.replace and not config.stateful and config.action == "replace"  # a new config, blue/green

    # The endpoint itself is not replaced: it only points at the new config.
    assert "sagemaker-endpoint" not in {c.name for c in diff.replaced}
    assert {c.name for c in diff.stateful_replacements} >= {"network-vpc", "network-private-0", "network-public-2"}
    assert diff.unchanged == len(new) - len(diff.changed)

    md = render_markdown(diff, stack)
    assert f"**{summary_line(diff, stack)}**" in md
    assert summary_line(diff, stack).startswith(f"{stack}: 0 to add, 0 to delete, {len(diff.changed)} to change (")
    assert REPLACE_STATEFUL in md and "> [!WARNING]" in md
    assert "| `cidrBlock` | `10.0.0.0/16` | `10.1.0.0/16` | forces replacement |" in md
    assert "`productionVariants[0].instanceType` | `ml.g6e.12xlarge` | `ml.p4d.24xlarge`" in md


def test_replica_region_added_and_removed(project):
    stack = "eu-residency-api"
    base = inventory(project, stack)
    edit_stack(project, stack, residency__allowedRegions=["europe-west4", "europe-west1", "europe-west3"],
               api__replicaRegions=["europe-west1", "europe-west3"])
    added = diff_inventories(base, inventory(project, stack))

    assert {(r.type, r.name) for r in added.added} == {
        ("gcp:kms/keyRing:KeyRing", "api-key-cmek-ring-europe-west3"),
        ("gcp:kms/cryptoKey:CryptoKey", "api-key-cmek-key-europe-west3"),
        ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "api-key-cmek-grant-europe-west3-0"),
    }
    assert added.removed == []
    secret = added.changed_resource("api-key-secret", "gcp:secretmanager/secret:Secret")
    location = secret.change("replication.userManaged.replicas[2].location")
    assert (location.old, location.new, location.forces_replacement) == (ABSENT, "europe-west3", True)
    key = secret.change("replication.userManaged.replicas[2].customerManagedEncryption.kmsKeyName")
    assert key.new.endswith("/locations/europe-west3/keyRings/llm-hosting-eu-residency-api/cryptoKeys/api-keys")
    assert not key.forces_replacement  # a replica's CMEK key updates in place; its location does not
    assert secret.action == REPLACE_STATEFUL and secret.protected
    assert secret.replaced_by == ["replication.userManaged.replicas[2].location"]

    edit_stack(project, stack, residency__allowedRegions=["europe-west4", "europe-west1"], api__replicaRegions=[])
    removed = diff_inventories(base, inventory(project, stack))
    assert removed.added == []
    gone = {r.name: r for r in removed.removed}
    assert set(gone) == {"api-key-cmek-ring-europe-west1", "api-key-cmek-key-europe-west1",
                         "api-key-cmek-grant-europe-west1-0"}
    assert gone["api-key-cmek-ring-europe-west1"].deletion == DELETE_STATEFUL
    assert gone["api-key-cmek-key-europe-west1"].protected
    assert gone["api-key-cmek-grant-europe-west1-0"].deletion == "delete"
    assert {r.name for r in removed.stateful_deletions} == {"api-key-cmek-ring-europe-west1",
                                                            "api-key-cmek-key-europe-west1"}

    md = render_markdown(removed, stack)
    assert summary_line(removed, stack) == (f"{stack}: 0 to add, 3 to delete, 1 to change (1 replaced; "
                                            f"1 stateful replacement, 2 stateful deletions), {removed.unchanged} unchanged")
    row = f"| − | `api-key-cmek-ring-europe-west1` | `gcp:kms/keyRing:KeyRing` | `api-key-cmek` | **{DELETE_STATEFUL}**"
    assert row in md
    assert "| `replication.userManaged.replicas[1].location` | `europe-west1` | _(absent)_ | forces replacement |" in md


def test_aws_replica_is_an_in_place_update(project):
    """Secrets Manager adds a replica Region in place; the replica key is new; policies gain the Region."""
    stack = "startup-api"
    old = inventory(project, stack)
    edit_stack(project, stack, residency__allowedRegions=["us-east-1", "us-west-2", "us-east-2"],
               api__replicaRegions=["us-west-2", "us-east-2"])
    diff = diff_inventories(old, inventory(project, stack))
    assert [(r.type, r.name) for r in diff.added] == [("aws:kms/replicaKey:ReplicaKey", "api-key-cmk-replica-us-east-2")]
    secret = diff.changed_resource("api-key-secret")
    assert secret.action == "update"
    assert secret.change("replicas[1].region").new == "us-east-2"
    policy = diff.changed_resource("api-key-read", "aws:iam/policy:Policy")
    # The policy is a JSON document in a string: the path goes on into it.
    assert policy.change("policy.Statement[1].Condition.StringEquals.kms:ViaService[2]").new == \
        "secretsmanager.us-east-2.amazonaws.com"
    assert diff.stateful_replacements == [] and diff.stateful_deletions == []
    assert REPLACE_STATEFUL not in render_markdown(diff, stack)


def test_nested_kubernetes_path(project):
    stack = "eu-sovereign-airgapped"
    old = inventory(project, stack)
    edit_stack(project, stack, versions={"nvidia_device_plugin": "v0.17.3"})
    diff = diff_inventories(old, inventory(project, stack))
    [ds] = diff.changed
    assert ds.type == "kubernetes:apps/v1:DaemonSet" and ds.action == "update"
    [image] = ds.changes
    assert image.path == "spec.template.spec.containers[0].image"
    assert image.old.endswith("/llm-mirror/k8s-device-plugin:v0.17.2")
    assert image.new.endswith("/llm-mirror/k8s-device-plugin:v0.17.3")
    md = render_markdown(diff, stack)
    # Long values are shortened around where they differ, so the difference stays visible.
    row = "| `spec.template.spec.containers[0].image` | `…k8s-device-plugin:v0.17.2` | `…k8s-device-plugin:v0.17.3` |"
    assert row in md


# -- secrets ---------------------------------------------------------------------------------------------------------
def test_secrets_stay_masked(project):
    stack = "startup-api"
    edit_stack(project, stack, groqApiKey={"secure": "v1:AAAAfirst-ciphertext"})
    old = inventory(project, stack)
    edit_stack(project, stack, groqApiKey={"secure": "v1:BBBBrotated-ciphertext"})
    new = inventory(project, stack)

    version = next(r for r in new if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion")
    assert version["inputs"]["secretString"] == MASK
    # A rotated secret cannot be seen offline: both sides are masked, so they compare equal.
    diff = diff_inventories(old, new)
    assert diff.empty and diff.unchanged == len(new)
    assert render_markdown(diff, stack).splitlines()[2] == f"**{stack}: no changes ({len(new)} resources unchanged)**"

    # If one side were ever in plain text, the diff says so and prints neither value.
    leaked = copy.deepcopy(new)
    next(r for r in leaked if r["name"] == version["name"])["inputs"]["secretString"] = "gsk_live_PLAINTEXT"
    diff = diff_inventories(new, leaked)
    change = diff.changed_resource(version["name"]).change("secretString")
    assert (change.old, change.new, change.note) == (MASK, HIDDEN, SECRET_NOTE)
    md = render_markdown(diff, stack)
    assert "gsk_live_PLAINTEXT" not in md
    assert f"| `secretString` | `{MASK}` | _{HIDDEN}_ | {SECRET_NOTE} |" in md


# -- rules and edge cases (small hand-made inventories) --------------------------------------------------------------
def _res(type_, name, inputs, options=None, parent=None):
    return {"type": type_, "name": name, "parent": parent, "inputs": inputs, "options": options or {}}


def test_replacement_table_is_careful():
    eks = "aws:eks/cluster:Cluster"
    assert forces_replacement(eks, "name")
    assert forces_replacement(eks, "encryptionConfig.provider.keyArn")
    # In place since terraform-provider-aws 5.25.0 (#34209): not a replacement.
    assert not forces_replacement(eks, "vpcConfig.subnetIds[0]")
    assert not forces_replacement(eks, "version")
    assert forces_replacement("aws:kms/key:Key", "multiRegion")
    assert not forces_replacement("aws:kms/key:Key", "description")
    assert forces_replacement("aws:secretsmanager/secret:Secret", "name")
    assert not forces_replacement("aws:secretsmanager/secret:Secret", "replicas[1]")
    assert forces_replacement("aws:cloudwatch/logGroup:LogGroup", "name")
    assert not forces_replacement("aws:cloudwatch/logGroup:LogGroup", "retentionInDays")
    assert forces_replacement("gcp:container/cluster:Cluster", "location")
    assert forces_replacement("aws:sagemaker/endpoint:Endpoint", "name")
    assert not forces_replacement("aws:sagemaker/endpoint:Endpoint", "endpointConfigName")
    assert forces_replacement("aws:sagemaker/model:Model", "primaryContainer.image")
    assert not forces_replacement("aws:sagemaker/model:Model", "tags.team")
    vertex = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"
    assert forces_replacement(vertex, "location")
    assert forces_replacement(vertex, "deployConfig.dedicatedResources.maxReplicaCount")
    subnetwork = "gcp:compute/subnetwork:Subnetwork"
    assert not forces_replacement(subnetwork, "ipCidrRange", "10.0.0.0/16", "10.0.0.0/15")  # expanded in place
    assert forces_replacement(subnetwork, "ipCidrRange", "10.0.0.0/16", "10.1.0.0/16")
    assert not forces_replacement("aws:ec2/vpc:Vpc", "cidrBlockAssociations")  # a prefix of a name is not a path


def test_options_parent_ignore_changes_and_types():
    old = [
        _res("aws:kms/key:Key", "k", {"enableKeyRotation": True, "deletionWindowInDays": 30}, {"protect": True}),
        _res("aws:eks/nodeGroup:NodeGroup", "ng", {"scalingConfig": {"desiredSize": 2, "maxSize": 4}},
             {"ignoreChanges": ["scalingConfig.desiredSize"]}),
        _res("aws:iam/role:Role", "r", {"name": "x"}, parent="a"),
    ]
    new = copy.deepcopy(old)
    new[0]["inputs"]["enableKeyRotation"] = 1           # a bool turned into a number is a change
    new[0]["options"] = {}                              # unprotected
    new[1]["inputs"]["scalingConfig"]["desiredSize"] = 3  # ignored, as Pulumi would
    new[2]["parent"] = "b"
    diff = diff_inventories(old, new)
    assert {c.name for c in diff.changed} == {"k", "r"} and diff.unchanged == 1
    key = diff.changed_resource("k")
    assert (key.change("enableKeyRotation").old, key.change("enableKeyRotation").new) == (True, 1)
    protect = key.change("protect", section="options")
    assert (protect.old, protect.new) == (True, ABSENT) and "protection removed" in protect.note
    assert key.action == "update" and key.protected
    parent = diff.changed_resource("r").change("parent", section="parent")
    assert (parent.old, parent.new) == ("a", "b")
    md = render_markdown(diff, "s")
    assert "| `(option) protect` | `true` | _(absent)_ | protection removed from a stateful resource |" in md


def test_nothing_changed():
    inv = [_res("aws:kms/key:Key", "k", {"description": "x"})]
    diff = diff_inventories(inv, copy.deepcopy(inv))
    assert diff.empty and summary_line(diff, "s") == "s: no changes (1 resource unchanged)"


# -- the command -----------------------------------------------------------------------------------------------------
def test_main_prints_markdown_and_exits_0(tmp_path, capsys):
    old = [_res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"})]
    new = [_res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.9.0.0/16"}),
           _res("aws:kms/key:Key", "k", {"multiRegion": True})]
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "demo.json").write_text(json.dumps(old))
    (tmp_path / "demo.json").write_text(json.dumps(new))
    assert main([str(tmp_path / "base" / "demo.json"), str(tmp_path / "demo.json")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("### `demo`\n")  # the stack name defaults to NEW's file name
    assert ("**demo: 1 to add, 0 to delete, 1 to change (1 replaced; 1 stateful replacement, 0 stateful deletions), "
            "0 unchanged**") in out
    assert f"#### `vpc` (`aws:ec2/vpc:Vpc`): **{REPLACE_STATEFUL}**" in out
    assert main([str(tmp_path / "base" / "demo.json"), str(tmp_path / "demo.json"), "--stack", "prod"]) == 0
    assert "**prod: 1 to add" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"type": "x"}', "expected a JSON list of resources"),
    ('[{"name": "a"}]', "item 0 has no 'type' string"),
    ('[{"type": "t", "name": "a", "inputs": []}]', "item 0 (a): 'inputs' must be an object"),
])
def test_main_bad_file_exits_2_with_one_line(tmp_path, capsys, content, message):
    good = tmp_path / "good.json"
    good.write_text("[]")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main([str(bad), str(good)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {bad}: {message}") and err.count("\n") == 1
    # Either side is checked, and named.
    assert main([str(good), str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: ")


def test_main_usage_error_exits_2(capsys):
    assert main(["only-one.json"]) == 2
    assert "usage: llmhost diff" in capsys.readouterr().err


def test_secret_on_one_side_never_claims_a_replacement():
    secret = "aws:secretsmanager/secret:Secret"
    diff = diff_inventories([_res(secret, "s", {"name": MASK})], [_res(secret, "s", {"name": "llm-hosting/prod/key"})])
    change = diff.changed_resource("s").change("name")
    assert (change.old, change.new, change.forces_replacement) == (MASK, HIDDEN, False)
    assert change.note == f"{SECRET_NOTE}; replaces the resource if the value differs"
    assert "llm-hosting/prod/key" not in render_markdown(diff, "s") and diff.stateful_replacements == []
