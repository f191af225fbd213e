"""A regional GKE Standard control plane for GPU serving: private nodes, CMEK secrets, Workload Identity, Dataplane V2."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .gcp_kms_keys import GcpKmsKeys, GcpKmsKeysArgs

VARIANTS = ("public", "private", "airgapped")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
SYSTEM_COMPONENTS = ["SYSTEM_COMPONENTS"]
# Workload logs too: the model server's and gateway's stdout is what an incident is diagnosed from. Where they are
# kept (region, key, retention) is GcpLogBucket's job.
LOGGING_COMPONENTS = ["SYSTEM_COMPONENTS", "WORKLOADS"]
AUTH_PLUGIN = "gke-gcloud-auth-plugin"
GATEWAY_API_CHANNEL = "CHANNEL_STANDARD"  # the Gateway API's GA resources only, no experimental CRDs


@dataclass(frozen=True)
class GkeClusterArgs:
    stack: str
    region: str
    project: Optional[str]  # None = the provider's gcp:project
    variant: Literal["public", "private", "airgapped"]
    network: pulumi.Input[str]  # VPC self link
    subnetwork: pulumi.Input[str]  # the nodes' subnet in `region`, with the two secondary ranges below
    pods_range_name: pulumi.Input[str]
    services_range_name: pulumi.Input[str]
    master_ipv4_cidr: str = "172.16.0.0/28"  # the control plane's peered /28; must not overlap the VPC
    master_authorized_cidrs: list[str] = field(default_factory=list)  # public variant only; empty keeps the endpoint private
    release_channel: str = "REGULAR"
    # GKE's DNS-based control-plane endpoint (gke-<hash>.<region>.gke.goog): reachable from outside the VPC but only
    # with Google IAM credentials (every request is authorised by IAM before it reaches the API server), so a private
    # cluster can be deployed from a runner outside its VPC. Not for air-gapped stacks: nothing may enter from outside.
    dns_endpoint: bool = False
    protect: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: {self.variant!r} is not one of public, private, airgapped")
        if self.master_authorized_cidrs and self.variant != "public":
            raise ValueError(f"master_authorized_cidrs: a {self.variant} cluster has a private-only endpoint")
        if "0.0.0.0/0" in self.master_authorized_cidrs:
            raise ValueError("master_authorized_cidrs: 0.0.0.0/0 opens the API server to the internet; "
                             "name the CIDRs that need it")
        if self.dns_endpoint and self.variant == "airgapped":
            raise ValueError("dns_endpoint: an air-gapped cluster admits nothing from outside its VPC")
        if self.release_channel not in RELEASE_CHANNELS:
            raise ValueError(f"release_channel: {self.release_channel!r} is not one of {', '.join(RELEASE_CHANNELS)}")


class GkeCluster(pulumi.ComponentResource):
    workload_pool: pulumi.Output[str]  # the Workload Identity pool, `<project>.svc.id.goog`
    cluster_name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kms_key_id: pulumi.Output[str]  # also fit for the node pools' boot disks (same region)
    kubeconfig: pulumi.Output[str]  # a Pulumi secret
    provider: k8s.Provider

    def __init__(self, name: str, args: GkeClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmhost:index:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_name = f"llm-hosting-{args.stack.lower()}"
        project_id = pulumi.Output.from_input(args.project) if args.project else \
            gcp.organizations.get_project_output(opts=pulumi.InvokeOutputOptions(parent=self)).project_id
        # Application-layer secrets encryption: the GKE service agent wraps etcd's data keys with this key,
        # so it must hold the key (in the cluster's region) before the cluster is created.
        agent = gcp.projects.ServiceIdentity(f"{name}-gke-agent", service="container.googleapis.com",
                                             project=args.project, opts=child)
        keys = GcpKmsKeys(f"{name}-cmek", GcpKmsKeysArgs(
            key_ring=f"llm-hosting-{args.stack}-gke", key_name="gke", locations=[args.region],
            encrypter_members=[agent.member], project=args.project, protect=args.protect, labels=args.labels,
        ), opts=child)
        key_id = keys.key_ids[args.region]
        # The public variant gets a public endpoint only for the CIDRs named; without any it stays private.
        public = args.variant == "public" and bool(args.master_authorized_cidrs)
        cluster = gcp.container.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            project=args.project,
            location=args.region,  # regional: control plane and nodes replicated across the region's zones
            # Node pools are managed separately (GkeGpuNodePools); the default pool is only a creation requirement.
            remove_default_node_pool=True,
            initial_node_count=1,
            network=args.network,
            subnetwork=args.subnetwork,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=args.pods_range_name,
                services_secondary_range_name=args.services_range_name),
            # Nodes never get public IPs; the control plane is reached on its private endpoint unless public.
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True, enable_private_endpoint=not public,
                master_ipv4_cidr_block=args.master_ipv4_cidr),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=cidr, display_name=f"authorized-{i}")
                    for i, cidr in enumerate(args.master_authorized_cidrs if public else [])],
                gcp_public_cidrs_access_enabled=False),
            # No basic auth, no client certificate: only IAM (through gke-gcloud-auth-plugin) gets in.
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False)),
            enable_legacy_abac=False,
            control_plane_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigArgs(
                dns_endpoint_config=gcp.container.ClusterControlPlaneEndpointsConfigDnsEndpointConfigArgs(
                    allow_external_traffic=True)) if args.dns_endpoint else None,
            # Workloads get Google identities through Workload Identity, never the node's service account.
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=project_id.apply(lambda p: f"{p}.svc.id.goog")),
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(state="ENCRYPTED", key_name=key_id),
            enable_shielded_nodes=True,
            # Dataplane V2 (eBPF) enforces NetworkPolicy itself; the Calico network_policy addon must stay off.
            datapath_provider="ADVANCED_DATAPATH",
            # GKE's Gateway controller and the standard-channel Gateway API CRDs (Gateway, HTTPRoute, ReferenceGrant)
            # plus its policy CRDs: what a private HTTPS endpoint in the VPC (GcpPrivateEndpoint) is built from.
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel=GATEWAY_API_CHANNEL),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            logging_config=gcp.container.ClusterLoggingConfigArgs(enable_components=LOGGING_COMPONENTS),
            # Managed Service for Prometheus (managed collection): its collectors carry the in-cluster Prometheus's
            # firing alerts to Cloud Monitoring (GkeAlertForwarding), over the same API as the system metrics.
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=SYSTEM_COMPONENTS,
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=True)),
            resource_labels=args.labels,
            # GKE cost allocation: the bill itemises the cluster's costs by namespace and Kubernetes label (the
            # workloads, not only the nodes under them). The stack's budget (GcpBudget) filters on the stack's label,
            # which the resource labels above put on the nodes and disks GKE creates.
            cost_management_config=gcp.container.ClusterCostManagementConfigArgs(enabled=True),
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=keys.grants),
        )

        self.cluster_name = cluster.name
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.kms_key_id = key_id
        # `<project>.svc.id.goog` exists only once a cluster with Workload Identity does: IAM bindings on it take this
        # output (not a rebuilt string), so they are created after the cluster.
        self.workload_pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool if c else None)
        if args.dns_endpoint:
            # The deploy (this program's Kubernetes provider) goes through the DNS endpoint, whose certificate is
            # publicly trusted: no cluster CA in the kubeconfig.
            server = cluster.control_plane_endpoints_config.apply(
                lambda c: c.dns_endpoint_config.endpoint if c and c.dns_endpoint_config else None)
            self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(project_id, cluster.name, server).apply(
                lambda a: kubeconfig(a[0], args.region, a[1], a[2], None)))
        else:
            self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
                project_id, cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate,
            ).apply(lambda a: kubeconfig(a[0], args.region, a[1], a[2], a[3])))
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child)
        self.register_outputs({"cluster_name": self.cluster_name, "cluster_id": self.cluster_id,
                               "endpoint": self.endpoint, "kms_key_id": self.kms_key_id, "kubeconfig": self.kubeconfig,
                               "workload_pool": self.workload_pool})


def kubeconfig(project: str, region: str, cluster_name: str, endpoint: str, ca_data: Optional[str]) -> str:
    """A kubeconfig that gets short-lived tokens from `gke-gcloud-auth-plugin`: no static credentials in it."""
    context = f"gke_{project}_{region}_{cluster_name}"
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": f"https://{endpoint}",
                                                   **({"certificate-authority-data": ca_data} if ca_data else {})}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": AUTH_PLUGIN,
            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
            "provideClusterInfo": True}}}],
    })
