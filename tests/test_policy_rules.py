"""Every policy of the pack on a compliant and a violating resource: the exact message and the resource it names.

Props are camelCase, as the provider receives them (and as tests/inventories show). Each case calls the policy's
own `validate` through `policies.engine.check_resource` / `check_stack`, which wrap the props in pulumi-policy's
`unknown_checking_proxy` like the analyzer does.
"""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies.engine import check_resource, check_stack
from policies.rules import BY_ID, RULES
from test_policy_new_rules import RESOURCE_RULES as NEW_RESOURCE_RULES, STACK_RULES as NEW_STACK_RULES  # cases there

ALLOWED = {"allowedRegions": ["eu-central-1", "eu-west-1"]}
REGULATED = {"classification": "regulated"}
AIRGAPPED = {"network": "airgapped"}
REGISTRY = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/llm-mirror"
IN_EU = " outside the allowed regions (eu-central-1, eu-west-1)"
KEY = "arn:aws:kms:eu-central-1:123456789012:key/0b7c6e1e-1111-2222-3333-444455556666"
GCP_KEY = "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"
BOUNDARY = "regulated data may not be sent outside the boundary"


def deployment(containers, labels=None, kind="Deployment", api="apps/v1"):
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "app", "labels": labels or {}},
            "spec": {"template": {"metadata": {"labels": labels or {}}, "spec": {"containers": containers}}}}


def vllm(env, image=f"{REGISTRY}/vllm-openai:v0.30.0", **extra):
    return {"name": "vllm", "image": image, "command": ["vllm", "serve"], "env": env, **extra}


