"""`llmhost`: plan a stack from a workload profile, and preview it offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click
from rich.console import Console
from rich.table import Table

from .errors import InputError, refuse

PROJECT_FILE = "Pulumi.yaml"


def find_project_dir(start: Optional[Path] = None) -> Path:
    """The directory holding the llm-hosting Pulumi.yaml: the given one, or the first above the cwd."""
    if start is not None:
        if not (start / PROJECT_FILE).exists():
            raise refuse(start / PROJECT_FILE, "", "not found: --project-dir must hold the llm-hosting Pulumi.yaml")
        return start
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / PROJECT_FILE).exists():
            return d
    raise refuse(here, "", f"no {PROJECT_FILE} here or above; run llmhost inside the llm-hosting project or pass --project-dir")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


class _Group(click.Group):
    """Bad input exits 2 with the message only: no traceback for a user's mistake."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc.render()}".replace("\n", "\nerror: "), err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Decide where to host an LLM, write the Pulumi stack for it, and preview it offline."""


@main.command()
@click.argument("profile", type=click.Path(path_type=Path))
@click.option("--stack", "stack", help="stack name: writes stacks/Pulumi.<stack>.yaml (default: the profile's name)")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), help="your own catalog YAML instead of planner/catalog.yaml")
@click.option("--json", "as_json", is_flag=True, help="print the decision as JSON instead of a table")
@click.option("--force", is_flag=True, help="overwrite a stack file that was edited by hand")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
def plan(profile: Path, stack: Optional[str], catalog_path: Optional[Path], as_json: bool, force: bool,
         project_dir: Optional[Path]) -> None:
    """Plan PROFILE: recommend a tier, and write its stack config, policy config and decision report."""
    from .catalog import load_catalog
    from .profile import load_profile
    from .rules import decide
    from .stackgen import write_stack

    root = find_project_dir(project_dir)
    catalog = load_catalog(catalog_path)
    prof = load_profile(profile)
    profile_ref = _rel(profile, root)
    # The catalog as given (relative to the cwd): the stack checks `decide` applies to each candidate read it.
    decision = decide(prof, catalog, profile_ref, str(catalog_path) if catalog_path else None)
    name = stack or prof.name
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise refuse(profile, "--stack", f"{name!r} is not a valid stack name (letters, digits, -, _ and . only)")
    files = write_stack(decision, name, root / "stacks", profile_ref, catalog, force=force,
                        catalog_path=_rel(catalog_path, root) if catalog_path else None)
    warning = files.config.deploy_warning()
    if warning:
        click.echo(f"warning: {_rel(files.stack_file, root)}: {warning}", err=True)
    if files.config.cloud == "gcp" and not prof.gcp_billing_account:
        click.echo(f"warning: {_rel(profile, root)}: gcp_billing_account is not set, so the stack gets no budget; set it "
                   "to the Cloud Billing account (XXXXXX-XXXXXX-XXXXXX) and re-plan", err=True)
    if as_json:
        click.echo(json.dumps({**decision.as_dict(), "stack": name,
                               "spend": files.config.spend.model_dump(by_alias=True, mode="json"),
                               "horizon": {"months": files.horizon.months, "monthly_cost_usd": files.horizon.series,
                                           "chosen": files.horizon.chosen},
                               "files": [_rel(f, root) for f in (files.stack_file, files.policy_file, files.report_file,
                                                                 files.chart_file)]},
                              indent=2))
        return
    _print_summary(decision, name, files, root)


def _print_summary(decision, name, files, root) -> None:
    console = Console(width=140)
    c = decision.chosen
    head = f"[bold]{name}[/bold]: {c.tier}" + (f" ({c.pattern})" if c.pattern else "") + \
           f", network {decision.network}, {decision.profile.cloud} {c.region} — {c.label}"
    console.print(head)
    table = Table(show_lines=False)
    for col in ("tier", "option", "$/month all-in", "feasible", "why not"):
        table.add_column(col, overflow="fold")
    for x in decision.candidates:
        cost = "n/a" if x.monthly_cost_usd is None else f"{x.monthly_cost_usd:,.0f}"
        why = "chosen" if x is c else "; ".join(r for r in x.reasons if not r.startswith("C1")) or \
            next((r for r in x.reasons if r.startswith("C1")), "")
        table.add_row(x.tier, x.label, cost, "yes" if x.feasible else "no", why)
    console.print(table)
    console.print(f"revisit: {decision.revisit}")
    if files.horizon is not None and files.horizon.series:
        from .spend import horizon_table

        header, rows = horizon_table(files.horizon)
        horizon = Table(title="all-in $/month along the growth horizon (months from today)")
        for col in header:
            horizon.add_column(col, overflow="fold", justify="left" if col == "chosen" else "right")
        for row in rows:
            horizon.add_row(*row)
        console.print(horizon)
    for f in (files.stack_file, files.policy_file, files.report_file, files.chart_file):
        console.print(f"wrote {_rel(f, root)}")


