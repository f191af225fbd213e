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
    if as_json:
        click.echo(json.dumps({**decision.as_dict(), "stack": name,
                               "files": [_rel(files.stack_file, root), _rel(files.policy_file, root), _rel(files.report_file, root)]},
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
    for f in (files.stack_file, files.policy_file, files.report_file):
        console.print(f"wrote {_rel(f, root)}")


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
