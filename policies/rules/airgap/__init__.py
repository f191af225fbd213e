"""Air-gap: an air-gapped stack has no path to the internet and pulls nothing from it."""


def require_airgapped(ctx) -> None:
    """Not applicable unless the stack's network is airgapped."""
    network = ctx.config["network"]
    if network != "airgapped":
        ctx.not_applicable(f"the stack's network is {network}; air-gap policies apply to airgapped stacks")
