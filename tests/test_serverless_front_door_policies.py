"""The policy pack on the serverless front doors of stacks without a cluster: an internal ALB before the gateway's ECS
service (AWS), an internal Application Load Balancer before its Cloud Run service (GCP).

Resources are synthetic, in the shape the pack sees them (camelCase inputs, unknown outputs as pulumi-policy's
sentinel, `dependencies` naming what each resource was made from). ARNs and ids are written as the offline preview's
mocks answer them (known, but carrying no resource name) unless a case says otherwise, so the chains are followed
through dependencies the way they are in a whole-stack preview.
"""

from __future__ import annotations

import json

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE as U

from policies.engine import check_resource, check_stack

LNK = "LNK-007-endpoint-reachable"
ENC = "ENC-009-tls-listeners"
BND = "BND-003-no-public-load-balancer"
REGULATED = {"classification": "regulated"}
URL = {"endpoint_url": "https://startup-api.llm.internal/v1"}
ACM_CERT = "arn:aws:acm:eu-central-1:123456789012:certificate/9f1d2c3b-1111-2222-3333-444455556666"
TLS12 = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# What the offline preview's mocks return for these outputs: known ARNs that name no resource.
ALB_ARN = "arn:aws:lb:eu-central-1:123456789012:loadbalancer/loadbalancer-0a1b2c3d4e5f60718"
TG_ARN = "arn:aws:lb:eu-central-1:123456789012:targetgroup/targetgroup-1a2b3c4d5e6f70819"
TASK_ARN = "arn:aws:ecs:eu-central-1:123456789012:taskdefinition/taskdefinition-2b3c4d5e6f7081920"
LISTENER_ARN = "arn:aws:lb:eu-central-1:123456789012:listener/listener-3c4d5e6f708192a3b"

ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ECS_SERVICE = "aws:ecs/service:Service"
ECS_TASK = "aws:ecs/taskDefinition:TaskDefinition"
FORWARDING_RULE = "gcp:compute/forwardingRule:ForwardingRule"
HTTPS_PROXY = "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy"
HTTP_PROXY = "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"


def res(typ, name, inputs, *deps):
    return {"type": typ, "name": name, "inputs": inputs, "options": {}, "dependencies": list(deps)}


def named(resources, name):
    return next(r for r in resources if r["name"] == name)


def without(resources, *names):
    return [r for r in resources if r["name"] not in names]


def lnk007(resources, network="private", outputs=URL):
    result = check_stack(LNK, resources, {"network": network}, outputs=outputs)
    return [(v.resource_name, v.message) for v in result.violations]


# --- AWS: private zone -> alias -> internal ALB -> HTTPS listener -> host rule -> target group <- ECS service (litellm)

def aws_stack():
    containers = [{"name": "litellm", "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/litellm:v1",
                   "portMappings": [{"containerPort": 4000}]}]
    return [
        res("aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.0.0.0/16"}),
        res("aws:route53/zone:Zone", "endpoint-zone", {"name": "llm.internal", "vpcs": [{"vpcId": U}]}, "network-vpc"),
        res(ALB, "endpoint-alb", {"name": "startup-api-gateway", "internal": True, "loadBalancerType": "application",
                                  "subnets": [U, U], "securityGroups": [U]}),
        res("aws:route53/record:Record", "endpoint-record", {
            "zoneId": U, "name": "startup-api.llm.internal", "type": "A",
            "aliases": [{"name": U, "zoneId": U, "evaluateTargetHealth": True}]}, "endpoint-zone", "endpoint-alb"),
        res(TARGET_GROUP, "endpoint-target-group", {"targetType": "ip", "port": 4000, "protocol": "HTTP", "vpcId": U}),
        # Only the endpoint's own host is forwarded (a listener rule); any other host gets the default 404.
        res(LISTENER, "endpoint-https", {
            "loadBalancerArn": ALB_ARN, "port": 443, "protocol": "HTTPS", "sslPolicy": TLS12, "certificateArn": ACM_CERT,
            "defaultActions": [{"type": "fixed-response", "fixedResponse": {
                "contentType": "text/plain", "statusCode": "404", "messageBody": "unknown host"}}]}, "endpoint-alb"),
        res(LISTENER_RULE, "endpoint-host", {
            "listenerArn": LISTENER_ARN, "priority": 1,
            "conditions": [{"hostHeader": {"values": ["startup-api.llm.internal"]}}],
            "actions": [{"type": "forward", "targetGroupArn": TG_ARN}]}, "endpoint-https", "endpoint-target-group"),
        res(ECS_TASK, "gateway-task", {"family": "startup-api-gateway", "containerDefinitions": json.dumps(containers)}),
        res(ECS_SERVICE, "gateway-service", {
            "cluster": U, "taskDefinition": TASK_ARN, "desiredCount": 2,
            "loadBalancers": [{"targetGroupArn": TG_ARN, "containerName": "litellm", "containerPort": 4000}],
            "networkConfiguration": {"assignPublicIp": False, "subnets": [U, U], "securityGroups": [U]}},
            "gateway-task", "endpoint-target-group", "endpoint-https", "endpoint-host"),
    ]


