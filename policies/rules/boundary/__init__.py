"""Boundary: confidential and regulated data never leaves the private network or goes to a third-party API."""

from ...config import BOUNDARY_CLASSIFICATIONS


def require_boundary(ctx) -> str:
    """The stack's classification; not applicable unless it is confidential or regulated."""
    classification = ctx.config["classification"]
    if classification not in BOUNDARY_CLASSIFICATIONS:
        ctx.not_applicable(f"the stack's classification is {classification}; boundary policies apply to "
                           f"{' and '.join(BOUNDARY_CLASSIFICATIONS)} data")
    return classification
