"""`llmhost diff OLD.json NEW.json`: what changes between two offline inventories (`llmhost preview --json`).

Pure Python, no Pulumi import: it reads two JSON lists of `{type, name, parent, inputs, options}` and reports

- resources added and removed, keyed by (type, name) as Pulumi's URN is;
- per changed resource, every property that changed, as a path (`spec.template.spec.containers[0].image`)
  with the old and the new value. Inputs that are JSON documents (IAM and KMS policies) are compared as
  documents, so a path goes on into them (`policy.Statement[1].Resource`);
- which changes force a replacement, from the small table `FORCES_REPLACEMENT` below, and which resources
  hold state (`STATEFUL_TYPES`). Replacing a stateful resource is flagged "REPLACE (stateful: data loss unless
  protected)", removing one "DELETE (stateful)".

Secrets stay masked: the inventory shows them as "[secret]". Two masked values compare equal (a change from one
secret to another cannot be seen offline); if only one side is masked the change is reported as
"secret (cannot compare)" and the plain side is not printed either.

This is an offline approximation. Inputs only: no provider defaults, no computed outputs, no cascade of a
replaced resource's new id into its dependants. The cloud job's `pulumi preview --diff` is the authority; this
diff is what a reviewer can see without any credentials.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

MASK = "[secret]"
SECRET_NOTE = "secret (cannot compare)"
HIDDEN = "(plain value not shown)"
REPLACE_STATEFUL = "REPLACE (stateful: data loss unless protected)"
DELETE_STATEFUL = "DELETE (stateful)"
CELL_LIMIT = 72  # characters of a value shown in a table cell
FLATTEN_LIMIT = 8  # an added or removed object with at most this many leaves is listed leaf by leaf


class _Absent:
    """The property does not exist on this side."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()

# ---------------------------------------------------------------------------------------------------------------
# Resource types whose replacement or deletion loses data, keys or a long-lived identity (type-token globs).
STATEFUL_TYPES: dict[str, str] = {
    "aws:kms/key:Key": "KMS key: what it encrypted is unreadable once it is gone",
    "aws:kms/replicaKey:ReplicaKey": "KMS replica key",
    "aws:secretsmanager/secret:Secret": "Secrets Manager secret: the stored value and its versions",
    "aws:cloudwatch/logGroup:LogGroup": "log group: the logs",
    "aws:eks/cluster:Cluster": "EKS cluster: etcd, workloads, access entries",
    "aws:sagemaker/endpoint:Endpoint": "SageMaker endpoint: its name is what callers invoke",
    "aws:s3/bucket:Bucket": "S3 bucket: the objects",
    "aws:s3/bucketV2:BucketV2": "S3 bucket: the objects",
    "aws:ecr/repository:Repository": "ECR repository: the mirrored images",
    "aws:ec2/vpc:Vpc": "VPC: everything placed in it",
    "aws:ec2/subnet:Subnet": "subnet: the ENIs placed in it",
    "gcp:kms/keyRing:KeyRing": "KMS key ring (Cloud KMS never deletes one)",
    "gcp:kms/cryptoKey:CryptoKey": "Cloud KMS key: what it encrypted is unreadable once its versions are destroyed",
    "gcp:secretmanager/secret:Secret": "Secret Manager secret: the stored value and its versions",
    "gcp:container/cluster:Cluster": "GKE cluster: etcd, workloads",
    "gcp:vertex/aiEndpoint:AiEndpoint": "Vertex AI endpoint: its URL is what callers invoke",
    "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment":
        "Vertex AI endpoint: its URL is what callers invoke",
    "gcp:storage/bucket:Bucket": "GCS bucket: the objects",
    "gcp:artifactregistry/repository:Repository": "Artifact Registry repository: the mirrored images",
    "gcp:compute/network:Network": "VPC network: everything placed in it",
    "gcp:compute/subnetwork:Subnetwork": "subnetwork: everything placed in it",
    "kubernetes:core/v1:PersistentVolumeClaim": "persistent volume claim: the volume's data",
}


