"""BAS-005: nothing but a load balancer's HTTPS/HTTP listener accepts traffic from any address."""

from __future__ import annotations

from ...rulekit import Rule, StackContext, StackResource, stack_policy

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
FIREWALL = "gcp:compute/firewall:Firewall"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer",
                  "aws:elb/loadBalancer:LoadBalancer")
ANYWHERE = ("0.0.0.0/0", "::/0")
LISTENER_PORTS = (80, 443)  # what an internet-facing load balancer listens on (80 only to redirect to 443)

RULE = Rule(
    id="BAS-005-no-open-ingress",
    title="No ingress from anywhere except to a load balancer's listener",
    area="baseline",
    kind="stack",
    description="Security groups and firewall rules admit traffic from 0.0.0.0/0 or ::/0 only on ports 443 and 80 of a "
                "load balancer's own security group.",
    checks="AWS: ingress of `aws:ec2/securityGroup` (inline `ingress`), `aws:ec2/securityGroupRule` (type ingress) and "
           "`aws:vpc/securityGroupIngressRule` with `cidrBlocks`/`ipv6CidrBlocks`/`cidrIpv4`/`cidrIpv6` of 0.0.0.0/0 or "
           "::/0: allowed only when the port range lies within 80 and 443 (tcp) and the security group is one a load "
           "balancer of the stack uses (the load balancer depends on it). GCP: `gcp:compute/firewall` of direction "
           "INGRESS with `allows` and a source range of 0.0.0.0/0 or ::/0 (GCP load balancers have no security group "
           "of their own: Google's front ends reach backends from their published ranges, not from anywhere).",
    why="A port open to the whole internet on anything but a load balancer's listener exposes instances, nodes and "
        "administration ports (SSH, RDP, the model server) directly to scanning and attack.",
    severity="high",
    controls=("FedRAMP SC-7", "CIS AWS 5.2", "CIS AWS 5.3", "CIS GCP 3.6", "CIS GCP 3.7", "AWS FSBP EC2.18",
              "HIPAA 164.312(e)(1)"),
    remediation="Narrow the source to the VPC, the clients' CIDRs or the load balancer's security group; publish a "
                "service only through a load balancer listening on 443 (80 only to redirect), as the kit's "
                "internet-facing endpoint does. On GCP, allow only the load-balancer and health-check ranges "
                "(130.211.0.0/22, 35.191.0.0/16) and the VPC.",
    applies_to=(SECURITY_GROUP, SG_RULE, SG_INGRESS, FIREWALL),
    limits="A security group attached to a load balancer only by id (created outside the program) is not recognised as "
           "the load balancer's. Network ACLs are not judged.",
)


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _open(cidrs) -> list[str]:
    return [c for c in (cidrs or []) if c in ANYWHERE] if isinstance(cidrs, list) else []


def _listener_only(protocol, from_port, to_port) -> bool:
    if str(protocol).lower() not in ("tcp", "6"):
        return False
    if not isinstance(from_port, (int, float)) or not isinstance(to_port, (int, float)):
        return False
    return all(p in LISTENER_PORTS for p in range(int(from_port), int(to_port) + 1))


def _ports(protocol, from_port, to_port) -> str:
    if str(protocol) in ("-1", "all"):
        return "all ports and protocols"
    return f"{protocol} {from_port}" if from_port == to_port else f"{protocol} {from_port}-{to_port}"


def check(ctx: StackContext) -> None:
    by_urn = {r.urn: r for r in ctx.resources}
    lb_groups = {d for r in ctx.resources if r.type in LOAD_BALANCERS for d in r.dependency_urns}
    seen = False

    def judge(res: StackResource, where: str, cidrs: list, protocol, from_port, to_port, group_urn) -> None:
        anywhere = _open(cidrs)
        if not anywhere:
            return
        if _listener_only(protocol, from_port, to_port) and group_urn in lb_groups:
            return
        whose = "a load balancer's security group" if group_urn in lb_groups else "a security group no load balancer uses"
        ctx.violation(f"{where} admits {', '.join(anywhere)} on {_ports(protocol, from_port, to_port)} to {whose}: "
                      "only a load balancer's 443/80 listener may be open to any address", res.urn)

    for r in ctx.resources:
        if r.type == SECURITY_GROUP:
            seen = True
            for i, rule in enumerate(_list(ctx.get(r, "ingress", "the ingress rules"))):
                if isinstance(rule, dict):
                    judge(r, f"ingress[{i}]", [*_list(rule.get("cidrBlocks")), *_list(rule.get("ipv6CidrBlocks"))],
                          rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"), r.urn)
        elif r.type in (SG_RULE, SG_INGRESS):
            seen = True
            if r.type == SG_RULE and ctx.get(r, "type", "the rule's direction") != "ingress":
                continue
            cidrs = ([*_list(ctx.get(r, "cidrBlocks")), *_list(ctx.get(r, "ipv6CidrBlocks"))] if r.type == SG_RULE
                     else [ctx.get(r, "cidrIpv4"), ctx.get(r, "cidrIpv6")])
            cidrs = [c for c in cidrs if isinstance(c, str)]
            protocol = ctx.get(r, "protocol" if r.type == SG_RULE else "ipProtocol")
            group = next((d for d in r.dependency_urns if by_urn.get(d) and by_urn[d].type == SECURITY_GROUP), None)
            judge(r, "the rule", cidrs, protocol, ctx.get(r, "fromPort"), ctx.get(r, "toPort"), group)
        elif r.type == FIREWALL:
            seen = True
            direction = ctx.get(r, "direction", "the firewall's direction")
            allows = ctx.get(r, "allows", "what the firewall allows")
            if direction not in (None, "INGRESS") or not isinstance(allows, list) or not allows:
                continue
            anywhere = _open(ctx.get(r, "sourceRanges", "the source ranges"))
            if anywhere:
                what = "; ".join(f"{a.get('protocol')} {','.join(map(str, a.get('ports') or ['all ports']))}"
                                 for a in allows if isinstance(a, dict))
                ctx.violation(f"the firewall allows {what} from {', '.join(anywhere)}: GCP load balancers reach "
                              "backends from Google's ranges, so nothing needs ingress from any address", r.urn)
    if not seen:
        ctx.not_applicable("the stack has no security group, security group rule or firewall")


POLICY = stack_policy(RULE, check)
