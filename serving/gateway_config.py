"""The gateway's configuration, whatever runs it: the LiteLLM proxy config rendered from the stack's decision.

`render_config(routes)` is pure: it turns a `GatewayRoutes` (the upstreams in preference order, the hybrid pattern,
the consumers) into the LiteLLM proxy config (`config.yaml`) as a dict; `write_config_dir` writes it with the three
Python modules the proxy loads from beside it (the request guard, the consumer authentication and the usage log). A runtime
(serving/gateway_k8s.py, serving/gateway_ecs.py, serving/gateway_cloud_run.py) only ships that directory and fills the environment variables the
config names. The tests start the real proxy on exactly this config, with only the upstream addresses swapped.

Public model names (what clients send as `model`):

* `llm` - the general route. none / burst-overflow / tiered-by-complexity: the in-boundary tiers first (self-hosted,
  then managed), then the API provider as overflow when they fail, time out or are saturated. tiered-by-sensitivity:
  the API first (the planner sized the in-boundary fleet for the regulated share only), then the in-boundary tiers.
* `llm-sensitive` - tiered-by-sensitivity only: regulated traffic. Its model_list entry and its fallbacks name only
  in-boundary upstreams; `render_config` refuses any route that would put a third-party upstream on it, and
  `assert_no_third_party_route` checks the rendered config again. When every in-boundary upstream is down it fails
  closed (an error, never the API).
* `llm-frontier` - tiered-by-complexity only: the API provider's frontier model, no fallback (a smaller model's
  answer under a frontier name would hide the downgrade; clients that prefer an answer retry on `llm`).

`tier-<upstream>` groups are internal fallback targets; clients should not call them.

Hard edges, by construction:

* Keys are referenced as `os.environ/NAME` only; the names must start with `LLMHOST_` so LiteLLM's pass-through
  routes and provider defaults (which read well-known names such as OPENAI_API_KEY) never pick a key up implicitly.
* LiteLLM honours request-level routing (`fallbacks`, `router_settings_override`, comma-separated models in one
  call). A client could otherwise send `llm-sensitive` with `"fallbacks": ["llm"]` and reach the API. The rendered
  config therefore loads a request guard (`gateway_guard.py`, shipped beside config.yaml) that rejects such
  requests with HTTP 400 before routing; `assert_no_third_party_route` requires it to be loaded.
* Clients are consumers (application teams), each with its own key and its own request and token rate limits, and
  no database: `general_settings.custom_auth` loads `gateway_auth.py` (shipped beside config.yaml), which compares
  the presented key in constant time with each consumer's key from `LLMHOST_CONSUMER_<NAME>_KEY` and hands LiteLLM
  a UserAPIKeyAuth carrying a hash of the key, the consumer's name (key_alias) and its limits. LiteLLM's parallel
  request limiter enforces rpm_limit / tpm_limit on that object from its in-memory cache, so the limits hold per
  gateway replica: the rendered limit is ceil(limit / replicas). No key is ever in the config; rotating a consumer's
  key changes only its environment variable. The master key is the operators' (admin routes, the metrics scrape),
  never an application's; consumers reach only the model routes (CONSUMER_ROUTES).
* Retries never apply to timeouts or saturation (429): those go straight to the next tier, so a hung upstream costs
  one timeout, not several.
* Third-party upstreams carry request and token caps (`Upstream.rpm` / `tpm`, for the whole gateway; from the plan's
  `spend.apiRequestsPerMinute` / `apiTokensPerMinute`). LiteLLM's simple-shuffle only weighs deployments by rpm/tpm;
  the router enforces them only with `optional_pre_call_checks: [enforce_model_rate_limits]`, which counts each
  deployment's requests (before the call) and tokens (after each answer) per minute in the replica's memory and
  answers 429 past either. So the rendered config turns that check on and gives every deployment of a capped
  upstream its share: cap / (replicas x the upstream's deployments), rounded up. A request over the cap gets 429 or
  moves to the route's next tier, never to another third-party upstream the route does not name.
* Every successful completion prints one usage line on stdout (`gateway_usage.py`, shipped beside config.yaml):
  route, upstream, third_party, consumer and token counts, never the prompt or a key. The serverless runtimes turn
  it into cloud metrics.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union

import yaml

Kind = Literal["self-hosted", "managed", "api"]
Pattern = Literal["none", "burst-overflow", "tiered-by-sensitivity", "tiered-by-complexity"]

PUBLIC_MODEL = "llm"
SENSITIVE_MODEL = "llm-sensitive"
FRONTIER_MODEL = "llm-frontier"
FALLBACK_PREFIX = "tier-"
PATTERNS = ("none", "burst-overflow", "tiered-by-sensitivity", "tiered-by-complexity")

PORT = 4000
CONFIG_DIR = "/etc/litellm"
CONFIG_FILE = "config.yaml"
GUARD_FILE = "gateway_guard.py"
GUARD_CALLBACK = "gateway_guard.guard"  # <module beside config.yaml>.<instance>
METRICS_CALLBACK = "prometheus"  # LiteLLM's Prometheus integration: mounts /metrics on the proxy port
# LiteLLM mounts its metrics app at /metrics and answers that path with a 307 to /metrics/: scrape the final path.
METRICS_PATH = "/metrics/"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
AUTH_FILE = "gateway_auth.py"
AUTH_FUNCTION = "gateway_auth.user_api_key_auth"  # general_settings.custom_auth: <module beside config.yaml>.<function>
# Where config.yaml lists the consumers for gateway_auth.py (names, key variables, per-replica limits; never a key).
CONSUMERS_SETTING = "llmhost_consumers"
CONSUMER_KEY_ENV_PREFIX = "LLMHOST_CONSUMER_"
# What a consumer's key opens: the model routes only. Everything else (admin routes, /metrics, key management) takes
# the master key.
CONSUMER_ROUTES = ("/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions",
                   "/v1/embeddings", "/embeddings", "/v1/models", "/models")
OPERATOR_ALIAS = "operator"  # key_alias of requests made with the master key
USAGE_FILE = "gateway_usage.py"
USAGE_CALLBACK = "gateway_usage.usage"  # <module beside config.yaml>.<instance>
USAGE_MARK = "llmhost_usage"  # the key that marks a usage line among the proxy's other output
# LiteLLM's router check that enforces a deployment's rpm/tpm (simple-shuffle alone only uses them as weights).
API_CAP_CHECK = "enforce_model_rate_limits"
KEY_ENV_PATTERN = re.compile(r"^LLMHOST_[A-Z0-9_]+$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$")
CONSUMER_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
# Provider prefixes that reach their service without an api_base (the URL comes from region / endpoint name).
NO_API_BASE_PREFIXES = ("sagemaker_chat/", "sagemaker/", "bedrock/", "vertex_ai/")
SELF_HOSTED_PREFIXES = ("hosted_vllm/", "openai/")
CREDENTIAL_WORDS = ("key", "secret", "token", "password", "credential")
RESERVED_PARAMS = {"model", "api_base", "base_url", "api_key", "timeout", "max_parallel_requests", "rpm", "tpm"}

# What LiteLLM's enforce_model_rate_limits check says when a deployment is past its rpm or tpm. A request whose primary
# tier failed and whose fallback to a capped API was refused surfaces the primary's error (a 503 from a full engine),
# with this refusal only in the message; the guard turns that into the 429 it is.
API_CAP_REFUSAL = "Model rate limit exceeded."

# Request-level routing LiteLLM would honour; the guard rejects a request carrying any of them.
GUARDED_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "router_settings_override",
                  "default_fallbacks", "model_group_alias")
GUARDED_CONTAINERS = ("metadata", "litellm_metadata", "extra_body", "litellm_params")


def over_api_cap(error):
    """Whether a failed request was refused by an API route's spend cap (429 or not). Runs inside the proxy: stdlib only."""
    return API_CAP_REFUSAL in str(error)


