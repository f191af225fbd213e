"""BND-004: a SageMaker model of a confidential or regulated stack runs in the VPC with network isolation."""

from __future__ import annotations

from ...props import UNKNOWN, truthy
from ...rulekit import ResourceContext, Rule, applies, resource_policy
from . import require_boundary

MODEL = "aws:sagemaker/model:Model"

RULE = Rule(
    id="BND-004-sagemaker-network-isolation",
    title="SageMaker models run in the VPC with network isolation",
    area="boundary",
    description="SageMaker models of a confidential or regulated stack attach to the stack's VPC and enable "
                "network isolation.",
    checks="`aws:sagemaker/model`: `vpcConfig` names at least one subnet and one security group, and "
           "`enableNetworkIsolation` is true.",
    why="Without a VPC config the inference containers run in SageMaker's own network with internet access; without "
        "network isolation the container itself can call out. Either lets prompts leave the boundary.",
    severity="high",
    controls=("FedRAMP SC-7", "HIPAA 164.312(e)(1)", "GDPR art. 32"),
    remediation="Give the model `vpc_config` (the stack's private subnets and workload security group) and "
                "`enable_network_isolation=True`; load weights from S3 through the VPC endpoint. The kit's managed tier "
                "does both.",
    applies_to=(MODEL,),
)


def check(ctx: ResourceContext) -> None:
    require_boundary(ctx)
    applies(ctx, ctx.type, (MODEL,))
    vpc = ctx.peek("vpcConfig")
    if vpc is not UNKNOWN:
        subnets = ctx.peek("vpcConfig.subnets")  # ids of the stack's subnets may be unknown: they are set
        groups = ctx.peek("vpcConfig.securityGroupIds")
        if not vpc:
            ctx.violation("vpcConfig is not set: the model's containers run outside the stack's VPC")
        else:
            if subnets is not UNKNOWN and not subnets:
                ctx.violation("vpcConfig.subnets is empty: the model's containers run outside the stack's VPC")
            if groups is not UNKNOWN and not groups:
                ctx.violation("vpcConfig.securityGroupIds is empty: the model's traffic is not filtered")
    isolated = ctx.get("enableNetworkIsolation", "whether network isolation is on")
    if isolated is not UNKNOWN and truthy(isolated) is not True:
        ctx.violation("enableNetworkIsolation is not true: the inference container can make outbound network calls")


POLICY = resource_policy(RULE, check)
