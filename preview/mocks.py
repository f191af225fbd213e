"""Answers the program's invokes and resource registrations with realistic values.

An invoke this module does not know raises instead of returning None, so a new data-source call in the program
cannot silently turn into empty values (a known trap of Pulumi mocks).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pulumi

ACCOUNT_ID = "123456789012"
PROJECT_NUMBER = "987654321098"
DEFAULT_GCP_PROJECT = "llm-hosting-preview"


def _hex(*parts: str, n: int = 32) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def _uuid(*parts: str) -> str:
    h = _hex(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


EC2_ID_PREFIX = {"Vpc": "vpc", "Subnet": "subnet", "InternetGateway": "igw", "NatGateway": "nat", "Eip": "eipalloc",
                 "RouteTable": "rtb", "Route": "r-rtb", "RouteTableAssociation": "rtbassoc", "SecurityGroup": "sg",
                 "DefaultSecurityGroup": "sg", "VpcEndpoint": "vpce", "FlowLog": "fl", "LaunchTemplate": "lt",
                 "SecurityGroupRule": "sgr", "VpcSecurityGroupIngressRule": "sgr", "VpcSecurityGroupEgressRule": "sgr",
                 "DefaultNetworkAcl": "acl", "NetworkAcl": "acl"}


def kubernetes_autonamed(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """An object given no `metadata.name`, named as the Kubernetes provider names it: the resource name, a dash and
    a random-looking suffix (here a hash of the name, so each run agrees), marked with the provider's annotation."""
    kind = typ.rsplit(":", 1)[-1]
    # Lists and patches are never named by the provider; a Helm release has a top-level name, not metadata.
    if kind.endswith(("List", "Patch")) or "apiVersion" not in inputs:
        return inputs
    meta = dict(inputs.get("metadata") or {})
    if meta.get("name") or meta.get("generateName"):
        return inputs
    meta["name"] = f"{name}-{_hex('k8s', typ, name, n=8)}"
    meta["annotations"] = {**(meta.get("annotations") or {}), "pulumi.com/autonamed": "true"}
    return {**inputs, "metadata": meta}


