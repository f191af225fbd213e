"""BND-001: a confidential or regulated stack holds no third-party API key and routes nothing to such an API."""

from __future__ import annotations

import re

from ...config import PROVIDER_HOSTS
from ...props import SECRET_MASK, host_matches, host_of_url, leaves
from ...rulekit import ResourceContext, Rule, resource_policy
from . import require_boundary

URL = re.compile(r"https?://[^\s\"'<>,;)\]]+", re.I)
# A key or a route for a named provider: `groq-api-key`, `OPENAI_API_KEY`, `ANTHROPIC_BASE_URL`, `openai token`.
PROVIDER_KEY = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(PROVIDER_HOSTS, key=len, reverse=True)) + r"|gemini)"
    r"[-_ ]?(?:api)?[-_ ]?(key|token|base[-_ ]?url|api[-_ ]?base)(?![A-Za-z0-9])", re.I)

RULE = Rule(
    id="BND-001-no-third-party-api",
    title="No third-party API key or route in a confidential or regulated stack",
    area="boundary",
    description="A confidential or regulated stack stores no key for a third-party LLM API and names no such API "
                "as a destination (secret, environment, configuration).",
    checks="Every resource's literal string inputs (secret names and descriptions, Secret Manager annotations, "
           "container environment and arguments, configuration data): a URL whose host is a third-party LLM API "
           "(`apiHosts`: openai.com, anthropic.com, groq.com, ...) or a key/route named for one (`groq-api-key`, "
           "`OPENAI_API_KEY`, `ANTHROPIC_BASE_URL`). Hosts in `sanctionedApiHosts` pass: only a tiered-by-sensitivity "
           "hybrid has one, whose gateway keeps boundary traffic on the self-hosted tier.",
    why="Prompts and completions sent to a third-party API leave the organisation's boundary: the provider becomes "
        "a processor (GDPR art. 28) or business associate (HIPAA) and may store or process them outside the allowed "
        "regions. A stored key is the means of doing so.",
    severity="critical",
    controls=("GDPR art. 28", "GDPR art. 44", "HIPAA 164.308(b)(1)", "FedRAMP SA-9", "FedRAMP SC-7"),
    remediation="Serve the model inside the boundary (managed or self-hosted tier); remove the API secret and any "
                "route to the API. If only non-sensitive traffic may use the API, plan a tiered-by-sensitivity hybrid "
                "so the gateway enforces the split and the plan sanctions the host.",
    applies_to=("all resources (secrets, workloads, endpoints, configuration)",),
    limits="Only literal values are read: a URL computed from another resource's output at run time is not seen.",
)


def check(ctx: ResourceContext) -> None:
    classification = require_boundary(ctx)
    hosts = ctx.config["apiHosts"]
    sanctioned = ctx.config["sanctionedApiHosts"]
    hosts_seen: set[str] = set()
    providers_seen: set[str] = set()
    for path, value in leaves(ctx.props):
        if not isinstance(value, str) or value == SECRET_MASK:
            continue
        for url in URL.findall(value):
            host = host_of_url(url)
            if not host or host in hosts_seen or not host_matches(host, hosts) or host_matches(host, sanctioned):
                continue
            if any(host_matches(host, PROVIDER_HOSTS.get(p, ())) for p in providers_seen):
                continue  # already reported through the provider's key or route
            hosts_seen.add(host)
            ctx.violation(f"{path} names the third-party API {host}; {classification} data may not be sent "
                          "outside the boundary")
        for m in PROVIDER_KEY.finditer(value):
            provider = m.group(1).lower()
            provider = "google" if provider == "gemini" else provider
            provider_hosts = PROVIDER_HOSTS.get(provider, ())
            if provider in providers_seen or any(host_matches(h, provider_hosts) for h in hosts_seen):
                continue
            if provider_hosts and all(host_matches(h, sanctioned) for h in provider_hosts):
                continue
            providers_seen.add(provider)
            ctx.violation(f"{path} holds {m.group(0)!r}, a key or route for the third-party API provider {provider}; "
                          f"{classification} data may not be sent outside the boundary")


POLICY = resource_policy(RULE, check)