def _cidr_expanded(old: Any, new: Any) -> bool:
    """GCP lets a subnetwork's primary range grow in place (same start, shorter prefix); any other change replaces."""
    try:
        a, b = ipaddress.ip_network(str(old)), ipaddress.ip_network(str(new))
    except ValueError:
        return False
    return a.version == b.version and a.network_address == b.network_address and a.prefixlen > b.prefixlen


@dataclass(frozen=True)
class Rule:
    """A change of `path`, or of anything under it, on a resource of `type` (a glob) forces replacement.

    `path` uses the inventory's (camelCase) input names and `[*]` for any list index; `*` alone is every input
    except tags. Two ways to say what the provider does in place after all: `in_place`, a regex of sub-paths
    (fullmatch), and `unless(old, new)`, a test of the values.
    """

    type: str
    path: str
    in_place: Optional[str] = None
    unless: Optional[Callable[[Any, Any], bool]] = None

    def matches(self, type_: str, path: str, old: Any, new: Any) -> bool:
        if not fnmatchcase(type_, self.type):
            return False
        if self.path == "*":
            hit = not re.match(r"tags(All)?($|[.\[])", path)
        else:
            hit = _under(path, self.path)
        if hit and self.in_place and re.fullmatch(self.in_place, path):
            return False
        return hit and not (self.unless and self.unless(old, new))


