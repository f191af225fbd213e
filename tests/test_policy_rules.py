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
    resource_rules = {r.id for r in RULES if r.kind == "resource"}
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
    assert covered == set(BY_ID)