def default_forward(stack):
    """The same front door with the listener forwarding every host by its default action, no rule."""
    stack = without(stack, "endpoint-host")
    listener = named(stack, "endpoint-https")
    listener["inputs"]["defaultActions"] = [{"type": "forward", "targetGroupArn": TG_ARN}]
    listener["dependencies"].append("endpoint-target-group")
    return stack


def test_lnk007_follows_the_aws_chain_to_the_gateway_ecs_service():
    assert lnk007(aws_stack()) == []
    assert lnk007(aws_stack(), outputs=None) == []  # `pulumi preview`: the ECS gateway, found behind the ALB
    assert lnk007(default_forward(aws_stack())) == []


def test_lnk007_follows_the_aws_chain_by_the_names_in_known_arns_too():
    """After `pulumi up` the ARNs are real: they carry the names, and no dependency is needed."""
    stack = default_forward(aws_stack())
    for r in stack:
        if r["type"] in (LISTENER, ECS_SERVICE):
            r["dependencies"] = []
    named(stack, "endpoint-target-group")["inputs"]["name"] = "startup-api-gateway"
    tg = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/startup-api-gateway/6d0ecf831eec9f09"
    named(stack, "endpoint-https")["inputs"].update(
        loadBalancerArn="arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/startup-api-gateway/"
                        "50dc6c495c0c9188", defaultActions=[{"type": "forward", "targetGroupArn": tg}])
    named(stack, "gateway-service")["inputs"].update(
        taskDefinition="arn:aws:ecs:eu-central-1:123456789012:task-definition/startup-api-gateway:3",
        loadBalancers=[{"targetGroupArn": tg, "containerName": "litellm", "containerPort": 4000}])
    assert lnk007(stack) == []
    named(stack, "gateway-service")["inputs"]["loadBalancers"][0]["targetGroupArn"] = tg.replace("startup-api", "other")
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-target-group" and "no ECS service registers its tasks there" in message


def test_lnk007_reports_a_record_that_points_elsewhere_on_aws():
    stack = aws_stack()
    record = named(stack, "endpoint-record")
    record["dependencies"] = ["endpoint-zone"]
    record["inputs"]["aliases"][0]["name"] = "other-alb-1234567890.eu-central-1.elb.amazonaws.com"
    assert lnk007(stack) == [("endpoint-record",
        "the stack exports https://startup-api.llm.internal/v1, but the record endpoint-record answers with "
        "other-alb-1234567890.eu-central-1.elb.amazonaws.com, not the address of a load balancer of the stack. Fix: "
        "point it at the internal load balancer (a Route 53 alias of the ALB, or the Gateway's address).")]


def test_lnk007_reports_a_listener_that_is_not_https():
    stack = aws_stack()
    named(stack, "endpoint-https")["inputs"].update(protocol="HTTP", port=80)
    assert lnk007(stack) == [("endpoint-https",
        "the stack exports https://startup-api.llm.internal/v1, whose record endpoint-record points at the load "
        "balancer endpoint-alb over https, but it has no HTTPS listener (endpoint-https (HTTP:80)): every client call "
        "fails the TLS handshake. Fix: listen on HTTPS 443 with the endpoint's certificate and an "
        "ELBSecurityPolicy-TLS13-1-2 policy.")]


def test_lnk007_reports_a_load_balancer_without_listener():
    [(name, message)] = lnk007(without(aws_stack(), "endpoint-https"))
    assert name == "endpoint-alb" and "which has no listener of the stack: nothing answers on it" in message


