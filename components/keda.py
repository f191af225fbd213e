"""KEDA: the operator that turns the model server's ScaledObject (prometheus trigger) into an HPA and feeds it metrics.

Two operator replicas with a PodDisruptionBudget: only the leader acts, but a second one takes over within the lease
time when a system node is drained, so scaling does not stop during a node upgrade. Everything runs on the system
pool. The chart's pods are restricted-compatible (non-root, read-only root filesystem, no capabilities, RuntimeDefault
seccomp), so the `keda` namespace enforces the `restricted` Pod Security level. Air-gapped stacks pull the chart from
`oci://<registry>/charts/keda` and the three images from `<registry>/kedacore/<image>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
from pydantic import Field

from .helm import ChartValues, chart_release, pod_security_namespace
from .versions import ComponentVersions

NAMESPACE = "keda"
RELEASE_NAME = "keda"
OPERATOR_REPLICAS = 2
POD_SECURITY_LEVEL = "restricted"


_Values = ChartValues  # a section of the keda chart's values.yaml


class Registry(_Values):
    registry: str


class GlobalImage(_Values):
    image: Registry


class Images(_Values):
    keda: Registry
    metrics_api_server: Registry
    webhooks: Registry


class Operator(_Values):
    replica_count: int


class MinAvailable(_Values):
    min_available: int


class PodDisruptionBudgets(_Values):
    operator: MinAvailable


class KedaValues(_Values):
    global_: Optional[GlobalImage] = Field(default=None, alias="global")
    image: Optional[Images] = None
    operator: Operator
    pod_disruption_budget: PodDisruptionBudgets
    node_selector: dict[str, str]  # all three deployments (operator, metrics API server, webhooks)


@dataclass(frozen=True)
class KedaArgs:
    registry: Optional[str]  # the stack's registry mirror (air-gapped), else None for the public chart and images
    versions: ComponentVersions
    node_selector: dict[str, str]  # the system pool's labels

    def __post_init__(self):
        if not self.node_selector:
            raise ValueError("node_selector: give the system pool's labels; an empty selector lets KEDA land on GPU nodes")


def keda_values(args: KedaArgs) -> KedaValues:
    mirror = Registry(registry=args.registry.rstrip("/")) if args.registry else None
    return KedaValues(
        global_=GlobalImage(image=mirror) if mirror else None,
        image=Images(keda=mirror, metrics_api_server=mirror, webhooks=mirror) if mirror else None,
        operator=Operator(replica_count=OPERATOR_REPLICAS),
        pod_disruption_budget=PodDisruptionBudgets(operator=MinAvailable(min_available=1)),
        node_selector=args.node_selector,
    )


class Keda(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KedaArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:Keda", name, None, opts)
        ns = pod_security_namespace(f"{name}-namespace", NAMESPACE, POD_SECURITY_LEVEL, parent=self)
        self.release = chart_release(
            f"{name}-release", release=RELEASE_NAME, chart="keda", version=args.versions.keda_chart,
            registry=args.registry, namespace=ns.metadata.name, values=keda_values(args).dump(),
            opts=pulumi.ResourceOptions(parent=self))
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
