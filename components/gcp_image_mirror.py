"""A pull-through mirror of a container registry in the stack's project: an Artifact Registry remote repository.

Cloud Run pulls images only from Artifact Registry, Container Registry (gcr.io) and Docker Hub; the kit's LiteLLM
image is published on ghcr.io. A remote repository with ghcr.io as its custom upstream fetches an image on the first
pull and serves its cached copy afterwards, so nothing is built or copied by hand, and the stack keeps the exact
reference it pinned (components/versions.py):

  ghcr.io/berriai/litellm:main-v1.106.2  ->  <region>-docker.pkg.dev/<project>/<repository>/berriai/litellm:main-v1.106.2

The upstream is fetched by Artifact Registry itself, from Google's side, never from the stack's VPC: an air-gapped
VPC stays without egress. The cache is encrypted with the stack's CMEK key, which Artifact Registry uses through its
service agent; this component grants that agent the key.

Readers: Cloud Run pulls with its service agent (service-<number>@serverless-robot-prod.iam.gserviceaccount.com),
whose role (roles/run.serviceAgent) reads Artifact Registry in its own project. With the mirror in the stack's
project no grant is needed; a mirror in another project would need roles/artifactregistry.reader for that agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_gcp as gcp

from .gcp_network import name_prefix

_REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?$")


def upstream_path(upstream_image: str, upstream_host: str) -> str:
    """The image's path, tag and digest on `upstream_host` (berriai/litellm:main-v1.106.2); refuses other hosts."""
    prefix = f"{upstream_host}/"
    if not upstream_image.startswith(prefix) or len(upstream_image) == len(prefix):
        raise ValueError(f"image {upstream_image!r} is not on {upstream_host}, the mirror's only upstream")
    return upstream_image[len(prefix):]


def mirrored_image(upstream_image: str, upstream_host: str, location: str, project: str, repository_id: str) -> str:
    """`upstream_image` (which must live on `upstream_host`) as the same path, tag and digest in the mirror."""
    return f"{location}-docker.pkg.dev/{project}/{repository_id}/{upstream_path(upstream_image, upstream_host)}"


@dataclass(frozen=True)
class GcpImageMirrorArgs:
    stack: str
    region: str  # the repository's location: the same region as what pulls from it
    kms_key_id: pulumi.Input[str]  # CMEK key (projects/.../cryptoKeys/...) in `region`, for the cached images
    project: Optional[str] = None  # None = the provider's gcp:project
    upstream_host: str = "ghcr.io"  # the registry mirrored (HTTPS); images are mapped from this host
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = True

    def __post_init__(self):
        if not self.region:
            raise ValueError("region: required (the repository's location)")
        if self.kms_key_id is None or self.kms_key_id == "":
            raise ValueError("kms_key_id: required (the mirror's cache is encrypted with the stack's CMEK key)")
        if not _HOST.match(self.upstream_host):
            raise ValueError(f"upstream_host: {self.upstream_host!r} is a registry host name such as ghcr.io "
                             "(no scheme, no path)")
        if not _REPOSITORY_ID.match(self.repository_id):
            raise ValueError(f"stack: {self.stack!r} makes the repository id {self.repository_id!r}, which is not "
                             "1-63 lowercase letters, digits and dashes")

    @property
    def repository_id(self) -> str:
        return f"{name_prefix(self.stack)}-{self.upstream_host.split(':')[0].replace('.', '-')}"


class GcpImageMirror(pulumi.ComponentResource):
    repository_id: pulumi.Output[str]
    registry: pulumi.Output[str]  # <region>-docker.pkg.dev/<project>/<repository>: prefix of every mirrored image

    def __init__(self, name: str, args: GcpImageMirrorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GcpImageMirror", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        # Artifact Registry encrypts with CMEK through its service agent, which must hold the key before the
        # repository is created (the repository's key cannot be changed afterwards).
        agent = gcp.projects.ServiceIdentity(f"{name}-ar-agent", service="artifactregistry.googleapis.com",
                                             project=args.project, opts=child)
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-ar-agent-key", crypto_key_id=args.kms_key_id, role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=agent.member, opts=child)
        repository = gcp.artifactregistry.Repository(
            f"{name}-repository",
            repository_id=args.repository_id,
            project=args.project,
            location=args.region,
            format="DOCKER",
            mode="REMOTE_REPOSITORY",
            description=f"llm-hosting {args.stack}: pull-through mirror of {args.upstream_host}",
            remote_repository_config=gcp.artifactregistry.RepositoryRemoteRepositoryConfigArgs(
                description=f"https://{args.upstream_host}",
                docker_repository=gcp.artifactregistry.RepositoryRemoteRepositoryConfigDockerRepositoryArgs(
                    custom_repository=gcp.artifactregistry.RepositoryRemoteRepositoryConfigDockerRepositoryCustomRepositoryArgs(
                        uri=f"https://{args.upstream_host}"))),
            kms_key_name=args.kms_key_id,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=[grant]))
        self.repository_id = repository.repository_id
        self.registry = pulumi.Output.all(repository.location, repository.project, repository.repository_id).apply(
            lambda v: f"{v[0]}-docker.pkg.dev/{v[1]}/{v[2]}")
        self.register_outputs({"repository_id": self.repository_id, "registry": self.registry})

    def image(self, upstream_image: str) -> pulumi.Output[str]:
        """The mirror's reference for `upstream_image` (e.g. VERSIONS.gateway_image(None)); refuses any other host
        at once, so a wrong image fails the program rather than a revision."""
        path = upstream_path(upstream_image, self._args.upstream_host)
        return self.registry.apply(lambda registry: f"{registry}/{path}")
