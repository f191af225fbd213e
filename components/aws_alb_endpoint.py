"""A private HTTPS endpoint for a gateway without a cluster: an internal ALB made directly, a private-CA certificate,
a private DNS name.

Stacks that run the gateway on ECS Fargate have no AWS Load Balancer Controller to turn an Ingress into an ALB, so
this component makes the same endpoint as AwsPrivateEndpoint from the load-balancing API itself:

  Route 53 private zone (associated with the stack's VPC only)
    alias A <stack>.<zone> -> internal ALB (private subnets, its own security group)
      HTTPS 443 only (TLS 1.2/1.3 policy, ACM private certificate); Host <stack>.<zone> -> the target group,
      any other Host -> 404
        -> target group of type `ip` (the ECS service registers its tasks' IPs), plain HTTP inside the VPC

Clients see the same `https://<stack>.<zone>/v1`, TLS policy, idle timeout and ALB name as on EKS: those come from
aws_private_endpoint.py, so the two endpoints cannot drift apart. The certificate and the zone come from
aws_private_ca.py (a root CA per stack, or the organisation's CA with `certificate_authority_arn`).

What the ECS side does with the outputs: its service registers into `target_group_arn`, and its tasks' security
group admits `target_port` from `security_group_id` only. ECS refuses a target group that no listener routes to, so
the service must depend on this component (whose host rule makes that link).

Access logs are off: ALB access logs are written only to an S3 bucket encrypted with S3-managed keys (SSE-S3), not
with the kit's customer-managed KMS keys, and the bucket needs a policy for the regional log-delivery principal and
a lifecycle rule. That is a bucket the encryption policies would have to except, for little gain here: the gateway
counts every request and its tokens per consumer key (its Prometheus metrics), and the VPC flow logs record every
connection to the ALB. To turn them on, make such a bucket and pass it as `access_logs` to the LoadBalancer.

Internet-facing (`internet_facing=True`, for stacks whose consumers are on the internet: network variant `public`,
data neither confidential nor regulated, which the caller decides): the same ALB, listener, TLS policy, host rule and
target group, but

  Route 53 PUBLIC zone `public_zone_id` (the team's, holding `domain`)
    alias A <domain> -> internet-facing ALB (the PUBLIC subnets `public_subnet_ids`, never the private ones)
      HTTPS 443 only, ACM public certificate for <domain> (DNS-validated through a record in that zone); Host
      <domain> -> the target group, any other Host -> 404

No private CA and no private zone are made; `ca_certificate` is None (the certificate chains to a public root every
client trusts); `client_cidrs` still says who may connect (["0.0.0.0/0"] for anyone, or the consumers' ranges).
components/aws_public_certificate.py holds the checks and the certificate, shared with the EKS endpoint.

AWS WAF is not part of the kit. A team that wants it in front makes a WAFv2 web ACL (AWS managed rule groups, a
rate-based rule per source IP) and associates it with `load_balancer_arn` (`aws.wafv2.WebAclAssociation`). The kit's
own protection is behind the TLS listener, in the gateway: every request needs a consumer's key, and each key has its
own request and token rate limits, so an anonymous caller gets a 401 and a leaked key costs at most its
limits (and is revoked alone). What WAF adds is filtering before the gateway (floods of unauthenticated requests,
known-bad sources), which the gateway answers cheaply but still answers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws

from .aws_private_ca import check_certificate_authority_arn, private_zone
from .aws_private_endpoint import (HTTPS_PORT, IDLE_TIMEOUT_SECONDS, SSL_POLICY, alb_name, check_endpoint_name,
                                   dns_name)
from .aws_public_certificate import check_internet_facing, endpoint_certificate

# After a task leaves the target group (a deploy or a scale-in), the ALB lets its in-flight requests run this long
# before ECS stops it; the task then gets its stop timeout (at most 120 s on Fargate) to finish streams on SIGTERM.
# Longer would hold every rolling deploy for little gain, as the stop timeout caps what can finish anyway.
DEREGISTRATION_DELAY_SECONDS = 30
HOST_RULE_PRIORITY = 1  # the only rule on the listener
# Target group names are at most 32 characters. Pulumi names it "<resource name>-<7 random>" so that a replacing
# change (a new port) can create the new group before deleting the old one; a fixed name would collide.
TARGET_GROUP_NAME_MAX = 32


@dataclass(frozen=True)
class AwsAlbEndpointArgs:
    stack: str
    region: str
    vpc_id: pulumi.Input[str]
    # The VPC's CIDR (e.g. network.vpc_cidr): the ALB may open connections only to the target port inside the VPC.
    vpc_cidr: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]  # the PRIVATE subnets: the ALB lands there and nowhere else
    # Who may connect: the ALB's security group admits HTTPS from these only (e.g. [network.vpc_cidr]). No default:
    # an internal ALB open to 0.0.0.0/0 admits anything routed into the VPC (peerings, VPNs, transit gateways).
    client_cidrs: Sequence[pulumi.Input[str]]
    target_port: int = 4000  # the gateway's container port
    health_path: str = "/health/liveliness"  # answers without an API key
    zone_name: str = "llm.internal"
    # An existing general-purpose AWS Private CA (e.g. shared through AWS RAM) to issue from, instead of a CA per stack.
    certificate_authority_arn: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)
    # The CA (when this stack makes one) is protected, and the ALB has deletion protection, so a replacing change or
    # `pulumi destroy` cannot take the endpoint away from its clients by accident.
    protect: bool = True
    # Internet-facing instead of private (components/aws_public_certificate.py): the ALB in `public_subnet_ids`,
    # a DNS-validated public certificate for `domain`, its alias in the public zone `public_zone_id`.
    internet_facing: bool = False
    domain: Optional[str] = None  # the public name clients call, e.g. llm.example.com
    public_zone_id: Optional[pulumi.Input[str]] = None  # the Route 53 public hosted zone holding `domain`
    public_subnet_ids: Optional[pulumi.Input[Sequence[str]]] = None

    def __post_init__(self):
        check_endpoint_name(self.stack, self.zone_name)
        if not self.client_cidrs:
            raise ValueError("client_cidrs: name who may reach the endpoint, e.g. the VPC's CIDR")
        for cidr in self.client_cidrs:
            if isinstance(cidr, str):
                try:
                    network = ipaddress.ip_network(cidr, strict=True)
                except ValueError:
                    raise ValueError(f"client_cidrs: {cidr!r} is not a CIDR block (e.g. 10.0.0.0/16)") from None
                if network.version != 4:
                    raise ValueError(f"client_cidrs: {cidr!r} is IPv6, but the load balancer listens on IPv4 only")
        if not self.health_path.startswith("/"):
            raise ValueError(f"health_path: {self.health_path!r} must start with '/'")
        if not 0 < self.target_port < 65536:
            raise ValueError(f"target_port: {self.target_port} is not a TCP port")
        check_internet_facing(internet_facing=self.internet_facing, domain=self.domain,
                              public_zone_id=self.public_zone_id, public_subnet_ids=self.public_subnet_ids,
                              subnet_ids=self.subnet_ids, certificate_authority_arn=self.certificate_authority_arn)
        if self.certificate_authority_arn is not None:
            check_certificate_authority_arn(self.certificate_authority_arn, self.region)


class AwsAlbEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]  # https://<dns_name>/v1, what OpenAI-compatible clients take as base URL
    dns_name: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]
    listener_arn: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]  # the ECS service registers its tasks here
    security_group_id: pulumi.Output[str]  # the ALB's: the tasks' security group admits the target port from it only
    zone_id: pulumi.Output[str]  # the private zone, or `public_zone_id` when internet-facing
    certificate_arn: pulumi.Output[str]
    # PEM of the CA that clients must trust; None when internet-facing (a public certificate, trusted as it is)
    ca_certificate: pulumi.Output[Optional[str]]

    def __init__(self, name: str, args: AwsAlbEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        target_group_name = f"{name}-tg"
        if len(target_group_name) + 8 > TARGET_GROUP_NAME_MAX:
            raise ValueError(f"name: {name!r} is too long for the target group's name ({target_group_name!r} plus 8 "
                             f"random characters must fit in {TARGET_GROUP_NAME_MAX}); use at most "
                             f"{TARGET_GROUP_NAME_MAX - 11} characters")
        super().__init__("llmhost:index:AwsAlbEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public = args.internet_facing
        host = args.domain if public else dns_name(args.stack, args.zone_name)
        prefix = f"llm-hosting-{args.stack}"

        def tags(suffix: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{prefix}-{suffix}"}

        certificate_arn, ca_certificate = endpoint_certificate(
            name, self, stack=args.stack, host=host, internet_facing=public, public_zone_id=args.public_zone_id,
            certificate_authority_arn=args.certificate_authority_arn, tags=args.tags, protect=args.protect)

        # -- the ALB's own security group ----------------------------------------------------------------------
        # Security groups are stateful: replies need no rule. Descriptions keep to the characters EC2 accepts.
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id,
            description=f"llm-hosting {args.stack}: {'internet-facing' if public else 'internal'} ALB of the LLM "
                        "endpoint, HTTPS from its clients only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=HTTPS_PORT, to_port=HTTPS_PORT, cidr_blocks=list(args.client_cidrs),
                description="HTTPS from the clients of the endpoint")],
            # Requests and health checks go to the gateway tasks, which are in the VPC; nothing else.
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=args.target_port, to_port=args.target_port, cidr_blocks=[args.vpc_cidr],
                description="To the gateway tasks and their health checks")],
            tags=tags("alb"), opts=child)

        # -- the load balancer ---------------------------------------------------------------------------------
        load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb", name=alb_name(args.stack), load_balancer_type="application",
            # Private: no public address, reachable only through the VPC. Internet-facing: in the public subnets only.
            internal=not public,
            subnets=args.public_subnet_ids if public else args.subnet_ids, security_groups=[security_group.id],
            # Headers that are not valid HTTP are dropped instead of passed on to the gateway (request smuggling).
            drop_invalid_header_fields=True,
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            enable_deletion_protection=args.protect,
            tags=tags("alb"), opts=child)
        target_group = aws.lb.TargetGroup(
            target_group_name, vpc_id=args.vpc_id,
            target_type="ip",  # Fargate tasks have their own IPs (awsvpc), no instance to register
            protocol="HTTP", port=args.target_port,  # TLS ends at the ALB; inside the VPC it is plain HTTP
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            # Completions differ in length by orders of magnitude: send each request to the task with the fewest in
            # flight rather than in turn.
            load_balancing_algorithm_type="least_outstanding_requests",
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTP", port="traffic-port", path=args.health_path, matcher="200",
                interval=15, timeout=5, healthy_threshold=2, unhealthy_threshold=3),
            tags=tags("gateway"), opts=child)

        # -- HTTPS only --------------------------------------------------------------------------------------------
        # One listener, no port 80 at all (not even a redirect): a client that tries plain HTTP fails to connect
        # rather than sending its API key in clear first.
        listener = aws.lb.Listener(
            f"{name}-https", load_balancer_arn=load_balancer.arn, port=HTTPS_PORT, protocol="HTTPS",
            ssl_policy=SSL_POLICY, certificate_arn=certificate_arn,
            # Only the endpoint's own name is served (the rule below); a request by the ALB's AWS name or an IP gets
            # a 404, as on EKS where the Ingress rule names the host. A listener cannot forward "any host but",
            # hence a fixed response by default and a forward for the one host.
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="fixed-response", fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                    content_type="text/plain", status_code="404", message_body="unknown host\n"))],
            tags=tags("https"), opts=child)
        aws.lb.ListenerRule(
            f"{name}-host", listener_arn=listener.arn, priority=HOST_RULE_PRIORITY,
            conditions=[aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[host]))],
            actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group.arn)],
            tags=tags("host"), opts=child)

        # -- DNS: the stack's private zone, or the team's public zone (never overwriting a record already there) --
        zone_id = (pulumi.Output.from_input(args.public_zone_id) if public else
                   private_zone(name, self, stack=args.stack, zone_name=args.zone_name, vpc_id=args.vpc_id,
                                region=args.region, tags=args.tags).zone_id)
        aws.route53.Record(
            f"{name}-record", zone_id=zone_id, name=host, type="A",
            aliases=[aws.route53.RecordAliasArgs(name=load_balancer.dns_name, zone_id=load_balancer.zone_id,
                                                 evaluate_target_health=True)],
            opts=child)

        self.dns_name = pulumi.Output.from_input(host)
        self.url = pulumi.Output.from_input(f"https://{host}/v1")
        self.load_balancer_arn = load_balancer.arn
        self.listener_arn = listener.arn
        self.target_group_arn = target_group.arn
        self.security_group_id = security_group.id
        self.zone_id = zone_id
        self.certificate_arn = certificate_arn
        self.ca_certificate = ca_certificate
        self.register_outputs({
            "url": self.url, "dns_name": self.dns_name, "load_balancer_arn": self.load_balancer_arn,
            "listener_arn": self.listener_arn, "target_group_arn": self.target_group_arn,
            "security_group_id": self.security_group_id, "zone_id": self.zone_id,
            "certificate_arn": self.certificate_arn, "ca_certificate": self.ca_certificate,
        })