def guard_violations(data):
    """The request-level routing in a request body (empty when it has none). Runs inside the proxy: stdlib only."""
    found = [f for f in GUARDED_FIELDS if f in data]
    for container in GUARDED_CONTAINERS:
        inner = data.get(container)
        if isinstance(inner, dict):
            found += [container + "." + f for f in GUARDED_FIELDS if f in inner]
    model = data.get("model")
    if isinstance(model, str) and "," in model:
        found.append("model (several model groups in one call)")
    return found


# The module the proxy loads from beside config.yaml (litellm_settings.callbacks: gateway_guard.guard). It carries
# guard_violations' own source, so the function the fast tests call is the one the proxy runs.
GUARD_SOURCE = f'''"""Rejects request-level routing, so the routes in config.yaml are the only routes (rendered by serving/gateway_config.py).

LiteLLM lets a request name its own fallbacks or router settings, and a comma-separated `model` fans one call out
to several groups. Either would let a caller move traffic onto an upstream its route excludes (regulated traffic
onto a third-party API), so both are refused with HTTP 400 before any routing happens.

A request refused by a third-party route's spend cap (config.yaml: the deployment's rpm/tpm) answers 429 with
Retry-After, also when the refusal came from the fallback and LiteLLM would report the primary tier's error.
"""

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

GUARDED_FIELDS = {GUARDED_FIELDS!r}
GUARDED_CONTAINERS = {GUARDED_CONTAINERS!r}
API_CAP_REFUSAL = {API_CAP_REFUSAL!r}


{inspect.getsource(guard_violations)}

{inspect.getsource(over_api_cap)}

class RouteGuard(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        found = guard_violations(data)
        if found:
            raise HTTPException(status_code=400, detail={{"error": "request-level routing is not allowed on this "
                                "gateway (" + ", ".join(found) + "); routes are fixed by the stack"}})
        return data

    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict,
                                           traceback_str=None):
        if over_api_cap(original_exception):
            return HTTPException(status_code=429, headers={{"retry-after": "60"}}, detail={{"error": "the route's "
                                 "third-party API is past the stack's spend cap for this minute (requests or tokens "
                                 "per minute); retry after the minute turns"}})
        return None


guard = RouteGuard()
'''


def identify(presented, keys):
    """The entry of `keys` ((alias, key) pairs) whose key is `presented`, or None. Runs inside the proxy: stdlib only.

    Every key is compared, in constant time, whatever matched before: the time taken says nothing about which key (or
    which prefix of one) came close. An empty key matches nothing."""
    import hmac
    given = (presented or "").encode()
    found = None
    for alias, key in keys:
        if hmac.compare_digest(given, (key or "").encode()) and given and key:
            found = alias
    return found