# What the providers document as ForceNew / immutable (Terraform schema behind the Pulumi provider, or the cloud
# API marking the field Immutable). Kept small on purpose: a change not listed is reported as an update, and the
# cloud job's `pulumi preview --diff` is the final word.
FORCES_REPLACEMENT: tuple[Rule, ...] = (
    # -- AWS (pulumi-aws 7.x = terraform-provider-aws 6.x) ------------------------------------------------------
    Rule("aws:kms/key:Key", "multiRegion"),             # aws_kms_key multi_region: ForceNew
    Rule("aws:kms/key:Key", "customerMasterKeySpec"),   # ForceNew
    Rule("aws:kms/key:Key", "keyUsage"),                # ForceNew
    Rule("aws:kms/replicaKey:ReplicaKey", "primaryKeyArn"),  # ForceNew
    Rule("aws:kms/replicaKey:ReplicaKey", "region"),         # the replica lives in its region
    Rule("aws:kms/alias:Alias", "name"),                # ForceNew (an alias holds no data: replace, not stateful)
    Rule("aws:secretsmanager/secret:Secret", "name"),   # ForceNew. `replicas` and `kmsKeyId` update in place.
    Rule("aws:secretsmanager/secret:Secret", "namePrefix"),
    Rule("aws:secretsmanager/secretVersion:SecretVersion", "secretId"),
    Rule("aws:cloudwatch/logGroup:LogGroup", "name"),   # ForceNew; kmsKeyId and retention update in place
    Rule("aws:cloudwatch/logGroup:LogGroup", "namePrefix"),
    Rule("aws:cloudwatch/logGroup:LogGroup", "logGroupClass"),
    # EKS cluster. Not `vpcConfig.subnetIds`/`securityGroupIds`: those update in place since
    # terraform-provider-aws 5.25.0 (hashicorp/terraform-provider-aws#34209).
    Rule("aws:eks/cluster:Cluster", "name"),
    Rule("aws:eks/cluster:Cluster", "roleArn"),
    Rule("aws:eks/cluster:Cluster", "encryptionConfig.provider.keyArn"),  # EKS cannot change the secrets key
    Rule("aws:eks/cluster:Cluster", "encryptionConfig.resources"),
    Rule("aws:eks/cluster:Cluster", "kubernetesNetworkConfig.serviceIpv4Cidr"),
    Rule("aws:eks/cluster:Cluster", "kubernetesNetworkConfig.ipFamily"),
    Rule("aws:eks/cluster:Cluster", "accessConfig.bootstrapClusterCreatorAdminPermissions"),
    Rule("aws:eks/cluster:Cluster", "bootstrapSelfManagedAddons"),
    Rule("aws:eks/nodeGroup:NodeGroup", "nodeGroupName"),
    Rule("aws:eks/nodeGroup:NodeGroup", "clusterName"),
    Rule("aws:eks/nodeGroup:NodeGroup", "nodeRoleArn"),
    Rule("aws:eks/nodeGroup:NodeGroup", "subnetIds"),
    Rule("aws:eks/nodeGroup:NodeGroup", "instanceTypes"),
    Rule("aws:eks/nodeGroup:NodeGroup", "capacityType"),
    Rule("aws:eks/nodeGroup:NodeGroup", "amiType"),
    Rule("aws:eks/nodeGroup:NodeGroup", "diskSize"),
    Rule("aws:ec2/vpc:Vpc", "cidrBlock"),                 # ForceNew
    Rule("aws:ec2/subnet:Subnet", "cidrBlock"),           # ForceNew
    Rule("aws:ec2/subnet:Subnet", "availabilityZone"),    # ForceNew
    Rule("aws:ec2/subnet:Subnet", "availabilityZoneId"),
    Rule("aws:ec2/subnet:Subnet", "vpcId"),
    Rule("aws:sagemaker/endpoint:Endpoint", "name"),      # ForceNew; a new endpointConfigName updates in place
    Rule("aws:sagemaker/endpointConfiguration:EndpointConfiguration", "*"),  # every argument but tags: ForceNew
    Rule("aws:sagemaker/model:Model", "*"),                                  # every argument but tags: ForceNew
    Rule("aws:iam/role:Role", "name"),
    Rule("aws:iam/policy:Policy", "name"),
    Rule("aws:s3/bucket:Bucket", "bucket"),
    Rule("aws:s3/bucket:Bucket", "bucketPrefix"),
    Rule("aws:s3/bucketV2:BucketV2", "bucket"),
    Rule("aws:s3/bucketV2:BucketV2", "bucketPrefix"),
    Rule("aws:ecr/repository:Repository", "name"),
    # -- GCP (pulumi-gcp 10.x = terraform-provider-google 7.x) ---------------------------------------------------
    Rule("gcp:kms/keyRing:KeyRing", "name"),              # key rings are immutable and never deleted
    Rule("gcp:kms/keyRing:KeyRing", "location"),
    Rule("gcp:kms/keyRing:KeyRing", "project"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "name"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "keyRing"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "purpose"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "importOnly"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "skipInitialVersionCreation"),
    Rule("gcp:kms/cryptoKey:CryptoKey", "destroyScheduledDuration"),  # Immutable in the Cloud KMS API
    Rule("gcp:secretmanager/secret:Secret", "secretId"),
    Rule("gcp:secretmanager/secret:Secret", "project"),
    # Replication is Immutable in the Secret Manager API (adding or removing a replica location replaces the
    # secret); only the replicas' CMEK keys update in place (`gcloud secrets replication update --set-kms-key`).
    Rule("gcp:secretmanager/secret:Secret", "replication",
         in_place=r"replication\.(auto|userManaged\.replicas\[\d+\])\.customerManagedEncryption(\..*)?"),
    Rule("gcp:secretmanager/secretVersion:SecretVersion", "secret"),
    Rule("gcp:container/cluster:Cluster", "name"),
    Rule("gcp:container/cluster:Cluster", "location"),
    Rule("gcp:container/cluster:Cluster", "project"),
    Rule("gcp:container/cluster:Cluster", "network"),
    Rule("gcp:container/cluster:Cluster", "subnetwork"),
    Rule("gcp:container/cluster:Cluster", "networkingMode"),
    Rule("gcp:container/cluster:Cluster", "datapathProvider"),
    Rule("gcp:container/cluster:Cluster", "initialNodeCount"),
    Rule("gcp:container/cluster:Cluster", "ipAllocationPolicy.clusterSecondaryRangeName"),
    Rule("gcp:container/cluster:Cluster", "ipAllocationPolicy.servicesSecondaryRangeName"),
    Rule("gcp:container/cluster:Cluster", "privateClusterConfig.masterIpv4CidrBlock"),
    Rule("gcp:container/nodePool:NodePool", "name"),
    Rule("gcp:container/nodePool:NodePool", "cluster"),
    Rule("gcp:container/nodePool:NodePool", "location"),
    Rule("gcp:container/nodePool:NodePool", "project"),
    # The model-garden deployment is `immutable: true` in magic-modules: every input change recreates the endpoint
    # (hashicorp/terraform-provider-google#27250; in-place replica counts came only later, magic-modules#18116).
    Rule("gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment", "*"),
    Rule("gcp:vertex/aiEndpoint:AiEndpoint", "location"),
    Rule("gcp:vertex/aiEndpoint:AiEndpoint", "name"),
    Rule("gcp:vertex/aiEndpoint:AiEndpoint", "encryptionSpec"),
    Rule("gcp:storage/bucket:Bucket", "name"),
    Rule("gcp:storage/bucket:Bucket", "location"),
    Rule("gcp:storage/bucket:Bucket", "project"),
    Rule("gcp:artifactregistry/repository:Repository", "repositoryId"),
    Rule("gcp:artifactregistry/repository:Repository", "location"),
    Rule("gcp:artifactregistry/repository:Repository", "format"),
    Rule("gcp:compute/network:Network", "name"),
    Rule("gcp:compute/network:Network", "project"),
    Rule("gcp:compute/network:Network", "autoCreateSubnetworks"),
    Rule("gcp:compute/subnetwork:Subnetwork", "name"),
    Rule("gcp:compute/subnetwork:Subnetwork", "network"),
    Rule("gcp:compute/subnetwork:Subnetwork", "region"),
    Rule("gcp:compute/subnetwork:Subnetwork", "project"),
    Rule("gcp:compute/subnetwork:Subnetwork", "ipCidrRange", unless=_cidr_expanded),
    Rule("gcp:serviceaccount/account:Account", "accountId"),
    Rule("gcp:serviceaccount/account:Account", "project"),
    # -- Kubernetes (pulumi-kubernetes replaces on a new name/namespace and on immutable fields) -----------------
    Rule("kubernetes:*", "metadata.name"),
    Rule("kubernetes:*", "metadata.namespace"),
    Rule("kubernetes:apps/v1:Deployment", "spec.selector"),
    Rule("kubernetes:apps/v1:DaemonSet", "spec.selector"),
    Rule("kubernetes:apps/v1:StatefulSet", "spec.selector"),
    Rule("kubernetes:apps/v1:StatefulSet", "spec.volumeClaimTemplates"),
    Rule("kubernetes:core/v1:PersistentVolumeClaim", "spec.accessModes"),
    Rule("kubernetes:core/v1:PersistentVolumeClaim", "spec.storageClassName"),
    Rule("kubernetes:core/v1:PersistentVolumeClaim", "spec.volumeName"),
    Rule("kubernetes:core/v1:PersistentVolumeClaim", "spec.volumeMode"),
    Rule("kubernetes:core/v1:PersistentVolumeClaim", "spec.selector"),
)