OFFLINE_ENV = [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TRANSFORMERS_OFFLINE", "value": "1"}]
SERVER = {"app.kubernetes.io/component": "model-server"}
ACM_CERT = "arn:aws:acm:eu-central-1:123456789012:certificate/9f1d2c3b-1111-2222-3333-444455556666"


def alb_ingress(annotations, tls=None):
    spec = {"ingressClassName": "alb", "rules": [{"host": "llm.llm.internal", "http": {"paths": [{
        "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "llm-gateway", "port": {"number": 4000}}}}]}}]}
    if tls:
        spec["tls"] = tls
    return {"metadata": {"name": "llm", "namespace": "llm-serving",
                         "annotations": {"alb.ingress.kubernetes.io/scheme": "internal", **annotations}}, "spec": spec}


def gateway(listeners):
    return {"metadata": {"name": "llm", "namespace": "llm-serving"},
            "spec": {"gatewayClassName": "gke-l7-rilb", "listeners": listeners}}

# (case id, policy, resource type, props, policy config, expected messages)
CASES = [
    # --- RES-001 -------------------------------------------------------------------------------------------------
    ("res001-ok-secret-replica-in-eu", "RES-001-region-allowlist", "aws:secretsmanager/secret:Secret",
     {"kmsKeyId": KEY, "replicas": [{"region": "eu-west-1", "kmsKeyId": KEY.replace("eu-central-1", "eu-west-1")}]},
     ALLOWED, []),
    ("res001-us-replica", "RES-001-region-allowlist", "aws:secretsmanager/secret:Secret",
     {"kmsKeyId": KEY, "replicas": [{"region": "us-east-1", "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/mrk-1"}]},
     ALLOWED, ["replicas[0].region is us-east-1," + IN_EU,
               "replicas[0].kmsKeyId is in us-east-1 (arn:aws:kms:us-east-1:123456789012:key/mrk-1)," + IN_EU]),
    ("res001-gcp-secret-replica", "RES-001-region-allowlist", "gcp:secretmanager/secret:Secret",
     {"replication": {"userManaged": {"replicas": [{"location": "europe-west1"}, {"location": "us-central1"}]}}},
     {"allowedRegions": ["europe-west1", "europe-west4"]},
     ["replication.userManaged.replicas[1].location is us-central1, outside the allowed regions (europe-west1, europe-west4)"]),
    ("res001-node-pool-zone", "RES-001-region-allowlist", "gcp:container/nodePool:NodePool",
     {"location": "europe-west4", "nodeLocations": ["europe-west4-a", "us-central1-b"]},
     {"allowedRegions": ["europe-west4"]},
     ["nodeLocations[1] is us-central1-b (region us-central1), outside the allowed regions (europe-west4)"]),
    ("res001-multi-region-bucket", "RES-001-region-allowlist", "gcp:storage/bucket:Bucket", {"location": "EU"},
     {"allowedRegions": ["europe-west4"]},
     ["location is the multi-region location EU, not one of the allowed regions (europe-west4)"]),
    ("res001-vpc-endpoint-service", "RES-001-region-allowlist", "aws:ec2/vpcEndpoint:VpcEndpoint",
     {"serviceName": "com.amazonaws.us-east-1.s3", "vpcEndpointType": "Gateway"}, ALLOWED,
     ["serviceName is in us-east-1 (com.amazonaws.us-east-1.s3)," + IN_EU]),
    # --- BND-001 -------------------------------------------------------------------------------------------------
    ("bnd001-ok-database-secret", "BND-001-no-third-party-api", "aws:secretsmanager/secret:Secret",
     {"name": "llm-hosting/x/db-password", "description": "database password for the gateway"}, REGULATED, []),
    ("bnd001-api-key-secret", "BND-001-no-third-party-api", "aws:secretsmanager/secret:Secret",
     {"name": "llm-hosting/startup-api/groq-api-key",
      "description": "groq API key for llama-3.3-70b-versatile (base URL https://api.groq.com/openai/v1)"}, REGULATED,
     [f"name holds 'groq-api-key', a key or route for the third-party API provider groq; {BOUNDARY}"]),
    ("bnd001-route-in-env", "BND-001-no-third-party-api", "kubernetes:apps/v1:Deployment",
     deployment([{"name": "gateway", "image": "litellm:1", "env": [{"name": "UPSTREAM", "value": "https://eu.api.openai.com/v1"}]}]),
     REGULATED, [f"spec.template.spec.containers[0].env[0].value names the third-party API eu.api.openai.com; {BOUNDARY}"]),
    ("bnd001-sanctioned-hybrid-host", "BND-001-no-third-party-api", "gcp:secretmanager/secret:Secret",
     {"secretId": "llm-groq-api-key", "annotations": {"base-url": "https://api.groq.com/openai/v1"}},
     {**REGULATED, "sanctionedApiHosts": ["api.groq.com", "groq.com"]}, []),
    # --- BND-002 -------------------------------------------------------------------------------------------------
    ("bnd002-ok-private-eks", "BND-002-private-cluster-endpoint", "aws:eks/cluster:Cluster",
     {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}}, REGULATED, []),
    ("bnd002-eks-default-public", "BND-002-private-cluster-endpoint", "aws:eks/cluster:Cluster",
     {"vpcConfig": {"subnetIds": ["subnet-1"]}}, REGULATED,
     ["vpcConfig.endpointPublicAccess is not set, and EKS then gives the cluster a public API endpoint (from any address)"]),
    ("bnd002-gke-public", "BND-002-private-cluster-endpoint", "gcp:container/cluster:Cluster",
     {"privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": False}}, REGULATED,
     ["privateClusterConfig.enablePrivateEndpoint is not true: the control plane has a public endpoint"]),
    # --- BND-003 -------------------------------------------------------------------------------------------------
    ("bnd003-ok-clusterip", "BND-003-no-public-load-balancer", "kubernetes:core/v1:Service",
     {"spec": {"type": "ClusterIP", "ports": [{"port": 8000}]}}, REGULATED, []),
    ("bnd003-ok-internal-nlb", "BND-003-no-public-load-balancer", "kubernetes:core/v1:Service",
     {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}},
      "spec": {"type": "LoadBalancer"}}, REGULATED, []),
    ("bnd003-public-service", "BND-003-no-public-load-balancer", "kubernetes:core/v1:Service",
     {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}, REGULATED,
     ["spec.type is LoadBalancer with no internal-load-balancer annotation, so the cloud provisions an internet-facing "
      "load balancer"]),
    ("bnd003-external-forwarding-rule", "BND-003-no-public-load-balancer", "gcp:compute/forwardingRule:ForwardingRule",
     {"portRange": "443", "target": "projects/p/regions/r/targetHttpsProxies/x"}, REGULATED,
     ["loadBalancingScheme is not set (EXTERNAL by default): the forwarding rule has an internet-facing address"]),
    ("bnd003-ok-internal-alb-ingress", "BND-003-no-public-load-balancer", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({}), REGULATED, []),
    ("bnd003-internet-facing-ingress", "BND-003-no-public-load-balancer", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({"alb.ingress.kubernetes.io/scheme": "internet-facing"}), REGULATED,
     ["alb.ingress.kubernetes.io/scheme is internet-facing: the AWS Load Balancer Controller provisions an "
      "internet-facing ALB"]),
    ("bnd003-ok-internal-gateway", "BND-003-no-public-load-balancer", "kubernetes:gateway.networking.k8s.io/v1:Gateway",
     gateway([]), REGULATED, []),
    ("bnd003-external-gateway", "BND-003-no-public-load-balancer", "kubernetes:gateway.networking.k8s.io/v1:Gateway",
     {"spec": {"gatewayClassName": "gke-l7-global-external-managed", "listeners": []}}, REGULATED,
     ["gatewayClassName is gke-l7-global-external-managed: GKE provisions an internet-facing load balancer (use "
      "gke-l7-rilb)"]),
    # --- BND-004 -------------------------------------------------------------------------------------------------
    ("bnd004-ok-isolated", "BND-004-sagemaker-network-isolation", "aws:sagemaker/model:Model",
     {"enableNetworkIsolation": True, "vpcConfig": {"subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}}, REGULATED, []),
    ("bnd004-open-model", "BND-004-sagemaker-network-isolation", "aws:sagemaker/model:Model",
     {"primaryContainer": {"image": "763104351884.dkr.ecr.eu-central-1.amazonaws.com/djl-inference:0.33.0"}}, REGULATED,
     ["vpcConfig is not set: the model's containers run outside the stack's VPC",
      "enableNetworkIsolation is not true: the inference container can make outbound network calls"]),
    # --- BND-005 -------------------------------------------------------------------------------------------------
    ("bnd005-ok-psc", "BND-005-vertex-private-service-connect",
     "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment",
     {"endpointConfig": {"privateServiceConnectConfig": {"enablePrivateServiceConnect": True, "projectAllowlists": ["p"]}}},
     REGULATED, []),
    ("bnd005-public-endpoint", "BND-005-vertex-private-service-connect",
     "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment",
     {"endpointConfig": {"endpointDisplayName": "x"}}, REGULATED,
     ["endpointConfig.privateServiceConnectConfig.enablePrivateServiceConnect is not true: the endpoint is served on "
      "Vertex AI's public endpoint"]),
    ("bnd005-peering-endpoint", "BND-005-vertex-private-service-connect", "gcp:vertex/aiEndpoint:AiEndpoint",
     {"network": "projects/1/global/networks/n"}, REGULATED,
     ["privateServiceConnectConfig.enablePrivateServiceConnect is not true: the endpoint uses VPC peering "
      "(projects/1/global/networks/n) instead of Private Service Connect"]),
    # --- AIR-001 -------------------------------------------------------------------------------------------------
    ("air001-ok-private-nat", "AIR-001-no-internet-gateways", "aws:ec2/natGateway:NatGateway",
     {"connectivityType": "private", "subnetId": "subnet-1"}, AIRGAPPED, []),
    ("air001-ok-internal-address", "AIR-001-no-internet-gateways", "gcp:compute/address:Address",
     {"addressType": "INTERNAL", "subnetwork": "s"}, AIRGAPPED, []),
    ("air001-nat", "AIR-001-no-internet-gateways", "aws:ec2/natGateway:NatGateway",
     {"connectivityType": "public", "allocationId": "eipalloc-1"}, AIRGAPPED,
     ["a NAT gateway (connectivityType public) gives private subnets outbound internet access"]),
    ("air001-igw", "AIR-001-no-internet-gateways", "aws:ec2/internetGateway:InternetGateway", {"vpcId": "vpc-1"},
     AIRGAPPED, ["an internet gateway gives the VPC a route to and from the internet"]),
    ("air001-cloud-nat", "AIR-001-no-internet-gateways", "gcp:compute/routerNat:RouterNat", {"router": "r"}, AIRGAPPED,
     ["a Cloud NAT gives the network outbound internet access"]),
    ("air001-launch-template-public-ip", "AIR-001-no-internet-gateways", "aws:ec2/launchTemplate:LaunchTemplate",
     {"networkInterfaces": [{"associatePublicIpAddress": "true", "deviceIndex": 0}]}, AIRGAPPED,
     ["networkInterfaces[0].associatePublicIpAddress is true: instances get public IP addresses"]),
    ("air001-ok-launch-template-private", "AIR-001-no-internet-gateways", "aws:ec2/launchTemplate:LaunchTemplate",
     {"networkInterfaces": [{"associatePublicIpAddress": "false", "deviceIndex": 0}]}, AIRGAPPED, []),
    ("air001-external-ip", "AIR-001-no-internet-gateways", "gcp:compute/instance:Instance",
     {"networkInterfaces": [{"network": "n", "accessConfigs": [{}]}]}, AIRGAPPED,
     ["networkInterfaces[0].accessConfigs gives the VM an external IP address"]),
    # --- AIR-002 -------------------------------------------------------------------------------------------------
    ("air002-ok-local-only", "AIR-002-no-internet-routes", "aws:ec2/routeTable:RouteTable",
     {"vpcId": "vpc-1", "routes": []}, AIRGAPPED, []),
    ("air002-default-route", "AIR-002-no-internet-routes", "aws:ec2/routeTable:RouteTable",
     {"routes": [{"cidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"}]}, AIRGAPPED,
     ["routes[0] sends 0.0.0.0/0 to natGatewayId nat-1: a default route out of the network"]),
    ("air002-ok-restricted-googleapis", "AIR-002-no-internet-routes", "gcp:compute/route:Route",
     {"destRange": "199.36.153.4/30", "nextHopGateway": "default-internet-gateway"}, AIRGAPPED, []),
    ("air002-gcp-internet-route", "AIR-002-no-internet-routes", "gcp:compute/route:Route",
     {"destRange": "8.8.8.0/24", "nextHopGateway": "default-internet-gateway"}, AIRGAPPED,
     ["destRange 8.8.8.0/24 goes to the default internet gateway; only Google's API addresses (199.36.153.8/30, "
      "199.36.153.4/30) may use it"]),
    ("air002-gcp-default-routes-kept", "AIR-002-no-internet-routes", "gcp:compute/network:Network",
     {"autoCreateSubnetworks": False, "deleteDefaultRoutesOnCreate": False}, AIRGAPPED,
     ["deleteDefaultRoutesOnCreate is not true: GCP creates a 0.0.0.0/0 route to the default internet gateway with "
      "the network"]),
    # --- AIR-003 -------------------------------------------------------------------------------------------------
    ("air003-ok-mirrored", "AIR-003-private-registry-images", "kubernetes:apps/v1:Deployment",
     deployment([vllm(OFFLINE_ENV)]), {**AIRGAPPED, "registry": REGISTRY}, []),
    ("air003-docker-hub", "AIR-003-private-registry-images", "kubernetes:apps/v1:DaemonSet",
     deployment([{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"}], kind="DaemonSet"),
     {**AIRGAPPED, "registry": REGISTRY},
     [f"spec.template.spec.containers[0].image nvcr.io/nvidia/k8s-device-plugin:v0.17.2 is not from the private "
      f"registry {REGISTRY}"]),
    ("air003-sagemaker-public-dlc", "AIR-003-private-registry-images", "aws:sagemaker/model:Model",
     {"primaryContainer": {"image": "763104351884.dkr.ecr.eu-central-1.amazonaws.com/djl-inference:0.33.0"}},
     {**AIRGAPPED, "registry": REGISTRY},
     [f"primaryContainer.image 763104351884.dkr.ecr.eu-central-1.amazonaws.com/djl-inference:0.33.0 is not from the "
      f"private registry {REGISTRY}"]),
    # --- AIR-004 -------------------------------------------------------------------------------------------------
    ("air004-ok-offline", "AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
     deployment([vllm(OFFLINE_ENV)], labels=SERVER), AIRGAPPED, []),
    ("air004-online-vllm", "AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
     deployment([vllm([{"name": "HF_HUB_OFFLINE", "value": "0"}], image="vllm/vllm-openai:v0.30.0")]), AIRGAPPED,
     ["container vllm (spec.template.spec.containers[0]) does not set HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1"]),
    ("air004-sagemaker", "AIR-004-hub-offline-serving", "aws:sagemaker/model:Model",
     {"primaryContainer": {"image": "x", "environment": {"HF_HUB_OFFLINE": "1"}}}, AIRGAPPED,
     ["primaryContainer does not set TRANSFORMERS_OFFLINE=1"]),
    # --- ENC-001 -------------------------------------------------------------------------------------------------
    ("enc001-ok-cmk", "ENC-001-cmk-secrets", "aws:secretsmanager/secret:Secret",
     {"kmsKeyId": KEY, "replicas": [{"region": "eu-west-1", "kmsKeyId": KEY}]}, {}, []),
    ("enc001-aws-managed", "ENC-001-cmk-secrets", "aws:secretsmanager/secret:Secret",
     {"name": "s", "replicas": [{"region": "eu-west-1"}]}, {},
     ["kmsKeyId is not set: the secret is encrypted with the AWS-managed key aws/secretsmanager",
      "replicas[0].kmsKeyId is not set: the eu-west-1 replica uses the AWS-managed key aws/secretsmanager"]),
    ("enc001-gcp-replica", "ENC-001-cmk-secrets", "gcp:secretmanager/secret:Secret",
     {"replication": {"userManaged": {"replicas": [
         {"location": "europe-west4", "customerManagedEncryption": {"kmsKeyName": GCP_KEY}},
         {"location": "europe-west1"}]}}}, {},
     ["replication.userManaged.replicas[1].customerManagedEncryption is not set: the europe-west1 replica uses a "
      "Google-managed key"]),
    # --- ENC-002 -------------------------------------------------------------------------------------------------
    ("enc002-ok-launch-template", "ENC-002-cmk-volumes", "aws:ec2/launchTemplate:LaunchTemplate",
     {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": KEY}}]}, {}, []),
    ("enc002-unencrypted-root", "ENC-002-cmk-volumes", "aws:ec2/launchTemplate:LaunchTemplate",
     {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 100}}]}, {},
     ["blockDeviceMappings[0].ebs.encrypted is not true: the volume is not encrypted"]),
    ("enc002-node-group-without-template", "ENC-002-cmk-volumes", "aws:eks/nodeGroup:NodeGroup",
     {"clusterName": "c", "instanceTypes": ["g5.xlarge"]}, {},
     ["launchTemplate is not set: the nodes' root volumes get no customer-managed key"]),
    ("enc002-gke-pool", "ENC-002-cmk-volumes", "gcp:container/nodePool:NodePool",
     {"nodeConfig": {"machineType": "g2-standard-8"}}, {},
     ["nodeConfig.bootDiskKmsKey is not set: the pool's boot disks use a Google-managed key"]),
    # --- ENC-004 -------------------------------------------------------------------------------------------------
    ("enc004-ok", "ENC-004-cmk-log-groups", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": KEY, "retentionInDays": 365},
     {}, []),
    ("enc004-no-key", "ENC-004-cmk-log-groups", "aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 7}, {},
     ["kmsKeyId is not set: the log group is encrypted with a CloudWatch-managed key"]),
    # --- ENC-005 -------------------------------------------------------------------------------------------------
    ("enc005-ok-key", "ENC-005-cmk-endpoints", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
     {"kmsKeyArn": KEY, "productionVariants": [{"instanceType": "ml.m5.xlarge"}]}, {}, []),
    ("enc005-ebs-variant-without-key", "ENC-005-cmk-endpoints",
     "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
     {"productionVariants": [{"variantName": "primary", "instanceType": "ml.inf2.xlarge"}],
      "dataCaptureConfig": {"enableCapture": True, "destinationS3Uri": "s3://b/capture"}}, {},
     ["kmsKeyArn is not set: the ML storage volumes of productionVariants[0] (ml.inf2.xlarge) use an AWS-managed key",
      "dataCaptureConfig.kmsKeyId is not set: captured prompts and completions are written to S3 without a "
      "customer-managed key"]),
    ("enc005-vertex-model-garden", "ENC-005-cmk-endpoints",
     "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment", {"location": "europe-west4"},
     {}, ["cannot carry a customer-managed key: pulumi-gcp's AiEndpointWithModelGardenDeployment has no encryptionSpec, "
          "so Vertex AI encrypts the endpoint with a Google-managed key"]),
    # --- ENC-006 -------------------------------------------------------------------------------------------------
    ("enc006-ok-eks", "ENC-006-cmk-cluster-secrets", "aws:eks/cluster:Cluster",
     {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}}}, {}, []),
    ("enc006-eks-none", "ENC-006-cmk-cluster-secrets", "aws:eks/cluster:Cluster", {"name": "c"}, {},
     ["encryptionConfig is not set: Kubernetes secrets are not encrypted with a customer-managed key"]),
    ("enc006-gke-decrypted", "ENC-006-cmk-cluster-secrets", "gcp:container/cluster:Cluster",
     {"databaseEncryption": {"state": "DECRYPTED"}}, {},
     ["databaseEncryption.state is DECRYPTED: Kubernetes secrets are not encrypted with a customer-managed key"]),
    # --- ENC-007 -------------------------------------------------------------------------------------------------
    ("enc007-ok-aws", "ENC-007-key-rotation", "aws:kms/key:Key", {"enableKeyRotation": True, "rotationPeriodInDays": 365},
     {}, []),
    ("enc007-aws-off", "ENC-007-key-rotation", "aws:kms/key:Key", {"description": "k"}, {},
     ["enableKeyRotation is not true: the key material is never rotated"]),
    ("enc007-gcp-slow", "ENC-007-key-rotation", "gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "63072000s"},
     {"maxRotationDays": 365}, ["rotationPeriod is 63072000s (730 days), above the allowed 365 days"]),
    ("enc007-gcp-none", "ENC-007-key-rotation", "gcp:kms/cryptoKey:CryptoKey", {"keyRing": "r"}, {},
     ["rotationPeriod is not set: the key version is never rotated"]),
    # --- ENC-008 -------------------------------------------------------------------------------------------------
    ("enc008-ok-aws", "ENC-008-key-deletion-window", "aws:kms/key:Key", {"deletionWindowInDays": 30}, {}, []),
    ("enc008-aws-7-days", "ENC-008-key-deletion-window", "aws:kms/replicaKey:ReplicaKey", {"deletionWindowInDays": 7}, {},
     ["deletionWindowInDays is 7, below the required 30: a deleted key and everything it encrypts are gone after 7 days"]),
    ("enc008-gcp-1-day", "ENC-008-key-deletion-window", "gcp:kms/cryptoKey:CryptoKey",
     {"destroyScheduledDuration": "86400s"}, {},
     ["destroyScheduledDuration is 86400s (1 days), below the required 30 days"]),
    # --- ENC-009 -------------------------------------------------------------------------------------------------
    ("enc009-ok-https-listener", "ENC-009-tls-listeners", "aws:lb/listener:Listener",
     {"protocol": "HTTPS", "port": 443, "certificateArn": ACM_CERT, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
     {}, []),
    ("enc009-ok-http-redirect", "ENC-009-tls-listeners", "aws:alb/listener:Listener",
     {"protocol": "HTTP", "port": 80, "defaultActions": [
         {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]}, {}, []),
    ("enc009-http-forward", "ENC-009-tls-listeners", "aws:lb/listener:Listener",
     {"protocol": "HTTP", "port": 80, "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}]}, {},
     ["protocol is HTTP and its default action is not only a redirect to HTTPS: the listener serves plain HTTP"]),
    ("enc009-nlb-tcp", "ENC-009-tls-listeners", "aws:lb/listener:Listener", {"protocol": "TCP", "port": 8000}, {},
     ["protocol is TCP: the listener accepts connections without TLS"]),
    ("enc009-ok-internal-alb-ingress", "ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({"alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]',
                  "alb.ingress.kubernetes.io/certificate-arn": ACM_CERT,
                  "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}), {}, []),
    ("enc009-ok-alb-ingress-certificate-issued-by-the-stack", "ENC-009-tls-listeners",
     "kubernetes:networking.k8s.io/v1:Ingress", alb_ingress({"alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]',
                                                            "alb.ingress.kubernetes.io/certificate-arn": UNKNOWN_STRING_VALUE}),
     {}, []),
    ("enc009-ok-alb-ingress-tls-section", "ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({}, tls=[{"hosts": ["llm.llm.internal"]}]), {}, []),
    ("enc009-alb-ingress-http", "ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({"alb.ingress.kubernetes.io/listen-ports": '[{"HTTP":80},{"HTTPS":443}]',
                  "alb.ingress.kubernetes.io/certificate-arn": ACM_CERT}), {},
     ['alb.ingress.kubernetes.io/listen-ports is [{"HTTP":80},{"HTTPS":443}]: the load balancer listens in plain text '
      "on HTTP:80 (set '[{\"HTTPS\":443}]', or alb.ingress.kubernetes.io/ssl-redirect to send HTTP to HTTPS)"]),
    ("enc009-alb-ingress-no-certificate", "ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({"alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]'}), {},
     ["no certificate: neither alb.ingress.kubernetes.io/certificate-arn nor spec.tls is set, so the HTTPS listener "
      "has nothing to serve"]),
    ("enc009-alb-ingress-defaults-to-http", "ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({}), {},
     ["alb.ingress.kubernetes.io/listen-ports is not set (the controller opens HTTP 80, as there is no certificate): "
      "the load balancer listens in plain text on HTTP:80 (set '[{\"HTTPS\":443}]', or "
      "alb.ingress.kubernetes.io/ssl-redirect to send HTTP to HTTPS)"]),
    ("enc009-ok-gateway", "ENC-009-tls-listeners", "kubernetes:gateway.networking.k8s.io/v1:Gateway",
     gateway([{"name": "https", "protocol": "HTTPS", "port": 443,
               "tls": {"mode": "Terminate", "certificateRefs": [{"name": "llm-tls"}]}}]), {}, []),
    ("enc009-gateway-http-listener", "ENC-009-tls-listeners", "kubernetes:gateway.networking.k8s.io/v1:Gateway",
     gateway([{"name": "https", "protocol": "HTTPS", "port": 443, "tls": {"certificateRefs": [{"name": "llm-tls"}]}},
              {"name": "http", "protocol": "HTTP", "port": 80}, {"name": "bare", "protocol": "HTTPS", "port": 8443}]),
     {}, ["spec.listeners[1] (http) has protocol HTTP: it accepts connections without TLS",
          "spec.listeners[2] (bare) has protocol HTTPS but no tls: it has no certificate to serve"]),
    ("enc009-ok-gcp-https-proxy", "ENC-009-tls-listeners", "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
     {"urlMap": "projects/p/regions/r/urlMaps/m", "sslCertificates": ["projects/p/regions/r/sslCertificates/c"]}, {}, []),
    ("enc009-gcp-http-proxy", "ENC-009-tls-listeners", "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy",
     {"urlMap": "projects/p/regions/r/urlMaps/m"}, {},
     ["a target HTTP proxy serves plain HTTP: use a target HTTPS proxy with a certificate"]),
    ("enc009-gcp-global-http-proxy", "ENC-009-tls-listeners", "gcp:compute/targetHttpProxy:TargetHttpProxy",
     {"urlMap": "projects/p/global/urlMaps/m"}, {},
     ["a target HTTP proxy serves plain HTTP: use a target HTTPS proxy with a certificate"]),
    ("enc009-gcp-https-proxy-without-certificate", "ENC-009-tls-listeners", "gcp:compute/targetHttpsProxy:TargetHttpsProxy",
     {"urlMap": "projects/p/global/urlMaps/m"}, {},
     ["none of sslCertificates, certificateManagerCertificates, certificateMap is set: the proxy has no certificate to "
      "serve"]),
    ("enc009-ok-nlb-service-with-certificate", "ENC-009-tls-listeners", "kubernetes:core/v1:Service",
     {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
                                   "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": ACM_CERT,
                                   "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "443"}},
      "spec": {"type": "LoadBalancer", "ports": [{"name": "https", "port": 443, "targetPort": 8000}]}}, {}, []),
    ("enc009-ok-clusterip-service", "ENC-009-tls-listeners", "kubernetes:core/v1:Service",
     {"spec": {"type": "ClusterIP", "ports": [{"port": 8000}]}}, {}, []),
    ("enc009-plain-lb-service", "ENC-009-tls-listeners", "kubernetes:core/v1:Service",
     {"metadata": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"}},
      "spec": {"type": "LoadBalancer", "ports": [{"port": 8000}]}}, {},
     ["spec.type is LoadBalancer without service.beta.kubernetes.io/aws-load-balancer-ssl-cert: the load balancer "
      "passes plain TCP to the pods, and nothing shows the traffic is encrypted"]),
    ("enc009-lb-service-ssl-ports-partial", "ENC-009-tls-listeners", "kubernetes:core/v1:Service",
     {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-ssl-cert": ACM_CERT,
                                   "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "443"}},
      "spec": {"type": "LoadBalancer", "ports": [{"port": 443}, {"name": "metrics", "port": 9090}]}}, {},
     ["service.beta.kubernetes.io/aws-load-balancer-ssl-ports is '443': port(s) metrics are served without TLS"]),
    # --- BAS-001 -------------------------------------------------------------------------------------------------
    ("bas001-ok-worker-policy", "BAS-001-no-full-access-policies", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
     {"role": "nodes", "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"}, {}, []),
    ("bas001-full-access", "BAS-001-no-full-access-policies", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
     {"role": "sagemaker", "policyArn": "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"}, {},
     ["policyArn arn:aws:iam::aws:policy/AmazonSageMakerFullAccess grants AmazonSageMakerFullAccess: every action of the "
      "service on every resource"]),
    ("bas001-admin-on-role", "BAS-001-no-full-access-policies", "aws:iam/role:Role",
     {"managedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/AdministratorAccess"]}, {},
     ["managedPolicyArns[1] arn:aws:iam::aws:policy/AdministratorAccess grants AdministratorAccess: every action on "
      "every resource"]),
    ("bas001-gcp-editor", "BAS-001-no-full-access-policies", "gcp:projects/iAMMember:IAMMember",
     {"project": "p", "role": "roles/editor", "member": "serviceAccount:x@p.iam.gserviceaccount.com"}, {},
     ["role roles/editor is a basic role: it grants broad access across the whole project"]),
    # --- BAS-002 -------------------------------------------------------------------------------------------------
    ("bas002-ok-imdsv2", "BAS-002-imdsv2-nodes", "aws:ec2/launchTemplate:LaunchTemplate",
     {"metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}}, {}, []),
    ("bas002-imdsv1", "BAS-002-imdsv2-nodes", "aws:ec2/launchTemplate:LaunchTemplate",
     {"metadataOptions": {"httpTokens": "optional"}}, {},
     ["metadataOptions.httpTokens is optional: instances accept IMDSv1, whose credentials a server-side request forgery "
      "can read"]),
    ("bas002-gke-node-metadata", "BAS-002-imdsv2-nodes", "gcp:container/nodePool:NodePool",
     {"nodeConfig": {"workloadMetadataConfig": {"mode": "GCE_METADATA"}}}, {},
     ["nodeConfig.workloadMetadataConfig.mode is GCE_METADATA: pods can read the node's metadata server and its "
      "service-account credentials"]),
    # --- BAS-003 -------------------------------------------------------------------------------------------------
    ("bas003-ok-secret-ref", "BAS-003-no-plaintext-secret-env", "kubernetes:apps/v1:Deployment",
     deployment([vllm([{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hub", "key": "token"}}},
                       {"name": "HF_HUB_DISABLE_IMPLICIT_TOKEN", "value": "1"},
                       {"name": "TOKENIZERS_PARALLELISM", "value": "false"}])]), {}, []),
    ("bas003-plain-token", "BAS-003-no-plaintext-secret-env", "kubernetes:apps/v1:Deployment",
     deployment([vllm([{"name": "HF_TOKEN", "value": "hf_abcdefghijklmnop"}])]), {},
     ["spec.template.spec.containers[0].env[0] sets HF_TOKEN as a plain value: it is stored unencrypted in the spec"]),
    ("bas003-sagemaker-api-key", "BAS-003-no-plaintext-secret-env", "aws:sagemaker/model:Model",
     {"primaryContainer": {"image": "x", "environment": {"OPTION_MODEL_ID": "/opt/ml/model", "UPSTREAM_API_KEY": "sk-123"}}},
     {}, ["primaryContainer.environment.UPSTREAM_API_KEY sets UPSTREAM_API_KEY as a plain value: it is stored "
          "unencrypted in the spec"]),
]


def test_every_resource_policy_has_a_compliant_and_a_violating_case():
    resource_rules = {r.id for r in RULES if r.kind == "resource"} - NEW_RESOURCE_RULES
    ok = {c[1] for c in CASES if not c[5]}
    bad = {c[1] for c in CASES if c[5]}
    assert resource_rules - ok == set(), "policies without a compliant case"
    assert resource_rules - bad == set(), "policies without a violating case"


@pytest.mark.parametrize("case_id, policy, typ, props, config, expected", CASES, ids=[c[0] for c in CASES])
def test_resource_policy(case_id, policy, typ, props, config, expected):
    result = check_resource(policy, typ, props, config, name=f"{case_id}-res")
    assert [v.message for v in result.violations] == expected
    for v in result.violations:
        assert (v.policy, v.resource_name, v.resource_type, v.enforcement) == (policy, f"{case_id}-res", typ, "mandatory")
    assert not result.not_applicable


NOT_APPLICABLE = [
    ("RES-001-region-allowlist", "aws:iam/role:Role", {"name": "r"}, ALLOWED,
     "names no region or location; it is created in its provider's region (RES-002)"),
    ("RES-001-region-allowlist", "kubernetes:core/v1:Service", {"spec": {}}, ALLOWED,
     "kubernetes:core/v1:Service is not an AWS or GCP resource"),
    ("BND-002-private-cluster-endpoint", "aws:eks/cluster:Cluster", {}, {"classification": "internal"},
     "the stack's classification is internal; boundary policies apply to confidential and regulated data"),
    ("AIR-001-no-internet-gateways", "aws:ec2/internetGateway:InternetGateway", {}, {"network": "private"},
     "the stack's network is private; air-gap policies apply to airgapped stacks"),
    ("AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
     deployment([{"name": "web", "image": f"{REGISTRY}/nginx:1.27"}]), AIRGAPPED,
     "not a model-serving workload (no model-server label, image or command)"),
    ("ENC-005-cmk-endpoints", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
     {"productionVariants": [{"instanceType": "ml.g6e.12xlarge"}]}, {}, None),
    ("ENC-007-key-rotation", "aws:kms/key:Key", {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, {},
     "AWS rotates only symmetric encryption keys automatically; this key is RSA_2048"),
    ("BAS-001-no-full-access-policies", "aws:s3/bucket:Bucket", {}, {},
     "aws:s3/bucket:Bucket is not a resource type this policy checks"),
]


@pytest.mark.parametrize("policy, typ, props, config, reason", NOT_APPLICABLE, ids=[f"{p}-{t}" for p, t, *_ in NOT_APPLICABLE])
def test_a_rule_that_does_not_apply_says_why(policy, typ, props, config, reason):
    result = check_resource(policy, typ, props, config, name="r")
    assert result.violations == []
    if reason is None:  # compliant by rule (instance-store families), not "not applicable"
        return
    assert [(n.policy, n.resource_name, n.reason) for n in result.not_applicable] == [(policy, "r", reason)]


def test_instance_store_endpoint_is_compliant_without_a_key():
    """SageMaker refuses a KmsKeyId for NVMe instance-store families; the kit's list and the rule's must agree."""
    from components.sagemaker_endpoint import INSTANCE_STORE_FAMILIES
    from policies.rules.encryption.cmk_endpoints import INSTANCE_STORE_FAMILIES as RULE_FAMILIES

    assert RULE_FAMILIES == INSTANCE_STORE_FAMILIES


UNKNOWN_CASES = [
    ("RES-001-region-allowlist", "aws:ec2/subnet:Subnet", {"availabilityZone": UNKNOWN_STRING_VALUE}, ALLOWED,
     "cannot verify availabilityZone (a location)"),
    ("BND-002-private-cluster-endpoint", "aws:eks/cluster:Cluster",
     {"vpcConfig": {"endpointPublicAccess": "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"}}, REGULATED,
     "cannot verify vpcConfig.endpointPublicAccess (whether the API endpoint is public)"),
    ("AIR-003-private-registry-images", "kubernetes:apps/v1:Deployment",
     deployment([{"name": "app", "image": UNKNOWN_STRING_VALUE}]), {**AIRGAPPED, "registry": REGISTRY},
     "cannot verify spec.template.spec.containers[0].image (the image)"),
    ("AIR-004-hub-offline-serving", "kubernetes:apps/v1:Deployment",
     deployment([vllm([], envFrom=[{"configMapRef": {"name": "offline"}}])]), AIRGAPPED,
     "cannot verify spec.template.spec.containers[0].env (whether HF_HUB_OFFLINE is set); "
     "spec.template.spec.containers[0].env (whether TRANSFORMERS_OFFLINE is set)"),
    ("ENC-009-tls-listeners", "aws:lb/listener:Listener", {"protocol": UNKNOWN_STRING_VALUE, "port": 443}, {},
     "cannot verify protocol (the listener protocol)"),
    ("ENC-009-tls-listeners", "kubernetes:gateway.networking.k8s.io/v1:Gateway",
     gateway([{"name": "https", "protocol": UNKNOWN_STRING_VALUE, "port": 443}]), {},
     "cannot verify spec.listeners[0] (the listener's protocol and tls)"),
    ("ENC-009-tls-listeners", "kubernetes:networking.k8s.io/v1:Ingress",
     alb_ingress({"alb.ingress.kubernetes.io/certificate-arn": ACM_CERT,
                  "alb.ingress.kubernetes.io/listen-ports": UNKNOWN_STRING_VALUE}), {},
     "cannot verify metadata.annotations (the load balancer's listeners)"),
]


@pytest.mark.parametrize("policy, typ, props, config, expected", UNKNOWN_CASES, ids=[c[0] for c in UNKNOWN_CASES])
def test_unknown_at_preview_is_reported_as_cannot_verify_never_passed(policy, typ, props, config, expected):
    result = check_resource(policy, typ, props, config, name="r")
    assert len(result.violations) == 1
    v = result.violations[0]
    assert v.message.startswith(expected + ": the value is only known once `pulumi up`"), v.message
    assert (v.enforcement, v.resource_name, v.cannot_verify, v.blocking) == ("advisory", "r", True, False)


def test_known_violations_are_still_reported_next_to_an_unknown():
    props = {"kmsKeyId": UNKNOWN_STRING_VALUE, "replicas": [{"region": UNKNOWN_STRING_VALUE}, {"region": "us-east-1"}]}
    result = check_resource("RES-001-region-allowlist", "aws:secretsmanager/secret:Secret", props, ALLOWED, name="s")
    assert [(v.enforcement, v.message.split(":")[0]) for v in result.violations] == [
        ("mandatory", "replicas[1].region is us-east-1, outside the allowed regions (eu-central-1, eu-west-1)"),
        ("advisory", "cannot verify replicas[0].region (a location)")]


def test_a_reference_unknown_at_preview_still_counts_as_set():
    """An unknown kmsKeyId is the ARN of a key the stack creates: the CMK is there, its value comes at `pulumi up`."""
    for policy, typ, props in [
        ("ENC-004-cmk-log-groups", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": UNKNOWN_STRING_VALUE}),
        ("ENC-001-cmk-secrets", "aws:secretsmanager/secret:Secret",
         {"kmsKeyId": UNKNOWN_STRING_VALUE, "replicas": [{"region": "eu-west-1", "kmsKeyId": UNKNOWN_STRING_VALUE}]}),
        ("RES-001-region-allowlist", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": UNKNOWN_STRING_VALUE}),
    ]:
        result = check_resource(policy, typ, props, ALLOWED if policy.startswith("RES") else {}, name="r")
        assert result.violations == [], policy


# --- stack policies ---------------------------------------------------------------------------------------------

def res(typ, name, inputs=None, **options):
    return {"type": typ, "name": name, "inputs": inputs or {}, "options": options}


def test_res002_provider_region():
    ok = check_stack("RES-002-provider-region", [res("aws:s3/bucket:Bucket", "b")], ALLOWED, {"aws": "eu-west-1"})
    assert ok.violations == []
    bad = check_stack("RES-002-provider-region", [
        res("pulumi:providers:aws", "us-replica", {"region": "us-east-1"}),
        res("aws:secretsmanager/secret:Secret", "replica-secret", provider="us-replica"),
        res("aws:kms/key:Key", "k"),
    ], ALLOWED, {"aws": ""})
    assert [(v.resource_name, v.resource_type, v.message) for v in bad.violations] == [
        ("us-replica", "pulumi:providers:aws",
         "the aws provider us-replica deploys to us-east-1, outside the allowed regions (eu-central-1, eu-west-1)"),
        ("default", "pulumi:providers:aws",
         "the aws provider default sets no region: it would come from AWS_REGION or the AWS profile at run time, which "
         "no policy can check; set aws:region (or the provider's region)"),
    ]


def test_enc003_buckets():
    kms = {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY},
                      "bucketKeyEnabled": True}]}
    ok = check_stack("ENC-003-cmk-buckets", [
        res("aws:s3/bucket:Bucket", "weights", {"bucket": "acme-weights"}),
        res("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "weights-sse",
            {"bucket": "acme-weights", **kms}),
        res("aws:s3/bucket:Bucket", "logs"),  # autonamed: the configuration names logs-<7 hex>
        res("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "logs-sse",
            {"bucket": "logs-1a2b3c4", **kms}),
        res("gcp:storage/bucket:Bucket", "gcs", {"location": "EUROPE-WEST4", "encryption": {"defaultKmsKeyName": GCP_KEY}}),
    ], {})
    assert ok.violations == []
    bad = check_stack("ENC-003-cmk-buckets", [
        res("aws:s3/bucket:Bucket", "weights", {"bucket": "acme-weights"}),
        res("aws:s3/bucket:Bucket", "capture", {"bucket": "acme-capture"}),
        res("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "capture-sse",
            {"bucket": "acme-capture", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}),
        res("gcp:storage/bucket:Bucket", "gcs", {"location": "EUROPE-WEST4"}),
    ], {})
    assert [(v.resource_name, v.message) for v in bad.violations] == [
        ("weights", "has no server-side encryption configuration with a customer-managed KMS key: objects use SSE-S3"),
        ("capture", "capture-sse does not use aws:kms with a kmsMasterKeyId: objects use an Amazon-managed key"),
        ("gcs", "encryption.defaultKmsKeyName is not set: objects use a Google-managed key"),
    ]


def test_bas004_protect_stateful():
    ok = check_stack("BAS-004-protect-stateful", [res("aws:kms/key:Key", "k", protect=True), res("aws:ec2/vpc:Vpc", "v")], {})
    assert ok.violations == []
    bad = check_stack("BAS-004-protect-stateful", [res("aws:kms/key:Key", "k", protect=True),
                                                   res("aws:cloudwatch/logGroup:LogGroup", "audit-logs")], {})
    assert [(v.policy, v.resource_name, v.resource_type, v.message) for v in bad.violations] == [
        ("BAS-004-protect-stateful", "audit-logs", "aws:cloudwatch/logGroup:LogGroup",
         "holds state but is not protected (protect=True): a destroy or a replacing change deletes it and what it holds")]
    na = check_stack("BAS-004-protect-stateful", [res("aws:ec2/vpc:Vpc", "v")], {})
    assert [n.reason for n in na.not_applicable] == ["the stack has no stateful resource"]


def test_every_policy_is_exercised_here():
    covered = {c[1] for c in CASES} | {"RES-002-provider-region", "ENC-003-cmk-buckets", "BAS-004-protect-stateful"}
    covered |= NEW_RESOURCE_RULES | NEW_STACK_RULES
    assert covered | LINK_TESTS == set(BY_ID)


# --- link policies: both ends of a link, on small stacks ----------------------------------------------------------

L40S_NODE = {"gpu": "L40S", "gpuCount": 4, "gpuMemoryGb": 48.0, "fp8": True, "vcpus": 48, "memoryGib": 384,
             "allocatableCpu": 47.825, "allocatableMemoryGib": 382.471}
SHAPES = {"g6e.12xlarge": L40S_NODE}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SERVER_ARGS = ["s3://weights/llama-3.1-70b/", "--served-model-name", "meta-llama/Llama-3.1-70B-Instruct",
               "--tensor-parallel-size", "2", "--max-model-len", "8192", "--quantization", "fp8", "--kv-cache-dtype", "fp8"]
MODEL_70B = {"id": "meta-llama/Llama-3.1-70B-Instruct", "sizeClass": "70b", "paramsBillion": 70.6,
             "kvBytesPerTokenFp16": 327680, "kvCacheTokens": 21600, "contextTokens": 8192, "modelMaxTokens": 131072}
MEMORY = {"nodeShapes": SHAPES, "models": [MODEL_70B], "gpuMemoryUtilization": 0.9, "activationReserveGbPerGpu": 1.0}


def node_group(name, labels, taints=(GPU_TAINT,), lo=2, hi=2, types=("g6e.12xlarge",), zones=3):
    return res("aws:eks/nodeGroup:NodeGroup", name, {
        "nodeGroupName": name, "amiType": "AL2023_x86_64_NVIDIA", "capacityType": "ON_DEMAND", "instanceTypes": list(types),
        "labels": labels, "taints": list(taints), "scalingConfig": {"minSize": lo, "maxSize": hi, "desiredSize": lo},
        "subnetIds": [f"subnet-{i}" for i in range(zones)]})


def gpu_server(selector=None, args=SERVER_ARGS, gpus="2", memory="144Gi", tolerations=(GPU_TOLERATION,), replicas=2,
               spread=None, cpu="18", **options):
    labels = {"app.kubernetes.io/name": "vllm"}
    spec = {"nodeSelector": selector if selector is not None else {"llm-hosting/gpu": "L40S"},
            "tolerations": list(tolerations),
            "containers": [{"name": "vllm", "image": f"{REGISTRY}/vllm-openai:v0.30.0", "command": ["vllm", "serve"],
                            "args": list(args),
                            "resources": {"requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
                                          "limits": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus}},
                            "startupProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10,
                                             "failureThreshold": 145}}],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]}
    if spread:
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                              "whenUnsatisfiable": "DoNotSchedule", **spread,
                                              "labelSelector": {"matchLabels": labels}}]
    return res("kubernetes:apps/v1:Deployment", "model-server", {
        "metadata": {"name": "vllm", "namespace": "llm-serving", "labels": labels},
        "spec": {"replicas": replicas,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": labels}, "spec": spec}}}, **options)


def hpa(most, metric_type="External"):
    metric = {"type": metric_type, "external": {"metric": {"name": "vllm_num_requests_waiting"},
                                                "target": {"type": "AverageValue", "averageValue": "5"}}}
    return res("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "model-server-hpa", {
        "metadata": {"name": "vllm", "namespace": "llm-serving"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
                 "minReplicas": 2, "maxReplicas": most, "metrics": [metric]}})


DEVICE_PLUGIN = res("kubernetes:apps/v1:DaemonSet", "nvidia-device-plugin", {
    "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
    "spec": {"template": {"metadata": {"labels": {"app": "nvidia-device-plugin"}}, "spec": {
        "nodeSelector": {"nvidia.com/gpu.present": "true"}, "tolerations": [GPU_TOLERATION],
        "containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2",
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}}}})
GPU_POOL = node_group("gpu-on-demand", {"llm-hosting/gpu": "L40S", "nvidia.com/gpu.present": "true"})


def lines(result):
    return [(v.resource_name, v.message) for v in result.violations]


def test_lnk001_pods_schedulable():
    ok = check_stack("LNK-001-pods-schedulable", [GPU_POOL, DEVICE_PLUGIN, gpu_server()], {"nodeShapes": SHAPES})
    assert ok.violations == [] and ok.not_applicable == []
    # The selector names the GPU the way another component spells it; the pool labels its nodes differently.
    wrong_label = check_stack("LNK-001-pods-schedulable", [GPU_POOL, DEVICE_PLUGIN, gpu_server({"llm-hosting/gpu": "l40s"})],
                              {"nodeShapes": SHAPES})
    assert lines(wrong_label) == [("model-server",
        "Deployment llm-serving/vllm (selects llm-hosting/gpu=l40s; needs 2 nvidia.com/gpu, 18 CPU, 160 GiB memory) fits no "
        "node pool: gpu-on-demand: nodeSelector llm-hosting/gpu=l40s, but the pool has llm-hosting/gpu=L40S. Its pods stay "
        "Pending. Fix: make the selector and the pool's node labels the same value, taken from the one place that defines "
        "it.")]
    # A taint the pods do not tolerate, and requests (with /dev/shm in memory) beyond the node's allocatable memory.
    tainted = node_group("gpu-on-demand", {"llm-hosting/gpu": "L40S", "nvidia.com/gpu.present": "true"},
                         taints=(GPU_TAINT, {"key": "dedicated", "value": "llm", "effect": "NO_SCHEDULE"}))
    untolerated = check_stack("LNK-001-pods-schedulable", [tainted, DEVICE_PLUGIN, gpu_server()], {"nodeShapes": SHAPES})
    assert dict(lines(untolerated))["model-server"].endswith(
        "fits no node pool: gpu-on-demand: taint dedicated=llm:NoSchedule is not tolerated. Its pods stay Pending. Fix: add "
        "a toleration for the pool's taint.")
    assert dict(lines(untolerated))["nvidia-device-plugin"] == (
        "DaemonSet kube-system/nvidia-device-plugin runs on no node: gpu-on-demand: taint dedicated=llm:NoSchedule is not "
        "tolerated. Fix: add a toleration for the pool's taint.")
    too_big = check_stack("LNK-001-pods-schedulable", [GPU_POOL, DEVICE_PLUGIN, gpu_server(memory="370Gi")],
                          {"nodeShapes": SHAPES})
    assert lines(too_big)[0][1].endswith(
        "fits no node pool: gpu-on-demand: needs 386 GiB of memory (370 GiB requested + dshm (16 GiB) in memory) of the "
        "382.4 GiB allocatable on g6e.12xlarge. Its pods stay Pending. Fix: lower the requests to fit the node's "
        "allocatable size or use a larger instance type.")
    # GPU pods on EKS need a device plugin running on the pool: without it the nodes advertise no GPUs.
    no_plugin = check_stack("LNK-001-pods-schedulable", [GPU_POOL, gpu_server()], {"nodeShapes": SHAPES})
    assert "gpu-on-demand: no NVIDIA device plugin DaemonSet runs on it" in lines(no_plugin)[0][1]
    na = check_stack("LNK-001-pods-schedulable", [GPU_POOL], {"nodeShapes": SHAPES})
    assert [n.reason for n in na.not_applicable] == ["the stack defines no Deployment, StatefulSet or DaemonSet"]


def test_lnk001_gke_labels_and_gpu_taint_are_the_clouds_own():
    """GKE labels GPU nodes with their accelerator and taints them; GPU pods tolerate that taint by admission."""
    pool = res("gcp:container/nodePool:NodePool", "gpu-pool", {
        "name": "gpu", "location": "us-central1", "nodeLocations": ["us-central1-a"],
        "autoscaling": {"totalMinNodeCount": 1, "totalMaxNodeCount": 2},
        "nodeConfig": {"machineType": "g2-standard-8", "guestAccelerators": [{"type": "nvidia-l4", "count": 1}]}})
    shapes = {"g2-standard-8": {"gpu": "L4", "gpuCount": 1, "gpuMemoryGb": 24.0, "vcpus": 8, "memoryGib": 32,
                                "allocatableCpu": 7.91, "allocatableMemoryGib": 28.9}}
    server = gpu_server({"cloud.google.com/gke-accelerator": "nvidia-l4"}, gpus="1", cpu="6", memory="8Gi", tolerations=())
    assert check_stack("LNK-001-pods-schedulable", [pool, server], {"nodeShapes": shapes}).violations == []
    cpu_pod = gpu_server({"cloud.google.com/gke-nodepool": "gpu"}, gpus="0", cpu="1", memory="1Gi", tolerations=())
    [(name, message)] = lines(check_stack("LNK-001-pods-schedulable", [pool, cpu_pod], {"nodeShapes": shapes}))
    assert "gpu-pool: taint nvidia.com/gpu=present:NoSchedule is not tolerated" in message


def test_lnk002_replicas_fit():
    base = [GPU_POOL, DEVICE_PLUGIN]
    ok = check_stack("LNK-002-replicas-fit", [*base, gpu_server(spread={}), hpa(4)], {"nodeShapes": SHAPES})
    assert ok.violations == []
    more = check_stack("LNK-002-replicas-fit", [*base, gpu_server(), hpa(6)], {"nodeShapes": SHAPES})
    assert lines(more) == [("model-server",
        "Deployment llm-serving/vllm may scale to 6 replicas (maxReplicas of model-server-hpa) but the pools that can run "
        "it hold 4 (gpu-on-demand 2 node(s) x 2 per node): 2 replica(s) would stay Pending. Fix: raise the pools' maximum "
        "nodes, or lower maxReplicas of model-server-hpa to 4.")]
    # Two nodes sit in two of the three zones: minDomains 3 caps each zone at maxSkew.
    spread = check_stack("LNK-002-replicas-fit", [*base, gpu_server(spread={"minDomains": 3}), hpa(4)], {"nodeShapes": SHAPES})
    assert lines(spread) == [("model-server",
        "Deployment llm-serving/vllm may scale to 4 replicas (maxReplicas of model-server-hpa) but its spread over "
        "topology.kubernetes.io/zone (topologySpreadConstraints[0]: maxSkew 1, DoNotSchedule, minDomains 3) lets the "
        "scheduler place only 2 on gpu-on-demand 2 node(s) x 2 per node over 2 zone(s). Fix: span the pools over more "
        "zones or add nodes where the spread needs them, or relax the constraint (maxSkew, minDomains or "
        "ScheduleAnyway).")]


def test_lnk003_node_pools_scaled():
    spot = node_group("gpu-spot", {"llm-hosting/gpu": "L40S"}, lo=0, hi=4)
    cluster = res("aws:eks/cluster:Cluster", "eks-cluster", {"name": "llm"})
    image = "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.1"
    scaler = res("kubernetes:apps/v1:Deployment", "cluster-autoscaler", {"metadata": {"name": "cluster-autoscaler"},
                                                                        "spec": {"template": {"spec": {"containers": [
                                                                            {"name": "ca", "image": image}]}}}})
    assert check_stack("LNK-003-node-pools-scaled", [cluster, spot, scaler], {}).violations == []
    bad = check_stack("LNK-003-node-pools-scaled", [cluster, spot, GPU_POOL], {})
    assert lines(bad) == [("gpu-spot",
        "minSize 0 is below maxSize 4, but nothing in the stack scales it: EKS does not resize managed node groups itself "
        "and eks-cluster runs no cluster-autoscaler or Karpenter, so the group stays at its desired size (0) and the "
        "other nodes up to 4 never come. Fix: deploy cluster-autoscaler (or Karpenter) in eks-cluster, or set minSize = "
        "maxSize.")]
    assert [n.reason for n in check_stack("LNK-003-node-pools-scaled", [GPU_POOL], {}).not_applicable] == \
        ["no node pool has a minimum below its maximum"]


def test_lnk004_metric_sources():
    adapter = res("kubernetes:apiregistration.k8s.io/v1:APIService", "adapter-api", {
        "metadata": {"name": "v1beta1.external.metrics.k8s.io"}, "spec": {"group": "external.metrics.k8s.io"}})
    ok = check_stack("LNK-004-metric-sources", [gpu_server(), hpa(4), adapter], {})
    assert ok.violations == []
    bad = check_stack("LNK-004-metric-sources", [gpu_server(), hpa(4)], {})
    assert lines(bad) == [("model-server-hpa",
        "scales model-server on the External metric vllm_num_requests_waiting (spec.metrics[0]), read from the "
        "external.metrics.k8s.io API, but nothing in the stack serves that API: no APIService for "
        "external.metrics.k8s.io and no prometheus-adapter or keda release, so the HPA reports FailedGetExternalMetric "
        "and never scales. Fix: deploy prometheus-adapter or keda in the same stack with a rule that exposes "
        "vllm_num_requests_waiting.")]
    predefined = res("aws:appautoscaling/policy:Policy", "scaling", {"serviceNamespace": "sagemaker",
        "targetTrackingScalingPolicyConfiguration": {"predefinedMetricSpecification": {
            "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}})
    assert check_stack("LNK-004-metric-sources", [predefined], {}).violations == []


def test_lnk005_model_fits_gpu():
    base = [GPU_POOL, DEVICE_PLUGIN]
    assert check_stack("LNK-005-model-fits-gpu", [*base, gpu_server()], MEMORY).violations == []
    sixteen_bit = [a for a in SERVER_ARGS if a not in ("--quantization", "fp8", "--kv-cache-dtype")]
    bad = check_stack("LNK-005-model-fits-gpu", [*base, gpu_server(args=sixteen_bit)], MEMORY)
    assert lines(bad) == [("model-server",
        "serves meta-llama/Llama-3.1-70B-Instruct (70.6B parameters) with 16-bit weights and a 16-bit KV cache on 2 x "
        "L40S (48.0 GB) of gpu-on-demand's g6e.12xlarge: weights 141.2 GB + KV cache for 21600 tokens 7.1 GB = 148.3 GB, "
        "but 2 x (48.0 GB x 0.9 - 1 GB) leaves 84.4 GB, so the engine cannot load it. Fix: --quantization fp8 "
        "--kv-cache-dtype fp8 (fits on 2 GPU(s)).")]
    # A SageMaker model sharded over 2 of its instance's 4 GPUs in 16 bits: both ends are the model and its config.
    model = res("aws:sagemaker/model:Model", "sagemaker-model", {"primaryContainer": {"environment": {
        "OPTION_SERVED_MODEL_NAME": "meta-llama/Llama-3.1-70B-Instruct", "OPTION_MAX_MODEL_LEN": "8192",
        "TENSOR_PARALLEL_DEGREE": "2"}}})
    config = res("aws:sagemaker/endpointConfiguration:EndpointConfiguration", "sagemaker-config", {"productionVariants": [
        {"modelName": "sagemaker-model-e55bf99", "instanceType": "ml.g6e.12xlarge", "initialInstanceCount": 2}]})
    managed = {**MEMORY, "nodeShapes": {"ml.g6e.12xlarge": {"gpu": "L40S", "gpuCount": 4, "gpuMemoryGb": 48.0, "fp8": True}}}
    [(name, message)] = lines(check_stack("LNK-005-model-fits-gpu", [model, config], managed))
    assert name == "sagemaker-model" and "on 2 x L40S (48.0 GB) of sagemaker-config's ml.g6e.12xlarge" in message
    assert message.endswith("Fix: OPTION_QUANTIZE=fp8 and OPTION_KV_CACHE_DTYPE=fp8 (fits on 2 GPU(s)) or "
                            "TENSOR_PARALLEL_DEGREE 4 (of the 4 GPUs there).")
    unplanned = check_stack("LNK-005-model-fits-gpu", [*base, gpu_server()], {})
    assert unplanned.violations[0].cannot_verify


def test_lnk006_rollout_wait():
    timeouts = {"create": "2450s", "update": "4900s"}
    facts = {"nodeProvisioningSeconds": 600, "imagePullSeconds": 400}
    ok = check_stack("LNK-006-rollout-wait", [gpu_server(customTimeouts=timeouts), hpa(2)], facts)
    assert ok.violations == []
    bad = check_stack("LNK-006-rollout-wait", [gpu_server(), hpa(2)], facts)
    assert lines(bad) == [("model-server",
        "Deployment llm-serving/vllm: create waits 600 s (the default) but one start takes GPU node provisioning 600 s + "
        "image pull 400 s + startupProbe of vllm: 0 + 10 x 145 s = 1450 s = 2450 s per replica; update waits 600 s (the "
        "default) but a rollout of 2 replica(s) (model-server-hpa maxReplicas 2) runs 2 wave(s) of maxSurge 1 + "
        "maxUnavailable 0 = 1 at a time: 4900 s. `pulumi up` would report the rollout failed while pods are still "
        "starting. Fix: set customTimeouts create >= 2450 s and update >= 4900 s (or the pulumi.com/timeoutSeconds "
        "annotation).")]
    short = check_stack("LNK-006-rollout-wait", [gpu_server(customTimeouts={"create": "40m", "update": "40m"}), hpa(2)], facts)
    assert lines(short)[0][1].startswith("Deployment llm-serving/vllm: create waits 2400 s (customTimeouts)")


def test_lnk007_endpoint_reachable():
    private = {"network": "private"}
    vpc = res("aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.0.0.0/16"})
    endpoint = res("aws:sagemaker/endpoint:Endpoint", "sagemaker-endpoint", {"name": "llm"})
    runtime = res("aws:ec2/vpcEndpoint:VpcEndpoint", "vpce-runtime", {
        "serviceName": "com.amazonaws.us-east-1.sagemaker.runtime", "vpcEndpointType": "Interface", "privateDnsEnabled": True})
    url = {"endpoint_url": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/llm/invocations"}
    assert check_stack("LNK-007-endpoint-reachable", [vpc, endpoint, runtime], private, outputs=url).violations == []
    bad = check_stack("LNK-007-endpoint-reachable", [vpc, endpoint], private, outputs=url)
    assert lines(bad) == [("sagemaker-endpoint",
        "the stack exports the SageMaker runtime (runtime.sagemaker.us-east-1.amazonaws.com), but its consumers are the "
        "stack's network network-vpc (network private, endpoint audience vpc) and the stack has no interface VPC "
        "endpoint for "
        "com.amazonaws.us-east-1.sagemaker.runtime: calls from the VPC resolve to the public runtime and leave through "
        "NAT (or fail in an air-gapped network). Fix: add an Interface VPC endpoint for "
        "com.amazonaws.us-east-1.sagemaker.runtime with privateDnsEnabled in network-vpc.")]
    # Without outputs (the Pulumi engine), the front door is read from the rendered Service.
    service = res("kubernetes:core/v1:Service", "model-server-service", {
        "metadata": {"name": "vllm", "namespace": "llm-serving", "labels": {"app.kubernetes.io/component": "model-server"}},
        "spec": {"type": "ClusterIP", "ports": [{"port": 8000}]}})
    assert lines(check_stack("LNK-007-endpoint-reachable", [vpc, service], private)) == [("model-server-service",
        "the stack exports the ClusterIP Service llm-serving/vllm, reachable only from pods inside its cluster, but its "
        "consumers are the stack's network network-vpc (network private, endpoint audience vpc). Fix: expose it on an "
        "internal load balancer in "
        "network-vpc (type LoadBalancer with the internal annotation, or an internal Ingress/Gateway) and export that "
        "address.")]
    internal = {**service, "inputs": {**service["inputs"], "metadata": {**service["inputs"]["metadata"], "annotations": {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}}, "spec": {"type": "LoadBalancer"}}}
    assert check_stack("LNK-007-endpoint-reachable", [vpc, internal], private).violations == []


LINK_TESTS = {"LNK-001-pods-schedulable", "LNK-002-replicas-fit", "LNK-003-node-pools-scaled", "LNK-004-metric-sources",
              "LNK-005-model-fits-gpu", "LNK-006-rollout-wait", "LNK-007-endpoint-reachable"}


# --- LNK-007 on the private-DNS front door: <stack>.llm.internal -> internal load balancer -> the gateway Service -----

LLM_URL = {"endpoint_url": "https://tiered.llm.internal/v1"}
GATEWAY_SVC = res("kubernetes:core/v1:Service", "gateway-service", {
    "metadata": {"name": "llm-gateway", "namespace": "llm-serving", "labels": {"app.kubernetes.io/component": "gateway"}},
    "spec": {"type": "ClusterIP", "ports": [{"port": 4000}]}})


def with_deps(resource, *names):
    return {**resource, "dependencies": list(names)}


def aws_front_door(scheme="internal", backend="llm-gateway", zone_vpcs=True, record=True):
    vpc = res("aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.0.0.0/16"})
    ingress = res("kubernetes:networking.k8s.io/v1:Ingress", "gateway-ingress", alb_ingress(
        {"alb.ingress.kubernetes.io/scheme": scheme, "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]',
         "alb.ingress.kubernetes.io/certificate-arn": UNKNOWN_STRING_VALUE}))
    ingress["inputs"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = backend
    zone = with_deps(res("aws:route53/zone:Zone", "endpoint-zone", {
        "name": "llm.internal", "vpcs": [{"vpcId": UNKNOWN_STRING_VALUE}] if zone_vpcs else []}), "network-vpc")
    alias = with_deps(res("aws:route53/record:Record", "endpoint-record", {
        "zoneId": UNKNOWN_STRING_VALUE, "name": "tiered.llm.internal", "type": "A",
        "aliases": [{"name": UNKNOWN_STRING_VALUE, "zoneId": UNKNOWN_STRING_VALUE, "evaluateTargetHealth": True}]}),
        "endpoint-zone", "gateway-ingress")
    return [vpc, GATEWAY_SVC, ingress, zone] + ([alias] if record else [])


def gcp_front_door(cls="gke-l7-rilb", visibility="private", route_to="llm-gateway", protocol="HTTPS"):
    net = res("gcp:compute/network:Network", "network-vpc", {"name": "tiered-vpc"})
    address = res("gcp:compute/address:Address", "gateway-address", {
        "name": "tiered-gateway", "addressType": "INTERNAL", "purpose": "SHARED_LOADBALANCER_VIP"})
    gw = res("kubernetes:gateway.networking.k8s.io/v1:Gateway", "gateway", gateway(
        [{"name": "https", "protocol": protocol, "port": 443, "tls": {"certificateRefs": [{"name": "llm-tls"}]}}]))
    gw["inputs"]["spec"]["gatewayClassName"] = cls
    gw["inputs"]["spec"]["addresses"] = [{"type": "NamedAddress", "value": "tiered-gateway"}]
    route = res("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "gateway-route", {
        "metadata": {"name": "llm", "namespace": "llm-serving"},
        "spec": {"parentRefs": [{"name": "llm"}], "rules": [{"backendRefs": [{"name": route_to, "port": 4000}]}]}})
    zone = with_deps(res("gcp:dns/managedZone:ManagedZone", "endpoint-zone", {
        "name": "tiered-llm-internal", "dnsName": "llm.internal.", "visibility": visibility,
        "privateVisibilityConfig": {"networks": [{"networkUrl": UNKNOWN_STRING_VALUE}]}}), "network-vpc")
    record = with_deps(res("gcp:dns/recordSet:RecordSet", "endpoint-record", {
        "managedZone": "tiered-llm-internal", "name": "tiered.llm.internal.", "type": "A", "ttl": 300,
        "rrdatas": [UNKNOWN_STRING_VALUE]}), "endpoint-zone", "gateway-address")
    return [net, GATEWAY_SVC, address, gw, route, zone, record]


def lnk007(resources, network="private", outputs=LLM_URL, audience=None):
    config = {"network": network, **({"endpointAudience": audience} if audience else {})}
    return lines(check_stack("LNK-007-endpoint-reachable", resources, config, outputs=outputs))


def test_lnk007_private_dns_front_door_on_aws():
    assert lnk007(aws_front_door()) == []
    assert lnk007(aws_front_door(), outputs=None) == []  # `pulumi preview`: the Ingress in front of the Service
    [(name, message)] = lnk007(aws_front_door(scheme="internet-facing"))
    assert name == "gateway-ingress" and message.startswith(
        "the stack exports https://tiered.llm.internal/v1, whose record endpoint-record points at the Ingress "
        "llm-serving/llm, an internet-facing load balancer, but the stack's consumers are the stack's network "
        "network-vpc (network private, endpoint audience vpc).")
    [(name, message)] = lnk007(aws_front_door(scheme="internet-facing"), outputs=None)
    assert (name, message.split(",")[0]) == (
        "gateway-ingress", "the stack exposes llm-serving/llm-gateway through the Ingress llm-serving/llm")
    [(name, message)] = lnk007(aws_front_door(record=False))
    assert name == "endpoint-zone" and "has no record for tiered.llm.internal" in message
    [(name, message)] = lnk007(aws_front_door(zone_vpcs=False))
    assert name == "endpoint-zone" and "which is not a private zone attached to network-vpc" in message
    [(name, message)] = lnk007(aws_front_door(backend="vllm"))
    assert name == "gateway-ingress" and ("which forwards to llm-serving/vllm, not to the stack's front door "
                                          "llm-serving/llm-gateway") in message
    assert lnk007([r for r in aws_front_door() if r["name"] != "endpoint-zone"])[0][1] == (
        "the stack exports https://tiered.llm.internal/v1, but no DNS zone of the stack answers for tiered.llm.internal "
        "(and .internal names never resolve on the internet). Fix: add a private zone for the domain on network-vpc "
        "with a record for tiered.llm.internal pointing at the internal load balancer.")
    plain = lnk007(aws_front_door(), outputs={"endpoint_url": "http://tiered.llm.internal/v1"})
    assert [n for n, _ in plain] == ["endpoint-record"] and "a plain-http URL" in plain[0][1]


def test_lnk007_private_dns_front_door_on_gcp():
    assert lnk007(gcp_front_door()) == []
    assert lnk007(gcp_front_door(), outputs=None) == []
    [(name, message)] = lnk007(gcp_front_door(cls="gke-l7-global-external-managed"))
    assert name == "gateway" and "the Gateway llm-serving/llm, an internet-facing load balancer" in message
    [(name, message)] = lnk007(gcp_front_door(visibility="public"))
    assert name == "endpoint-zone" and "not a private zone" in message
    [(name, message)] = lnk007(gcp_front_door(route_to="missing"))
    assert name == "gateway" and "which forwards to llm-serving/missing, not to the stack's front door" in message
    [(name, message)] = lnk007(gcp_front_door(protocol="HTTP"))
    assert name == "gateway" and "over https, but it has no HTTPS listener" in message
    # Consumers on the internet (audience internet) cannot resolve a private zone nor reach an internal load balancer;
    # a public network variant alone does not put them there.
    assert [n for n, _ in lnk007(gcp_front_door(), network="public", audience="internet")] == ["endpoint-zone", "gateway"]
    assert lnk007(gcp_front_door(), network="public") == []
    # The old shapes are still caught: an in-cluster URL, and the Service without anything in front of it.
    cluster = lnk007(gcp_front_door(), outputs={"endpoint_url": "http://llm-gateway.llm-serving.svc.cluster.local:4000/v1"})
    assert [n for n, _ in cluster] == ["gateway-service"] and "resolves only inside the cluster" in cluster[0][1]
    bare = [r for r in gcp_front_door() if r["name"] != "gateway-route"]
    assert [n for n, _ in lnk007(bare, outputs=None)] == ["gateway-service"]
    # A record whose target is not known yet and not made from a load balancer: cannot verify, never passed.
    unlinked = [with_deps(r, "endpoint-zone") if r["name"] == "endpoint-record" else r for r in gcp_front_door()]
    result = check_stack("LNK-007-endpoint-reachable", unlinked, {"network": "private"}, outputs=LLM_URL)
    assert [v.cannot_verify for v in result.violations] == [True]
    assert "endpoint-record target" in result.violations[0].message


def test_lnk007_finds_the_load_balancer_by_the_address_the_record_holds():
    """Known record values (after `pulumi up`, or the offline preview) name the load balancer without a dependency."""
    def aws(alias):
        out = aws_front_door()
        out[2]["inputs"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/load-balancer-name"] = "llm-hosting-tiered"
        out[4] = with_deps(out[4], "endpoint-zone")
        out[4]["inputs"]["aliases"][0]["name"] = alias
        return out
    assert lnk007(aws("internal-llm-hosting-tiered-1234567890.eu-central-1.elb.amazonaws.com")) == []
    [(name, message)] = lnk007(aws("other-alb-1234567890.eu-central-1.elb.amazonaws.com"))
    assert name == "endpoint-record" and message.startswith(
        "the stack exports https://tiered.llm.internal/v1, but the record endpoint-record answers with "
        "other-alb-1234567890.eu-central-1.elb.amazonaws.com, not the address of a load balancer of the stack.")

    def gcp(ip):
        out = gcp_front_door()
        out[2]["inputs"]["address"] = "10.20.0.5"
        out[6] = with_deps(out[6], "endpoint-zone")
        out[6]["inputs"]["rrdatas"] = [ip]
        return out
    assert lnk007(gcp("10.20.0.5")) == []
    assert [n for n, _ in lnk007(gcp("10.20.0.9"))] == ["endpoint-record"]