# The module general_settings.custom_auth loads from beside config.yaml. It replaces LiteLLM's own key check (which
# needs Postgres for anything but the master key), so it also admits the master key, as the operators' key.
AUTH_SOURCE = f'''"""Authenticates the gateway's consumers without a database (rendered by serving/gateway_config.py).

Each consumer's key comes from its own environment variable (named in config.yaml, {CONSUMERS_SETTING}); the presented
key is compared with every key in constant time. A consumer gets a UserAPIKeyAuth with a hash of its key (never the
key), its name as key_alias and its per-replica rpm/tpm limits, which LiteLLM's parallel request limiter enforces from
its in-memory cache. The master key is the operators': every route. A consumer's key opens the model routes only.
Anything else is refused with 401 (no or unknown key) or 403 (a consumer on an operator route).
"""

import hashlib
import os
from pathlib import Path

import yaml
from fastapi import HTTPException
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

MASTER_KEY_ENV = {MASTER_KEY_ENV!r}
CONSUMER_ROUTES = {CONSUMER_ROUTES!r}
OPERATOR_ALIAS = {OPERATOR_ALIAS!r}


{inspect.getsource(identify)}

def _load():
    config = yaml.safe_load((Path(__file__).resolve().parent / {CONFIG_FILE!r}).read_text())
    consumers = {{c["name"]: c for c in (config.get("general_settings") or {{}}).get({CONSUMERS_SETTING!r}) or []}}
    keys = [(OPERATOR_ALIAS, os.environ.get(MASTER_KEY_ENV, ""))]
    for name, c in consumers.items():
        key = os.environ.get(c["key_env"], "")
        if not key:  # fail at start, as a missing Secret would: never serve a consumer with an empty key
            raise RuntimeError("consumer " + name + ": " + c["key_env"] + " is not set")
        keys.append((name, key))
    return consumers, keys


CONSUMERS, KEYS = _load()


def _hash(key):
    return "llmhost-" + hashlib.sha256(key.encode()).hexdigest()


async def user_api_key_auth(request, api_key):
    key = api_key or ""
    if key[:7].lower() == "bearer ":
        key = key[7:]
    key = key.strip()
    alias = identify(key, KEYS)
    if alias is None:
        raise HTTPException(status_code=401, detail={{"error": "unknown or missing key"}})
    if alias == OPERATOR_ALIAS:
        return UserAPIKeyAuth(api_key=_hash(key), key_alias=OPERATOR_ALIAS, user_role=LitellmUserRoles.PROXY_ADMIN)
    if request.url.path.rstrip("/") not in CONSUMER_ROUTES:
        raise HTTPException(status_code=403, detail={{"error": "this key opens the model routes only"}})
    c = CONSUMERS[alias]
    return UserAPIKeyAuth(api_key=_hash(key), key_alias=alias, user_id=alias, user_role=LitellmUserRoles.INTERNAL_USER,
                          rpm_limit=c["rpm_limit"], tpm_limit=c["tpm_limit"])
'''


def usage_record(payload, requested, deployments):
    """The usage line's fields for one successful completion, or None when it is not one. Runs inside the proxy: stdlib only.

    `payload` is LiteLLM's standard logging payload, `requested` the model group the client sent (None if unknown: the
    group that served stands in), `deployments` model_info.id -> model_info from config.yaml. Only names and counts
    are copied: the payload also holds the messages and a hash of the key, and neither may reach the log."""
    if not isinstance(payload, dict) or payload.get("status", "success") != "success":
        return None
    info = deployments.get(payload.get("model_id")) or {}
    metadata = payload.get("metadata") or {}
    return {"llmhost_usage": 1,
            "route": requested if isinstance(requested, str) and requested else payload.get("model_group"),
            "upstream": info.get("upstream"),
            "third_party": info.get("third_party") is not False,  # an unlabelled deployment counts as third-party
            "consumer": metadata.get("user_api_key_alias"),
            "prompt_tokens": int(payload.get("prompt_tokens") or 0),
            "completion_tokens": int(payload.get("completion_tokens") or 0),
            "total_tokens": int(payload.get("total_tokens") or 0)}


# The module litellm_settings.callbacks loads from beside config.yaml. It carries usage_record's own source, so the
# function the fast tests call is the one the proxy runs.
USAGE_SOURCE = f'''"""Prints one usage line per successful completion on stdout (rendered by serving/gateway_config.py).

A JSON object on a line of its own, marked {USAGE_MARK!r}: the public route the client asked for, the upstream that
served it (model_info.upstream in {CONFIG_FILE}) and whether that is a third party, the consumer, and the token
counts. LiteLLM calls async_log_success_event once per request, for a stream once it has ended with the final usage.
The serverless runtimes turn these lines into cloud metrics; the cluster scrapes Prometheus instead. The prompt, the
answer and the keys are never written.
"""

import json
import sys
from pathlib import Path

import yaml
from litellm.integrations.custom_logger import CustomLogger


{inspect.getsource(usage_record)}

def _deployments():
    config = yaml.safe_load((Path(__file__).resolve().parent / {CONFIG_FILE!r}).read_text())
    return {{(e.get("model_info") or {{}}).get("id"): e.get("model_info") or {{}} for e in config.get("model_list") or []}}


DEPLOYMENTS = _deployments()


def _requested(kwargs):
    # The group in the client's request body: a fallback is served by a tier-<upstream> group, but the route the
    # consumer used is the public one it asked for. Only the model name is read from the body.
    for holder in (kwargs.get("litellm_params") or {{}}, kwargs):
        request = holder.get("proxy_server_request")
        if isinstance(request, dict) and isinstance(request.get("body"), dict):
            return request["body"].get("model")
    return None


class UsageLog(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        record = usage_record(kwargs.get("standard_logging_object"), _requested(kwargs), DEPLOYMENTS)
        if record is not None:
            sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\\n")
            sys.stdout.flush()


usage = UsageLog()
'''


def consumer_key_env(name: str) -> str:
    """The environment variable holding consumer `name`'s key: LLMHOST_CONSUMER_<NAME>_KEY ('-' becomes '_')."""
    return CONSUMER_KEY_ENV_PREFIX + name.upper().replace("-", "_") + "_KEY"


def per_replica_limit(limit: int, replicas: int) -> int:
    """Each replica counts in its own memory, so each admits its share, rounded up (never below the limit in total)."""
    return int(math.ceil(limit / replicas))