def _serving(c) -> str:
    if c.plan is None:
        return "-"
    o, f = c.plan.option, c.plan.fleet
    return f"{o.instance.instance_type} x{f.replicas} ({o.fit.gpu})"


def _stack_summary(cfg) -> dict[str, str]:
    """What a stack runs, as the re-plan compares it: from its stack file (what is deployed, or about to be)."""
    fleet = cfg.self_hosted or cfg.managed
    serving = "-" if fleet is None else f"{fleet.instance_type} x{fleet.max_replicas} ({fleet.gpu})"
    cost = "n/a (planned before llmhost recorded it)" if cfg.spend is None else f"${cfg.spend.planned_monthly_usd:,.0f}"
    api = f"{cfg.api.provider} {cfg.api.model}" if cfg.api else "-"
    return {"tier": cfg.tier, "pattern": cfg.pattern or "-", "serving": serving, "api": api, "monthly cost all-in": cost}


def _decision_summary(d) -> dict[str, str]:
    c = d.chosen
    return {"tier": c.tier, "pattern": c.pattern or "-", "serving": _serving(c),
            "api": f"{c.api.provider} {c.api.model}" if c.api else "-", "monthly cost all-in": f"${c.monthly_cost_usd:,.0f}"}


@main.command()
@click.argument("profile", type=click.Path(path_type=Path))
@click.argument("usage", type=click.Path(path_type=Path))
@click.option("--stack", "stack", help="the stack planned from PROFILE (default: the profile's name)")
@click.option("--write", is_flag=True, help="write the re-planned stack files (without it nothing is written)")
@click.option("--force", is_flag=True, help="with --write: overwrite a stack file that was edited by hand")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), help="your own catalog YAML instead of planner/catalog.yaml")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
def replan(profile: Path, usage: Path, stack: Optional[str], write: bool, force: bool, catalog_path: Optional[Path],
           project_dir: Optional[Path]) -> None:
    """Re-run the decision for PROFILE on the traffic observed in USAGE, and show what would change.

    USAGE holds daily requests and tokens per traffic class and the peak-to-average ratio (README, "Re-planning from
    observed usage"). Prints the stack's tier, pattern, serving and monthly cost now and re-planned, and the stack
    changes as `llmhost diff` of the two offline inventories. Nothing is written without --write."""
    from .catalog import load_catalog
    from .profile import load_profile
    from .rules import decide
    from .stack_config import load_stack_config
    from .stackgen import read_stack_file, write_stack
    from .usage import load_usage, observed_profile

    root = find_project_dir(project_dir)
    catalog = load_catalog(catalog_path)
    prof = load_profile(profile)
    observed_usage = load_usage(usage)
    observed = observed_profile(prof, observed_usage, usage)
    profile_ref = _rel(profile, root)
    name = stack or prof.name
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise refuse(profile, "--stack", f"{name!r} is not a valid stack name (letters, digits, -, _ and . only)")
    cat_arg = str(catalog_path) if catalog_path else None
    stack_file = root / "stacks" / f"Pulumi.{name}.yaml"
    if stack_file.exists():
        # What the stack runs now: its own file (it may have been re-planned from usage before).
        before, before_label = _stack_summary(load_stack_config(read_stack_file(stack_file), _rel(stack_file, root))), \
            _rel(stack_file, root)
    else:
        before, before_label = _decision_summary(decide(prof, catalog, profile_ref, cat_arg)), f"{profile_ref} (no stack yet)"
    after = decide(observed, catalog, f"{profile_ref} with {_rel(usage, root)}", cat_arg)
    console = Console(width=140)
    t, o = prof.traffic, observed.traffic
    console.print(f"[bold]{name}[/bold]: re-plan of {profile_ref} on {_rel(usage, root)} "
                  f"({observed_usage.window_days:g} days" + (f", {observed_usage.source}" if observed_usage.source else "") + ")")
    table = Table(show_lines=False)
    for col in ("", "profile", "observed"):
        table.add_column(col, overflow="fold")
    table.add_row("requests/day", f"{t.daily_requests:,}", f"{o.daily_requests:,}")
    table.add_row("tokens per request", f"{t.avg_input_tokens:,} + {t.avg_output_tokens:,}",
                  f"{o.avg_input_tokens:,} + {o.avg_output_tokens:,}")
    table.add_row("peak-to-average", f"{t.peak_to_average:g}", f"{o.peak_to_average:g}")
    table.add_row("growth %/month", f"{t.growth_monthly_percent:g}", f"{o.growth_monthly_percent:g}")
    console.print(table)
    plans = Table(show_lines=False)
    for col in ("", f"now: {before_label}", "re-planned on observed usage"):
        plans.add_column(col, overflow="fold")
    now = _decision_summary(after)
    for key, value in before.items():
        plans.add_row(key, value, now[key] if now[key] == value else f"[bold]{now[key]}[/bold]")
    console.print(plans)
    changed = (before["tier"], before["pattern"]) != (now["tier"], now["pattern"])
    why = next((r for r in after.reasons if r.startswith("C1")), after.chosen.label)
    console.print(f"decision {'changed' if changed else 'unchanged'}: {why}")
    console.print(f"revisit: {after.revisit}")
    click.echo(_stack_changes(root, name, prof, after, profile_ref, catalog, catalog_path))
    # The profile should say what the traffic is, or the next `llmhost plan` would undo the re-plan.
    differs = [f"  {k}: {v}" for k, v in o.model_dump().items() if getattr(t, k) != v]
    if differs:
        click.echo("to keep the profile in step (the next `llmhost plan` plans from it), set its traffic to the "
                   "observed figures:\n" + "\n".join(differs))
    if not write:
        click.echo(f"nothing written; run again with --write to write stacks/Pulumi.{name}.yaml and its report")
        return
    files = write_stack(after, name, root / "stacks", profile_ref, catalog, force=force,
                        catalog_path=_rel(catalog_path, root) if catalog_path else None)
    for f in (files.stack_file, files.policy_file, files.report_file, files.chart_file):
        click.echo(f"wrote {_rel(f, root)}")


