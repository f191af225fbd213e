"""A Google service account for one Kubernetes service account through Workload Identity, reading one GCS prefix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp


def split_gs(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    return bucket, prefix


def prefix_condition(bucket: str, prefix: str) -> str:
    """An IAM condition that admits reads of objects under `prefix` and listings restricted to it.

    A condition on the object name alone denies `storage.objects.list`: a list call is checked against the bucket
    (resource.name is `projects/_/buckets/<bucket>`), never an object. Cloud Storage passes the request's list prefix
    as the `storage.googleapis.com/objectListPrefix` API attribute, so a listing is admitted when it asks only for
    names under our prefix, which is what the Run:ai streamer does before it reads the shards.
    """
    return (f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}") || '
            f'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("{prefix}")')


@dataclass(frozen=True)
class GkeWorkloadIdentityArgs:
    stack: str
    project: Optional[str]
    namespace: str
    service_account: str
    weights_uri: str  # gs://bucket/prefix/
    # The cluster's Workload Identity pool (GkeCluster.workload_pool). Taking the cluster's output orders the binding
    # after the cluster: binding to `<project>.svc.id.goog` before any cluster made it fails with "Identity Pool does
    # not exist" on a first `pulumi up`.
    workload_pool: pulumi.Input[str]

    def __post_init__(self):
        if not self.weights_uri.startswith("gs://") or not split_gs(self.weights_uri)[0]:
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not a gs://bucket/prefix/ URI")


class GkeWorkloadIdentity(pulumi.ComponentResource):
    email: pulumi.Output[str]
    annotations: pulumi.Output[dict]
    binding: gcp.serviceaccount.IAMMember  # the Kubernetes service account's right to act as the Google one

    def __init__(self, name: str, args: GkeWorkloadIdentityArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GkeWorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket, prefix = split_gs(args.weights_uri)
        gsa = gcp.serviceaccount.Account(
            f"{name}-gsa", account_id=f"llm-{args.stack}-{args.service_account}"[:30].rstrip("-"),
            display_name=f"Reads the model weights for llm-hosting {args.stack}", project=args.project, opts=child)
        # Read and list only the weights prefix: an IAM condition, since bucket roles are bucket-wide.
        gcp.storage.BucketIAMMember(
            f"{name}-weights", bucket=bucket, role="roles/storage.objectViewer", member=gsa.member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="weights-prefix-only", description=f"read and list objects under {prefix}",
                expression=prefix_condition(bucket, prefix)),
            opts=child)
        self.binding = gcp.serviceaccount.IAMMember(
            f"{name}-wi", service_account_id=gsa.name, role="roles/iam.workloadIdentityUser",
            member=pulumi.Output.from_input(args.workload_pool).apply(
                lambda pool: f"serviceAccount:{pool}[{args.namespace}/{args.service_account}]"),
            opts=child)
        self.email = gsa.email
        self.annotations = gsa.email.apply(lambda e: {"iam.gke.io/gcp-service-account": e})
        self.register_outputs({"email": self.email})
