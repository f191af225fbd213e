"""AwsNetwork under the recording mocks: zones, subnets, egress per variant, endpoints, flow logs, bad arguments."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache

import pulumi
import pytest

from components.aws_network import DEFAULT_INTERFACE_ENDPOINTS, AwsNetwork, AwsNetworkArgs
from preview.harness import run_program
from preview.mocks import EC2_ID_PREFIX, _hex

PROJECT, STACK = "llm-hosting", "test"
OUTPUTS = ("vpc_id", "vpc_cidr", "private_subnet_ids", "public_subnet_ids", "availability_zones",
           "endpoint_security_group_id", "workload_security_group_id", "flow_log_group_arn", "kms_key_arn")
TAGS = {"llm-hosting:stack": STACK, "team": "ml-platform"}

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
RTA = "aws:ec2/routeTableAssociation:RouteTableAssociation"
NAT = "aws:ec2/natGateway:NatGateway"
EIP = "aws:ec2/eip:Eip"
IGW = "aws:ec2/internetGateway:InternetGateway"
EIGW = "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SG = "aws:ec2/securityGroup:SecurityGroup"
# Every type that can carry a route, inline or on its own.
ROUTE_TYPES = (ROUTE_TABLE, "aws:ec2/route:Route", "aws:ec2/defaultRouteTable:DefaultRouteTable",
               "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation")
ROUTE_DESTINATIONS = ("cidrBlock", "destinationCidrBlock", "ipv6CidrBlock", "destinationIpv6CidrBlock")
UNTAGGABLE = (RTA, "aws:iam/rolePolicy:RolePolicy", "aws:kms/alias:Alias")


@lru_cache(maxsize=None)
def _run(variant: str, region: str, kwargs: tuple):
    def program():
        net = AwsNetwork("net", AwsNetworkArgs(stack=STACK, variant=variant, region=region, tags=dict(TAGS),
                                               **dict(kwargs)))
        for key in OUTPUTS:
            pulumi.export(key, getattr(net, key))

    return run_program(program, PROJECT, STACK, {"aws:region": region})


def run(variant: str, region: str = "eu-central-1", **kwargs):
    """One run per distinct argument set; the results are only read."""
    return _run(variant, region, tuple(sorted(kwargs.items())))


def ec2_id(resource) -> str:
    """The id the mocks give an EC2 resource (deterministic in its name)."""
    kind = resource.type.split(":")[-1]
    return f"{EC2_ID_PREFIX.get(kind, kind.lower())}-{_hex(resource.name, n=17)}"


def by_id(result, type_: str) -> dict:
    return {ec2_id(r): r for r in result.by_type(type_)}


def subnets(result, kind: str) -> list:
    return sorted((r for r in result.by_type(SUBNET) if r.name.startswith(f"net-{kind}-")), key=lambda r: r.name)


def policy_resources(statement) -> list[str]:
    res = statement["Resource"]
    return [res] if isinstance(res, str) else res


# -- public ---------------------------------------------------------------------------------------------------------

def test_public_spreads_over_three_zones_a_b_c():
    result = run("public")
    zones = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
    assert result.outputs["availability_zones"] == zones
    assert [s.inputs["availabilityZone"] for s in subnets(result, "public")] == zones
    assert [s.inputs["availabilityZone"] for s in subnets(result, "private")] == zones


def test_public_has_three_public_and_three_private_subnets_inside_the_vpc_without_overlap():
    result = run("public")
    vpc = result.named("net-vpc").inputs
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True
    public, private = subnets(result, "public"), subnets(result, "private")
    assert len(public) == 3 and len(private) == 3
    assert len(result.by_type(SUBNET)) == 6
    block = ipaddress.ip_network(vpc["cidrBlock"])
    nets = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in public + private]
    assert all(n.subnet_of(block) for n in nets)
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b), f"{a} overlaps {b}"
    assert all(s.inputs["vpcId"] == result.outputs["vpc_id"] for s in public + private)
    assert result.outputs["public_subnet_ids"] == [ec2_id(s) for s in public]
    assert result.outputs["private_subnet_ids"] == [ec2_id(s) for s in private]


def test_public_has_one_internet_gateway_behind_the_public_route_table():
    result = run("public")
    [igw] = result.by_type(IGW)
    public_rt = result.named("net-public-rt")
    assert public_rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": ec2_id(igw)}]
    associated = {a.inputs["subnetId"] for a in result.by_type(RTA) if a.inputs["routeTableId"] == ec2_id(public_rt)}
    assert associated == {ec2_id(s) for s in subnets(result, "public")}


def test_public_has_a_nat_gateway_with_its_own_elastic_ip_in_each_public_subnet():
    result = run("public")
    nats, eips = result.by_type(NAT), by_id(result, EIP)
    assert len(nats) == 3 and len(eips) == 3
    public_ids = {ec2_id(s) for s in subnets(result, "public")}
    assert {n.inputs["subnetId"] for n in nats} == public_ids  # three NATs, three different public subnets
    assert {n.inputs["allocationId"] for n in nats} == set(eips)
    assert all(e.inputs["domain"] == "vpc" for e in eips.values())


def test_public_private_route_tables_send_default_traffic_to_their_own_zones_nat():
    result = run("public")
    subnets_by_id = by_id(result, SUBNET)
    nats = by_id(result, NAT)
    rt_of_subnet = {a.inputs["subnetId"]: a.inputs["routeTableId"] for a in result.by_type(RTA)}
    private_rts = by_id(result, ROUTE_TABLE)
    for subnet in subnets(result, "private"):
        rt = private_rts[rt_of_subnet[ec2_id(subnet)]]
        assert rt.name != "net-public-rt"
        [route] = rt.inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        nat = nats[route["natGatewayId"]]
        nat_subnet = subnets_by_id[nat.inputs["subnetId"]]
        assert nat_subnet.inputs["availabilityZone"] == subnet.inputs["availabilityZone"]
    # Each private subnet has a route table of its own.
    assert len({rt_of_subnet[ec2_id(s)] for s in subnets(result, "private")}) == 3


def test_public_subnets_are_tagged_for_internet_facing_load_balancers_without_public_ips_on_launch():
    result = run("public")
    for s in subnets(result, "public"):
        assert s.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert s.inputs["mapPublicIpOnLaunch"] is False
    for s in subnets(result, "private"):
        assert s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in s.inputs["tags"]


def test_public_workload_group_admits_nothing_from_the_internet():
    result = run("public")
    sg = result.named("net-workload-sg").inputs
    assert sg["ingress"] == [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True,
                              "description": "From other members of this group"}]
    assert [e["cidrBlocks"] for e in sg["egress"]] == [["0.0.0.0/0"]]
    assert result.outputs["endpoint_security_group_id"] is None  # no interface endpoints outside airgapped
    assert result.outputs["workload_security_group_id"] == ec2_id(result.named("net-workload-sg"))


# -- private --------------------------------------------------------------------------------------------------------

def test_private_keeps_nat_egress_in_every_zone():
    result = run("private")
    assert len(result.by_type(IGW)) == 1
    assert len(result.by_type(NAT)) == 3 and len(result.by_type(EIP)) == 3
    nat_ids = set(by_id(result, NAT))
    routes = [rt.inputs["routes"] for rt in result.by_type(ROUTE_TABLE) if rt.name.startswith("net-private-")]
    assert len(routes) == 3
    assert {r[0]["natGatewayId"] for r in routes} == nat_ids


def test_private_public_subnets_are_not_offered_to_load_balancers():
    result = run("private")
    public = subnets(result, "public")
    assert len(public) == 3
    for s in public:
        assert "kubernetes.io/role/elb" not in s.inputs["tags"]
        assert s.inputs["mapPublicIpOnLaunch"] is False


def test_private_subnets_are_tagged_for_internal_load_balancers():
    result = run("private")
    for s in subnets(result, "private"):
        assert s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"


# -- airgapped ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_", [IGW, NAT, EIP, EIGW])
def test_airgapped_has_no_internet_gateway_nat_or_elastic_ip(type_):
    assert run("airgapped").by_type(type_) == []


def test_airgapped_has_only_private_subnets():
    result = run("airgapped")
    assert sorted(s.name for s in result.by_type(SUBNET)) == ["net-private-0", "net-private-1", "net-private-2"]
    assert result.outputs["public_subnet_ids"] == []


def test_airgapped_has_no_route_to_anywhere_outside_the_vpc():
    result = run("airgapped")
    route_carriers = [r for r in result.resources if r.type in ROUTE_TYPES]
    assert len(route_carriers) == 4  # three private route tables and the main one, nothing else

    def destinations(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ROUTE_DESTINATIONS:
                    yield v
                yield from destinations(v)
        elif isinstance(value, list):
            for v in value:
                yield from destinations(v)

    for r in route_carriers:
        assert r.inputs.get("routes", []) == [], f"{r.name} has routes {r.inputs['routes']}"
        found = set(destinations(r.inputs))
        assert not found & {"0.0.0.0/0", "::/0"}, f"{r.name} routes to the internet"
    # Nothing anywhere refers to an internet gateway or a NAT gateway.
    text = json.dumps([r.inputs for r in result.resources])
    assert "igw-" not in text and "natGatewayId" not in text and "egressOnlyGatewayId" not in text


@pytest.mark.parametrize("region", ["eu-central-1", "us-east-1"])
def test_airgapped_interface_endpoints_are_exactly_the_list_for_the_region(region):
    result = run("airgapped", region)
    interface = [e for e in result.by_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    assert {e.inputs["serviceName"] for e in interface} == {f"com.amazonaws.{region}.{n}"
                                                            for n in DEFAULT_INTERFACE_ENDPOINTS}
    assert len(interface) == len(DEFAULT_INTERFACE_ENDPOINTS) == 15
    private_ids = [ec2_id(s) for s in subnets(result, "private")]
    endpoint_sg = ec2_id(result.named("net-endpoint-sg"))
    for e in interface:
        assert e.inputs["privateDnsEnabled"] is True, e.name
        assert e.inputs["subnetIds"] == private_ids, e.name
        assert e.inputs["securityGroupIds"] == [endpoint_sg], e.name
    assert result.outputs["endpoint_security_group_id"] == endpoint_sg


@pytest.mark.parametrize("service, caller", [
    ("autoscaling", "cluster-autoscaler resizing the node groups"),
    ("eks", "cluster-autoscaler reading node group labels and taints (scale from zero)"),
    ("eks-auth", "Pod Identity credentials of the autoscaler and the CloudWatch agent"),
    ("logs", "Fluent Bit and the CloudWatch agent writing container logs"),
    ("monitoring", "the CloudWatch agent's PutMetricData"),
    ("sns", "Alertmanager publishing to the alert topic"),
])
def test_airgapped_endpoints_reach_what_autoscaling_logging_and_alerting_call(service, caller):
    services = {e.inputs["serviceName"] for e in run("airgapped").by_type(ENDPOINT)}
    assert f"com.amazonaws.eu-central-1.{service}" in services, f"{caller} has no way out of the air-gapped VPC"


def test_airgapped_endpoint_list_can_be_narrowed():
    result = run("airgapped", interface_endpoints=("ecr.api", "ecr.dkr", "sts"))
    assert sorted(e.inputs["serviceName"] for e in result.by_type(ENDPOINT)) == [
        "com.amazonaws.eu-central-1.ecr.api", "com.amazonaws.eu-central-1.ecr.dkr",
        "com.amazonaws.eu-central-1.s3", "com.amazonaws.eu-central-1.sts"]


def test_airgapped_without_interface_endpoints_has_no_endpoint_group():
    result = run("airgapped", interface_endpoints=())
    assert [r.name for r in result.by_type(SG)] == ["net-workload-sg"]
    assert result.outputs["endpoint_security_group_id"] is None


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_s3_gateway_endpoint_lists_every_private_route_table(variant):
    result = run(variant)
    [s3] = [e for e in result.by_type(ENDPOINT) if e.inputs["serviceName"] == "com.amazonaws.eu-central-1.s3"]
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    private_rts = [ec2_id(r) for r in result.by_type(ROUTE_TABLE) if r.name.startswith("net-private-")]
    assert len(private_rts) == 3
    assert sorted(s3.inputs["routeTableIds"]) == sorted(private_rts)


def test_airgapped_endpoint_group_allows_only_https_from_the_vpc():
    result = run("airgapped")
    sg = result.named("net-endpoint-sg").inputs
    assert [{k: rule[k] for k in ("protocol", "fromPort", "toPort", "cidrBlocks")} for rule in sg["ingress"]] == [
        {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}]
    rule = sg["ingress"][0]
    assert not rule.get("ipv6CidrBlocks") and not rule.get("securityGroups") and not rule.get("self")
    assert sg["egress"] == []


def test_airgapped_workload_group_reaches_only_https_inside_the_vpc_and_s3():
    result = run("airgapped")
    sg = result.named("net-workload-sg").inputs
    assert all(r.get("self") is True and "cidrBlocks" not in r for r in sg["ingress"])
    for rule in sg["egress"]:
        if "cidrBlocks" in rule:
            assert rule["cidrBlocks"] == ["10.0.0.0/16"]
            assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
        elif "prefixListIds" in rule:  # the S3 gateway endpoint's prefix list
            assert rule["prefixListIds"] == [f"pl-{_hex('com.amazonaws.eu-central-1.s3', n=8)}"]
            assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
        else:
            assert rule["self"] is True
    assert "0.0.0.0/0" not in json.dumps(sg) and "::/0" not in json.dumps(sg)


def test_airgapped_with_a_different_cidr_scopes_every_rule_to_it():
    result = run("airgapped", cidr="172.20.0.0/20")
    assert result.named("net-endpoint-sg").inputs["ingress"][0]["cidrBlocks"] == ["172.20.0.0/20"]
    block = ipaddress.ip_network("172.20.0.0/20")
    assert all(ipaddress.ip_network(s.inputs["cidrBlock"]).subnet_of(block) for s in result.by_type(SUBNET))


# -- every variant --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_default_security_group_is_stripped_of_all_rules(variant):
    result = run(variant)
    [default] = result.by_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs["vpcId"] == result.outputs["vpc_id"]
    assert default.inputs.get("ingress", []) == [] and default.inputs.get("egress", []) == []


@pytest.mark.parametrize("variant", ["public", "private", "airgapped"])
def test_every_resource_is_tagged_named_and_inside_the_component(variant):
    result = run(variant)
    for r in result.resources:
        if not r.custom:
            continue
        assert r.parent is not None, f"{r.name} is not inside a component"
        if r.type in UNTAGGABLE:
            continue
        tags = r.inputs.get("tags") or {}
        assert {k: tags.get(k) for k in TAGS} == TAGS, f"{r.name} ({r.type}) misses the stack tags"
        assert tags.get("Name", "").startswith("llm-hosting-test-"), f"{r.name} ({r.type}) has no Name tag"
    assert result.named("net").type == "llmhost:index:AwsNetwork"


# -- flow logs ------------------------------------------------------------------------------------------------------

def test_flow_log_records_all_vpc_traffic_into_the_log_group():
    result = run("public")
    [flow] = result.by_type("aws:ec2/flowLog:FlowLog")
    arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/llm-hosting/test/vpc-flow-logs"
    assert flow.inputs["vpcId"] == result.outputs["vpc_id"]
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow.inputs["logDestination"] == arn == result.outputs["flow_log_group_arn"]
    assert flow.inputs["iamRoleArn"] == "arn:aws:iam::123456789012:role/llm-hosting-test-vpc-flow-logs"


def test_flow_log_group_is_encrypted_with_the_network_key_kept_and_protected():
    result = run("airgapped")
    group = result.named("net-flow-logs")
    assert group.inputs["name"] == "/llm-hosting/test/vpc-flow-logs"
    assert group.inputs["kmsKeyId"] == result.outputs["kms_key_arn"]
    assert result.outputs["kms_key_arn"].startswith("arn:aws:kms:eu-central-1:123456789012:key/")
    assert group.inputs["retentionInDays"] == 365
    assert group.inputs["deletionProtectionEnabled"] is True
    assert group.options.get("protect") is True
    key = result.named("net-cmk-key")
    assert key.parent == "net-cmk" and key.options.get("protect") is True
    assert key.inputs["enableKeyRotation"] is True
    assert result.named("net-cmk-alias").inputs["name"] == "alias/llm-hosting-test-network"


def test_retention_follows_the_arguments():
    assert run("public", flow_log_retention_days=90).named("net-flow-logs").inputs["retentionInDays"] == 90


@pytest.mark.parametrize("region", ["eu-central-1", "us-east-1"])
def test_network_key_policy_lets_the_regional_logs_service_use_it(region):
    result = run("airgapped", region)
    policy = json.loads(result.named("net-cmk-key").inputs["policy"])
    [logs] = [s for s in policy["Statement"] if s.get("Principal", {}).get("Service") == f"logs.{region}.amazonaws.com"]
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == \
        f"arn:aws:logs:{region}:123456789012:log-group:*"


def test_flow_log_role_may_only_write_to_its_own_log_group():
    result = run("public")
    arn = result.outputs["flow_log_group_arn"]
    policy = json.loads(result.named("net-flow-logs-delivery").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}
    resources = [res for s in policy["Statement"] for res in policy_resources(s)]
    assert resources and all(res == arn or res.startswith(arn + ":") for res in resources), resources
    assert "*" not in resources
    role = result.named("net-flow-logs-role").inputs
    assert "managedPolicyArns" not in role
    assert not result.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")  # no managed *FullAccess


def test_flow_log_role_trusts_only_flow_logs_of_this_account():
    result = run("public")
    trust = json.loads(result.named("net-flow-logs-role").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_protect_can_be_turned_off():
    result = run("public", protect=False)
    assert not any(r.options.get("protect") for r in result.resources)
    assert result.named("net-flow-logs").inputs["deletionProtectionEnabled"] is False


# -- bad arguments --------------------------------------------------------------------------------------------------

def _refused(**kwargs) -> ValueError:
    with pytest.raises(ValueError) as info:
        run_program(lambda: AwsNetwork("net", AwsNetworkArgs(stack=STACK, region="eu-central-1", **kwargs)),
                    PROJECT, STACK, {"aws:region": "eu-central-1"})
    assert getattr(info.value, "registered", 0) == 0  # refused before anything was registered
    return info.value


def test_fewer_than_three_zones_is_refused():
    message = str(_refused(variant="public", az_count=2))
    assert "az_count is 2" in message and "at least 3 availability zones" in message


@pytest.mark.parametrize("variant", ["public", "airgapped"])
def test_a_tiny_cidr_is_refused(variant):
    message = str(_refused(variant=variant, cidr="10.0.0.0/28"))
    assert "cidr 10.0.0.0/28 is too small for 3 availability zones" in message
    assert "use a /" in message


def test_a_cidr_too_small_for_load_balancers_is_refused_only_when_there_are_public_subnets():
    assert "public subnets would be /28" in str(_refused(variant="public", cidr="10.0.0.0/20"))
    result = run("airgapped", cidr="10.0.0.0/20")
    assert len(result.by_type(SUBNET)) == 3


@pytest.mark.parametrize("cidr, expected", [
    ("10.0.0.1/16", "has host bits set"),
    ("not-a-cidr", "is not a valid network in CIDR notation"),
    ("10.0.0.0/8", "AWS allows VPC blocks from /16 to /28"),
    ("fd00::/56", "is IPv6"),
])
def test_an_invalid_cidr_is_refused(cidr, expected):
    assert expected in str(_refused(variant="private", cidr=cidr))


@pytest.mark.parametrize("kwargs, expected", [
    ({"variant": "dmz"}, "variant 'dmz' is not one of public, private, airgapped"),
    ({"variant": "airgapped", "interface_endpoints": ("sts", "sts")}, "lists a service twice"),
    ({"variant": "airgapped", "interface_endpoints": ("com.amazonaws.eu-central-1.sts",)}, "short service names"),
    ({"variant": "public", "flow_log_retention_days": 42}, "is not a value CloudWatch Logs accepts"),
])
def test_other_bad_arguments_are_refused(kwargs, expected):
    assert expected in str(_refused(**kwargs))


def test_a_region_other_than_the_providers_is_refused():
    with pytest.raises(ValueError, match="AwsNetworkArgs.region is us-east-1 but aws:region is eu-central-1"):
        run_program(lambda: AwsNetwork("net", AwsNetworkArgs(stack=STACK, variant="public", region="us-east-1")),
                    PROJECT, STACK, {"aws:region": "eu-central-1"})


def test_more_zones_than_the_region_has_is_refused_with_the_zone_list():
    with pytest.raises(ValueError, match=r"region eu-central-1 has 3 available zones .*az_count is 4"):
        run("public", az_count=4)
