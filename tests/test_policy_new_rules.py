"""The rules for open ingress, public bucket policies, NodePort Services, public IPs, registry keys and control-plane
audit logs, each on a compliant and a violating case: the exact message and the resource it names.

Props are camelCase, as the provider receives them. Resource policies run through `check_resource`, stack policies
through `check_stack` (dependencies name the resources a resource waits for, as the engine records them).
"""

from __future__ import annotations

import json

import pytest

from policies.engine import check_resource, check_stack

KEY = "arn:aws:kms:eu-central-1:123456789012:key/0b7c6e1e-1111-2222-3333-444455556666"
GCP_KEY = "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"
REGULATED = {"classification": "regulated"}
INTERNAL = {"classification": "internal"}
PRIVATE = {"network": "private"}

# (case id, policy, resource type, props, policy config, expected messages)
CASES = [
    # --- BND-006 -------------------------------------------------------------------------------------------------
    ("bnd006-ok-clusterip", "BND-006-no-nodeport-services", "kubernetes:core/v1:Service",
     {"spec": {"type": "ClusterIP", "ports": [{"port": 8000}]}}, REGULATED, []),
    ("bnd006-nodeport", "BND-006-no-nodeport-services", "kubernetes:core/v1:Service",
     {"spec": {"type": "NodePort", "ports": [{"port": 8000, "nodePort": 30080}]}}, REGULATED,
     ["spec.type is NodePort: the Service answers on every node (30080), outside the private ingress path"]),
    # --- BAS-007 -------------------------------------------------------------------------------------------------
    ("bas007-ok-private-task", "BAS-007-no-public-ips", "aws:ecs/service:Service",
     {"networkConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": False}}, PRIVATE, []),
    ("bas007-public-task", "BAS-007-no-public-ips", "aws:ecs/service:Service",
     {"networkConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": True}}, PRIVATE,
     ["networkConfiguration.assignPublicIp is true: every task gets a public IP address in a private stack"]),
    ("bas007-public-instance", "BAS-007-no-public-ips", "aws:ec2/instance:Instance",
     {"associatePublicIpAddress": True}, {"network": "airgapped"},
     ["associatePublicIpAddress is true: the instance gets a public IP address in a airgapped stack"]),
    ("bas007-public-launch-template", "BAS-007-no-public-ips", "aws:ec2/launchTemplate:LaunchTemplate",
     {"networkInterfaces": [{"associatePublicIpAddress": "true"}]}, PRIVATE,
     ["networkInterfaces[0].associatePublicIpAddress is true: instances get public IP addresses in a private stack"]),
    # --- ENC-010 -------------------------------------------------------------------------------------------------
    ("enc010-ok-ecr-cmk", "ENC-010-cmk-registries", "aws:ecr/repository:Repository",
     {"encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}]}, {}, []),
    ("enc010-ok-artifact-registry-cmk", "ENC-010-cmk-registries", "gcp:artifactregistry/repository:Repository",
     {"format": "DOCKER", "kmsKeyName": GCP_KEY}, {}, []),
    ("enc010-ecr-default", "ENC-010-cmk-registries", "aws:ecr/repository:Repository", {}, {},
     ["encryptionConfigurations names no KMS key: the repository is encrypted with AES256 (Amazon S3-managed keys)"]),
    ("enc010-ecr-aws-managed", "ENC-010-cmk-registries", "aws:ecr/repository:Repository",
     {"encryptionConfigurations": [{"encryptionType": "KMS"}]}, {},
     ["encryptionConfigurations has encryptionType KMS without a kmsKey: the repository uses the AWS-managed aws/ecr "
      "key"]),
    ("enc010-artifact-registry-google-key", "ENC-010-cmk-registries", "gcp:artifactregistry/repository:Repository",
     {"format": "DOCKER"}, {}, ["kmsKeyName is not set: the repository uses a Google-managed key"]),
    # --- BAS-008 -------------------------------------------------------------------------------------------------
    # The kit's own clusters: components/eks_cluster.py CONTROL_PLANE_LOGS, components/gke_cluster.py LOGGING_COMPONENTS.
    ("bas008-ok-eks-kit-logs", "BAS-008-control-plane-audit-logs", "aws:eks/cluster:Cluster",
     {"enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"]}, {}, []),
    ("bas008-ok-gke-kit-logs", "BAS-008-control-plane-audit-logs", "gcp:container/cluster:Cluster",
     {"loggingConfig": {"enableComponents": ["SYSTEM_COMPONENTS", "WORKLOADS"]}}, {}, []),
    ("bas008-eks-no-logs", "BAS-008-control-plane-audit-logs", "aws:eks/cluster:Cluster", {"name": "c"}, {},
     ["enabledClusterLogTypes is not set: the Kubernetes audit log is not sent to CloudWatch"]),
    ("bas008-eks-api-only", "BAS-008-control-plane-audit-logs", "aws:eks/cluster:Cluster",
     {"enabledClusterLogTypes": ["api"]}, {},
     ["enabledClusterLogTypes is api: the Kubernetes audit log is not sent to CloudWatch"]),
    ("bas008-gke-logging-off", "BAS-008-control-plane-audit-logs", "gcp:container/cluster:Cluster",
     {"loggingService": "none", "loggingConfig": {"enableComponents": []}}, {},
     ["loggingService is none: the cluster sends no logs to Cloud Logging",
      "loggingConfig.enableComponents is empty: without SYSTEM_COMPONENTS the cluster's logging is off"]),
]
RESOURCE_RULES = {c[1] for c in CASES}
STACK_RULES = {"BAS-005-no-open-ingress", "BAS-006-no-public-bucket-policy"}


