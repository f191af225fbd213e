"""A private HTTPS endpoint for the in-cluster gateway: an internal ALB, a private-CA certificate, a private DNS name.

Applications in the VPC reach `https://<stack>.<zone>/v1` (zone `llm.internal` by default):

  Route 53 private zone (associated with the stack's VPC only)
    alias A <stack>.<zone> -> internal ALB (private subnets, HTTPS 443 only, TLS 1.2/1.3 policy)
      -> pod IPs of the gateway Service (target type `ip`, plain HTTP inside the VPC)

The ALB is made by the AWS Load Balancer Controller from an Ingress (the EKS way), so it follows the gateway's pods
as they move. The controller runs with an EKS Pod Identity role cut down from its published IAM policy: anything that
creates, changes or deletes is limited to resources tagged `elbv2.k8s.aws/cluster: <this cluster>`, to this account
and region, and to Application Load Balancers; WAF, Shield, Cognito and certificate discovery are switched off and
their permissions dropped. Air-gapped stacks pull the chart and the image from their registry; the controller then
talks only to the elasticloadbalancing, ec2 and eks-auth interface endpoints (CONTROLLER_AWS_APIS), which the
air-gapped network always has.

The certificate comes from an AWS Private CA (a ROOT in general-purpose mode) through ACM, which renews it by itself.
General-purpose mode costs more (about USD 400 a month per CA, against 50 for short-lived mode) but short-lived mode
is not an option: ACM cannot issue from a short-lived-mode CA, and its 7-day certificates would need a renewal job
and a listener update every week. `certificate_authority_arn` issues from an organisation's existing CA instead and
creates none (components/aws_private_ca.py weighs the two). Clients must trust the CA: its certificate is the
`ca_certificate` output.

DNS: the ALB exists only once the controller has reconciled the Ingress. Pulumi waits for an Ingress until its
status names the load balancer, so the alias record reads the ALB back (by its fixed name) only once that status is
there: in a preview of a new stack the record's target stays unknown instead of failing. external-dns would manage
the record too, but it is one more controller, IAM role and mirrored image for a single record.

Internet-facing (`internet_facing=True`, for stacks whose consumers are on the internet: network variant `public`,
data neither confidential nor regulated, which the caller decides): the Ingress asks for an `internet-facing` ALB in
`public_subnet_ids` (never the private subnets), and the controller's default scheme and its IngressClassParams
follow, so the class enforces the stack's one scheme either way. The certificate is an ACM public certificate for
`domain`, DNS-validated through a record in the team's public zone `public_zone_id`, and the Ingress waits for its
validation; the alias A `domain` goes in that public zone. No private CA and no private zone are made;
`ca_certificate` is None (the certificate chains to a public root every client already trusts). `client_cidrs` still
says who may connect (["0.0.0.0/0"] for anyone). components/aws_public_certificate.py holds the checks and the
certificate, shared with the ECS endpoint (aws_alb_endpoint.py).

AWS WAF is not part of the kit (the controller runs with WAF and Shield off, without their permissions). A team that
wants it in front makes a WAFv2 web ACL (AWS managed rule groups, a rate-based rule per source IP) and associates it
with the ALB: the `alb.ingress.kubernetes.io/wafv2-acl-arn` annotation, with `enableWafv2` and the wafv2 permissions
given back to the controller (or an `aws.wafv2.WebAclAssociation` on the ALB read back by its name). The kit's own
protection is behind the TLS listener, in the gateway: every request needs a consumer's key, and each key has its own
request and token rate limits, so an anonymous caller gets a 401 and a leaked key costs at most its limits (and is
revoked alone). What WAF adds is filtering before the gateway (floods of unauthenticated requests, known-bad
sources), which the gateway answers cheaply but still answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .aws_private_ca import check_certificate_authority_arn, private_zone
from .aws_public_certificate import check_internet_facing, endpoint_certificate
from .eks_pod_identity import EksPodIdentity, EksPodIdentityArgs
from .helm import chart_release
from .versions import VERSIONS, ComponentVersions

CHART = "aws-load-balancer-controller"
CONTROLLER_NAMESPACE = "kube-system"  # system-cluster-critical, like the chart's own default
SERVICE_ACCOUNT = "aws-load-balancer-controller"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"  # the controller tags everything it creates with <tag>: <cluster name>
INGRESS_CLASS = "alb"
# TLS 1.3 and 1.2 only, forward-secret ciphers (the ELB policy name; see `aws elbv2 describe-ssl-policies`).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
HTTPS_PORT = 443
# The gateway lets one upstream attempt run up to 600 s (serving/gateway.py): a non-streamed completion may be silent
# that long, and the ALB's default 60 s idle timeout would cut it.
IDLE_TIMEOUT_SECONDS = 600
# What the controller calls, as VPC interface endpoint names (Pod Identity credentials come from eks-auth). WAF,
# WAFv2 and Shield are disabled in its values and the certificate is given by ARN, so wafv2, shield and acm are not.
CONTROLLER_AWS_APIS = ("elasticloadbalancing", "ec2", "eks-auth")
PUBLIC_IMAGE = "public.ecr.aws/eks/aws-load-balancer-controller"
# DNS: a label is 1-63 letters, digits and inner hyphens.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TAG_TEXT = re.compile(r"^[\w .:/+@-]*$")  # no ',' or '=': the controller's tags annotation is k=v,k=v
ALB_NAME_MAX = 32


def dns_name(stack: str, zone_name: str) -> str:
    """The endpoint's name: the one source for the certificate, the DNS record, the Ingress host and the URL."""
    return f"{stack}.{zone_name}"


