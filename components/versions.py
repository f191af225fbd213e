"""Pinned versions of everything the kit runs, in one place; a stack can override any of them.

Tags are exact releases, never `latest`. Where a stack needs byte-for-byte reproducibility it pins a digest
through `llm-hosting:versions` (e.g. `...@sha256:<digest>`), which replaces the tag-based reference here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

# AWS Deep Learning Containers are published from this account in most commercial regions.
AWS_DLC_ACCOUNT = "763104351884"


@dataclass(frozen=True)
class ComponentVersions:
    eks_version: str = "1.33"
    # NVIDIA k8s-device-plugin release; the image is mirrored as <registry>/k8s-device-plugin:<tag> for air-gapped stacks.
    nvidia_device_plugin: str = "v0.17.2"
    nvidia_device_plugin_image: str = "nvcr.io/nvidia/k8s-device-plugin"
    # SageMaker Large Model Inference container with the vLLM backend.
    sagemaker_lmi_repository: str = "djl-inference"
    sagemaker_lmi_tag: str = "0.33.0-lmi15.0.0-cu128"
    vllm_image: str = "docker.io/vllm/vllm-openai"
    vllm_tag: str = "v0.30.0"  # has --shutdown-timeout (graceful drain of in-flight requests)
    # Text Generation Inference; upstream calls it maintenance mode, the kit keeps it for existing TGI users.
    tgi_image: str = "ghcr.io/huggingface/text-generation-inference"
    tgi_tag: str = "3.3.5"
    # What fills a TGI pod's model volume from the weights bucket (TGI reads only local directories or the hub): the
    # clouds' own CLIs, run as an init container with the pod's identity (EKS Pod Identity needs aws-cli >= 2.15).
    aws_cli_image: str = "docker.io/amazon/aws-cli"
    aws_cli_tag: str = "2.21.3"
    cloud_sdk_image: str = "docker.io/google/cloud-sdk"
    cloud_sdk_tag: str = "530.0.0-slim"
    # The LiteLLM proxy that fronts the tiers; the tests run the same release from PyPI (litellm[proxy]==1.106.2).
    litellm_image: str = "ghcr.io/berriai/litellm"
    litellm_tag: str = "main-v1.106.2"
    # Helm charts of the monitoring and autoscaling chain. The versions match the CRDs and values.yaml files the tests
    # validate against (tests/test_charts.py); an air-gapped stack pulls the same chart versions from its own registry
    # (oci://<registry>/charts/<name>) and every image from the same registry (see README, "Mirroring for air gaps").
    kube_prometheus_stack_chart: str = "88.5.3"  # Prometheus operator v0.93.1, Prometheus, Alertmanager, Grafana
    keda_chart: str = "2.20.2"  # KEDA 2.20.2: ScaledObject with the prometheus trigger
    dcgm_exporter_chart: str = "4.8.2"  # NVIDIA DCGM exporter 4.8.2 (GPU utilisation, memory, tensor activity)
    cluster_autoscaler_chart: str = "9.59.0"
    # cluster-autoscaler's minor must match the cluster's Kubernetes minor (eks_version), not the chart's default app.
    cluster_autoscaler_tag: str = "v1.33.0"
    # AWS Load Balancer Controller (app v3.5.0): puts the internal ALB in front of the gateway (AwsPrivateEndpoint).
    aws_load_balancer_controller_chart: str = "3.5.0"
    # The EKS add-on that ships container logs (Fluent Bit) to CloudWatch Logs; its images come from EKS's regional
    # registry, so air-gapped stacks reach them through the VPC endpoints. Check with
    # `aws eks describe-addon-versions --addon-name amazon-cloudwatch-observability --kubernetes-version <eks_version>`.
    cloudwatch_observability_addon: str = "v4.10.3-eksbuild.1"

    def with_overrides(self, overrides: Optional[dict[str, str]]) -> "ComponentVersions":
        return replace(self, **overrides) if overrides else self

    def device_plugin_image(self, registry: Optional[str]) -> str:
        """The device plugin image: upstream, or the same reference in the stack's private registry mirror."""
        if registry:
            return f"{registry.rstrip('/')}/k8s-device-plugin{_ref(self.nvidia_device_plugin_image, self.nvidia_device_plugin)}"
        return f"{_repo(self.nvidia_device_plugin_image)}{_ref(self.nvidia_device_plugin_image, self.nvidia_device_plugin)}"

    def vllm_serving_image(self, registry: Optional[str]) -> str:
        """The vLLM OpenAI-compatible server: upstream, or the same reference in the stack's registry mirror."""
        if registry:
            return f"{registry.rstrip('/')}/vllm-openai{_ref(self.vllm_image, self.vllm_tag)}"
        return f"{_repo(self.vllm_image)}{_ref(self.vllm_image, self.vllm_tag)}"

    def tgi_serving_image(self, registry: Optional[str]) -> str:
        if registry:
            return f"{registry.rstrip('/')}/text-generation-inference{_ref(self.tgi_image, self.tgi_tag)}"
        return f"{_repo(self.tgi_image)}{_ref(self.tgi_image, self.tgi_tag)}"

    def weights_fetch_image(self, cloud: str, registry: Optional[str]) -> str:
        """The CLI that copies the weights prefix from `cloud`'s object store (aws: aws-cli, gcp: the Cloud SDK):
        upstream, or the same reference in the stack's registry mirror."""
        image, tag = {"aws": (self.aws_cli_image, self.aws_cli_tag), "gcp": (self.cloud_sdk_image, self.cloud_sdk_tag)}[cloud]
        if registry:
            return f"{registry.rstrip('/')}/{_repo(image).rsplit('/', 1)[-1]}{_ref(image, tag)}"
        return f"{_repo(image)}{_ref(image, tag)}"

    def gateway_image(self, registry: Optional[str]) -> str:
        if registry:
            return f"{registry.rstrip('/')}/litellm{_ref(self.litellm_image, self.litellm_tag)}"
        return f"{_repo(self.litellm_image)}{_ref(self.litellm_image, self.litellm_tag)}"

    def sagemaker_image(self, region: str, registry: Optional[str]) -> str:
        """The LMI serving image in the stack's region: AWS's DLC registry, or the in-account mirror when given."""
        ref = ("@" if self.sagemaker_lmi_tag.startswith("sha256:") else ":") + self.sagemaker_lmi_tag
        if registry:
            return f"{registry.rstrip('/')}/{self.sagemaker_lmi_repository}{ref}"
        return f"{AWS_DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{self.sagemaker_lmi_repository}{ref}"


