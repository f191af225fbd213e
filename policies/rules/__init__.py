"""Every rule of the pack, in catalogue order: one file per rule under rules/<area>/.

`RULES` (the metadata a reviewer reads) and `POLICIES` (the pulumi-policy objects the pack runs) come from the
same modules, so the catalogue, the pack and the offline engine cannot disagree.
"""

from __future__ import annotations

from .airgap import hub_offline_serving, no_internet_gateways, no_internet_routes, private_registry_images
from .baseline import (control_plane_audit_logs, imdsv2_nodes, no_full_access_policies, no_open_ingress,
                       no_plaintext_secret_env, no_public_bucket_policy, no_public_ips, protect_stateful)
from .boundary import (no_nodeport_services, no_public_load_balancer, no_third_party_api, private_cluster_endpoint,
                       sagemaker_network_isolation, vertex_private_service_connect)
from .encryption import (cmk_buckets, cmk_cluster_secrets, cmk_endpoints, cmk_log_groups, cmk_registries, cmk_secrets,
                         cmk_volumes, key_deletion_window, key_rotation, tls_listeners)
from .links import (endpoint_reachable, metric_sources, model_fits_gpu, node_pools_scaled, pods_schedulable, replicas_fit,
                    rollout_wait)
from .residency import provider_region, region_allowlist

MODULES = (
    region_allowlist, provider_region,
    no_third_party_api, private_cluster_endpoint, no_public_load_balancer, sagemaker_network_isolation,
    vertex_private_service_connect, no_nodeport_services,
    no_internet_gateways, no_internet_routes, private_registry_images, hub_offline_serving,
    cmk_secrets, cmk_volumes, cmk_buckets, cmk_log_groups, cmk_endpoints, cmk_cluster_secrets, key_rotation,
    key_deletion_window, tls_listeners, cmk_registries,
    no_full_access_policies, imdsv2_nodes, no_plaintext_secret_env, protect_stateful,
    no_open_ingress, no_public_bucket_policy, no_public_ips, control_plane_audit_logs,
    pods_schedulable, replicas_fit, node_pools_scaled, metric_sources, model_fits_gpu, rollout_wait, endpoint_reachable,
)
RULES = [m.RULE for m in MODULES]
POLICIES = [m.POLICY for m in MODULES]
BY_ID = {m.RULE.id: m for m in MODULES}