# -- routes ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upstream:
    """One tier behind the gateway. `model` is LiteLLM's model string, provider prefix included."""

    name: str  # short id: model_info.upstream and the fallback group tier-<name>
    kind: Kind
    model: str  # e.g. hosted_vllm/meta-llama/Llama-3.1-70B-Instruct, openai/llama-3.3-70b-versatile
    api_base: Optional[str]  # OpenAI-style base URL; None only for providers that derive it (sagemaker_chat/...)
    api_key_env: Optional[str]  # env var holding the key (LLMHOST_...); None for in-cluster / IAM-authenticated tiers
    timeout_seconds: float  # per attempt; past it the request moves to the next tier
    third_party: bool  # True when requests leave the stack's boundary (an API provider)
    max_parallel_requests: Optional[int] = None  # per gateway replica; beyond it requests overflow (429 -> next tier)
    params: Mapping[str, Any] = field(default_factory=dict)  # non-secret provider settings (aws_region_name, ...)
    # Spend caps on a third-party upstream, for the whole gateway (render_config splits them per replica): requests
    # and tokens (prompt + completion) per minute. Past either the upstream answers 429 until the minute turns.
    rpm: Optional[int] = None
    tpm: Optional[int] = None

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"upstream name {self.name!r}: use lowercase letters, digits and '-' (2-42 characters)")
        if self.kind not in ("self-hosted", "managed", "api"):
            raise ValueError(f"upstream {self.name}: kind {self.kind!r} is not one of self-hosted, managed, api")
        if self.kind == "api" and not self.third_party:
            raise ValueError(f"upstream {self.name}: an API provider is third-party; third_party must be True")
        if self.kind == "self-hosted" and self.third_party:
            raise ValueError(f"upstream {self.name}: a self-hosted model runs in the stack's boundary; third_party must be False")
        prefix, sep, rest = self.model.partition("/")
        if not sep or not prefix or not rest:
            raise ValueError(f"upstream {self.name}: model {self.model!r} needs LiteLLM's provider prefix, e.g. "
                             "hosted_vllm/<served-model-name> or openai/<model>")
        if self.kind == "self-hosted" and not self.model.startswith(SELF_HOSTED_PREFIXES):
            raise ValueError(f"upstream {self.name}: a self-hosted (vLLM/TGI) model uses the hosted_vllm/ or openai/ prefix")
        if self.api_base is None:
            if not self.model.startswith(NO_API_BASE_PREFIXES):
                raise ValueError(f"upstream {self.name}: api_base is required for {prefix}/ models")
        elif not re.match(r"^https?://[^\s/]+(/\S*)?$", self.api_base):
            raise ValueError(f"upstream {self.name}: api_base {self.api_base!r} is not an http(s) URL")
        elif self.third_party and not self.api_base.startswith("https://"):
            raise ValueError(f"upstream {self.name}: a third-party API is reached over https only (the key travels with it)")
        if self.api_key_env is not None and not KEY_ENV_PATTERN.match(self.api_key_env):
            raise ValueError(f"upstream {self.name}: api_key_env {self.api_key_env!r} must match LLMHOST_[A-Z0-9_]+ "
                             "(well-known names such as OPENAI_API_KEY are read implicitly by LiteLLM)")
        if self.model.startswith("openai/") and self.api_key_env is None:
            raise ValueError(f"upstream {self.name}: openai/ models need api_key_env (without one LiteLLM falls back to "
                             "OPENAI_API_KEY); use hosted_vllm/ for a keyless OpenAI-compatible server")
        if self.kind == "api" and self.api_key_env is None:
            raise ValueError(f"upstream {self.name}: an API provider needs api_key_env (the key is read from the environment)")
        if not (isinstance(self.timeout_seconds, (int, float)) and 0 < self.timeout_seconds <= 600):
            raise ValueError(f"upstream {self.name}: timeout_seconds {self.timeout_seconds!r} must be in (0, 600]")
        if self.max_parallel_requests is not None and self.max_parallel_requests < 1:
            raise ValueError(f"upstream {self.name}: max_parallel_requests must be at least 1")
        for what in ("rpm", "tpm"):
            value = getattr(self, what)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"upstream {self.name}: {what} must be a whole number of at least 1, not {value!r}")
            if not self.third_party:
                raise ValueError(f"upstream {self.name}: {what} caps spend on a third-party API; an in-boundary "
                                 "upstream is sized by its fleet (max_parallel_requests), not capped")
        for key, value in self.params.items():
            if key in RESERVED_PARAMS or any(w in key.lower() for w in CREDENTIAL_WORDS):
                raise ValueError(f"upstream {self.name}: params may not set {key!r} (credentials come from the "
                                 "environment; the other fields have their own arguments)")
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"upstream {self.name}: params[{key!r}] must be a string, number or boolean")

    @property
    def in_boundary(self) -> bool:
        return not self.third_party

    @property
    def capped(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True)
class Consumer:
    """An application calling the gateway with its own key and its own limits (for the whole gateway, all replicas)."""

    name: str  # a DNS label: its Secret's name and key_alias in logs and metrics
    requests_per_minute: int
    tokens_per_minute: int  # prompt + completion tokens, counted after each answer

    def __post_init__(self):
        if not isinstance(self.name, str) or not CONSUMER_NAME.match(self.name):
            raise ValueError(f"consumer name {self.name!r}: a DNS label (lowercase letters, digits, '-'; 1-40 characters)")
        for what in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"consumer {self.name}: {what} must be a whole number of at least 1, not {value!r}")

    @property
    def key_env(self) -> str:
        return consumer_key_env(self.name)


@dataclass(frozen=True)
class GatewayRoutes:
    """Which upstreams each public model name reaches, in order, and how failures are handled.

    `upstreams` are in preference order within their side of the boundary. `routes` (public name -> upstream names,
    first = primary, the rest = fallbacks in order) defaults to the pattern's routes (module docstring).
    """

    pattern: Pattern
    upstreams: tuple[Upstream, ...]
    routes: Optional[Mapping[str, tuple[str, ...]]] = None
    num_retries: int = 0  # retries of 5xx / connection errors on the same tier before falling back; never timeouts or 429s
    allowed_fails: int = 1  # failures per minute before a tier is cooled down (skipped)
    cooldown_seconds: int = 30  # how long a failing tier is skipped before it is tried again
    # Burst overflow: an in-boundary engine that is full refuses at once (vLLM 503 past --max-num-queued-reqs, TGI 429
    # past --max-concurrent-requests). Such a refusal sends that one request to the next tier and is not counted as a
    # failure, so the tier is never cooled down for being busy; errors, timeouts and refused connections still are.
    overflow_on_refusal: bool = False
    # Who may call the gateway. Empty only while routes are being planned: render_config refuses to deploy it.
    consumers: tuple[Consumer, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "upstreams", tuple(self.upstreams))
        object.__setattr__(self, "consumers", tuple(self.consumers))
        if self.routes is not None:
            object.__setattr__(self, "routes", {k: tuple(v) for k, v in self.routes.items()})
        _check_routes(self)

    def upstream(self, name: str) -> Upstream:
        for u in self.upstreams:
            if u.name == name:
                return u
        raise KeyError(name)

    @property
    def third_party_names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.upstreams if u.third_party)

    def resolved_routes(self) -> dict[str, tuple[str, ...]]:
        return dict(self.routes) if self.routes is not None else default_routes(self.pattern, self.upstreams)

    def sensitive_names(self) -> tuple[str, ...]:
        """Public names that must never reach a third-party upstream."""
        return (SENSITIVE_MODEL,) if SENSITIVE_MODEL in self.resolved_routes() else ()

    def with_api_bases(self, api_bases: Mapping[str, str]) -> "GatewayRoutes":
        return replace(self, upstreams=tuple(replace(u, api_base=api_bases.get(u.name, u.api_base)) for u in self.upstreams))


