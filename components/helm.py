"""What the kit's Helm charts share: typed values that dump under the chart's own keys, a namespace with its
pod-security level, and a pinned Release from the public repository or the stack's registry.

Every chart's values are pydantic models, one per section of the chart's values.yaml: a field dumps under the chart's
camelCase key (or an explicit alias), a field left None keeps the chart's default, and an unknown field is an error
in Python before Helm (which accepts any key) ever sees it. tests/test_charts.py checks every dumped key against the
chart's values.yaml at the pinned version.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from .versions import chart_source

POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")


class ChartValues(BaseModel):
    """A section of a chart's values.yaml."""
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid",
                              arbitrary_types_allowed=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def pod_security_namespace(resource_name: str, name: str, level: str, parent: pulumi.Resource) -> k8s.core.v1.Namespace:
    """A namespace whose Pod Security admission enforces `level` (and warns and audits at it)."""
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"level: {level!r} is not a Pod Security level ({', '.join(POD_SECURITY_LEVELS)})")
    labels = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn", "audit")}
    return k8s.core.v1.Namespace(resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels),
                                 opts=pulumi.ResourceOptions(parent=parent))


def chart_release(resource_name: str, *, release: str, chart: str, version: str, registry: Optional[str],
                  namespace: pulumi.Input[str], values: pulumi.Input[dict], opts: pulumi.ResourceOptions,
                  timeout: int = 600) -> k8s.helm.v3.Release:
    """The pinned chart as a Helm release: from its public repository, or from `oci://<registry>/charts/<chart>` where
    the stack is air-gapped. A failed install is rolled back (`cleanup_on_fail`) so a retry starts clean."""
    source = chart_source(chart, version, registry)
    return k8s.helm.v3.Release(
        resource_name,
        name=release,
        namespace=namespace,
        chart=source.chart,
        version=source.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=source.repo) if source.repo else None,
        values=values,
        timeout=timeout,
        cleanup_on_fail=True,
        opts=opts)