def is_stateful(type_: str) -> bool:
    return any(fnmatchcase(type_, pattern) for pattern in STATEFUL_TYPES)


def forces_replacement(type_: str, path: str, old: Any = ABSENT, new: Any = ABSENT) -> bool:
    return any(rule.matches(type_, path, old, new) for rule in FORCES_REPLACEMENT)


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PropertyChange:
    path: str                  # `spec.template.spec.containers[0].image`; options and parent have their own section
    old: Any                   # ABSENT when the property is new
    new: Any                   # ABSENT when the property was removed
    section: str = "inputs"    # inputs | options | parent
    note: str = ""
    forces_replacement: bool = False


@dataclass
class ResourceEntry:
    """A resource only one inventory has."""

    type: str
    name: str
    parent: Optional[str]
    stateful: bool
    protected: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)

    @property
    def deletion(self) -> str:
        """What removing it means: "DELETE (stateful)" or "delete"."""
        return DELETE_STATEFUL if self.stateful else "delete"


@dataclass
class ResourceChange:
    type: str
    name: str
    parent: Optional[str]
    stateful: bool
    protected: bool            # protected in the old inventory: Pulumi stops before replacing it
    changes: list[PropertyChange]

    @property
    def replace(self) -> bool:
        return any(c.forces_replacement for c in self.changes)

    @property
    def action(self) -> str:
        if self.replace:
            return REPLACE_STATEFUL if self.stateful else "replace"
        return "update"

    @property
    def replaced_by(self) -> list[str]:
        return [c.path for c in self.changes if c.forces_replacement]

    def change(self, path: str, section: str = "inputs") -> PropertyChange:
        for c in self.changes:
            if c.path == path and c.section == section:
                return c
        raise KeyError(path)


