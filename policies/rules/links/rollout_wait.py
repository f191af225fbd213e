"""LNK-006: `pulumi up` waits for a Deployment or StatefulSet at least as long as its pods may take to start."""

from __future__ import annotations

import math
from typing import Any, Optional

from ...placement import WORKLOADS, max_replicas
from ...props import get, is_unknown
from ...rulekit import Rule, StackContext, stack_policy
from . import workloads

TYPES = WORKLOADS[:2]  # Deployment, StatefulSet: pulumi-kubernetes awaits both
# pulumi-kubernetes waits up to 10 minutes for a Deployment or StatefulSet to become ready unless told otherwise
# (its customTimeouts option or the pulumi.com/timeoutSeconds annotation).
DEFAULT_WAIT_SECONDS = 600
TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
SKIP_AWAIT = "pulumi.com/skipAwait"
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 3}  # Kubernetes' probe defaults

RULE = Rule(
    id="LNK-006-rollout-wait",
    title="`pulumi up` waits for each workload at least as long as its pods may take to start",
    area="links",
    kind="stack",
    description="A Deployment's or StatefulSet's wait (customTimeouts, or the pulumi.com/timeoutSeconds annotation; 10 "
                "minutes by default) covers its startup probe budget, plus node provisioning and image pull for GPU "
                "pods, for every wave of a rollout.",
    checks="Once per stack, for each Deployment and StatefulSet that `pulumi up` waits for (no "
           "`pulumi.com/skipAwait: \"true\"`): one replica's start-up budget is the longest startup probe of its "
           "containers (initialDelaySeconds + periodSeconds x failureThreshold, with Kubernetes' defaults 0, 10 and "
           "3), or the readiness probe's first chance when there is no startup probe; a pod that requests GPUs also "
           "waits for a GPU node to be provisioned and the serving image to be pulled (the policy config's "
           "`nodeProvisioningSeconds` and `imagePullSeconds`, which `llmhost plan` takes from the catalog's serving "
           "figures). Create waits one budget (a StatefulSet with OrderedReady pods one per replica); update waits one "
           "budget per rollout wave: the maximum replicas (the HPA's, which the fleet may have reached) divided by "
           "maxSurge + maxUnavailable (Deployment, defaults 25%/25%), one pod at a time for a StatefulSet, a single wave "
           "for Recreate. The wait is the `pulumi.com/timeoutSeconds` annotation if set, else the resource's "
           "customTimeouts create/update, else pulumi-kubernetes' 10 minutes.",
    why="When the wait is shorter than the start-up, `pulumi up` reports the rollout failed while the model is still "
        "loading: a CI pipeline rolls back or retries a healthy change, and the stack is left marked failed.",
    severity="medium",
    controls=("FedRAMP CM-3", "FedRAMP CP-2(2)"),
    remediation="Set the workload's `customTimeouts` (create and update) from the same start-up budget the probes are "
                "built from, plus node provisioning and image pull, times the rollout waves for update; or set "
                "`pulumi.com/skipAwait: \"true\"` and check readiness elsewhere.",
    applies_to=TYPES,
    limits="The readiness probe's first success after start-up (within one period) is not added. CPU-only pods are "
           "assumed to land on standing nodes with small images, so only their probes count.",
)


def _probe_budget(probe: Any) -> int:
    p = {k: probe.get(k, d) if isinstance(probe, dict) else d for k, d in PROBE_DEFAULTS.items()}
    return int(p["initialDelaySeconds"] or 0) + int(p["periodSeconds"] or 10) * int(p["failureThreshold"] or 3)


def _startup(spec: dict) -> tuple[int, str]:
    best, how = 0, ""
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("startupProbe"), dict):
            b = _probe_budget(c["startupProbe"])
            what = (f"startupProbe of {c.get('name')}: {c['startupProbe'].get('initialDelaySeconds', 0)} + "
                    f"{c['startupProbe'].get('periodSeconds', 10)} x {c['startupProbe'].get('failureThreshold', 3)} s")
        elif isinstance(c.get("readinessProbe"), dict):
            r = c["readinessProbe"]
            b = int(r.get("initialDelaySeconds", 0) or 0) + int(r.get("periodSeconds", 10) or 10)
            what = f"readinessProbe of {c.get('name')}"
        else:
            continue
        if b > best:
            best, how = b, what
    return best, how