class PreviewMocks(pulumi.runtime.Mocks):
    def __init__(self, aws_region: str | None, gcp_region: str | None, gcp_project: str | None, zones: dict[str, list[str]]):
        self.aws_region = aws_region
        self.gcp_region = gcp_region
        self.gcp_project = gcp_project or DEFAULT_GCP_PROJECT
        self.zones = zones  # region -> zone names
        self.provider_regions: dict[str, str] = {}  # provider reference -> region, for explicit providers

    # -- invokes -------------------------------------------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs):
        token = args.token
        region = args.args.get("region") or self._provider_region(args.provider) or self.aws_region or self.gcp_region
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/llmhost-preview",
                    "userId": "AROAPREVIEWPREVIEW:llmhost", "id": ACCOUNT_ID}, []
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}, []
        if token == "aws:index/getRegion:getRegion":
            return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com",
                    "description": region}, []
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = self.zones.get(region, [])
            return {"names": names, "zoneIds": [f"{region[:3]}{region[-1]}-az{i + 1}" for i in range(len(names))],
                    "groupNames": [region] * len(names), "id": region}, []
        if token == "aws:acmpca/getCertificateAuthority:getCertificateAuthority":
            # An organisation's CA given by ARN (certificate_authority_arn): an active general-purpose subordinate,
            # so it has a chain up to the organisation's root.
            arn = args.args["arn"]
            return {"arn": arn, "id": arn, "type": "SUBORDINATE", "usageMode": "GENERAL_PURPOSE", "status": "ACTIVE",
                    "certificate": "-----BEGIN CERTIFICATE-----\npreview-issuing-ca\n-----END CERTIFICATE-----",
                    "certificateChain": "-----BEGIN CERTIFICATE-----\npreview-root-ca\n-----END CERTIFICATE-----",
                    "certificateSigningRequest": "", "keyStorageSecurityStandard": "FIPS_140_2_LEVEL_3_OR_HIGHER"}, []
        if token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId") or self.gcp_project
            return {"projectId": project, "number": PROJECT_NUMBER, "name": project, "id": f"projects/{project}"}, []
        if token == "gcp:compute/getZones:getZones":
            r = args.args.get("region") or self.gcp_region
            return {"names": self.zones.get(r, []), "region": r, "project": self.gcp_project, "id": f"projects/{self.gcp_project}/regions/{r}"}, []
        if token == "gcp:logging/getProjectCmekSettings:getProjectCmekSettings":
            # The project's Cloud Logging service agent, which the API creates on this call; no project-level key.
            project = args.args.get("project") or self.gcp_project
            return {"id": f"projects/{project}/cmekSettings", "name": f"projects/{project}/cmekSettings",
                    "project": project, "kmsKeyName": "", "kmsKeyVersionName": "",
                    "serviceAccountId": f"service-{PROJECT_NUMBER}@gcp-sa-logging.iam.gserviceaccount.com"}, []
        answer = self._common_invoke(token, dict(args.args), region)
        if answer is not None:
            return answer, []
        raise NotImplementedError(f"the offline preview has no answer for invoke {token}; add one in preview/mocks.py")

    def _common_invoke(self, token: str, a: dict[str, Any], region: str | None) -> dict[str, Any] | None:
        """Data sources that programs the kit did not write call often, answered the way the cloud answers them."""
        acct = ACCOUNT_ID
        if token == "aws:ec2/getAmi:getAmi":
            # The newest image matching the filters, owned by the first owner asked for (an alias such as "amazon"
            # stands for its publisher's account, as EC2 reports it).
            wanted = [v for f in a.get("filters") or [] if f.get("name") == "name" for v in f.get("values", [])]
            name = (wanted[0].replace("*", "20250101") if wanted else a.get("nameRegex") or "preview-image")
            owner = (a.get("owners") or [acct])[0]
            owner_id = {"amazon": "137112412989", "self": acct, "aws-marketplace": "679593333241"}.get(owner, owner)
            image = f"ami-{_hex(region or '', name, n=17)}"
            arch = "arm64" if "arm64" in name or "aarch64" in name else "x86_64"
            return {"id": image, "imageId": image, "arn": f"arn:aws:ec2:{region}::image/{image}", "name": name,
                    "ownerId": owner_id, "owners": a.get("owners"), "architecture": arch, "state": "available",
                    "rootDeviceName": "/dev/xvda", "rootDeviceType": "ebs", "virtualizationType": "hvm",
                    "hypervisor": "xen", "enaSupport": True, "public": owner_id != acct, "imageType": "machine",
                    "imdsSupport": "v2.0", "bootMode": "uefi-preferred", "creationDate": "2025-01-01T00:00:00.000Z",
                    "platformDetails": "Linux/UNIX", "usageOperation": "RunInstances", "blockDeviceMappings": [],
                    "productCodes": [], "tags": {}, "filters": a.get("filters"), "mostRecent": a.get("mostRecent")}
        if token == "aws:ec2/getRouteTable:getRouteTable":
            key = a.get("routeTableId") or a.get("subnetId") or a.get("vpcId") or a.get("gatewayId") or "main"
            rtb = a.get("routeTableId") or f"rtb-{_hex(str(key), n=17)}"
            vpc = a.get("vpcId") or f"vpc-{_hex(str(key), 'vpc', n=17)}"
            return {"id": rtb, "routeTableId": rtb, "vpcId": vpc, "ownerId": acct, "subnetId": a.get("subnetId"),
                    "gatewayId": a.get("gatewayId"), "arn": f"arn:aws:ec2:{region}:{acct}:route-table/{rtb}",
                    "routes": [], "associations": [], "tags": a.get("tags") or {}, "filters": a.get("filters")}
        if token == "aws:ec2/getRouteTables:getRouteTables":
            key = a.get("vpcId") or region or ""
            return {"id": region, "ids": [f"rtb-{_hex(str(key), str(i), n=17)}" for i in range(2)],
                    "vpcId": a.get("vpcId"), "tags": a.get("tags"), "filters": a.get("filters")}
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            # A token valid twelve hours for the account's registry; the password is what `docker login` is given.
            registry = a.get("registryId") or acct
            password = "preview-" + _hex(registry, "ecr-token", n=24)
            return {"id": region, "registryId": registry, "userName": "AWS", "password": password,
                    "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                    "proxyEndpoint": f"https://{registry}.dkr.ecr.{region}.amazonaws.com",
                    "expiresAt": "2026-01-01T12:00:00Z", "region": region}
        if token == "aws:ec2/getVpc:getVpc":
            vpc = a.get("id") or f"vpc-{_hex(region or '', 'default', n=17)}"
            return {"id": vpc, "arn": f"arn:aws:ec2:{region}:{acct}:vpc/{vpc}", "cidrBlock": a.get("cidrBlock") or "172.31.0.0/16",
                    "default": bool(a.get("default")), "state": "available", "ownerId": acct, "enableDnsHostnames": True,
                    "enableDnsSupport": True, "instanceTenancy": "default", "mainRouteTableId": f"rtb-{_hex(vpc, 'main', n=17)}",
                    "cidrBlockAssociations": [], "tags": a.get("tags") or {}}
        if token == "aws:ec2/getSubnets:getSubnets":
            key = str(a.get("filters") or a.get("tags") or region)
            return {"id": region, "ids": [f"subnet-{_hex(key, z, n=17)}" for z in self.zones.get(region, [])[:3]],
                    "filters": a.get("filters"), "tags": a.get("tags")}
        return None

    def _provider_region(self, provider_ref: str) -> str | None:
        return self.provider_regions.get(provider_ref.split("::")[0]) if provider_ref else None

    # -- resources -----------------------------------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if not args.custom:
            return "", {}
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider-id", inputs
        if typ.startswith("aws:"):
            return self._aws(typ, name, inputs, args)
        if typ.startswith("gcp:"):
            return self._gcp(typ, name, inputs)
        if typ.startswith("kubernetes:"):
            inputs = kubernetes_autonamed(typ, name, inputs)
            meta = inputs.get("metadata") or {}
            ns = meta.get("namespace")
            return (f"{ns}/{meta.get('name', name)}" if ns else meta.get("name", name)), inputs
        return f"{name}-id", inputs

    def _aws(self, typ: str, name: str, inputs: dict[str, Any], args) -> tuple[str, dict]:
        region = inputs.get("region") or self._provider_region(args.provider) or self.aws_region
        acct = ACCOUNT_ID
        module = typ.split(":")[1].split("/")[0]
        kind = typ.split(":")[-1]
        physical = inputs.get("name") or f"{name}-{_hex(name, n=7)}"
        if typ == "aws:kms/key:Key" or typ == "aws:kms/replicaKey:ReplicaKey":
            if typ.endswith("ReplicaKey"):
                key_id = str(inputs.get("primaryKeyArn", "")).rsplit("/", 1)[-1]  # replicas share the primary's id
            else:
                key_id = ("mrk-" + _hex("mrk", name)) if inputs.get("multiRegion") else _uuid(name)
            arn = f"arn:aws:kms:{region}:{acct}:key/{key_id}"
            return key_id, {**inputs, "arn": arn, "keyId": key_id, "region": region}
        if typ == "aws:kms/alias:Alias":
            arn = f"arn:aws:kms:{region}:{acct}:{physical}"
            return physical, {**inputs, "arn": arn, "targetKeyArn": f"arn:aws:kms:{region}:{acct}:key/{inputs.get('targetKeyId')}"}
        if typ == "aws:secretsmanager/secret:Secret":
            arn = f"arn:aws:secretsmanager:{region}:{acct}:secret:{physical}-{_hex(physical, n=6)}"
            return arn, {**inputs, "arn": arn, "name": physical, "region": region}
        if typ == "aws:secretsmanager/secretVersion:SecretVersion":
            version = _uuid(name, "version")
            return f"{inputs.get('secretId')}|{version}", {**inputs, "arn": inputs.get("secretId"), "versionId": version}
        if typ == "aws:iam/policy:Policy":
            arn = f"arn:aws:iam::{acct}:policy/{physical}"
            return arn, {**inputs, "arn": arn, "name": physical, "policyId": "ANPA" + _hex(name, n=17).upper()}
        if typ == "aws:iam/role:Role":
            arn = f"arn:aws:iam::{acct}:role/{physical}"
            return physical, {**inputs, "arn": arn, "name": physical, "uniqueId": "AROA" + _hex(name, n=17).upper()}
        if module == "ec2":
            prefix = EC2_ID_PREFIX.get(kind, kind.lower())
            rid = f"{prefix}-{_hex(name, n=17)}"
            extra: dict[str, Any] = {"arn": f"arn:aws:ec2:{region}:{acct}:{kind.lower()}/{rid}", "id": rid}
            if kind == "Vpc":
                main = f"rtb-{_hex(name, 'main', n=17)}"
                extra.update(defaultSecurityGroupId=f"sg-{_hex(name, 'default', n=17)}", mainRouteTableId=main,
                             defaultRouteTableId=main)
            if kind == "Eip":
                extra.update(allocationId=rid, publicIp="203.0.113.10")
            if kind == "VpcEndpoint":
                service = str(inputs.get("serviceName", ""))
                extra.update(dnsEntries=[{"dnsName": f"{rid}.{service.split('.', 3)[-1]}.{region}.vpce.amazonaws.com", "hostedZoneId": "Z7HUB22UULQXV"}],
                             prefixListId=f"pl-{_hex(service, n=8)}" if inputs.get("vpcEndpointType") == "Gateway" else None)
            if kind == "LaunchTemplate":
                extra.update(latestVersion=1, defaultVersion=1)
            return rid, {**inputs, **extra}
        if typ == "aws:cloudwatch/logGroup:LogGroup":
            arn = f"arn:aws:logs:{region}:{acct}:log-group:{physical}"
            return physical, {**inputs, "arn": arn, "name": physical}
        if typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            return physical, {**inputs, "arn": f"arn:aws:cloudwatch:{region}:{acct}:alarm:{physical}", "name": physical}
        if typ == "aws:eks/cluster:Cluster":
            host = _hex(name, n=32).upper()
            extra = {"arn": f"arn:aws:eks:{region}:{acct}:cluster/{physical}", "name": physical,
                     "endpoint": f"https://{host}.gr7.{region}.eks.amazonaws.com",
                     "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCnByZXZpZXcKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="},
                     "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{host}"}]}],
                     "platformVersion": "eks.1", "status": "ACTIVE"}
            vpc = dict(inputs.get("vpcConfig") or {})
            vpc.setdefault("clusterSecurityGroupId", f"sg-{_hex(name, 'cluster', n=17)}")
            extra["vpcConfig"] = vpc
            return physical, {**inputs, **extra}
        if module == "eks":
            cluster = inputs.get("clusterName", "cluster")
            rid = f"{cluster}:{inputs.get('nodeGroupName') or inputs.get('addonName') or physical}"
            return rid, {**inputs, "arn": f"arn:aws:eks:{region}:{acct}:{kind[0].lower() + kind[1:]}/{cluster}/{physical}", "status": "ACTIVE"}
        if module == "sagemaker":
            resource = {"Model": "model", "EndpointConfiguration": "endpoint-config", "Endpoint": "endpoint"}.get(kind, kind.lower())
            return physical, {**inputs, "arn": f"arn:aws:sagemaker:{region}:{acct}:{resource}/{physical.lower()}", "name": physical}
        if typ == "aws:appautoscaling/target:Target":
            return inputs.get("resourceId", physical), {**inputs, "arn": f"arn:aws:application-autoscaling:{region}:{acct}:scalable-target/{_hex(name, n=24)}"}
        if typ == "aws:appautoscaling/policy:Policy":
            return physical, {**inputs, "arn": f"arn:aws:autoscaling:{region}:{acct}:scalingPolicy:{_uuid(name)}:resource/{inputs.get('resourceId')}:policyName/{physical}", "name": physical}
        if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            url = str(inputs.get("url", "")).removeprefix("https://")
            arn = f"arn:aws:iam::{acct}:oidc-provider/{url}"
            return arn, {**inputs, "arn": arn}
        if typ in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
            return f"{inputs.get('role')}:{physical}", inputs
        if typ == "aws:ecr/repository:Repository":
            # The repository lives in the account's private registry; its URL is what `docker push` is given.
            return physical, {**inputs, "name": physical, "registryId": acct, "arn": f"arn:aws:ecr:{region}:{acct}:repository/{physical}",
                              "repositoryUrl": f"{acct}.dkr.ecr.{region}.amazonaws.com/{physical}"}
        if typ == "aws:s3/bucketV2:BucketV2" or typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or physical
            return bucket, {**inputs, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "region": region}
        # Everything else gets an ARN shaped like the service's own.
        rid = f"{kind.lower()}-{_hex(name, n=17)}"
        arn = f"arn:aws:{module}:{region}:{acct}:{kind.lower()}/{rid}"
        return rid, {**inputs, "arn": arn, "id": rid}

    def _gcp(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        project = inputs.get("project") or self.gcp_project
        if typ == "gcp:projects/serviceIdentity:ServiceIdentity":
            service = inputs["service"].split(".")[0]
            # Most agents are gcp-sa-<service>; a few older services keep their historical names.
            domain = {"container": "container-engine-robot", "compute": "compute-system"}.get(service, f"gcp-sa-{service}")
            email = f"service-{PROJECT_NUMBER}@{domain}.iam.gserviceaccount.com"
            return f"projects/{project}/services/{inputs['service']}", {**inputs, "project": project, "email": email,
                                                                          "member": f"serviceAccount:{email}"}
        if typ == "gcp:kms/keyRing:KeyRing":
            rid = f"projects/{project}/locations/{inputs['location']}/keyRings/{inputs['name']}"
            return rid, {**inputs, "project": project}
        if typ == "gcp:kms/cryptoKey:CryptoKey":
            rid = f"{inputs['keyRing']}/cryptoKeys/{inputs['name']}"
            return rid, inputs
        if typ == "gcp:secretmanager/secret:Secret":
            rid = f"projects/{project}/secrets/{inputs['secretId']}"
            return rid, {**inputs, "project": project, "name": f"projects/{PROJECT_NUMBER}/secrets/{inputs['secretId']}"}
        if typ == "gcp:secretmanager/secretVersion:SecretVersion":
            rid = f"{inputs['secret']}/versions/1"
            return rid, {**inputs, "name": rid, "version": "1"}
        if typ == "gcp:pubsub/topic:Topic":
            # The provider's id is the topic's full name, which budgets and subscriptions are given.
            rid = f"projects/{project}/topics/{inputs['name']}"
            return rid, {**inputs, "project": project, "id": rid}
        if typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            rid = f"projects/{project}/serviceAccounts/{email}"
            return rid, {**inputs, "project": project, "email": email, "name": rid, "member": f"serviceAccount:{email}",
                         "uniqueId": str(int(_hex(name, n=12), 16))}
        module, kind = typ.split(":")[1].split("/")[0], typ.split(":")[-1]
        physical = inputs.get("name") or f"{name}-{_hex(name, n=7)}"
        location = inputs.get("location") or inputs.get("region") or self.gcp_region
        if typ == "gcp:container/cluster:Cluster":
            rid = f"projects/{project}/locations/{location}/clusters/{physical}"
            private = (inputs.get("privateClusterConfig") or {}).get("enablePrivateEndpoint")
            return rid, {**inputs, "project": project, "name": physical, "id": rid, "selfLink": f"https://container.googleapis.com/v1/{rid}",
                         "endpoint": "10.0.0.2" if private else "34.118.0.2",
                         "masterAuth": {**(inputs.get("masterAuth") or {}),
                                        "clusterCaCertificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCnByZXZpZXcKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="},
                         "masterVersion": "1.33.5-gke.1000"}
        if module == "compute":
            scope = f"regions/{inputs['region']}" if inputs.get("region") else "global"
            collection = kind[0].lower() + kind[1:] + "s"
            rid = f"projects/{project}/{scope}/{collection}/{physical}"
            extra: dict[str, Any] = {"project": project, "name": physical, "id": rid,
                                     "selfLink": f"https://www.googleapis.com/compute/v1/{rid}"}
            if kind in ("Address", "GlobalAddress"):
                extra["address"] = inputs.get("address") or "10.0.250.10"
            if kind == "Subnetwork":
                extra["gatewayAddress"] = "10.0.0.1"
            return rid, {**inputs, **extra}
        if module == "vertex":
            rid = f"projects/{project}/locations/{location}/endpoints/{int(_hex(name, n=12), 16)}"
            outputs = {**inputs, "project": project, "id": rid, "name": rid.rsplit("/", 1)[-1],
                       "endpoint": rid.rsplit("/", 1)[-1], "location": location}
            psc = ((inputs.get("endpointConfig") or {}).get("privateServiceConnectConfig") or {})
            automation = psc.get("pscAutomationConfigs")
            if isinstance(automation, dict):
                # What PSC automation reports once it has made the forwarding rule (an address from the policy's subnet).
                fr = f"projects/{automation.get('projectId', project)}/regions/{location}/forwardingRules/sca-auto-fr-{_hex(name, n=8)}"
                outputs["endpointConfig"] = {**inputs["endpointConfig"], "privateServiceConnectConfig": {
                    **psc, "pscAutomationConfigs": {**automation, "ipAddress": "10.24.0.2", "state": "PSC_AUTOMATION_STATE_SUCCESSFUL",
                                                    "forwardingRule": f"https://www.googleapis.com/compute/v1/{fr}"}}}
            return rid, outputs
        if module == "networkconnectivity":
            rid = f"projects/{project}/locations/{location}/serviceConnectionPolicies/{physical}"
            return rid, {**inputs, "project": project, "name": physical, "id": rid}
        if module == "certificateauthority" and kind == "Authority":
            # A self-signed root: its chain is itself; the PEM is what clients are handed to trust.
            pool = f"projects/{project}/locations/{location}/caPools/{inputs['pool']}"
            rid = f"{pool}/certificateAuthorities/{inputs['certificateAuthorityId']}"
            pem = "-----BEGIN CERTIFICATE-----\npreview\n-----END CERTIFICATE-----\n"
            return rid, {**inputs, "project": project, "id": rid, "name": rid, "state": "ENABLED",
                         "pemCaCertificate": pem, "pemCaCertificates": [pem]}
        if module in ("certificateauthority", "certificatemanager") and "Iam" not in kind:
            # CaPool, CertificateIssuanceConfig, Certificate: ids are their full resource names.
            collection = kind[0].lower() + kind[1:] + "s"
            rid = f"projects/{project}/locations/{location}/{collection}/{physical}"
            return rid, {**inputs, "project": project, "name": physical, "id": rid}
        if typ == "gcp:dns/recordSet:RecordSet":
            rid = f"projects/{project}/managedZones/{inputs['managedZone']}/rrsets/{inputs['name']}/{inputs['type']}"
            return rid, {**inputs, "project": project, "id": rid}
        if module == "dns":
            rid = f"projects/{project}/managedZones/{physical}"
            return rid, {**inputs, "project": project, "name": physical, "id": rid}
        return f"{name}-id", {**inputs, "project": project}
