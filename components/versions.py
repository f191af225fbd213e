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
    # The LiteLLM proxy that fronts the tiers; the tests run the same release from PyPI (litellm[proxy]==1.106.2).
    litellm_image: str = "ghcr.io/berriai/litellm"
    litellm_tag: str = "main-v1.106.2"

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


def _repo(image: str) -> str:
    return image.split("@", 1)[0]


def _ref(image: str, tag: str) -> str:
    """`:tag@sha256:...` when the image is pinned by digest (the digest wins; the tag stays for humans and for
    version-pinned metric names), else `:tag`."""
    return f":{tag}@" + image.split("@", 1)[1] if "@" in image else f":{tag}"


VERSIONS = ComponentVersions()
