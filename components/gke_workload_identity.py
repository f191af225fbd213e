"""A Google service account for one Kubernetes service account through Workload Identity, reading one GCS prefix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_gcp as gcp


def split_gs(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    return bucket, prefix


@dataclass(frozen=True)
class GkeWorkloadIdentityArgs:
    stack: str
    project: Optional[str]
    namespace: str
    service_account: str
    weights_uri: str  # gs://bucket/prefix/

    def __post_init__(self):
        if not self.weights_uri.startswith("gs://") or not split_gs(self.weights_uri)[0]:
            raise ValueError(f"weights_uri: {self.weights_uri!r} is not a gs://bucket/prefix/ URI")


class GkeWorkloadIdentity(pulumi.ComponentResource):
    email: pulumi.Output[str]
    annotations: pulumi.Output[dict]

    def __init__(self, name: str, args: GkeWorkloadIdentityArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GkeWorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket, prefix = split_gs(args.weights_uri)
        project = gcp.organizations.get_project_output(project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        gsa = gcp.serviceaccount.Account(
            f"{name}-gsa", account_id=f"llm-{args.stack}-{args.service_account}"[:30].rstrip("-"),
            display_name=f"Reads the model weights for llm-hosting {args.stack}", project=args.project, opts=child)
        # Read only the weights prefix: an IAM condition on the object name, since bucket roles are bucket-wide.
        gcp.storage.BucketIAMMember(
            f"{name}-weights", bucket=bucket, role="roles/storage.objectViewer", member=gsa.member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="weights-prefix-only", description=f"objects under {prefix}",
                expression=f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}")'),
            opts=child)
        gcp.serviceaccount.IAMMember(
            f"{name}-wi", service_account_id=gsa.name, role="roles/iam.workloadIdentityUser",
            member=project.project_id.apply(lambda p: f"serviceAccount:{p}.svc.id.goog[{args.namespace}/{args.service_account}]"),
            opts=child)
        self.email = gsa.email
        self.annotations = gsa.email.apply(lambda e: {"iam.gke.io/gcp-service-account": e})
        self.register_outputs({"email": self.email})