def test_lnk007_reports_a_listener_forwarding_outside_the_stack():
    stack = aws_stack()
    rule = named(stack, "endpoint-host")
    rule["dependencies"] = ["endpoint-https"]
    rule["inputs"]["actions"][0]["targetGroupArn"] = (
        "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/legacy/0123456789abcdef")
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-host" and message.endswith(
        "whose listener endpoint-https forwards to arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/"
        "legacy/0123456789abcdef (rule endpoint-host), not a target group of the stack. Fix: forward to the gateway's "
        "target group.")


def test_lnk007_reports_a_listener_rule_for_another_host():
    stack = aws_stack()
    named(stack, "endpoint-host")["inputs"]["conditions"][0]["hostHeader"]["values"] = ["other.llm.internal"]
    assert lnk007(stack) == [("endpoint-https",
        "the stack exports https://startup-api.llm.internal/v1, whose record endpoint-record points at the load "
        "balancer endpoint-alb, whose listener endpoint-https forwards to no target group for startup-api.llm.internal "
        "(no forward default action, and no listener rule forwarding that host): requests never reach the gateway. "
        "Fix: forward to the gateway's target group.")]
    named(stack, "endpoint-host")["inputs"]["conditions"][0]["hostHeader"]["values"] = ["*.llm.internal"]
    assert lnk007(stack) == []


def test_lnk007_reports_a_target_group_no_ecs_service_serves():
    stack = aws_stack()
    service = named(stack, "gateway-service")
    service["inputs"]["loadBalancers"] = []
    service["dependencies"] = ["gateway-task"]
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-target-group" and message.endswith(
        "whose listener endpoint-https forwards to the target group endpoint-target-group, but no ECS service "
        "registers its tasks there (no load_balancers entry names it): the target group stays empty and the load "
        "balancer answers 503. Fix: add endpoint-target-group to the gateway ECS service's load_balancers (container "
        "litellm, port 4000).")


def test_lnk007_reports_a_target_group_that_sends_to_another_container():
    stack = aws_stack()
    named(stack, "gateway-service")["inputs"]["loadBalancers"][0]["containerName"] = "vllm"
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-target-group" and (
        "whose target group endpoint-target-group sends to gateway-service (container vllm), not the gateway "
        "container litellm") in message


def test_lnk007_reports_a_task_definition_without_the_gateway_container():
    stack = aws_stack()
    named(stack, "gateway-task")["inputs"]["containerDefinitions"] = json.dumps([{"name": "proxy", "image": "x"}])
    [(name, message)] = lnk007(stack)
    assert name == "gateway-service" and "its task definition gateway-task declares no container litellm" in message


def test_lnk007_reports_an_internet_facing_alb_for_a_private_stack():
    stack = aws_stack()
    named(stack, "endpoint-alb")["inputs"]["internal"] = False
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-alb" and "the load balancer endpoint-alb, an internet-facing load balancer" in message


def test_lnk007_reports_an_ecs_gateway_behind_no_load_balancer_under_pulumi_preview():
    stack = without(aws_stack(), "endpoint-https")
    [(name, message)] = lnk007(stack, outputs=None)
    assert name == "gateway-service" and message.startswith(
        "the stack's front door is the gateway's ECS service gateway-service, but no load balancer of the stack "
        "forwards to it")


def test_lnk007_cannot_verify_a_reference_it_cannot_follow_yet():
    stack = aws_stack()
    rule = named(stack, "endpoint-host")
    rule["dependencies"] = ["endpoint-https"]
    rule["inputs"]["actions"][0]["targetGroupArn"] = U
    result = check_stack(LNK, stack, {"network": "private"}, outputs=URL)
    assert [(v.cannot_verify, v.message.split(":")[0]) for v in result.violations] == [
        (True, "cannot verify endpoint-host.actions (which target group the listener forwards to)")]


# --- GCP: private zone -> A record -> internal address <- INTERNAL_MANAGED forwarding rule -> HTTPS proxy -> URL map
# -> backend service -> serverless NEG -> Cloud Run (ingress internal load balancer) ------------------------------------

GCP = "projects/llm-api/regions/europe-west4"


