"""A GKE cluster's logs kept in the stack's region: a regional CMEK Cloud Logging bucket and the sink that fills it.

Without it, GKE's workload and system logs land in the project's `_Default` bucket, whose location is `global`
unless an organisation policy says otherwise, under Google's key and the project's default 30 days. Here they go to
a bucket in the stack's region, encrypted with the stack's key and kept for the stack's retention.

`_Default` is left as Google made it: its sink cannot be created (only adopted, which would take over a
project-wide sink that other stacks in the project rely on). Instead a project exclusion, which the Logging API
attaches to the `_Default` sink, stops the same entries from also being stored there. It is created only after the
sink (never a window in which the entries go nowhere) and matches exactly what the sink routes. Audit logs are never
touched: Admin Activity, System Event and Policy Denied go to `_Required` whatever any exclusion says, and Data
Access entries are left out of both filters so they stay in `_Default` where audit tooling looks for them.

CMEK is set on the bucket itself (`cmek_settings`), which needs no project-level CMEK settings: the project's Cloud
Logging service account (from getProjectCmekSettings, which creates it) must hold the key, which is in the bucket's
region. The project-level settings only change the default for new buckets and the Log Router's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
# GKE's monitored-resource types for a cluster's logs: containers (workloads and kube-system), pods, nodes (kubelet,
# container runtime), cluster-level events and the control plane's components. Each carries cluster_name and location.
GKE_RESOURCE_TYPES = ("k8s_container", "k8s_pod", "k8s_node", "k8s_cluster", "k8s_control_plane_component")
AUDIT_LOG_IDS = ("cloudaudit.googleapis.com/activity", "cloudaudit.googleapis.com/data_access",
                 "cloudaudit.googleapis.com/system_event", "cloudaudit.googleapis.com/policy")
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650  # what a Cloud Logging bucket accepts


def cluster_log_filter(cluster_name: str, region: str) -> str:
    """The Logging query for one regional cluster's workload and system logs, audit logs excepted."""
    types = " OR ".join(f'"{t}"' for t in GKE_RESOURCE_TYPES)
    audit = " AND ".join(f'NOT log_id("{log}")' for log in AUDIT_LOG_IDS)
    return (f'resource.type=({types}) AND resource.labels.cluster_name="{cluster_name}" '
            f'AND resource.labels.location="{region}" AND {audit}')


def bucket_name(stack: str) -> str:
    return f"llm-hosting-{stack}-logs"


@dataclass(frozen=True)
class GcpLogBucketArgs:
    stack: str
    project: Optional[str]  # None = the provider's gcp:project
    region: str  # the bucket's location
    kms_key_id: pulumi.Input[str]  # a Cloud KMS key in `region` (GkeCluster.kms_key_id)
    retention_days: int  # the stack's observability.logRetentionDays
    cluster_name: pulumi.Input[str]  # the regional GKE cluster in `region` whose logs are routed
    # Also stop those entries from being stored in `_Default`. Turning it off keeps a second copy there (outside
    # the region unless the organisation pins `_Default`'s location).
    exclude_from_default: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True

    def __post_init__(self):
        if not self.stack:
            raise ValueError("stack: the stack name is required")
        if not self.region or self.region == "global":
            raise ValueError(f"region: {self.region!r} is not a region; the bucket stays in the stack's region")
        if not MIN_RETENTION_DAYS <= self.retention_days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention_days: {self.retention_days} is outside Cloud Logging's "
                             f"{MIN_RETENTION_DAYS}..{MAX_RETENTION_DAYS} days")


class GcpLogBucket(pulumi.ComponentResource):
    bucket_id: pulumi.Output[str]  # projects/<project>/locations/<region>/buckets/llm-hosting-<stack>-logs
    sink_name: pulumi.Output[str]
    filter: pulumi.Output[str]  # what the sink routes (and the exclusion keeps out of _Default)

    def __init__(self, name: str, args: GcpLogBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpLogBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project_id = pulumi.Output.from_input(args.project) if args.project else \
            gcp.organizations.get_project_output(opts=pulumi.InvokeOutputOptions(parent=self)).project_id
        # The bucket encrypts as the project's Cloud Logging service account; the key must be granted first, since
        # CMEK can only be set when the bucket is created.
        cmek = gcp.logging.get_project_cmek_settings_output(project=project_id,
                                                            opts=pulumi.InvokeOutputOptions(parent=self))
        key_grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-key-grant", crypto_key_id=args.kms_key_id, role=ENCRYPTER,
            member=cmek.service_account_id.apply(lambda sa: f"serviceAccount:{sa}"), opts=child)
        bucket = gcp.logging.ProjectBucketConfig(
            f"{name}-bucket",
            project=project_id,
            location=args.region,
            bucket_id=bucket_name(args.stack),
            description=f"llm-hosting {args.stack}: GKE workload and system logs, kept in {args.region}",
            retention_days=args.retention_days,
            # Not locked: a locked bucket's retention can never be shortened and the bucket cannot be deleted
            # before its entries expire; a compliance owner locks it deliberately, outside the kit.
            locked=False,
            cmek_settings=gcp.logging.ProjectBucketConfigCmekSettingsArgs(kms_key_name=args.kms_key_id),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=[key_grant]),
        )
        log_filter = pulumi.Output.from_input(args.cluster_name).apply(lambda c: cluster_log_filter(c, args.region))
        # A sink into a log bucket of its own project writes without a writer identity: no grant to make.
        sink = gcp.logging.ProjectSink(
            f"{name}-sink",
            name=f"llm-hosting-{args.stack}-gke",
            project=project_id,
            destination=pulumi.Output.concat("logging.googleapis.com/projects/", project_id, "/locations/",
                                             args.region, "/buckets/", bucket.bucket_id),
            filter=log_filter,
            description=f"llm-hosting {args.stack}: the cluster's logs into {bucket_name(args.stack)}",
            opts=child,
        )
        if args.exclude_from_default:
            gcp.logging.ProjectExclusion(
                f"{name}-default-exclusion",
                name=f"llm-hosting-{args.stack}-gke",
                project=project_id,
                filter=log_filter,
                description=f"llm-hosting {args.stack}: stored in {bucket_name(args.stack)} ({args.region}) instead",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[sink]),
            )

        self.bucket_id = pulumi.Output.concat("projects/", project_id, "/locations/", args.region, "/buckets/",
                                              bucket.bucket_id)
        self.sink_name = sink.name
        self.filter = log_filter
        self.register_outputs({"bucket_id": self.bucket_id, "sink_name": self.sink_name, "filter": self.filter})
