"""The CrossGuard entry point: builds the PolicyPack from the rules and their config schemas, nothing else.

Constructing PolicyPack starts the analyzer's gRPC server and blocks, so the policies live in rules/ and this
file only assembles them. The pack runner executes this file with the pack directory on sys.path but not as a
package; the directory is loaded as the package `llmhost_policy_pack` so the rules' relative imports work
whatever the directory is called. Nothing is printed here: the runner reads the server's port from stdout.
"""

import importlib.util
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

_HERE = Path(__file__).resolve().parent
_PACKAGE = "llmhost_policy_pack"
if _PACKAGE not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_PACKAGE, _HERE / "__init__.py", submodule_search_locations=[str(_HERE)])
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_PACKAGE] = _module
    _spec.loader.exec_module(_module)

from llmhost_policy_pack.rules import POLICIES  # noqa: E402
from llmhost_policy_pack.rulekit import AREAS, PACK_NAME  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="llm-hosting: " + "; ".join(AREAS.values()),
    display_name="llm-hosting residency, security and stack links",
    provider="aws, gcp, kubernetes",
    tags=list(AREAS),
    readme="Catalogue, config and exceptions process: docs/policies.md (or `llmhost policies`).",
)