def check_endpoint_name(stack: str, zone_name: str) -> None:
    """Refuse a stack or zone that cannot make the endpoint's DNS name and certificate, naming the field."""
    if not _LABEL.match(stack):
        raise ValueError(f"stack: {stack!r} must be a DNS label (lower-case letters, digits, inner '-'), "
                         "since the endpoint is <stack>.<zone_name>")
    labels = zone_name.split(".")
    if not all(_LABEL.match(label) for label in labels) or len(labels) < 2:
        raise ValueError(f"zone_name: {zone_name!r} is not a DNS name of two or more labels (e.g. llm.internal)")
    if len(dns_name(stack, zone_name)) > 64:
        raise ValueError(f"zone_name: {dns_name(stack, zone_name)!r} is longer than the 64 characters "
                         "a certificate's common name allows")


def alb_name(stack: str) -> str:
    """The ALB's name (at most 32 characters, unique per account and region): fixed so it can be read back."""
    name = f"llm-hosting-{stack}"
    if len(name) > ALB_NAME_MAX:
        name = f"{name[:ALB_NAME_MAX - 9].rstrip('-')}-{hashlib.sha256(stack.encode()).hexdigest()[:8]}"
    return name


def controller_statements(cluster: str, vpc_id: str, region: str, account: str, partition: str) -> list[dict]:
    """The controller's IAM policy (its published iam_policy.json), scoped to this cluster, VPC, account and region.

    Dropped from the published policy: Cognito, ACM/IAM certificate discovery, WAF Regional, WAFv2, Shield and
    SetWebAcl (all disabled or unused here), and Network Load Balancer ARNs (this component makes only an ALB)."""
    elb = f"arn:{partition}:elasticloadbalancing:{region}:{account}"
    sg = f"arn:{partition}:ec2:{region}:{account}:security-group/*"
    vpc = f"arn:{partition}:ec2:{region}:{account}:vpc/{vpc_id}"
    load_balancers, target_groups = f"{elb}:loadbalancer/app/*/*", f"{elb}:targetgroup/*/*"
    listeners = [f"{elb}:listener/app/*/*/*", f"{elb}:listener-rule/app/*/*/*"]
    ours = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster}}
    tagging_ours = {"StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": cluster}}
    return [
        {"Sid": "ElbServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": f"arn:{partition}:iam::{account}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",  # Describe*/Get* have no resource-level permissions
         "Action": [
             "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
             "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
             "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
             "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables", "ec2:DescribeIpamPools",
             "ec2:GetSecurityGroupsForVpc",
             "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
             "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerAttributes",
             "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
             "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
             "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
             "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTrustStores",
             "elasticloadbalancing:DescribeCapacityReservation"]},
        # The ALB's own security group: created in this VPC only, and only carrying this cluster's tag.
        {"Sid": "CreateSecurityGroupInThisVpc", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup",
         "Resource": vpc},
        {"Sid": "CreateOurSecurityGroup", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup", "Resource": sg,
         "Condition": tagging_ours},
        {"Sid": "TagOurNewSecurityGroup", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": sg,
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup",
                                        f"aws:RequestTag/{CLUSTER_TAG}": cluster}}},
        {"Sid": "RetagOurSecurityGroups", "Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
         "Resource": sg, "Condition": {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true"}, **ours}},
        {"Sid": "ManageOurSecurityGroups", "Effect": "Allow", "Resource": sg, "Condition": ours,
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]},
        # Rules on the nodes' security group admitting the ALB to the pods: any group, but only in this VPC.
        {"Sid": "BackendRulesInThisVpc", "Effect": "Allow", "Resource": sg,
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
         "Condition": {"ArnEquals": {"ec2:Vpc": vpc}}},
        {"Sid": "CreateOurLoadBalancers", "Effect": "Allow", "Resource": [load_balancers, target_groups],
         "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
         "Condition": tagging_ours},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "elasticloadbalancing:AddTags",
         "Resource": [load_balancers, target_groups],
         "Condition": {"StringEquals": {
             "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"],
             f"aws:RequestTag/{CLUSTER_TAG}": cluster}}},
        {"Sid": "RetagOurLoadBalancers", "Effect": "Allow", "Resource": [load_balancers, target_groups],
         "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
         "Condition": {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true"}, **ours}},
        {"Sid": "ManageOurLoadBalancers", "Effect": "Allow", "Resource": [load_balancers, target_groups],
         "Condition": ours,
         "Action": [
             "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
             "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
             "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
             "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
             "elasticloadbalancing:ModifyCapacityReservation", "elasticloadbalancing:ModifyIpPools",
             "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]},
        {"Sid": "ListenOnOurLoadBalancers", "Effect": "Allow", "Action": "elasticloadbalancing:CreateListener",
         "Resource": load_balancers, "Condition": ours},
        # Listeners and rules carry no cluster tag of their own: ALBs' listeners of this account and region only
        # (the published policy allows any resource).
        {"Sid": "ListenersAndRules", "Effect": "Allow", "Resource": listeners,
         "Action": [
             "elasticloadbalancing:DeleteListener", "elasticloadbalancing:CreateRule",
             "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyListener",
             "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:AddListenerCertificates",
             "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:ModifyRule",
             "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]},
    ]


@dataclass(frozen=True)
class AwsPrivateEndpointArgs:
    stack: str
    cluster_name: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]  # the PRIVATE subnets: the ALB lands there and nowhere else
    # Who may connect: the ALB's security group admits only these (e.g. [network.vpc_cidr]); there is no default,
    # because the controller's own default (0.0.0.0/0) would admit anything routed into the VPC.
    client_cidrs: Sequence[pulumi.Input[str]]
    registry: Optional[str] = None  # air-gapped: chart and image from this registry
    versions: ComponentVersions = VERSIONS
    namespace: str = "llm-serving"  # where the gateway's Service is
    service_name: str = "llm-gateway"
    service_port: int = 4000
    health_path: str = "/health/liveliness"  # answers without an API key
    zone_name: str = "llm.internal"
    node_selector: dict[str, str] = field(default_factory=dict)  # the system pool
    tags: dict[str, str] = field(default_factory=dict)
    protect: bool = True  # the CA: deleting it invalidates every certificate clients were told to trust
    # An existing general-purpose AWS Private CA (e.g. shared through AWS RAM) to issue from, instead of a CA per stack.
    certificate_authority_arn: Optional[str] = None
    replicas: int = 2  # the controller's webhooks must answer for any Ingress or pod change
    # Internet-facing instead of private (components/aws_public_certificate.py): the ALB in `public_subnet_ids`,
    # a DNS-validated public certificate for `domain`, its alias in the public zone `public_zone_id`.
    internet_facing: bool = False
    domain: Optional[str] = None  # the public name clients call, e.g. llm.example.com
    public_zone_id: Optional[pulumi.Input[str]] = None  # the Route 53 public hosted zone holding `domain`
    public_subnet_ids: Optional[pulumi.Input[Sequence[str]]] = None
    # What must exist first: the system node group (Helm waits for the controller to be ready, which needs a node) and
    # the gateway's Service (Pulumi waits for the Ingress until its backend Service exists and the ALB is up).
    wait_for: list = field(default_factory=list)

    def __post_init__(self):
        check_endpoint_name(self.stack, self.zone_name)
        if not self.client_cidrs:
            raise ValueError("client_cidrs: name who may reach the endpoint, e.g. the VPC's CIDR")
        if not self.health_path.startswith("/"):
            raise ValueError(f"health_path: {self.health_path!r} must start with '/'")
        if not 0 < self.service_port < 65536:
            raise ValueError(f"service_port: {self.service_port} is not a TCP port")
        if not self.node_selector:
            raise ValueError("node_selector: pin the controller to the system pool")
        if self.replicas < 1:
            raise ValueError(f"replicas: {self.replicas} must be at least 1")
        check_internet_facing(internet_facing=self.internet_facing, domain=self.domain,
                              public_zone_id=self.public_zone_id, public_subnet_ids=self.public_subnet_ids,
                              subnet_ids=self.subnet_ids, certificate_authority_arn=self.certificate_authority_arn)
        if self.certificate_authority_arn is not None:
            check_certificate_authority_arn(self.certificate_authority_arn, self.region)
        bad = [f"{k}={v}" for k, v in self.tags.items() if not (_TAG_TEXT.match(k) and _TAG_TEXT.match(v))]
        if bad:
            raise ValueError(f"tags: {bad} contain characters the load balancer's tags annotation cannot carry (, or =)")


def scheme(args: AwsPrivateEndpointArgs) -> str:
    """The ALB's scheme (the controller's word): the one source for the Ingress, the class and the chart's default."""
    return "internet-facing" if args.internet_facing else "internal"


def chart_values(args: AwsPrivateEndpointArgs, cluster_name: str, vpc_id: str) -> dict:
    """The Helm values; every key exists in the chart's values.yaml at the pinned version."""
    values = {
        "clusterName": cluster_name,
        # Set, not discovered from instance metadata: the pods may not reach IMDS (hop limit 1), nor anything else.
        "region": args.region,
        "vpcId": vpc_id,
        "replicaCount": args.replicas,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},  # the Pod Identity association names it
        "nodeSelector": dict(args.node_selector),
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "500Mi"}},
        # No WAF/Shield calls (their APIs have no interface endpoint in the air-gapped list, and no permission here).
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        # Defaults for any other Ingress of the class: the stack's scheme (internal unless internet-facing), and the
        # same TLS policy.
        "defaultLoadBalancerScheme": scheme(args),
        "defaultSSLPolicy": SSL_POLICY,
        "defaultTargetType": "ip",
        # The class's parameters enforce the scheme: an Ingress of class `alb` cannot ask for another one (in a private
        # stack, none can be internet-facing).
        "ingressClassParams": {"spec": ingress_class_params_spec(scheme(args))},
        # Leave Services of type LoadBalancer to whoever owns them: this controller is here for the one Ingress.
        "enableServiceMutatorWebhook": False,
    }
    if args.registry:
        values["image"] = {"repository": f"{args.registry.rstrip('/')}/aws-load-balancer-controller"}
    return values


def ingress_class_params_spec(scheme: str = "internal") -> dict:
    return {"scheme": scheme}


def ingress_annotations(args: AwsPrivateEndpointArgs, certificate_arn: pulumi.Input[str], subnets: pulumi.Input[str],
                        client_cidrs: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The Ingress annotations, each its own input: only the ones that wait for a resource are unknown at preview, so
    the scheme, the listeners and the TLS policy stay readable to `pulumi preview` and the policy pack."""
    prefix = "alb.ingress.kubernetes.io"
    annotations = {
        f"{prefix}/scheme": scheme(args),
        f"{prefix}/load-balancer-name": alb_name(args.stack),
        # Explicit, so the ALB can only land in the private subnets (never a public one, whatever its tags say), or,
        # internet-facing, in the public subnets only.
        f"{prefix}/subnets": subnets,
        f"{prefix}/inbound-cidrs": client_cidrs,
        # Pod IPs as targets: the gateway stays a ClusterIP Service, and no NodePort is opened on the nodes.
        f"{prefix}/target-type": "ip",
        f"{prefix}/listen-ports": json.dumps([{"HTTPS": HTTPS_PORT}]),  # no plain-HTTP listener at all
        f"{prefix}/certificate-arn": certificate_arn,
        f"{prefix}/ssl-policy": SSL_POLICY,
        # TLS ends at the ALB; from there to the pod it is HTTP inside the VPC's private subnets.
        f"{prefix}/backend-protocol": "HTTP",
        f"{prefix}/healthcheck-protocol": "HTTP",
        f"{prefix}/healthcheck-port": "traffic-port",
        f"{prefix}/healthcheck-path": args.health_path,
        f"{prefix}/success-codes": "200",
        f"{prefix}/load-balancer-attributes": ",".join([
            "routing.http.drop_invalid_header_fields.enabled=true",
            f"idle_timeout.timeout_seconds={IDLE_TIMEOUT_SECONDS}"]),
    }
    if args.tags:
        annotations[f"{prefix}/tags"] = ",".join(f"{k}={v}" for k, v in sorted(args.tags.items()))
    return annotations


def _load_balancer_hostname(status) -> str:
    hostnames = [i.hostname for i in ((status.load_balancer.ingress or []) if status and status.load_balancer else [])
                 if i.hostname]
    if not hostnames:
        raise ValueError("the Ingress reports no load balancer: check the aws-load-balancer-controller's logs")
    return hostnames[0]


class AwsPrivateEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]  # https://<dns_name>/v1, what OpenAI-compatible clients take as base URL
    dns_name: pulumi.Output[str]
    zone_id: pulumi.Output[str]  # the private zone, or `public_zone_id` when internet-facing
    certificate_arn: pulumi.Output[str]
    # PEM of the private root CA that clients must trust; None when internet-facing (a public certificate)
    ca_certificate: pulumi.Output[Optional[str]]
    load_balancer_hostname: pulumi.Output[str]
    role_arn: pulumi.Output[str]  # the controller's Pod Identity role

    def __init__(self, name: str, args: AwsPrivateEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:AwsPrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public = args.internet_facing
        host = args.domain if public else dns_name(args.stack, args.zone_name)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition

        # -- the controller ------------------------------------------------------------------------------------
        statements = pulumi.Output.all(args.cluster_name, args.vpc_id, identity.account_id, partition).apply(
            lambda a: controller_statements(a[0], a[1], args.region, a[2], a[3]))
        count = len(controller_statements("c", "v", args.region, "0", "aws"))
        pod_identity = EksPodIdentity(f"{name}-controller-identity", EksPodIdentityArgs(
            stack=args.stack, cluster_name=args.cluster_name, namespace=CONTROLLER_NAMESPACE,
            service_account=SERVICE_ACCOUNT, statements=[statements[i] for i in range(count)], tags=args.tags),
            opts=child)
        release = chart_release(
            f"{name}-controller", release=CHART, chart=CHART, version=args.versions.aws_load_balancer_controller_chart,
            registry=args.registry, namespace=CONTROLLER_NAMESPACE,
            values=pulumi.Output.all(args.cluster_name, args.vpc_id).apply(lambda a: chart_values(args, a[0], a[1])),
            # Pods admitted before the association exists get no AWS credentials until they restart.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pod_identity.association, *args.wait_for]))

        # -- the endpoint's certificate (from the stack's own private CA, or the organisation's; or public) ----------
        certificate_arn, ca_certificate = endpoint_certificate(
            name, self, stack=args.stack, host=host, internet_facing=public, public_zone_id=args.public_zone_id,
            certificate_authority_arn=args.certificate_authority_arn, tags=args.tags, protect=args.protect)

        # -- the Ingress the controller turns into the ALB -----------------------------------------------------
        annotations = ingress_annotations(
            args, certificate_arn,
            pulumi.Output.from_input(args.public_subnet_ids if public else args.subnet_ids).apply(",".join),
            pulumi.Output.all(*args.client_cidrs).apply(",".join))
        backend = k8s.networking.v1.IngressBackendArgs(service=k8s.networking.v1.IngressServiceBackendArgs(
            name=args.service_name, port=k8s.networking.v1.ServiceBackendPortArgs(number=args.service_port)))
        ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{args.service_name}-{'public' if public else 'private'}",
                                                namespace=args.namespace,
                                                annotations=annotations),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=INGRESS_CLASS,
                rules=[k8s.networking.v1.IngressRuleArgs(
                    host=host,  # other Host headers get the ALB's default 404
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=[
                        k8s.networking.v1.HTTPIngressPathArgs(path="/", path_type="Prefix", backend=backend)]))]),
            # The controller's validating webhook must answer before the Ingress can be created, and on delete the
            # controller must still run to remove the ALB (reverse order). The certificate it waits for through the
            # ARN in its annotations.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release, *args.wait_for]))

        # -- DNS: the stack's private zone, or the team's public zone (never overwriting a record already there) --
        zone_id = (pulumi.Output.from_input(args.public_zone_id) if public else
                   private_zone(name, self, stack=args.stack, zone_name=args.zone_name, vpc_id=args.vpc_id,
                                region=args.region, tags=args.tags).zone_id)
        hostname = ingress.status.apply(_load_balancer_hostname)
        # Read back once the Ingress reports its ALB: an unknown status (a preview) keeps the lookup unknown.
        alb = aws.lb.get_load_balancer_output(name=hostname.apply(lambda _: alb_name(args.stack)),
                                              opts=pulumi.InvokeOutputOptions(parent=self))
        aws.route53.Record(
            f"{name}-record", zone_id=zone_id, name=host, type="A",
            aliases=[aws.route53.RecordAliasArgs(name=alb.dns_name, zone_id=alb.zone_id,
                                                 evaluate_target_health=True)],
            # Its target is the load balancer the controller makes for this Ingress (looked up by name once the
            # Ingress reports it); the explicit dependency also tells a reader of the plan which one it is.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ingress]))

        self.dns_name = pulumi.Output.from_input(host)
        self.url = pulumi.Output.from_input(f"https://{host}/v1")
        self.zone_id = zone_id
        self.certificate_arn = certificate_arn
        self.ca_certificate = ca_certificate
        self.load_balancer_hostname = hostname
        self.role_arn = pod_identity.role_arn
        self.register_outputs({
            "url": self.url, "dns_name": self.dns_name, "zone_id": self.zone_id,
            "certificate_arn": self.certificate_arn, "ca_certificate": self.ca_certificate,
            "load_balancer_hostname": self.load_balancer_hostname, "role_arn": self.role_arn,
        })
