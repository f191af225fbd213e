"""The offline preview on Pulumi programs the kit did not write (tests/fixtures/programs/<name>: Pulumi.yaml,
__main__.py and the program's own stack file), run through `run_foreign` the way CI previews them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from preview.harness import MASK, UNKNOWN, run_foreign, run_program
from preview.render import print_tree

PROGRAMS = Path(__file__).resolve().parent / "fixtures" / "programs"


def test_service_status_stays_unknown_and_the_programs_apply_is_skipped():
    """A LoadBalancer Service's status exists only once the cloud's load balancer does: the program's callback
    (which dereferences the first ingress) must not run on None, and the export is unknown, as in `pulumi preview`."""
    result = run_foreign(PROGRAMS / "gke_service_status", "dev")
    assert result.outputs == {"kubeconfig": MASK, "endpoint": UNKNOWN}
    service = next(r for r in result.by_type("kubernetes:core/v1:Service"))
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert result.named("llm-gke").inputs["location"] == "us-central1"  # the program's own stack file was read


def test_outputs_the_mocks_do_not_set_never_reach_callbacks():
    seen = []

    def program():
        svc = k8s.core.v1.Service("web", spec={"type": "LoadBalancer", "ports": [{"port": 80}]})
        lb = aws.lb.LoadBalancer("alb", internal=False)
        pulumi.export("host", svc.status.apply(lambda s: seen.append(s) or s.load_balancer.ingress[0].hostname))
        pulumi.export("dns", lb.dns_name.apply(lambda d: seen.append(d) or d.upper()))

    result = run_program(program, "p", "dev", {"aws:region": "us-east-1"})
    assert seen == [] and result.outputs == {"host": UNKNOWN, "dns": UNKNOWN}


def test_kubernetes_objects_without_a_name_are_named_by_the_provider():
    first = run_foreign(PROGRAMS / "k8s_app_unnamed", "dev")
    names = {(r.type.rsplit(":", 1)[-1], r.name): r.inputs["metadata"]["name"] for r in first.resources}
    assert set(names) == {("Deployment", "ollama"), ("Service", "ollama"), ("Deployment", "open-webui"),
                          ("Service", "open-webui")}
    for (_, name), given in names.items():
        assert re.fullmatch(rf"{name}-[0-9a-z]{{8}}", given), given
    assert len(set(names.values())) == 4  # a Deployment and its Service do not share a generated name
    assert all(r.inputs["metadata"]["annotations"] == {"pulumi.com/autonamed": "true"} for r in first.resources)
    # The program's own links through the generated name resolve to it, and every run agrees.
    svc = names[("Service", "ollama")]
    ui = next(r for r in first.by_type("kubernetes:apps/v1:Deployment") if r.name == "open-webui")
    env = ui.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "OLLAMA_BASE_URL", "value": f"http://{svc}:11434"}]
    assert first.outputs == {"ui_service": names[("Service", "open-webui")], "ollama_url": f"http://{svc}:11434"}
    again = run_foreign(PROGRAMS / "k8s_app_unnamed", "dev")
    assert {r.urn: r.inputs for r in again.resources} == {r.urn: r.inputs for r in first.resources}


def test_an_explicit_name_is_kept():
    result = run_foreign(PROGRAMS / "gke_service_status", "dev")
    assert {r.inputs["metadata"]["name"] for r in result.resources if r.type.startswith("kubernetes:")} == {"llama-server"}
    assert all("annotations" not in r.inputs["metadata"] for r in result.resources if r.type.startswith("kubernetes:"))


def test_ami_route_table_and_ecr_token_lookups_are_answered():
    result = run_foreign(PROGRAMS / "aws_ami_ecr", "prod")
    ami = result.outputs["ami"]
    assert re.fullmatch(r"ami-[0-9a-f]{17}", ami)
    instance = next(r for r in result.by_type("aws:ec2/instance:Instance"))
    assert instance.inputs["ami"] == ami and instance.inputs["instanceType"] == "g5.xlarge"  # Pulumi.yaml default
    assert instance.inputs["tags"]["ami"].startswith("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) ")
    assert all(re.fullmatch(r"rtb-[0-9a-f]{17}", t) for t in result.outputs["route_tables"])
    assert len(result.outputs["route_tables"]) == 2
    route = result.named("inference-egress")
    assert re.fullmatch(r"rtb-[0-9a-f]{17}", route.inputs["routeTableId"])
    registry = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert result.outputs["registry"] == registry
    user_data = instance.inputs["userData"]
    assert "--password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com\n" in user_data
    assert "docker run -d --gpus all -p 8000:8000 123456789012.dkr.ecr.us-east-1.amazonaws.com/inference-" in user_data


@pytest.mark.parametrize("call, token", [
    (lambda: aws.ec2.get_instance(instance_id="i-0123456789abcdef0"), "aws:ec2/getInstance:getInstance"),
    (lambda: aws.rds.get_cluster(cluster_identifier="prod"), "aws:rds/getCluster:getCluster"),
])
def test_an_unanswered_invoke_fails_loudly_naming_it(call, token):
    with pytest.raises(NotImplementedError, match=re.escape(f"no answer for invoke {token}")):
        run_program(call, "p", "dev", {"aws:region": "us-east-1"})


def test_a_multi_language_component_makes_the_preview_say_it_is_incomplete():
    result = run_foreign(PROGRAMS / "awsx_remote_vpc", "dev")
    assert sorted(r.type for r in result.resources) == ["aws:s3/bucket:Bucket", "awsx:ec2:Vpc"]
    assert len(result.remote_components) == 1 and "awsx:ec2:Vpc" in result.remote_components[0]
    assert "app-vpc" in result.remote_components[0] and "missing from the inventory" in result.remote_components[0]
    assert result.remote_components[0] in result.warnings
    assert result.outputs["vpc_id"] == UNKNOWN
    console = Console(record=True, width=200)
    print_tree(result, console)
    text = console.export_text()
    assert "incomplete: 1 multi-language component(s) not expanded" in text
    assert "warning: app-vpc is a multi-language component (awsx:ec2:Vpc)" in text


def test_a_program_without_multi_language_components_reads_complete():
    result = run_foreign(PROGRAMS / "k8s_app_unnamed", "dev")
    assert result.remote_components == [] and result.warnings == []
    console = Console(record=True, width=200)
    print_tree(result, console)
    assert "incomplete" not in console.export_text()


def test_the_policy_report_cannot_verify_what_a_remote_component_hides():
    """The pack's verdict on a program with a multi-language component says what it could not check, rather than a
    clean pass on an inventory without the component's children."""
    from policies.engine import PolicyInputs, _check_preview, _minimal

    result = run_foreign(PROGRAMS / "awsx_remote_vpc", "dev")
    config = _minimal("RES-001-region-allowlist", {"allowedRegions": ["us-east-1"]})
    inputs = PolicyInputs(config=config, source="test", notes=[], exceptions=[], regions={"aws": "us-east-1"})
    report = _check_preview(result, inputs, None)
    assert any(n.startswith("cannot verify: ") and "awsx:ec2:Vpc" in n for n in report.notes)
    clean = run_foreign(PROGRAMS / "aws_ami_ecr", "prod")
    assert not [n for n in _check_preview(clean, inputs, None).notes if n.startswith("cannot verify")]


