"""Answers the program's invokes and resource registrations with realistic values.

An invoke this module does not know raises instead of returning None, so a new data-source call in the program
cannot silently turn into empty values (a known trap of Pulumi mocks).
"""

from __future__ import annotations

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
        if token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId") or self.gcp_project
            return {"projectId": project, "number": PROJECT_NUMBER, "name": project, "id": f"projects/{project}"}, []
        if token == "gcp:compute/getZones:getZones":
            r = args.args.get("region") or self.gcp_region
            return {"names": self.zones.get(r, []), "region": r, "project": self.gcp_project, "id": f"projects/{self.gcp_project}/regions/{r}"}, []
        raise NotImplementedError(f"the offline preview has no answer for invoke {token}; add one in preview/mocks.py")

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
        # Everything else gets an ARN shaped like the service's own.
        rid = f"{kind.lower()}-{_hex(name, n=17)}"
        arn = f"arn:aws:{module}:{region}:{acct}:{kind.lower()}/{rid}"
        return rid, {**inputs, "arn": arn, "id": rid}

    def _gcp(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        project = inputs.get("project") or self.gcp_project
        if typ == "gcp:projects/serviceIdentity:ServiceIdentity":
            service = inputs["service"].split(".")[0]
            email = f"service-{PROJECT_NUMBER}@gcp-sa-{service}.iam.gserviceaccount.com"
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
        if typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            return f"projects/{project}/serviceAccounts/{email}", {**inputs, "project": project, "email": email,
                                                                   "member": f"serviceAccount:{email}",
                                                                   "uniqueId": str(int(_hex(name, n=12), 16))}
        return f"{name}-id", {**inputs, "project": project}