# Public chart repositories, used where the stack is not air-gapped.
CHART_REPOSITORIES = {
    "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    "keda": "https://kedacore.github.io/charts",
    "dcgm-exporter": "https://nvidia.github.io/dcgm-exporter/helm-charts",
    "cluster-autoscaler": "https://kubernetes.github.io/autoscaler",
    "aws-load-balancer-controller": "https://aws.github.io/eks-charts",
}


@dataclass(frozen=True)
class ChartSource:
    """Where Helm fetches a chart: `chart` and `repo` as helm.v3.Release takes them (repo None for an OCI reference)."""
    chart: str
    version: str
    repo: Optional[str]


def chart_source(name: str, version: str, registry: Optional[str]) -> ChartSource:
    """The public repository's chart, or the same chart version from the stack's registry as an OCI artifact."""
    if registry:
        return ChartSource(chart=f"oci://{registry.rstrip('/')}/charts/{name}", version=version, repo=None)
    return ChartSource(chart=name, version=version, repo=CHART_REPOSITORIES[name])


def mirror_registry(image: str, upstream: str) -> Optional[str]:
    """The registry `image` (a reference this module made from the repository `upstream`) was mirrored to, or None when
    it is the upstream reference: a pod's other images then come from the same place as its serving image."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):  # drop the tag, not a registry's port
        name = name[: name.rfind(":")]
    if name == _repo(upstream):
        return None
    return name.rsplit("/", 1)[0]


def _repo(image: str) -> str:
    return image.split("@", 1)[0]


def _ref(image: str, tag: str) -> str:
    """`:tag@sha256:...` when the image is pinned by digest (the digest wins; the tag stays for humans and for
    version-pinned metric names), else `:tag`."""
    return f":{tag}@" + image.split("@", 1)[1] if "@" in image else f":{tag}"


VERSIONS = ComponentVersions()