def test_every_new_resource_policy_has_a_compliant_and_a_violating_case():
    assert {c[1] for c in CASES if not c[5]} == RESOURCE_RULES == {c[1] for c in CASES if c[5]}


@pytest.mark.parametrize("case_id, policy, typ, props, config, expected", CASES, ids=[c[0] for c in CASES])
def test_resource_policy(case_id, policy, typ, props, config, expected):
    result = check_resource(policy, typ, props, config, name=f"{case_id}-res")
    assert [v.message for v in result.violations] == expected
    for v in result.violations:
        assert (v.policy, v.resource_name, v.resource_type, v.enforcement) == (policy, f"{case_id}-res", typ, "mandatory")
    assert not result.not_applicable


@pytest.mark.parametrize("policy, typ, props, config, reason", [
    ("BND-006-no-nodeport-services", "kubernetes:core/v1:Service", {"spec": {"type": "NodePort"}}, INTERNAL,
     "the stack's classification is internal; boundary policies apply to confidential and regulated data"),
    ("BAS-007-no-public-ips", "aws:ecs/service:Service", {"networkConfiguration": {"assignPublicIp": True}},
     {"network": "public"}, "the stack's network is public; this policy applies to private and airgapped stacks"),
])
def test_outside_its_stacks_a_rule_says_why_it_does_not_apply(policy, typ, props, config, reason):
    result = check_resource(policy, typ, props, config)
    assert result.violations == [] and [n.reason for n in result.not_applicable] == [reason]


def test_an_unknown_audit_log_setting_cannot_be_verified_rather_than_passing():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    result = check_resource("BAS-008-control-plane-audit-logs", "aws:eks/cluster:Cluster",
                            {"enabledClusterLogTypes": UNKNOWN_STRING_VALUE}, {}, name="r")
    [v] = result.violations
    assert v.message.startswith("cannot verify enabledClusterLogTypes (the control-plane log types): the value is only "
                                "known once `pulumi up`"), v.message
    assert (v.enforcement, v.cannot_verify, v.blocking) == ("advisory", True, False)


# --- stack policies -------------------------------------------------------------------------------------------

def res(typ, name, inputs=None, dependencies=(), **options):
    return {"type": typ, "name": name, "inputs": inputs or {}, "options": options, "dependencies": list(dependencies)}


def sg(name, port, cidr="0.0.0.0/0", protocol="tcp"):
    return res("aws:ec2/securityGroup:SecurityGroup", name, {"ingress": [
        {"protocol": protocol, "fromPort": port, "toPort": port, "cidrBlocks": [cidr]}]})


def lines(evaluation):
    return [(v.resource_name, v.message) for v in evaluation.violations]


ALB = "aws:lb/loadBalancer:LoadBalancer"