def default_routes(pattern: str, upstreams: Sequence[Upstream]) -> dict[str, tuple[str, ...]]:
    inside = tuple(u.name for u in upstreams if u.in_boundary)
    outside = tuple(u.name for u in upstreams if u.third_party)
    if pattern in ("none", "burst-overflow"):
        return {PUBLIC_MODEL: inside + outside}
    if pattern == "tiered-by-sensitivity":
        return {PUBLIC_MODEL: outside + inside, SENSITIVE_MODEL: inside}
    if pattern == "tiered-by-complexity":
        return {PUBLIC_MODEL: inside + outside, FRONTIER_MODEL: outside}
    raise ValueError(f"pattern {pattern!r} is not one of {', '.join(PATTERNS)}")


def _check_routes(routes: GatewayRoutes) -> None:
    """Every rule the rendered config relies on; run at construction and again by render_config."""
    if routes.pattern not in PATTERNS:
        raise ValueError(f"pattern {routes.pattern!r} is not one of {', '.join(PATTERNS)}")
    if not routes.upstreams:
        raise ValueError("a gateway needs at least one upstream")
    names = [u.name for u in routes.upstreams]
    if len(set(names)) != len(names):
        raise ValueError(f"upstream names repeat: {names}")
    if not all(isinstance(c, Consumer) for c in routes.consumers):
        raise ValueError("consumers: Consumer objects only")
    consumer_names = [c.name for c in routes.consumers]
    if len(set(consumer_names)) != len(consumer_names):
        raise ValueError(f"consumer names repeat: {consumer_names}")
    if not 0 <= routes.num_retries <= 2:
        raise ValueError(f"num_retries {routes.num_retries} must be 0-2 (each retry delays the fallback)")
    if not 1 <= routes.allowed_fails <= 100:
        raise ValueError(f"allowed_fails {routes.allowed_fails} must be 1-100")
    if not 1 <= routes.cooldown_seconds <= 3600:
        raise ValueError(f"cooldown_seconds {routes.cooldown_seconds} must be 1-3600")
    inside = [u for u in routes.upstreams if u.in_boundary]
    outside = [u for u in routes.upstreams if u.third_party]
    if routes.pattern != "none":
        if not inside:
            raise ValueError(f"a {routes.pattern} gateway needs an in-boundary upstream (self-hosted or managed)")
        if not outside:
            raise ValueError(f"a {routes.pattern} gateway needs a third-party API upstream besides the in-boundary ones")
    table = routes.resolved_routes()
    if PUBLIC_MODEL not in table:
        raise ValueError(f"the routes need the general name {PUBLIC_MODEL!r}")
    if routes.pattern == "tiered-by-sensitivity" and SENSITIVE_MODEL not in table:
        raise ValueError(f"a tiered-by-sensitivity gateway needs the route {SENSITIVE_MODEL!r} for regulated traffic")
    for public, chain in table.items():
        if not NAME_PATTERN.match(public) or public.startswith(FALLBACK_PREFIX):
            raise ValueError(f"public model name {public!r}: lowercase letters, digits and '-', not starting "
                             f"with {FALLBACK_PREFIX!r} (reserved for fallback groups)")
        if not chain:
            raise ValueError(f"route {public!r} has no upstream")
        if len(set(chain)) != len(chain):
            raise ValueError(f"route {public!r} names an upstream twice: {list(chain)}")
        for n in chain:
            if n not in names:
                raise ValueError(f"route {public!r} names unknown upstream {n!r} (known: {', '.join(names)})")
    for public in ((SENSITIVE_MODEL,) if SENSITIVE_MODEL in table else ()):
        leaking = [n for n in table[public] if routes.upstream(n).third_party]
        if leaking:
            raise ValueError(f"route {public!r} carries regulated traffic and may not reach third-party upstream(s) "
                             f"{', '.join(leaking)}; only in-boundary upstreams (self-hosted, managed) may serve it")


# -- rendering ---------------------------------------------------------------------------------------------------------

def _params(u: Upstream, shares: int = 1) -> dict[str, Any]:
    """litellm_params of one deployment of `u`; `shares`: how many deployments (over all replicas) split its caps."""
    p: dict[str, Any] = {"model": u.model}
    if u.api_base is not None:
        p["api_base"] = u.api_base
    if u.api_key_env is not None:
        p["api_key"] = f"os.environ/{u.api_key_env}"
    p["timeout"] = _number(u.timeout_seconds)
    if u.max_parallel_requests is not None:
        p["max_parallel_requests"] = u.max_parallel_requests
    if u.rpm is not None:
        p["rpm"] = per_replica_limit(u.rpm, shares)
    if u.tpm is not None:
        p["tpm"] = per_replica_limit(u.tpm, shares)
    p.update(dict(u.params))
    return p


# LiteLLM counts a deployment's failures per minute against allowed_fails_policy; no burst reaches this many refusals.
REFUSALS_NEVER_COOL_DOWN = 1_000_000_000


def _number(x: float) -> Union[int, float]:
    return int(x) if float(x).is_integer() else float(x)


def _entry(group: str, u: Upstream, shares: int = 1) -> dict[str, Any]:
    return {"model_name": group, "litellm_params": _params(u, shares),
            "model_info": {"id": f"{group}/{u.name}", "upstream": u.name, "kind": u.kind, "third_party": u.third_party}}


