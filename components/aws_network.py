"""The VPC every self-hosted AWS tier runs in: subnets in three or more zones, egress per variant, flow logs.

Variants:
  public     NAT egress per zone; public subnets tagged for internet-facing load balancers.
  private    NAT egress per zone; the public subnets only hold the NAT gateways, no load balancer may land there.
  airgapped  no path to the internet at all; AWS APIs are reached through VPC endpoints only.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws

from .aws_kms_key import AwsKmsKey, AwsKmsKeyArgs

# What a private EKS/SageMaker workload needs to pull images, get credentials, write logs, decrypt secrets,
# register nodes and serve endpoints without internet access. S3 is a gateway endpoint, added separately.
# `monitoring` is CloudWatch metrics (the CloudWatch agent's PutMetricData); `sns` lets Alertmanager publish to the
# stack's alert topic. (CloudWatch alarms publish from the service side and need no endpoint.)
DEFAULT_INTERFACE_ENDPOINTS: tuple[str, ...] = (
    "ecr.api", "ecr.dkr", "sts", "ec2", "logs", "secretsmanager", "kms", "eks", "eks-auth",
    "elasticloadbalancing", "autoscaling", "sagemaker.api", "sagemaker.runtime", "monitoring", "sns",
)
VARIANTS = ("public", "private", "airgapped")
MIN_AZ_COUNT = 3  # an EKS control plane and any HA serving fleet want three zones
# AWS limits: a VPC's IPv4 block is /16 to /28.
VPC_PREFIX_RANGE = (16, 28)
# Private subnets hold nodes and, with the VPC CNI, one address per pod: refuse anything under 256 addresses.
MAX_PRIVATE_PREFIX = 24
# An Application/Network Load Balancer needs a /27 or larger subnet with 8 free addresses.
MAX_PUBLIC_PREFIX = 27
# The values CloudWatch Logs accepts for retention_in_days (0 = never expire).
LOG_RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)


@dataclass(frozen=True)
class SubnetPlan:
    private: list[str]  # one CIDR per zone index
    public: list[str]  # one CIDR per zone index (unused by the airgapped variant)


def plan_subnets(cidr: str, az_count: int, need_public: bool = True) -> SubnetPlan:
    """Carve per-zone private and public subnets from the VPC CIDR, or raise ValueError saying why it cannot.

    The VPC is split into equal blocks (at least 8, so a /16 gives /19s): the first `az_count` blocks are the private
    subnets, the last block is cut into small public subnets (a /19 gives /24s). Blocks in between stay free for
    later (e.g. a secondary node group or database subnets) without renumbering anything.
    """
    if az_count < MIN_AZ_COUNT:
        raise ValueError(f"az_count is {az_count}; the network needs at least {MIN_AZ_COUNT} availability zones "
                         f"so the cluster and the serving fleet survive the loss of one zone")
    try:
        vpc = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ValueError(f"cidr {cidr!r} is not a valid network in CIDR notation (e.g. 10.0.0.0/16): {exc}") from None
    if vpc.version != 4:
        raise ValueError(f"cidr {cidr!r} is IPv6; the VPC needs an IPv4 block such as 10.0.0.0/16")
    low, high = VPC_PREFIX_RANGE
    if not low <= vpc.prefixlen <= high:
        raise ValueError(f"cidr {cidr!r}: AWS allows VPC blocks from /{low} to /{high}")
    # One block per zone plus one for the public subnets, rounded up to a power of two, and never fewer than 8.
    block_bits = max(3, az_count.bit_length())
    private_prefix = vpc.prefixlen + block_bits
    public_prefix = private_prefix + max(5, az_count.bit_length())

    def size(prefix: int) -> str:
        return f"/{prefix}" if prefix <= 32 else "smaller than one address"

    problems = []
    if private_prefix > MAX_PRIVATE_PREFIX:
        problems.append(f"its {az_count} private subnets would be {size(private_prefix)} "
                        f"(need /{MAX_PRIVATE_PREFIX} or larger: nodes and pods each take an address)")
    if need_public and public_prefix > MAX_PUBLIC_PREFIX:
        problems.append(f"its {az_count} public subnets would be {size(public_prefix)} "
                        f"(need /{MAX_PUBLIC_PREFIX} or larger for NAT gateways and load balancers)")
    if problems:
        smallest = MAX_PRIVATE_PREFIX - block_bits
        if need_public:
            smallest = min(smallest, MAX_PUBLIC_PREFIX - (public_prefix - vpc.prefixlen))
        raise ValueError(f"cidr {cidr} is too small for {az_count} availability zones: {'; '.join(problems)}; "
                         f"use a /{smallest} or larger block, e.g. 10.0.0.0/16")
    blocks = list(vpc.subnets(new_prefix=private_prefix))
    public_block = blocks[-1]
    public = [str(s) for s in public_block.subnets(new_prefix=public_prefix)][:az_count] if need_public else []
    return SubnetPlan(private=[str(b) for b in blocks[:az_count]], public=public)


@dataclass(frozen=True)
class AwsNetworkArgs:
    stack: str
    variant: Literal["public", "private", "airgapped"]
    region: str  # the stack's aws:region; endpoint service names and the KMS key policy are built from it
    cidr: str = "10.0.0.0/16"
    az_count: int = 3  # at least three availability zones
    interface_endpoints: tuple[str, ...] = DEFAULT_INTERFACE_ENDPOINTS  # used by the airgapped variant
    # Interface endpoints the public and private variants add, so calls to those AWS APIs stay off the NAT (e.g.
    # sagemaker.runtime for a regulated stack's invocations); the airgapped variant always has the full list.
    private_api_endpoints: tuple[str, ...] = ()
    flow_log_retention_days: int = 365
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # Refuse bad arguments before any resource is registered, with the reason in the message.
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        plan_subnets(self.cidr, self.az_count, need_public=self.variant != "airgapped")
        if len(set(self.interface_endpoints)) != len(self.interface_endpoints):
            raise ValueError(f"interface_endpoints lists a service twice: {list(self.interface_endpoints)}")
        bad = [n for n in self.interface_endpoints if not n or n.startswith("com.amazonaws.") or n == "s3"]
        if bad:
            raise ValueError(f"interface_endpoints {bad}: give short service names such as 'ecr.api' "
                             f"(the region prefix is added; S3 always gets a gateway endpoint)")
        if self.flow_log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"flow_log_retention_days {self.flow_log_retention_days} is not a value CloudWatch "
                             f"Logs accepts: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        if len(flow_log_role_name(self.stack)) > 64:
            raise ValueError(f"stack name {self.stack!r} is too long: the flow-log role name "
                             f"{flow_log_role_name(self.stack)!r} exceeds IAM's 64 characters")


def flow_log_role_name(stack: str) -> str:
    return f"llm-hosting-{stack}-vpc-flow-logs"


def _zone(names: list[str], index: int, region: str, az_count: int) -> str:
    if index >= len(names):
        raise ValueError(f"region {region} has {len(names)} available zones ({', '.join(names)}); "
                         f"az_count is {az_count}")
    return names[index]


class AwsNetwork(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]  # empty for airgapped
    availability_zones: pulumi.Output[list[str]]  # the zones used, in subnet order (known only after the lookup)
    endpoint_security_group_id: Optional[pulumi.Output[str]]  # None when no interface endpoints are created
    workload_security_group_id: pulumi.Output[str]
    flow_log_group_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]  # the key encrypting the flow logs

    def __init__(self, name: str, args: AwsNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        configured = pulumi.Config("aws").get("region")
        explicit_provider = opts is not None and (opts.provider is not None or bool(opts.providers))
        if configured and configured != args.region and not explicit_provider:
            # Endpoint service names and the KMS key policy name args.region; resources land in the provider's region.
            raise ValueError(f"AwsNetworkArgs.region is {args.region} but aws:region is {configured}; they must match")
        super().__init__("llmhost:index:AwsNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = plan_subnets(args.cidr, args.az_count, need_public=args.variant != "airgapped")
        prefix = f"llm-hosting-{args.stack}"

        def tags(label, extra: Optional[dict] = None) -> dict:
            return {**args.tags, **(extra or {}), "Name": label}

        # Local Zones and Wavelength Zones are "available" too once opted in: keep to the region's own zones.
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOutputOptions(parent=self))
        # Resource names must be known now, so subnets are per zone *index*; the zone name arrives later.
        az = [zones.apply(lambda z, i=i: _zone(z.names, i, args.region, args.az_count)) for i in range(args.az_count)]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            # Both are needed for private DNS on interface endpoints and for EKS node registration.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=tags(f"{prefix}-vpc"),
            opts=child,
        )
        # CIS AWS 5.4: the default security group allows nothing, so nothing can fall back on it.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
            tags=tags(f"{prefix}-default-do-not-use"), opts=child)
        # The main route table is where any subnet created outside this component lands: keep it local-only
        # (routes=[] is authoritative). main_route_table_id is the same table as default_route_table_id.
        aws.ec2.DefaultRouteTable(
            f"{name}-default-rt", default_route_table_id=vpc.main_route_table_id, routes=[],
            tags=tags(f"{prefix}-default-local-only"), opts=child)

        public_subnets: list[aws.ec2.Subnet] = []
        nats: list[aws.ec2.NatGateway] = []
        if args.variant in ("public", "private"):
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags(f"{prefix}-igw"), opts=child)
            public_rt = aws.ec2.RouteTable(
                f"{name}-public-rt", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags=tags(f"{prefix}-public"), opts=child)
            # Only the public variant may put internet-facing load balancers here; in private the subnets exist
            # only to hold the NAT gateways, so they carry no ELB role tag and the LB controller never picks them.
            elb = {"kubernetes.io/role/elb": "1"} if args.variant == "public" else {}
            for i, cidr in enumerate(plan.public):
                subnet = aws.ec2.Subnet(
                    f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=cidr, availability_zone=az[i],
                    # Load balancers get their own addresses; nothing launched here should get a public IP.
                    map_public_ip_on_launch=False,
                    tags=tags(az[i].apply(lambda z: f"{prefix}-public-{z}"), elb),
                    opts=child)
                aws.ec2.RouteTableAssociation(f"{name}-public-{i}-rta", subnet_id=subnet.id,
                                              route_table_id=public_rt.id, opts=child)
                # One NAT per zone: losing a zone never cuts the others' egress, and no cross-zone data charges.
                eip = aws.ec2.Eip(f"{name}-nat-{i}-eip", domain="vpc",
                                  tags=tags(az[i].apply(lambda z: f"{prefix}-nat-{z}")),
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{i}", allocation_id=eip.allocation_id, subnet_id=subnet.id,
                    connectivity_type="public", tags=tags(az[i].apply(lambda z: f"{prefix}-nat-{z}")),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
                public_subnets.append(subnet)

        private_subnets: list[aws.ec2.Subnet] = []
        private_rts: list[aws.ec2.RouteTable] = []
        for i, cidr in enumerate(plan.private):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=cidr, availability_zone=az[i],
                map_public_ip_on_launch=False,
                tags=tags(az[i].apply(lambda z: f"{prefix}-private-{z}"), {"kubernetes.io/role/internal-elb": "1"}),
                opts=child)
            # Inline routes are authoritative: a route added by hand (say 0.0.0.0/0 in airgapped) is removed on the
            # next update. Routes the S3 gateway endpoint adds are left alone by the provider.
            routes = [aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[i].id)] if nats else []
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt", vpc_id=vpc.id, routes=routes,
                tags=tags(az[i].apply(lambda z: f"{prefix}-private-{z}")), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}-rta", subnet_id=subnet.id, route_table_id=rt.id,
                                          opts=child)
            private_subnets.append(subnet)
            private_rts.append(rt)

        # S3 gateway endpoint in every variant: free, keeps image layers (ECR stores them in S3) and model weights
        # off the NAT (no per-GB processing charge), and is the only way to S3 in airgapped.
        s3_policy = None
        if args.variant == "airgapped":
            # With no other way out, the S3 endpoint must not become one: only this account's buckets, plus the
            # regional bucket ECR serves image layers from.
            account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
            s3_policy = account.apply(lambda acct: json.dumps({"Version": "2012-10-17", "Statement": [
                {"Sid": "OwnAccountBuckets", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:ResourceAccount": acct}}},
                {"Sid": "EcrImageLayers", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::prod-{args.region}-starport-layer-bucket/*"},
            ]}))
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-vpce-s3", vpc_id=vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in private_rts], policy=s3_policy,
            tags=tags(f"{prefix}-s3"), opts=child)

        # Workloads (nodes, SageMaker, Lambda...) share one group: members talk to each other freely, nobody else
        # gets in. Other components add ingress from their load balancers or control plane as they need.
        if args.variant == "airgapped":
            egress = [
                aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.cidr],
                                                description="HTTPS to the interface endpoints and the EKS API"),
                # ECR image layers come from S3: reachable only through the gateway endpoint's prefix list.
                aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=443, to_port=443,
                                                prefix_list_ids=[s3.prefix_list_id],
                                                description="HTTPS to S3 through the gateway endpoint"),
                aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, self=True,
                                                description="Node to node and pod to pod traffic"),
            ]
        else:
            egress = [aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                      description="Egress through the NAT gateways")]
        workload_sg = aws.ec2.SecurityGroup(
            f"{name}-workload-sg", vpc_id=vpc.id,
            description=f"llm-hosting {args.stack}: model-serving workloads ({args.variant} network)",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True,
                                                      description="From other members of this group")],
            egress=egress,
            tags=tags(f"{prefix}-workloads"), opts=child)

        endpoint_sg = None
        services = args.interface_endpoints if args.variant == "airgapped" else args.private_api_endpoints
        if services:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoint-sg", vpc_id=vpc.id,
                description=f"llm-hosting {args.stack}: interface VPC endpoints, HTTPS from inside the VPC only",
                ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=443, to_port=443,
                                                          cidr_blocks=[args.cidr], description="HTTPS from the VPC")],
                egress=[],  # endpoints only answer; security groups are stateful, so replies need no rule
                tags=tags(f"{prefix}-endpoints"), opts=child)
            for service in services:
                aws.ec2.VpcEndpoint(
                    f"{name}-vpce-{service.replace('.', '-')}", vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    vpc_endpoint_type="Interface",
                    # The SDKs' default hostnames resolve to the endpoint, so nothing needs endpoint-specific config.
                    private_dns_enabled=True,
                    subnet_ids=[s.id for s in private_subnets],
                    security_group_ids=[endpoint_sg.id],
                    tags=tags(f"{prefix}-{service}"), opts=child)

        # Flow logs: every accepted and rejected connection, kept in a log group encrypted with our own key.
        key = AwsKmsKey(f"{name}-cmk", AwsKmsKeyArgs(
            alias=f"llm-hosting-{args.stack}-network",
            description=f"llm-hosting {args.stack}: encrypts the VPC flow logs",
            cloudwatch_logs_region=args.region, protect=args.protect, tags=tags(f"{prefix}-network"),
        ), opts=child)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/llm-hosting/{args.stack}/vpc-flow-logs",
            kms_key_id=key.key_arn,
            retention_in_days=args.flow_log_retention_days,
            # Flow logs are audit evidence: neither Pulumi nor a console click should delete them by accident.
            deletion_protection_enabled=args.protect,
            tags=tags(f"{prefix}-vpc-flow-logs"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        trust = pulumi.Output.all(identity.account_id, partition.partition).apply(lambda a: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
                # Confused-deputy guard: only flow logs of this account, in this region, may use the role.
                "Condition": {"StringEquals": {"aws:SourceAccount": a[0]},
                              "ArnLike": {"aws:SourceArn": f"arn:{a[1]}:ec2:{args.region}:{a[0]}:vpc-flow-log/*"}},
            }],
        }))
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            name=flow_log_role_name(args.stack),
            description=f"VPC flow log delivery for llm-hosting {args.stack}, to its one log group",
            assume_role_policy=trust,
            tags=tags(flow_log_role_name(args.stack)),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-delivery",
            role=role.id,
            # Only this log group and its streams (CreateLogStream/PutLogEvents act on "<group arn>:log-stream:*").
            policy=log_group.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "DeliverFlowLogs", "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [arn, f"{arn}:log-stream:*"],
                }],
            })),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags=tags(f"{prefix}-vpc"),
            opts=child,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.availability_zones = pulumi.Output.all(*az)
        self.endpoint_security_group_id = endpoint_sg.id if endpoint_sg is not None else None
        self.workload_security_group_id = workload_sg.id
        self.flow_log_group_arn = log_group.arn
        self.kms_key_arn = key.key_arn
        self.register_outputs({
            "vpc_id": self.vpc_id, "vpc_cidr": self.vpc_cidr, "private_subnet_ids": self.private_subnet_ids,
            "public_subnet_ids": self.public_subnet_ids, "availability_zones": self.availability_zones,
            "endpoint_security_group_id": self.endpoint_security_group_id,
            "workload_security_group_id": self.workload_security_group_id,
            "flow_log_group_arn": self.flow_log_group_arn, "kms_key_arn": self.kms_key_arn,
        })
