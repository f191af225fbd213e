"""The gateway's usage line, as both clouds' log-based metrics read it: one source for its field names.

For every successful completion the gateway prints one JSON object on a line of its own (serving/gateway_config.py
usage_record writes it). CloudWatch metric filters (aws_usage_metrics.py) and Cloud Logging metrics
(gcp_usage_metrics.py) select on the marker and read the fields below. Neither cloud's SDK is imported here, so a
stack of one cloud never loads the other's.
"""

from __future__ import annotations

import re

from serving.gateway_config import USAGE_MARK
from serving.usage import ALERT_CROSSOVER

USAGE_MARKER = USAGE_MARK  # = 1 on a usage line and on nothing else the gateway prints
ROUTE_FIELD = "route"
PROMPT_TOKENS_FIELD = "prompt_tokens"
COMPLETION_TOKENS_FIELD = "completion_tokens"
TOTAL_TOKENS_FIELD = "total_tokens"
USAGE_FIELDS = (USAGE_MARKER, ROUTE_FIELD, "upstream", "third_party", "consumer", PROMPT_TOKENS_FIELD,
                COMPLETION_TOKENS_FIELD, TOTAL_TOKENS_FIELD)

# The plan's crossover with the best API (spend.drift.crossover*), under the name the plan's report gives it.
ALARM_CROSSOVER = ALERT_CROSSOVER


def drift_days(duration: str) -> int:
    """Whole days of a Prometheus duration such as serving/usage.py DRIFT_FOR ("2d")."""
    m = re.fullmatch(r"(\d+)d", duration)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"{duration!r}: expected whole days, e.g. 2d")
    return int(m.group(1))