def render_config(routes: GatewayRoutes, replicas: int = 1) -> dict[str, Any]:
    """The LiteLLM proxy config for `routes` run by `replicas` proxies (raises ValueError for a route that breaks a rule).

    Consumer limits are counted by each replica in its own memory, so each gets ceil(limit / replicas); with the
    Service spreading requests evenly, the gateway as a whole admits the consumer's limit (rounded up). An upstream's
    caps are counted per deployment as well, so each of its deployments (one per group it serves, e.g. llm-frontier
    and the fallback tier-<name>) gets ceil(cap / (replicas x deployments))."""
    _check_routes(routes)  # again: a frozen dataclass can still be mutated through object.__setattr__
    if not routes.consumers:
        raise ValueError("consumers: a gateway needs at least one consumer (applications call it with their own key; "
                         "the master key is the operators')")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas {replicas!r} must be a whole number of at least 1")
    table = routes.resolved_routes()
    fallbacks: list[dict[str, list[str]]] = []
    groups: list[tuple[str, Upstream]] = []
    fallback_groups: dict[str, Upstream] = {}
    for public, chain in table.items():
        groups.append((public, routes.upstream(chain[0])))
        if len(chain) > 1:
            fallbacks.append({public: [FALLBACK_PREFIX + n for n in chain[1:]]})
            for n in chain[1:]:
                fallback_groups[FALLBACK_PREFIX + n] = routes.upstream(n)
    groups += fallback_groups.items()
    deployments = {u.name: sum(1 for _, v in groups if v.name == u.name) for u in routes.upstreams}
    model_list = [_entry(group, u, replicas * deployments[u.name]) for group, u in groups]
    longest = max(sum(routes.upstream(n).timeout_seconds for n in chain) for chain in table.values())
    router: dict[str, Any] = {
        "routing_strategy": "simple-shuffle",
        "fallbacks": fallbacks,
        "num_retries": routes.num_retries,
        "allowed_fails": routes.allowed_fails,
        "cooldown_time": routes.cooldown_seconds,
        "timeout": _number(max(u.timeout_seconds for u in routes.upstreams)),
    }
    if any(u.capped for u in routes.upstreams):
        router["optional_pre_call_checks"] = [API_CAP_CHECK]
    if routes.overflow_on_refusal:
        router["allowed_fails_policy"] = {"ServiceUnavailableErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN,
                                          "RateLimitErrorAllowedFails": REFUSALS_NEVER_COOL_DOWN}
    if routes.num_retries:
        # Retry only errors a second attempt can fix; a timeout or saturation goes straight to the next tier.
        router["retry_policy"] = {
            "TimeoutErrorRetries": 0, "RateLimitErrorRetries": 0, "BadRequestErrorRetries": 0,
            "AuthenticationErrorRetries": 0, "ContentPolicyViolationErrorRetries": 0, "NotFoundErrorRetries": 0,
            "InternalServerErrorRetries": routes.num_retries, "ServiceUnavailableErrorRetries": routes.num_retries}
    config = {
        "model_list": model_list,
        "router_settings": router,
        "litellm_settings": {
            "telemetry": False,
            "drop_params": True,
            # Token counting on the error path would otherwise fetch a tokenizer from the Hugging Face hub (and stall
            # ~23 s retrying where egress is blocked); the bundled tiktoken encoding is enough for a proxy.
            "disable_hf_tokenizer_download": True,
            # The request guard, the usage line on stdout (the serverless runtimes' metrics), and LiteLLM's Prometheus
            # metrics on the proxy port's /metrics: requests, tokens and fallbacks per route, read by the alerts and
            # the dashboard (serving/alerts.py).
            "callbacks": [GUARD_CALLBACK, USAGE_CALLBACK, METRICS_CALLBACK],
            # Whole-request budget: every tier of the longest route timing out once, plus slack.
            "request_timeout": int(math.ceil(longest * (1 + routes.num_retries))) + 10,
        },
        "general_settings": {
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
            "custom_auth": AUTH_FUNCTION,
            CONSUMERS_SETTING: [{"name": c.name, "key_env": c.key_env,
                                 "rpm_limit": per_replica_limit(c.requests_per_minute, replicas),
                                 "tpm_limit": per_replica_limit(c.tokens_per_minute, replicas)}
                                for c in routes.consumers],
        },
    }
    for public in routes.sensitive_names():
        assert_no_third_party_route(config, public, routes.third_party_names)
    return config


def render_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def write_config_dir(config: Mapping[str, Any], directory: Union[str, Path]) -> Path:
    """Write config.yaml and the modules it loads side by side (as the ConfigMap mounts them); returns config.yaml."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in config_files(config).items():
        (directory / name).write_text(source)
    return directory / CONFIG_FILE


def config_files(config: Mapping[str, Any]) -> dict[str, str]:
    """The files of the config directory by name: config.yaml, the guard, the consumer authentication, the usage log."""
    return {CONFIG_FILE: render_yaml(config), GUARD_FILE: GUARD_SOURCE, AUTH_FILE: AUTH_SOURCE, USAGE_FILE: USAGE_SOURCE}


def check_consumer_mapping(field_name: str, mapping: Mapping[str, Any], what: str = "key") -> None:
    """A runtime's consumer -> key (or secret) mapping: at least one consumer, each a DNS-label name with a value."""
    if not mapping:
        raise ValueError(f"{field_name}: at least one consumer (applications get their own keys, never the master key)")
    for consumer, value in mapping.items():
        if not isinstance(consumer, str) or not CONSUMER_NAME.match(consumer):
            raise ValueError(f"{field_name}: {consumer!r} is not a consumer name (a DNS label)")
        if value is None or value == "":
            raise ValueError(f"{field_name}: {consumer} has no {what}")