def _stack_changes(root: Path, stack: str, profile, after, profile_ref: str, catalog, catalog_path) -> str:
    """`llmhost diff` of the stack as it is (or as the profile plans it, if it has no file yet) and as re-planned:
    both run offline through the real program, the re-plan from a scratch copy of the project's stack directory."""
    import shutil
    import tempfile

    from preview.diff import diff_inventories, render_markdown
    from preview.harness import run_preview

    from .rules import decide
    from .stackgen import write_stack

    cat_rel = _rel(catalog_path, root) if catalog_path else None
    with tempfile.TemporaryDirectory(prefix="llmhost-replan-") as tmp:
        def planned(decision, label: str) -> Path:
            project = Path(tmp) / label
            (project / "stacks").mkdir(parents=True)
            shutil.copy(root / PROJECT_FILE, project / PROJECT_FILE)
            shutil.copy(root / "__main__.py", project / "__main__.py")
            write_stack(decision, stack, project / "stacks", profile_ref, catalog, force=True, catalog_path=cat_rel)
            return project

        current = root if (root / "stacks" / f"Pulumi.{stack}.yaml").exists() else \
            planned(decide(profile, catalog, profile_ref, str(catalog_path) if catalog_path else None), "current")
        old = run_preview(current, stack).inventory()
        new = run_preview(planned(after, "replanned"), stack).inventory()
    diff = diff_inventories(old, new, labels=(f"stacks/Pulumi.{stack}.yaml", "re-plan"))
    return render_markdown(diff, stack)


@main.command()
@click.option("--stack", "stack", required=True, help="the stack to preview (stacks/Pulumi.<stack>.yaml)")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False), help="write the full inventory as JSON to this file")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
@click.option("--skip-policies", is_flag=True, help="do not run the policy pack on the inventory")
def preview(stack: str, json_file: Optional[Path], project_dir: Optional[Path], skip_policies: bool) -> None:
    """Run the Pulumi program for STACK in-process under mocks: no cloud, no Pulumi CLI."""
    from preview.harness import run_preview
    from preview.render import print_tree

    root = find_project_dir(project_dir)
    result = run_preview(root, stack)
    if result.deploy_warning:
        click.echo(f"warning: stacks/Pulumi.{stack}.yaml: {result.deploy_warning}", err=True)
    print_tree(result, Console(width=160, emoji=False))
    if json_file:
        json_file.write_text(json.dumps(result.inventory(), indent=2, sort_keys=True) + "\n")
        click.echo(f"wrote {json_file} ({len(result.resources)} resources)")
    if not skip_policies:
        # The policy pack, on the offline inventory: a mandatory violation fails like `pulumi preview` would.
        from policies.engine import check_preview

        report = check_preview(root, result)
        click.echo(report.render_text())
        click.get_current_context().exit(report.exit_code)


@main.command()
@click.option("--detail", is_flag=True, help="include what each policy checks, why, and how to remediate")
@click.option("--markdown", is_flag=True, help="print the catalogue as Markdown (what docs/policies.md holds)")
def policies(detail: bool, markdown: bool) -> None:
    """The policy catalogue: each policy, what it checks, why, its level, its frameworks, and how to request an exception."""
    from policies.catalogue import render_markdown, render_text

    click.echo(render_markdown() if markdown else render_text(detail=detail), nl=not markdown)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def diff(args):
    """Compare two `preview --json` inventories: OLD.json NEW.json [--stack NAME]."""
    from preview.diff import main as diff_main

    raise SystemExit(diff_main(list(args)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
