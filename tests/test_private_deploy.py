"""Deploying a stack whose Kubernetes API is private: `llmhost` says so, and GKE's DNS-based endpoint is the opt-in way in."""

from __future__ import annotations

import json

import pytest

from preview.harness import ProgramRefused, run_preview
from tests.conftest import ROOT, edit_stack, set_section

WARNING = "Kubernetes API is private"


@pytest.mark.parametrize("stack,private", [
    ("fine-tuned", True), ("eu-sovereign-airgapped", True), ("tgi-fine-tuned-eks", True),
    ("realtime-npc", False), ("startup-api", False), ("healthcare-hipaa", False),
])
def test_preview_warns_when_the_cluster_api_is_private(cli, stack, private):
    result = cli("preview", "--stack", stack, "--skip-policies", "--project-dir", str(ROOT))
    assert result.exit_code == 0, result.stderr
    assert (WARNING in result.stderr) is private, result.stderr
    if private:
        assert f"stacks/Pulumi.{stack}.yaml" in result.stderr and "Deploying a private cluster" in result.stderr
        assert WARNING not in result.stdout  # the tree on stdout stays clean for tools reading it


def test_plan_warns_for_a_private_cluster(cli, project):
    result = cli("plan", str(ROOT / "stacks/profiles/fine-tuned.yaml"), "--stack", "fine-tuned", "--force",
                 "--project-dir", str(project))
    assert result.exit_code == 0, result.stderr
    assert WARNING in result.stderr and "GKE's DNS-based control-plane endpoint" in result.stderr


def test_the_dns_endpoint_is_what_the_deploy_talks_to(project):
    edit_stack(project, "fine-tuned", set_section("selfHosted", controlPlaneDnsEndpoint=True))
    result = run_preview(project, "fine-tuned")
    assert result.deploy_warning is None  # the way in exists: no warning
    cluster = result.named("gke-cluster")
    dns = cluster.inputs["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]
    assert dns["allowExternalTraffic"] is True
    # The private IP endpoint stays private; only IAM-authorised requests come in through the DNS name.
    assert cluster.inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True


def test_the_dns_endpoint_kubeconfig_has_no_cluster_ca():
    from components.gke_cluster import kubeconfig

    doc = json.loads(kubeconfig("p", "europe-west4", "c", "gke-abc.europe-west4.gke.goog", None))
    assert doc["clusters"][0]["cluster"] == {"server": "https://gke-abc.europe-west4.gke.goog"}
    doc = json.loads(kubeconfig("p", "europe-west4", "c", "10.0.0.2", "Q0E="))
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


@pytest.mark.parametrize("stack,reason", [
    ("eu-airgapped-gke", "admits nothing from outside"),
    ("tgi-fine-tuned-eks", "is GKE's"),
])
def test_the_dns_endpoint_is_refused_where_it_does_not_apply(project, stack, reason):
    edit_stack(project, stack, set_section("selfHosted", controlPlaneDnsEndpoint=True))
    with pytest.raises(Exception) as info:
        run_preview(project, stack)
    assert "selfHosted.controlPlaneDnsEndpoint" in str(info.value) and reason in str(info.value)
    if isinstance(info.value, ProgramRefused):
        assert info.value.registered == 0