def check_keys(routes: GatewayRoutes, api_keys: Mapping[str, Any], consumer_keys: Mapping[str, Any]) -> None:
    """The keys a runtime deploys are exactly the ones the routes read: none missing, none deployed for nothing."""
    needed, given = set(key_envs(routes)), set(api_keys)
    if needed - given:
        raise ValueError(f"api_keys: missing {', '.join(sorted(needed - given))} (read by the routes' upstreams)")
    if given - needed:
        raise ValueError(f"api_keys: {', '.join(sorted(given - needed))} is not read by any upstream; deploy only keys in use")
    needed, given = {c.name for c in routes.consumers}, set(consumer_keys)
    if needed - given:
        raise ValueError(f"consumer_keys: missing {', '.join(sorted(needed - given))} (consumers in the routes)")
    if given - needed:
        raise ValueError(f"consumer_keys: {', '.join(sorted(given - needed))} is not a consumer in the routes "
                         "(a removed consumer's key goes with it)")


# -- runtimes without a config volume (ECS on Fargate, Cloud Run) --------------------------------------------------
# Kubernetes mounts the config directory from a ConfigMap. ECS task definitions and Cloud Run services have no such
# volume, and a custom image per stack would be one more thing to build, scan and mirror. So those runtimes override
# the image's entrypoint with this bootstrap, run by the image's own Python: it unpacks the same files (config.yaml,
# the guard, the consumer authentication, the usage log) from one environment variable into a writable directory and
# then becomes the `litellm` process. The files hold no key; the keys arrive as their own environment variables from the cloud's
# secret store. A consumer's secret is the JSON document its application reads (base_url, api_key, model): where the
# runtime cannot pick one field of it (Cloud Run), the bootstrap takes `api_key` from the document.
FILES_ENV = "LLMHOST_GATEWAY_FILES"
# The serverless runtimes' default size, also what the decision report prices (planner/report.py): two copies (the
# limits are rendered per copy), each an ECS task of 1 vCPU and 2 GiB or a Cloud Run instance of 2 vCPU and 2 GiB.
SERVERLESS_REPLICAS = 2
ECS_TASK_CPU_UNITS, ECS_TASK_MEMORY_MIB = 1024, 2048
CLOUD_RUN_CPU, CLOUD_RUN_MEMORY_GIB = 2, 2
# The proxy's plain environment on every runtime: no fetch of the price map or of tokenizers from the internet; the
# non-root layout, with the admin UI and assets copied to the writable /tmp instead of the read-only image.
PROXY_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "HOME": "/tmp", "LITELLM_NON_ROOT": "true",
             "LITELLM_UI_PATH": "/tmp/litellm/ui", "LITELLM_ASSETS_PATH": "/tmp/litellm/assets"}
RUNTIME_CONFIG_DIR = "/tmp/litellm-config"  # the only writable path: the root filesystem is read-only
BOOTSTRAP_SOURCE = f"""import base64, gzip, json, os, sys
files = json.loads(gzip.decompress(base64.b64decode(os.environ.pop({FILES_ENV!r}))))
directory = os.environ.get("LLMHOST_GATEWAY_DIR", {RUNTIME_CONFIG_DIR!r})
os.makedirs(directory, exist_ok=True)
for name, text in files.items():
    if os.path.basename(name) != name or name.startswith("."):
        sys.exit("gateway bootstrap: refusing file name %r" % name)
    with open(os.path.join(directory, name), "w") as handle:
        handle.write(text)
for env, value in list(os.environ.items()):
    if env.startswith({CONSUMER_KEY_ENV_PREFIX!r}) and value.lstrip().startswith("{{"):
        os.environ[env] = json.loads(value)["api_key"]
os.execvp("litellm", ["litellm", "--config", os.path.join(directory, {CONFIG_FILE!r}), "--port", {str(PORT)!r}])
"""
BOOTSTRAP_ENTRYPOINT = ("python", "-c", BOOTSTRAP_SOURCE)  # the container's entrypoint (ECS) / command (Cloud Run)


def packed_files(config: Mapping[str, Any]) -> str:
    """config_files(config) as the value of FILES_ENV: gzip'd JSON in base64 (a few KB; ECS and Cloud Run cap an
    environment at 32 KiB). Deterministic, so an unchanged config leaves the task definition or revision as it is."""
    data = json.dumps(config_files(config), sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(data, mtime=0)).decode()


def key_envs(routes: GatewayRoutes) -> tuple[str, ...]:
    """The environment variables the config reads provider keys from (besides the master key and consumer keys)."""
    return tuple(dict.fromkeys(u.api_key_env for u in routes.upstreams if u.api_key_env))


def consumer_key_envs(routes: GatewayRoutes) -> dict[str, str]:
    """Consumer name -> the environment variable gateway_auth.py reads its key from."""
    return {c.name: c.key_env for c in routes.consumers}


def _reachable_groups(config: Mapping[str, Any], public_name: str) -> set[str]:
    router = config.get("router_settings") or {}
    edges: dict[str, set[str]] = {}
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for item in router.get(key) or []:
            if isinstance(item, Mapping):
                for src, dsts in item.items():
                    edges.setdefault(src, set()).update(dsts or [])
    everywhere = set(router.get("default_fallbacks") or [])
    aliases = router.get("model_group_alias") or {}
    seen, todo = set(), [public_name]
    while todo:
        g = todo.pop()
        if g in seen:
            continue
        seen.add(g)
        alias = aliases.get(g)
        targets = set(edges.get(g, set())) | everywhere | ({alias if isinstance(alias, str) else alias.get("model")}
                                                            if alias else set())
        todo.extend(t for t in targets if t)
    return seen


