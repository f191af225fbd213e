"""BND-001: a confidential or regulated stack holds no third-party API key and routes nothing to such an API."""

from __future__ import annotations

import json
import re

from ...config import PROVIDER_HOSTS
from ...props import SECRET_MASK, UNKNOWN, host_matches, host_of_url, leaves
from ...rulekit import ResourceContext, Rule, resource_policy
from ...workloads import ECS_TASK, containers_of
from . import require_boundary

URL = re.compile(r"https?://[^\s\"'<>,;)\]]+", re.I)
# A key or a route for a named provider: `groq-api-key`, `OPENAI_API_KEY`, `ANTHROPIC_BASE_URL`, `openai token`.
PROVIDER_KEY = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(PROVIDER_HOSTS, key=len, reverse=True)) + r"|gemini)"
    r"[-_ ]?(?:api)?[-_ ]?(key|token|base[-_ ]?url|api[-_ ]?base)(?![A-Za-z0-9])", re.I)
# An environment variable named for a provider: `OPENAI_API_KEY`, `OPENAI_API_BASE_URLS`, `ANTHROPIC_BASE_URL`.
# Its name says which client library reads it, not where requests go: OpenAI-compatible clients are pointed at
# self-hosted servers (vLLM, TGI) through exactly these variables, so the value decides.
ENV_PROVIDER = re.compile(
    r"^(" + "|".join(sorted(PROVIDER_HOSTS, key=len, reverse=True)) + r"|gemini)(?![a-z])", re.I)
ENV_ROUTE = re.compile(r"(base|url|host|endpoint)", re.I)
ENV_KEY = re.compile(r"(key|token)", re.I)
BARE_HOST = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d+)?(/\S*)?$", re.I)

RULE = Rule(
    id="BND-001-no-third-party-api",
    title="No third-party API key or route in a confidential or regulated stack",
    area="boundary",
    description="A confidential or regulated stack stores no key for a third-party LLM API and names no such API "
                "as a destination (secret, environment, configuration); an environment variable counts by where it "
                "points, not by its name.",
    checks="Every resource's literal string inputs (secret names and descriptions, Secret Manager annotations, "
           "container environment and arguments, configuration data): a URL whose host is a third-party LLM API "
           "(`apiHosts`: openai.com, anthropic.com, groq.com, ...) or a key/route named for one (`groq-api-key`, "
           "`ANTHROPIC_BASE_URL`). Container environment variables are judged by destination: a provider-named route "
           "variable (`OPENAI_API_BASE_URLS`) is fine when its value is a host of the stack (an in-cluster vLLM), and a "
           "provider-named key variable only counts when no such route points the client elsewhere, since the client "
           "then calls the provider. Hosts in `sanctionedApiHosts` pass: only a tiered-by-sensitivity "
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


def _destination(value: str) -> str | None:
    """The host a route variable's value points at: the first URL's host, or a bare `host[:port][/path]`."""
    urls = URL.findall(value)
    if urls:
        return host_of_url(urls[0])
    m = BARE_HOST.match(value.strip())
    return m.group(1).lower() if m else None


def _environment_names(ctx: ResourceContext, classification: str, hosts, sanctioned) -> set[str]:
    """Judge the workload's provider-named environment variables by destination; return their names' paths, which
    the literal scan then leaves alone (their values are still scanned for third-party URLs)."""
    names: set[str] = set()
    for c in containers_of(ctx.type, ctx.props):
        keys: dict[str, str] = {}  # provider -> the first key variable's path
        routed: dict[str, bool] = {}  # provider -> a route variable points the client somewhere known
        for e in c.env:
            if not isinstance(e.name, str):
                continue
            m = ENV_PROVIDER.match(e.name)
            if not m:
                continue
            names.add(f"{e.path}.name")
            provider = "google" if m.group(1).lower() == "gemini" else m.group(1).lower()
            rest = e.name[m.end():]
            if ENV_ROUTE.search(rest):
                if e.from_reference or e.value is UNKNOWN:
                    ctx.cannot_verify(e.path, f"where {e.name} points")
                    routed[provider] = True
                elif isinstance(e.value, str) and e.value != SECRET_MASK:
                    host = _destination(e.value)
                    # A third-party host here is reported by the URL scan of the value itself.
                    routed[provider] = routed.get(provider, False) or bool(host)
            elif ENV_KEY.search(rest):
                keys.setdefault(provider, f"{e.path}.name")
        for provider, path in keys.items():
            provider_hosts = PROVIDER_HOSTS.get(provider, ())
            if routed.get(provider) or (provider_hosts and all(host_matches(h, sanctioned) for h in provider_hosts)):
                continue
            if provider_hosts and not any(host_matches(h, hosts) for h in provider_hosts):
                continue  # the provider's host is not a third-party API host of this pack's config
            ctx.violation(f"{path} holds a key for the third-party API provider {provider} and no variable points "
                          f"its client elsewhere, so it calls {provider_hosts[0] if provider_hosts else provider}; "
                          f"{classification} data may not be sent outside the boundary")
    return names


def _literals(ctx: ResourceContext):
    """Every literal string input, with an ECS task's container definitions (a JSON string) opened up."""
    for path, value in leaves(ctx.props):
        if ctx.type == ECS_TASK and path == "containerDefinitions" and isinstance(value, str):
            try:
                yield from leaves(json.loads(value), "containerDefinitions")
                continue
            except ValueError:
                pass
        yield path, value


def check(ctx: ResourceContext) -> None:
    classification = require_boundary(ctx)
    hosts = ctx.config["apiHosts"]
    sanctioned = ctx.config["sanctionedApiHosts"]
    env_names = _environment_names(ctx, classification, hosts, sanctioned)
    hosts_seen: set[str] = set()
    providers_seen: set[str] = set()
    for path, value in _literals(ctx):
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
        if path in env_names:
            continue  # judged by destination above
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