def test_bas005_only_a_load_balancers_listener_is_open_to_anywhere():
    ok = check_stack("BAS-005-no-open-ingress", [
        sg("alb-sg", 443), res(ALB, "alb", {"internal": False}, dependencies=["alb-sg"]),
        sg("tasks-sg", 4000, cidr="10.0.0.0/16"),
        res("gcp:compute/firewall:Firewall", "deny-all", {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"],
                                                          "denies": [{"protocol": "all"}]}),
    ], {})
    assert ok.violations == []
    bad = check_stack("BAS-005-no-open-ingress", [
        sg("alb-sg", 22), res(ALB, "alb", dependencies=["alb-sg"]),
        sg("nodes-sg", 443, cidr="::/0"),
        res("aws:ec2/securityGroupRule:SecurityGroupRule", "ssh", {
            "type": "ingress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]},
            dependencies=["alb-sg"]),
        res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "vllm", {
            "ipProtocol": "tcp", "fromPort": 8000, "toPort": 8000, "cidrIpv4": "0.0.0.0/0"}, dependencies=["nodes-sg"]),
        res("gcp:compute/firewall:Firewall", "open", {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"],
                                                      "allows": [{"protocol": "tcp", "ports": ["22"]}]}),
    ], {})
    only = "only a load balancer's 443/80 listener may be open to any address"
    assert lines(bad) == [
        ("alb-sg", f"ingress[0] admits 0.0.0.0/0 on tcp 22 to a load balancer's security group: {only}"),
        ("nodes-sg", f"ingress[0] admits ::/0 on tcp 443 to a security group no load balancer uses: {only}"),
        ("ssh", f"the rule admits 0.0.0.0/0 on all ports and protocols to a load balancer's security group: {only}"),
        ("vllm", f"the rule admits 0.0.0.0/0 on tcp 8000 to a security group no load balancer uses: {only}"),
        ("open", "the firewall allows tcp 22 from 0.0.0.0/0: GCP load balancers reach backends from Google's ranges, "
                 "so nothing needs ingress from any address"),
    ]
    assert {v.enforcement for v in bad.violations} == {"mandatory"}


PUBLIC_READ = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"}]})
VPCE_READ = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::w/*",
     "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]})
BLOCK_ALL = {"bucket": "site", "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
             "restrictPublicBuckets": True}


def test_bas006_public_bucket_policies_need_blocking_off_to_be_caught():
    ok = check_stack("BAS-006-no-public-bucket-policy", [
        res("aws:s3/bucket:Bucket", "site", {"bucket": "site"}),
        res("aws:s3/bucketPolicy:BucketPolicy", "site-policy", {"bucket": "site", "policy": PUBLIC_READ}),
        res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "site-block", BLOCK_ALL),
        res("aws:s3/bucketPolicy:BucketPolicy", "weights-policy", {"bucket": "w", "policy": VPCE_READ}),
        res("gcp:storage/bucket:Bucket", "gcs", {"name": "data", "publicAccessPrevention": "enforced"}),
        res("gcp:storage/bucketIAMMember:BucketIAMMember", "gcs-public", {"bucket": "data", "member": "allUsers",
                                                                          "role": "roles/storage.objectViewer"}),
    ], INTERNAL)
    assert ok.violations == []
    bad = check_stack("BAS-006-no-public-bucket-policy", [
        res("aws:s3/bucket:Bucket", "site", {"bucket": "site"}),
        res("aws:s3/bucketPolicy:BucketPolicy", "site-policy", {"bucket": "site", "policy": PUBLIC_READ}),
        res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "site-block",
            {**BLOCK_ALL, "blockPublicPolicy": False, "restrictPublicBuckets": False}),
        res("gcp:storage/bucket:Bucket", "gcs", {"name": "data", "publicAccessPrevention": "inherited"}),
        res("gcp:storage/bucketIAMBinding:BucketIAMBinding", "gcs-public", {
            "bucket": "data", "role": "roles/storage.objectViewer", "members": ["allAuthenticatedUsers"]}),
    ], REGULATED)
    assert lines(bad) == [
        ("site-policy", "Statement[0] allows principal \"*\" on bucket site and no public-access block "
                        "(blockPublicPolicy, restrictPublicBuckets) covers it"),
        ("gcs-public", "grants allAuthenticatedUsers on bucket data, and its publicAccessPrevention is inherited"),
    ]
    public_site = check_stack("BAS-006-no-public-bucket-policy", [
        res("aws:s3/bucketPolicy:BucketPolicy", "site-policy", {"bucket": "site", "policy": PUBLIC_READ})],
        {"classification": "public"})
    assert public_site.violations == [] and [n.reason for n in public_site.not_applicable] == [
        "the stack's classification is public: its buckets may publish content"]