FIXTURES = sorted(p.parent.name for p in PROGRAMS.glob("*/expected-findings.yaml"))


@pytest.mark.parametrize("name", FIXTURES)
def test_the_pack_finds_what_each_program_gets_wrong(name):
    """Each fixture through the harness and the pack, with the facts a reviewer would give it: exactly the findings
    kept beside it (the quick-start EKS's open SSH group and missing audit logs; none of ENC-003's on the public
    website bucket; the AMI/ECR program, which no longer stops at an unanswered invoke, its registry without a CMK)."""
    import yaml

    from policies.config import policy_config
    from policies.engine import evaluate_preview

    expected = yaml.safe_load((PROGRAMS / name / "expected-findings.yaml").read_text())
    result = run_foreign(PROGRAMS / name, expected["stack"])
    config = policy_config({"tier": "self-hosted", "thirdPartyApi": None, "registry": None, "regulations": [],
                            **expected["facts"]})
    found = sorted({f"{v.policy} {v.resource_name}" for v in evaluate_preview(result, config, expected["provider_regions"])})
    assert found == expected["findings"]


def test_fixtures_cover_the_issue_s_programs():
    assert {"eks_public", "gke_service_status", "k8s_app_unnamed", "website_bucket", "aws_ami_ecr",
            "awsx_remote_vpc"} <= set(FIXTURES)