def gcp_stack():
    return [
        res("gcp:compute/network:Network", "network-vpc", {"name": "api-vpc"}),
        res("gcp:dns/managedZone:ManagedZone", "endpoint-zone", {
            "name": "startup-api-llm-internal", "dnsName": "llm.internal.", "visibility": "private",
            "privateVisibilityConfig": {"networks": [{"networkUrl": U}]}}, "network-vpc"),
        res("gcp:compute/address:Address", "endpoint-address", {
            "name": "startup-api-gateway", "addressType": "INTERNAL", "purpose": "SHARED_LOADBALANCER_VIP",
            "region": "europe-west4", "subnetwork": U}),
        res("gcp:dns/recordSet:RecordSet", "endpoint-record", {
            "managedZone": "startup-api-llm-internal", "name": "startup-api.llm.internal.", "type": "A", "ttl": 300,
            "rrdatas": ["10.0.250.10"]}, "endpoint-zone", "endpoint-address"),
        res(CLOUD_RUN, "gateway-service", {
            "name": "startup-api-gateway", "location": "europe-west4", "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            "template": {"containers": [{"name": "litellm", "image": "europe-west4-docker.pkg.dev/p/r/litellm:v1"}]}}),
        res("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup", "endpoint-neg", {
            "name": "startup-api-gateway-neg", "region": "europe-west4", "networkEndpointType": "SERVERLESS",
            "cloudRun": {"service": "startup-api-gateway"}}, "gateway-service"),
        res("gcp:compute/regionBackendService:RegionBackendService", "endpoint-backend", {
            "name": "startup-api-gateway-backend", "region": "europe-west4", "loadBalancingScheme": "INTERNAL_MANAGED",
            "protocol": "HTTPS", "backends": [{"group": f"{GCP}/networkEndpointGroups/startup-api-gateway-neg"}]},
            "endpoint-neg"),
        res("gcp:compute/regionUrlMap:RegionUrlMap", "endpoint-url-map", {
            "name": "startup-api-gateway-map", "region": "europe-west4",
            "defaultService": f"{GCP}/backendServices/startup-api-gateway-backend"}, "endpoint-backend"),
        res(HTTPS_PROXY, "endpoint-proxy", {
            "name": "startup-api-gateway-https", "region": "europe-west4",
            "urlMap": f"{GCP}/urlMaps/startup-api-gateway-map", "certificateManagerCertificates": [U]},
            "endpoint-url-map"),
        res(FORWARDING_RULE, "endpoint-forwarding-rule", {
            "name": "startup-api-gateway", "region": "europe-west4", "loadBalancingScheme": "INTERNAL_MANAGED",
            "portRange": "443", "ipAddress": f"{GCP}/addresses/startup-api-gateway", "network": U, "subnetwork": U,
            "target": f"{GCP}/targetHttpsProxies/startup-api-gateway-https"}, "endpoint-address", "endpoint-proxy"),
    ]


def test_lnk007_follows_the_gcp_chain_to_the_gateway_cloud_run_service():
    assert lnk007(gcp_stack()) == []
    assert lnk007(gcp_stack(), outputs=None) == []


def test_lnk007_follows_the_gcp_chain_through_dependencies_when_the_ids_are_not_known_yet():
    stack = gcp_stack()
    for name, key in (("endpoint-forwarding-rule", "target"), ("endpoint-proxy", "urlMap"),
                      ("endpoint-url-map", "defaultService"), ("endpoint-forwarding-rule", "ipAddress")):
        named(stack, name)["inputs"][key] = U
    named(stack, "endpoint-backend")["inputs"]["backends"][0]["group"] = U
    named(stack, "endpoint-neg")["inputs"]["cloudRun"]["service"] = U
    named(stack, "endpoint-record")["inputs"]["rrdatas"] = [U]
    assert lnk007(stack) == []
    # The same reference with nothing behind it yet: cannot verify, never passed.
    named(stack, "endpoint-url-map")["dependencies"] = []
    result = check_stack(LNK, stack, {"network": "private"}, outputs=URL)
    assert [v.cannot_verify for v in result.violations] == [True]
    assert "endpoint-url-map backend service (which backend service it points at)" in result.violations[0].message


def test_lnk007_reports_a_neg_naming_another_cloud_run_service():
    stack = gcp_stack()
    named(stack, "endpoint-neg")["inputs"]["cloudRun"]["service"] = "billing-api"
    named(stack, "endpoint-neg")["dependencies"] = []
    assert lnk007(stack) == [("endpoint-neg",
        "the stack exports https://startup-api.llm.internal/v1, whose record endpoint-record points at the load "
        "balancer's forwarding rule endpoint-forwarding-rule, whose chain to the gateway breaks at endpoint-neg: it "
        "names billing-api, "
        "not a Cloud Run service of the stack. Fix: set the network endpoint group's cloud_run.service to the "
        "gateway's Cloud Run service.")]


def test_lnk007_reports_a_forwarding_rule_that_is_not_internal_managed():
    stack = gcp_stack()
    named(stack, "endpoint-forwarding-rule")["inputs"]["loadBalancingScheme"] = "EXTERNAL_MANAGED"
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-forwarding-rule" and "an internet-facing load balancer" in message
    assert "load_balancing_scheme INTERNAL_MANAGED" in message
    named(stack, "endpoint-forwarding-rule")["inputs"]["loadBalancingScheme"] = "INTERNAL"
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-forwarding-rule" and "whose loadBalancingScheme is INTERNAL, not INTERNAL_MANAGED" in message


def test_lnk007_reports_cloud_run_ingress_all():
    stack = gcp_stack()
    named(stack, "gateway-service")["inputs"]["ingress"] = "INGRESS_TRAFFIC_ALL"
    [(name, message)] = lnk007(stack)
    assert name == "gateway-service" and (
        "which reaches the Cloud Run service gateway-service, but its ingress is INGRESS_TRAFFIC_ALL: the gateway also "
        "answers the internet on its run.app URL") in message


def test_lnk007_reports_a_plain_http_proxy_and_a_wrong_port():
    stack = gcp_stack()
    proxy = named(stack, "endpoint-proxy")
    proxy["type"] = HTTP_PROXY
    proxy["inputs"].pop("certificateManagerCertificates")
    named(stack, "endpoint-forwarding-rule")["inputs"]["portRange"] = "80"
    [(port, wrong_port), (plain, http_proxy)] = lnk007(stack)
    assert port == plain == "endpoint-forwarding-rule"
    assert wrong_port.endswith("over https, but the rule listens on port 80, not 443. Fix: set port_range \"443\".")
    assert "over https, but the rule targets the target HTTP proxy endpoint-proxy: there is no TLS listener" in http_proxy


def test_lnk007_reports_a_broken_hop_in_the_middle_of_the_gcp_chain():
    stack = gcp_stack()
    backend = named(stack, "endpoint-backend")
    backend["inputs"]["backends"] = []
    backend["dependencies"] = []
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-backend" and "breaks at endpoint-backend: it names no network endpoint group" in message


def test_lnk007_reports_a_record_that_points_elsewhere_on_gcp():
    stack = gcp_stack()
    record = named(stack, "endpoint-record")
    record["inputs"]["rrdatas"] = ["10.9.9.9"]
    record["dependencies"] = ["endpoint-zone"]
    [(name, message)] = lnk007(stack)
    assert name == "endpoint-record" and "answers with 10.9.9.9, not the address of a load balancer" in message


def test_lnk007_reports_a_cloud_run_gateway_behind_no_load_balancer_under_pulumi_preview():
    [(name, message)] = lnk007(without(gcp_stack(), "endpoint-forwarding-rule"), outputs=None)
    assert name == "gateway-service" and message.startswith(
        "the stack's front door is the gateway's Cloud Run service gateway-service, but no load balancer of the stack "
        "forwards to it")


# --- ENC-009 ---------------------------------------------------------------------------------------------------------

def enc009(typ, props):
    return [v.message for v in check_resource(ENC, typ, props, {}, name="r").violations]


def test_enc009_aws_listener_needs_https_with_a_tls12_policy():
    https = {"protocol": "HTTPS", "port": 443, "certificateArn": ACM_CERT, "sslPolicy": TLS12,
             "defaultActions": [{"type": "forward", "targetGroupArn": TG_ARN}]}
    assert enc009(LISTENER, https) == []
    assert enc009(LISTENER, {**https, "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04"}) == []
    assert enc009(LISTENER, {**https, "sslPolicy": "ELBSecurityPolicy-2016-08"}) == [
        "sslPolicy is ELBSecurityPolicy-2016-08, which accepts TLS versions below 1.2 (use "
        "ELBSecurityPolicy-TLS13-1-2-2021-06 or another TLS 1.2+ policy)"]
    assert enc009(LISTENER, {k: v for k, v in https.items() if k != "sslPolicy"}) == [
        "protocol is HTTPS without sslPolicy: the listener gets ELBSecurityPolicy-2016-08, which still accepts TLS 1.0 "
        "and 1.1 (set ELBSecurityPolicy-TLS13-1-2-2021-06)"]
    assert enc009(LISTENER, {"protocol": "HTTP", "port": 80, "defaultActions": [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]}) == []
    assert enc009(LISTENER, {"protocol": "HTTP", "port": 80, "defaultActions": [
        {"type": "forward", "targetGroupArn": TG_ARN}]}) == [
        "protocol is HTTP and its default action is not only a redirect to HTTPS: the listener serves plain HTTP"]
    unknown = check_resource(ENC, LISTENER, {**https, "sslPolicy": U}, {}, name="r").violations
    assert [(v.cannot_verify, v.message.split(":")[0]) for v in unknown] == [
        (True, "cannot verify sslPolicy (the listener's TLS policy)")]


def test_enc009_forwarding_rule_to_an_http_proxy_fails():
    rule = {"loadBalancingScheme": "INTERNAL_MANAGED", "portRange": "443"}
    assert enc009(FORWARDING_RULE, {**rule, "target": f"{GCP}/targetHttpsProxies/gw-https"}) == []
    assert enc009(FORWARDING_RULE, {**rule, "target": U}) == []  # the proxy it will name is checked on its own
    assert check_resource(ENC, FORWARDING_RULE, {**rule, "target": U}, {}).violations == []
    assert enc009(FORWARDING_RULE, {**rule, "target": f"{GCP}/targetHttpProxies/gw-http"}) == [
        f"target is {GCP}/targetHttpProxies/gw-http, a target HTTP proxy: the forwarding rule serves plain HTTP "
        "(target a target HTTPS proxy with a certificate)"]
    assert enc009(HTTP_PROXY, {"urlMap": f"{GCP}/urlMaps/m"}) == [
        "a target HTTP proxy serves plain HTTP: use a target HTTPS proxy with a certificate"]


def test_enc009_cloud_run_is_reached_only_through_the_load_balancer():
    assert enc009(CLOUD_RUN, {"location": "europe-west4", "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"}) == []
    assert enc009(CLOUD_RUN, {"location": "europe-west4", "ingress": "INGRESS_TRAFFIC_ALL"}) == [
        "ingress is INGRESS_TRAFFIC_ALL: the service is reachable on its own run.app URL, around the load balancer's "
        "HTTPS listener and its certificate and TLS policy (set INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER)"]
    assert enc009(CLOUD_RUN, {"location": "europe-west4"})[0].startswith(
        "ingress is not set (INGRESS_TRAFFIC_ALL, the default): the service is reachable on its own run.app URL")


# --- BND-003 ---------------------------------------------------------------------------------------------------------

def bnd003(typ, props, config=REGULATED):
    return [v.message for v in check_resource(BND, typ, props, config, name="r").violations]


def test_bnd003_aws_load_balancer_must_be_internal():
    assert bnd003(ALB, {"internal": True, "loadBalancerType": "application"}) == []
    assert bnd003(ALB, {"internal": False, "loadBalancerType": "application"}) == [
        "internal is not true: the load balancer is internet-facing"]


def test_bnd003_ecs_tasks_get_no_public_address():
    assert bnd003(ECS_SERVICE, {"networkConfiguration": {"assignPublicIp": False, "subnets": [U]}}) == []
    assert bnd003(ECS_SERVICE, {"networkConfiguration": {"assignPublicIp": True, "subnets": [U]}}) == [
        "networkConfiguration.assignPublicIp is true: every task gets a public IP address, reachable from the "
        "internet around the internal load balancer"]
    # Internal data: the boundary policies do not apply.
    result = check_resource(BND, ECS_SERVICE, {"networkConfiguration": {"assignPublicIp": True}},
                            {"classification": "internal"})
    assert result.violations == [] and len(result.not_applicable) == 1


def test_bnd003_cloud_run_ingress_all_is_public():
    assert bnd003(CLOUD_RUN, {"ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"}) == []
    assert bnd003(CLOUD_RUN, {"ingress": "INGRESS_TRAFFIC_ALL"}) == [
        "ingress is INGRESS_TRAFFIC_ALL: the service answers the internet on its run.app URL (set "
        "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER)"]
    assert bnd003(CLOUD_RUN, {})[0].startswith("ingress is not set (INGRESS_TRAFFIC_ALL, the default)")


def test_bnd003_external_forwarding_rules_are_public():
    assert bnd003(FORWARDING_RULE, {"loadBalancingScheme": "INTERNAL_MANAGED", "portRange": "443"}) == []
    for scheme in ("EXTERNAL", "EXTERNAL_MANAGED"):
        assert bnd003(FORWARDING_RULE, {"loadBalancingScheme": scheme, "portRange": "443"}) == [
            f"loadBalancingScheme is {scheme}: the forwarding rule has an internet-facing address"]
