"""BAS-007: a private or air-gapped stack gives no task or instance a public IP address."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy

ECS_SERVICE = "aws:ecs/service:Service"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
TYPES = (ECS_SERVICE, INSTANCE, LAUNCH_TEMPLATE)
CLOSED_NETWORKS = ("private", "airgapped")

RULE = Rule(
    id="BAS-007-no-public-ips",
    title="No public IP addresses on tasks or instances in private and air-gapped stacks",
    area="baseline",
    description="ECS services, EC2 instances and launch templates of a private or air-gapped stack do not assign "
                "public IP addresses.",
    checks="`aws:ecs/service`: `networkConfiguration.assignPublicIp` is not true. `aws:ec2/instance`: "
           "`associatePublicIpAddress` is not true. `aws:ec2/launchTemplate`: no `networkInterfaces[]."
           "associatePublicIpAddress` is true.",
    why="A public address puts a task or instance on the internet beside whatever load balancer and security group "
        "the design relies on, contradicting the stack's private network.",
    severity="high",
    controls=("FedRAMP SC-7", "AWS FSBP EC2.9", "AWS FSBP ECS.2", "HIPAA 164.312(e)(1)"),
    remediation="Run tasks and instances in private subnets with `assign_public_ip=False` / "
                "`associate_public_ip_address=False`; reach them through an internal load balancer, SSM or a VPN.",
    applies_to=TYPES,
    limits="An instance that gets a public address from its subnet's `mapPublicIpOnLaunch` is not seen here "
           "(AIR-001 reports such subnets in air-gapped stacks).",
)


def check(ctx: ResourceContext) -> None:
    network = ctx.config["network"]
    if network not in CLOSED_NETWORKS:
        ctx.not_applicable(f"the stack's network is {network}; this policy applies to private and airgapped stacks")
    applies(ctx, ctx.type, TYPES)
    if ctx.type == ECS_SERVICE:
        public = ctx.get("networkConfiguration.assignPublicIp", "whether the tasks get public addresses")
        if public is not UNKNOWN and truthy(public) is True:
            ctx.violation(f"networkConfiguration.assignPublicIp is true: every task gets a public IP address in a "
                          f"{network} stack")
    elif ctx.type == INSTANCE:
        public = ctx.get("associatePublicIpAddress", "whether the instance gets a public IP")
        if public is not UNKNOWN and truthy(public) is True:
            ctx.violation(f"associatePublicIpAddress is true: the instance gets a public IP address in a {network} "
                          "stack")
    else:
        for path, nic in ctx.items("networkInterfaces", "the network interfaces"):
            if isinstance(nic, dict) and truthy(ctx.get(f"{path}.associatePublicIpAddress")) is True:
                ctx.violation(f"{path}.associatePublicIpAddress is true: instances get public IP addresses in a "
                              f"{network} stack")


POLICY = resource_policy(RULE, check)