@dataclass
class InventoryDiff:
    added: list[ResourceEntry] = field(default_factory=list)
    removed: list[ResourceEntry] = field(default_factory=list)
    changed: list[ResourceChange] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def replaced(self) -> list[ResourceChange]:
        return [c for c in self.changed if c.replace]

    @property
    def stateful_replacements(self) -> list[ResourceChange]:
        return [c for c in self.changed if c.replace and c.stateful]

    @property
    def stateful_deletions(self) -> list[ResourceEntry]:
        return [r for r in self.removed if r.stateful]

    def changed_resource(self, name: str, type_: Optional[str] = None) -> ResourceChange:
        for c in self.changed:
            if c.name == name and (type_ is None or c.type == type_):
                return c
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------------------------
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$\-:/@]*$")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _json_doc(text: str) -> Any:
    """A string input that holds a JSON object or array (an IAM/KMS policy), decoded; else None."""
    s = text.lstrip()
    if not s.startswith(("{", "[")):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, (dict, list)) else None


def _same(a: Any, b: Any) -> bool:
    """Equal, without Python's True == 1 (a flag turned into a count is a change)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1


def _walk(old: Any, new: Any, path: str, out: list[PropertyChange], section: str) -> None:
    if old is ABSENT and new is ABSENT:
        return
    old_masked, new_masked = old == MASK, new == MASK
    if old_masked and new_masked:
        return  # both secret: equal as far as anyone offline can tell
    if old_masked != new_masked and old is not ABSENT and new is not ABSENT:
        out.append(PropertyChange(path, MASK if old_masked else HIDDEN, MASK if new_masked else HIDDEN,
                                  section, note=SECRET_NOTE))
        return
    # A small object or list that appears or disappears is shown leaf by leaf (exact paths); a big one as one row.
    if old is ABSENT and isinstance(new, (dict, list)) and new and _leaves(new) <= FLATTEN_LIMIT:
        old = type(new)()
    elif new is ABSENT and isinstance(old, (dict, list)) and old and _leaves(old) <= FLATTEN_LIMIT:
        new = type(old)()
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _walk(old.get(key, ABSENT), new.get(key, ABSENT), _join(path, key), out, section)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            _walk(old[i] if i < len(old) else ABSENT, new[i] if i < len(new) else ABSENT, _join(path, i), out, section)
        return
    if isinstance(old, str) and isinstance(new, str) and old != new:
        a, b = _json_doc(old), _json_doc(new)
        if a is not None and b is not None:
            _walk(a, b, path, out, section)
            return
    if _same(old, new):
        return
    out.append(PropertyChange(path, old, new, section))


def _under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or inside it (an ignoreChanges entry; `[*]` matches any index)."""
    pattern = re.escape(prefix).replace(r"\[\*\]", r"\[\d+\]")
    return re.fullmatch(pattern + r"([.\[].*)?", path) is not None


def _index(inventory: Sequence[dict], label: str) -> dict[tuple[str, str], dict]:
    index: dict[tuple[str, str], dict] = {}
    for item in inventory:
        key = (item["type"], item["name"])
        if key in index:  # Pulumi would refuse two resources with one URN; keep both, told apart by parent
            key = (item["type"], f"{item['name']} (under {item.get('parent')})")
            if key in index:
                raise ValueError(f"{label}: {item['type']} {item['name']!r} appears twice under the same parent")
        index[key] = item
    return index


def _entry(item: dict) -> ResourceEntry:
    return ResourceEntry(item["type"], item["name"], item.get("parent"), is_stateful(item["type"]),
                         bool((item.get("options") or {}).get("protect")))