def _count(value: Any, replicas: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) / 100 * replicas
        return int(math.ceil(share) if round_up else math.floor(share))
    return int(value)


def _waves(kind: str, spec: dict, replicas: int) -> tuple[int, str]:
    if kind == "StatefulSet":
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return 0, "OnDelete (pods are replaced by hand)"
        most = _count((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), replicas, False) or 1
        return math.ceil(replicas / most), f"{most} pod(s) at a time"
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 1, "Recreate"
    rolling = strategy.get("rollingUpdate") or {}
    surge = _count(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _count(rolling.get("maxUnavailable", "25%"), replicas, False)
    step = max(1, surge + unavailable)
    return math.ceil(replicas / step), f"maxSurge {rolling.get('maxSurge', '25%')} + maxUnavailable " \
                                       f"{rolling.get('maxUnavailable', '25%')} = {step} at a time"


def _wait(r, annotation: Any) -> tuple[Optional[float], Optional[float], str]:
    if annotation is not None:
        try:
            seconds = float(annotation)
            return seconds, seconds, f"{TIMEOUT_ANNOTATION} {annotation}"
        except (TypeError, ValueError):
            pass
    t = r.custom_timeouts or {}
    create, update = t.get("create"), t.get("update")
    how = "customTimeouts" if create or update else "the default"
    return create or DEFAULT_WAIT_SECONDS, update or DEFAULT_WAIT_SECONDS, how


def _s(seconds: float) -> str:
    return f"{int(seconds)} s"


def check(ctx: StackContext) -> None:
    pods = [p for p in workloads(ctx) if p.resource.type in TYPES]
    if not pods:
        ctx.not_applicable("the stack defines no Deployment or StatefulSet")
    provisioning = ctx.config.get("nodeProvisioningSeconds")
    pull = ctx.config.get("imagePullSeconds")
    for pod in pods:
        r = pod.resource
        annotations = get(r.props, "metadata.annotations") or {}
        if is_unknown(annotations):
            ctx.cannot_verify(f"{r.name}.metadata.annotations", "whether pulumi waits for it")
            continue
        if str(annotations.get(SKIP_AWAIT, "")).lower() == "true":
            continue
        budget, how = _startup(pod.spec)
        parts = [f"{how} = {_s(budget)}" if budget else "no startup or readiness probe"]
        if pod.gpus:
            if provisioning is None or pull is None:
                ctx.unplanned(f"{r.name} start-up", "nodeProvisioningSeconds, imagePullSeconds")
                continue
            budget += provisioning + pull
            parts = [f"GPU node provisioning {_s(provisioning)}", f"image pull {_s(pull)}", *parts]
        if budget <= 0:
            continue
        most, source, _ = max_replicas(pod, ctx.resources)
        replicas = get(r.props, "spec.replicas")
        replicas = 1 if replicas is None else replicas
        if not isinstance(most, int) or not isinstance(replicas, int):
            ctx.cannot_verify(f"{r.name} replicas", "how many pods a rollout replaces")
            continue
        ordered = pod.kind == "StatefulSet" and get(r.props, "spec.podManagementPolicy") in (None, "OrderedReady")
        create_need = budget * (replicas if ordered else 1)
        waves, how_waves = _waves(pod.kind, get(r.props, "spec") or {}, most)
        update_need = budget * waves
        create, update, wait_how = _wait(r, annotations.get(TIMEOUT_ANNOTATION))
        one = " + ".join(parts) + f" = {_s(budget)} per replica"
        short = []
        if create < create_need:
            short.append(f"create waits {_s(create)} ({wait_how}) but one start takes {one}"
                         + (f", {replicas} in order" if ordered else ""))
        if update < update_need:
            scaled = f" ({source.name} maxReplicas {most})" if source is not None else ""
            short.append(f"update waits {_s(update)} ({wait_how}) but a rollout of {most} replica(s){scaled} runs "
                         f"{waves} wave(s) of {how_waves}: {_s(update_need)}")
        if short:
            ctx.violation(f"{pod.kind} {pod.namespace}/{pod.name}: " + "; ".join(short) + ". `pulumi up` would report "
                          "the rollout failed while pods are still starting. Fix: set customTimeouts create >= "
                          f"{_s(create_need)} and update >= {_s(update_need)} (or the {TIMEOUT_ANNOTATION} "
                          "annotation).", r.urn)


POLICY = stack_policy(RULE, check)