def assert_no_third_party_route(config: Mapping[str, Any], public_name: str, third_party_names: Iterable[str]) -> None:
    """Raise AssertionError unless `public_name` can reach only in-boundary upstreams in the rendered `config`.

    Follows every way LiteLLM moves a request between groups (fallbacks of all kinds, default_fallbacks, group
    aliases, wildcard names) and requires the request guard, which closes request-level fallbacks. A model_list
    entry that does not say which upstream it is counts as third-party.
    """
    third = set(third_party_names)
    entries = list(config.get("model_list") or [])
    problems: list[str] = []
    if not any(e.get("model_name") == public_name for e in entries):
        problems.append(f"{public_name!r} is not in model_list")
    wildcards = [e.get("model_name") for e in entries if "*" in str(e.get("model_name", ""))]
    if wildcards:
        problems.append(f"wildcard model names {wildcards} could catch any request")
    router = config.get("router_settings") or {}
    if router.get("default_fallbacks"):
        problems.append(f"default_fallbacks {router['default_fallbacks']} apply to every group")
    groups = _reachable_groups(config, public_name)
    unknown = sorted(g for g in groups if not any(e.get("model_name") == g for e in entries) and g != public_name)
    if unknown:
        problems.append(f"fallback target(s) {unknown} are not in model_list (cannot be checked)")
    for e in entries:
        if e.get("model_name") not in groups:
            continue
        upstream = (e.get("model_info") or {}).get("upstream")
        if upstream is None or upstream in third or (e.get("model_info") or {}).get("third_party") is not False:
            problems.append(f"group {e.get('model_name')!r} (reachable from {public_name!r}) serves "
                            f"{'an unlabelled upstream' if upstream is None else 'third-party upstream ' + repr(upstream)}")
    callbacks = (config.get("litellm_settings") or {}).get("callbacks") or []
    if GUARD_CALLBACK not in callbacks:
        problems.append(f"the request guard {GUARD_CALLBACK!r} is not loaded, so request-level fallbacks could "
                        "move the request to any group")
    if (config.get("general_settings") or {}).get("allow_client_side_credentials"):
        problems.append("allow_client_side_credentials lets a request bring its own api_base")
    if problems:
        raise AssertionError(f"route {public_name!r} could leave the boundary: " + "; ".join(problems))


# -- routes from the stack -----------------------------------------------------------------------------------------------

def api_key_env_name(provider: str) -> str:
    return "LLMHOST_" + re.sub(r"[^A-Z0-9]+", "_", provider.upper()).strip("_") + "_API_KEY"


def self_hosted_upstream(model_id: str, service_url: str, timeout_seconds: float = 60.0,
                         max_parallel_requests: Optional[int] = None, name: str = "self-hosted") -> Upstream:
    """The in-cluster vLLM/TGI Service (OpenAI-compatible), e.g. http://vllm.llm-serving.svc.cluster.local:8000/v1."""
    return Upstream(name=name, kind="self-hosted", model=f"hosted_vllm/{model_id}", api_base=service_url,
                    api_key_env=None, timeout_seconds=timeout_seconds, third_party=False,
                    max_parallel_requests=max_parallel_requests)


def sagemaker_upstream(endpoint_name: str, region: str, timeout_seconds: float = 60.0, name: str = "managed") -> Upstream:
    """A SageMaker endpoint in the stack's account, signed with the gateway pod's IAM role (no key)."""
    return Upstream(name=name, kind="managed", model=f"sagemaker_chat/{endpoint_name}", api_base=None, api_key_env=None,
                    timeout_seconds=timeout_seconds, third_party=False, params={"aws_region_name": region})


def vertex_upstream(endpoint_url: str, endpoint_id: str, project: str, region: str, timeout_seconds: float = 60.0,
                    name: str = "managed") -> Upstream:
    """A Vertex AI dedicated endpoint (OpenAI-compatible route), called with the pod's Google identity (no key)."""
    return Upstream(name=name, kind="managed", model=f"vertex_ai/openai/{endpoint_id}", api_base=endpoint_url,
                    api_key_env=None, timeout_seconds=timeout_seconds, third_party=False,
                    params={"vertex_project": project, "vertex_location": region})


def api_upstream(provider: str, model: str, base_url: str, timeout_seconds: float = 60.0, name: Optional[str] = None,
                 rpm: Optional[int] = None, tpm: Optional[int] = None) -> Upstream:
    """An OpenAI-compatible API provider; its key is read from LLMHOST_<PROVIDER>_API_KEY. rpm/tpm: whole-gateway caps."""
    return Upstream(name=name or re.sub(r"[^a-z0-9]+", "-", provider.lower()).strip("-") or "api", kind="api",
                    model=f"openai/{model}", api_base=base_url, api_key_env=api_key_env_name(provider),
                    timeout_seconds=timeout_seconds, third_party=True, rpm=rpm, tpm=tpm)


def stack_routes(cfg: Any, self_hosted_url: Optional[str] = None, managed: Optional[Upstream] = None,
                 self_hosted_max_parallel: Optional[int] = None, timeout_seconds: float = 60.0,
                 num_retries: int = 0, allowed_fails: int = 1, cooldown_seconds: int = 30,
                 consumers: Sequence[Consumer] = ()) -> GatewayRoutes:
    """Routes for a `planner.stack_config.StackConfig`: its self-hosted model and/or managed endpoint, then its API.

    The API upstream carries the plan's caps (`spend.apiRequestsPerMinute` / `apiTokensPerMinute`); a stack without a
    spend section (written by hand) gets none."""
    upstreams: list[Upstream] = []
    if cfg.self_hosted is not None:
        if not self_hosted_url:
            raise ValueError("the stack has a selfHosted section; pass the in-cluster Service URL of its engine")
        upstreams.append(self_hosted_upstream(cfg.model.id, self_hosted_url, timeout_seconds, self_hosted_max_parallel))
    if managed is not None:
        upstreams.append(managed)
    if cfg.api is not None:
        spend = getattr(cfg, "spend", None)
        upstreams.append(api_upstream(cfg.api.provider, cfg.api.model, cfg.api.base_url, timeout_seconds,
                                      rpm=spend.api_requests_per_minute if spend is not None else None,
                                      tpm=spend.api_tokens_per_minute if spend is not None else None))
    return GatewayRoutes(pattern=cfg.pattern or "none", upstreams=tuple(upstreams), num_retries=num_retries,
                         allowed_fails=allowed_fails, cooldown_seconds=cooldown_seconds,
                         overflow_on_refusal=cfg.pattern == "burst-overflow", consumers=tuple(consumers))