def diff_inventories(old: Sequence[dict], new: Sequence[dict], labels: tuple[str, str] = ("old", "new")) -> InventoryDiff:
    """Compare two inventories (lists of `{type, name, parent, inputs, options}`), keyed by (type, name)."""
    before, after = _index(old, labels[0]), _index(new, labels[1])
    result = InventoryDiff()
    for key in sorted(after.keys() - before.keys()):
        result.added.append(_entry(after[key]))
    for key in sorted(before.keys() - after.keys()):
        result.removed.append(_entry(before[key]))
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        type_ = key[0]
        stateful = is_stateful(type_)
        changes: list[PropertyChange] = []
        _walk(a.get("inputs") or {}, b.get("inputs") or {}, "", changes, "inputs")
        ignored = (b.get("options") or {}).get("ignoreChanges") or []
        changes = [c for c in changes if not any(_under(c.path, i) for i in ignored)]  # Pulumi keeps the old value
        for c in changes:
            forced = forces_replacement(type_, c.path, c.old, c.new)
            if c.note == SECRET_NOTE:  # maybe the same value, only now (or no longer) secret: cannot claim a replace
                c.note += "; replaces the resource if the value differs" if forced else ""
            else:
                c.forces_replacement = forced
                c.note = "forces replacement" if forced else c.note
        option_changes: list[PropertyChange] = []
        _walk(a.get("options") or {}, b.get("options") or {}, "", option_changes, "options")
        for c in option_changes:
            if c.path == "protect" and c.old is True and c.new is not True and stateful:
                c.note = "protection removed from a stateful resource"
        changes += option_changes
        if a.get("parent") != b.get("parent"):
            changes.append(PropertyChange("parent", a.get("parent"), b.get("parent"), "parent",
                                          note="a new parent type means a new URN: delete and create unless aliased"))
        if changes:
            result.changed.append(ResourceChange(type_, b["name"], b.get("parent"), stateful,
                                                 bool((a.get("options") or {}).get("protect")), changes))
        else:
            result.unchanged += 1
    return result


# ---------------------------------------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(diff: InventoryDiff, stack: str) -> str:
    """One line, e.g. `S: 2 to add, 1 to delete, 3 to change (1 replaced; 1 stateful replacement,
    0 stateful deletions), 40 unchanged`, or `S: no changes (12 resources unchanged)`."""
    if diff.empty:
        return f"{stack}: no changes ({_plural(diff.unchanged, 'resource')} unchanged)"
    return (f"{stack}: {len(diff.added)} to add, {len(diff.removed)} to delete, {len(diff.changed)} to change "
            f"({len(diff.replaced)} replaced; {_plural(len(diff.stateful_replacements), 'stateful replacement')}, "
            f"{_plural(len(diff.stateful_deletions), 'stateful deletion')}), {diff.unchanged} unchanged")


