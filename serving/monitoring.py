"""How the stack's Prometheus finds what it scrapes: one PodMonitor shape for the engines and the gateway.

The Prometheus operator (kube-prometheus-stack, components/monitoring_stack.py) turns a PodMonitor into a scrape job
and labels every series with the pod's `namespace`, `pod`, `container` and `job`. The relabelling below adds
`deployment`, the pods' `app.kubernetes.io/name` (the model server's Deployment name, or `llm-gateway`): the KEDA
triggers, the alert rules and the dashboard select on `namespace` and `deployment` (serving/alerts.py states the
same contract), so a series the scaler reads and the pods it scales are named the same way.
"""

from __future__ import annotations

from typing import Optional

API_VERSION = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
RELABELINGS = [{"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "targetLabel": "deployment",
                "action": "replace"}]


def pod_monitor_spec(selector: dict[str, str], path: str, port: str = "http",
                     bearer_secret: Optional[tuple[str, str]] = None) -> dict:
    """A PodMonitor's spec: scrape `path` on the named container port of the pods `selector` matches.

    `bearer_secret` (Secret name, key), in the PodMonitor's namespace: the scrape sends that value as a bearer token,
    for a metrics page that requires authentication; the operator reads it by reference, never from the manifest."""
    if not selector:
        raise ValueError("selector: a PodMonitor with an empty selector would scrape every pod of the namespace")
    endpoint = {"port": port, "path": path, "interval": SCRAPE_INTERVAL, "relabelings": [dict(r) for r in RELABELINGS]}
    if bearer_secret:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": bearer_secret[0], "key": bearer_secret[1]}}
    return {"selector": {"matchLabels": dict(selector)}, "podMetricsEndpoints": [endpoint]}


def pod_monitor(name: str, namespace: str, selector: dict[str, str], path: str, labels: dict[str, str],
                port: str = "http") -> dict:
    """The whole PodMonitor CR as a plain dict (for validation against its CRD and for tests)."""
    return {"apiVersion": API_VERSION, "kind": "PodMonitor",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": pod_monitor_spec(selector, path, port)}
