"""llm-hosting: read the stack config once, build the tier it names, export the output contract.

Where does a resource come from? The tier's component, chosen below. What to build comes from
`stacks/Pulumi.<stack>.yaml`, which `llmhost plan` writes from a workload profile.
"""

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from components.aws_api_key_secret import AwsApiKeySecret, AwsApiKeySecretArgs
from components.contract import aws_tags, gcp_labels
from components.gcp_api_key_secret import GcpApiKeySecret, GcpApiKeySecretArgs
from planner.errors import InputError
from planner.stack_config import StackConfig, load_stack_config

stack = pulumi.get_stack()
try:
    # The engine hands the program its whole config map; the strict loader rejects unknown keys in it.
    cfg: StackConfig = load_stack_config({**get_config_env(), **CONFIG.get()}, f"stacks/Pulumi.{stack}.yaml")
except InputError as exc:
    raise pulumi.RunError(exc.render()) from None


def build_api(cfg: StackConfig):
    api = cfg.api
    key = pulumi.Config().require_secret(api.api_key_config)
    if cfg.cloud == "aws":
        return AwsApiKeySecret("api-key", AwsApiKeySecretArgs(
            stack=stack, provider=api.provider, model=api.model, base_url=api.base_url, api_key=key,
            region=cfg.region, replica_regions=api.replica_regions, consumer_role_name=api.consumer_role_name,
            protect=cfg.protect, tags=aws_tags(stack, cfg.tier, cfg.residency.classification)))
    return GcpApiKeySecret("api-key", GcpApiKeySecretArgs(
        stack=stack, provider=api.provider, model=api.model, base_url=api.base_url, api_key=key,
        locations=[cfg.region, *api.replica_regions], project=cfg.gcp_project, consumer_member=api.consumer_member,
        protect=cfg.protect, labels=gcp_labels(stack, cfg.tier, cfg.residency.classification)))


BUILDERS = {"api": build_api}

if cfg.tier not in BUILDERS:
    raise pulumi.RunError(
        f"stacks/Pulumi.{stack}.yaml: llm-hosting:tier: tier {cfg.tier!r} ({cfg.cloud}) is not built by this version of "
        f"the kit yet; tiers built: {', '.join(BUILDERS)}")

tier = BUILDERS[cfg.tier](cfg)
tier.contract.export()