def _text(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return text.replace("\r", "").replace("\n", "⏎")


def _short(value: Any, limit: int = CELL_LIMIT, start: int = 0) -> str:
    """At most `limit` characters: from `start` (where two values begin to differ) if given, else head…tail."""
    text = _text(value)
    if len(text) <= limit:
        return text
    if start > 0:
        piece = "…" + text[start: start + limit - 2]
        return piece + "…" if start + limit - 2 < len(text) else piece
    head = (limit - 1) * 2 // 3
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def _short_pair(old: Any, new: Any, limit: int = CELL_LIMIT) -> tuple[str, str]:
    """Two long strings that share a long prefix are both shown from a little before they differ."""
    a, b = _text(old), _text(new)
    if isinstance(old, str) and isinstance(new, str) and max(len(a), len(b)) > limit:
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        start = max(0, i - limit // 3)
        return _short(a, limit, start), _short(b, limit, start)
    return _short(old, limit), _short(new, limit)


def _code(text: str) -> str:
    """A table-safe inline code span."""
    text = text.replace("|", "\\|")
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`" if text else ""


def _cell(value: Any, text: str) -> str:
    if value is ABSENT or value == HIDDEN:
        return f"_{text}_"
    return _code(text)


def _protect_note(protected: bool) -> str:
    return " (protected: `pulumi up` stops here until it is unprotected)" if protected else ""


def render_markdown(diff: InventoryDiff, stack: str) -> str:
    """The diff as Markdown for a PR comment: summary, risks, added/removed table, per-resource property tables."""
    lines = [f"### `{stack}`", "", f"**{summary_line(diff, stack)}**", ""]
    if diff.empty:
        return "\n".join(lines)

    risky = [(c.name, c.type, c.action + f", forced by {', '.join(_code(p) for p in c.replaced_by)}"
              + _protect_note(c.protected)) for c in diff.stateful_replacements]
    risky += [(r.name, r.type, DELETE_STATEFUL + _protect_note(r.protected)) for r in diff.stateful_deletions]
    if risky:
        lines += ["> [!WARNING]", "> Stateful resources would be replaced or deleted:"]
        lines += [f"> - **{name}** ({_code(type_)}): {what}" for name, type_, what in risky]
        lines.append("")

    if diff.added or diff.removed:
        lines += ["| | resource | type | parent | note |", "|---|---|---|---|---|"]
        for r in diff.added:
            lines.append(f"| + | {_code(r.name)} | {_code(r.type)} | {_code(r.parent or '')} | create |")
        for r in diff.removed:
            note = f"**{DELETE_STATEFUL}**" + (", protected" if r.protected else "") if r.stateful else "delete"
            lines.append(f"| − | {_code(r.name)} | {_code(r.type)} | {_code(r.parent or '')} | {note} |")
        lines.append("")

    for c in diff.changed:
        action = f"**{c.action}**" if c.replace else c.action
        lines += [f"#### {_code(c.name)} ({_code(c.type)}): {action}{_protect_note(c.protected) if c.replace else ''}",
                  "", "| property | old | new | note |", "|---|---|---|---|"]
        for p in c.changes:
            label = {"inputs": p.path, "options": f"(option) {p.path}", "parent": "(parent)"}[p.section]
            old, new = _short_pair(p.old, p.new)
            lines.append(f"| {_code(_short(label, 100))} | {_cell(p.old, old)} | {_cell(p.new, new)} | {p.note} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
class InventoryError(ValueError):
    pass


def load_inventory(path: Path) -> list[dict]:
    """Read and check one `llmhost preview --json` file; InventoryError names the file and the problem."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InventoryError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InventoryError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise InventoryError(f"{path}: expected a JSON list of resources (the output of `llmhost preview --json`), "
                             f"got {type(doc).__name__}")
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise InventoryError(f"{path}: item {i} is {type(item).__name__}, expected an object")
        for key in ("type", "name"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise InventoryError(f"{path}: item {i} has no {key!r} string")
        for key in ("inputs", "options"):
            if item.get(key) is not None and not isinstance(item[key], dict):
                raise InventoryError(f"{path}: item {i} ({item['name']}): {key!r} must be an object")
        if item.get("parent") is not None and not isinstance(item["parent"], str):
            raise InventoryError(f"{path}: item {i} ({item['name']}): 'parent' must be a string or null")
    return doc


def _stack_name(path: Path) -> str:
    name = Path(path).name
    for suffix in (".inventory.json", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`llmhost diff OLD.json NEW.json [--stack NAME]`: print the Markdown diff. 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="llmhost diff",
        description="Compare two offline inventories written by `llmhost preview --json` and print a Markdown diff.")
    parser.add_argument("old", type=Path, help="the inventory before the change (e.g. the PR's base)")
    parser.add_argument("new", type=Path, help="the inventory after the change (e.g. the PR's head)")
    parser.add_argument("--stack", help="the stack name for the heading (default: NEW's file name without .json)")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code or 0)
    try:
        old, new = load_inventory(args.old), load_inventory(args.new)
        diff = diff_inventories(old, new, labels=(str(args.old), str(args.new)))
    except (InventoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_markdown(diff, args.stack or _stack_name(args.new)) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
