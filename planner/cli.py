"""`llmhost`: plan a stack from a workload profile, and preview it offline."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Optional

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import InputError, refuse

PROJECT_FILE = "Pulumi.yaml"
PACKAGE = "llm-hosting"  # the distribution name in pyproject.toml, for --version
DEFAULT_WIDTH = 100  # output that is not a terminal (a pipe, a CI log) is laid out this wide
MIN_WIDTH = 40  # below this no table is readable; a narrower COLUMNS is taken as this
HELP_WIDTH = 100  # help text wider than this is hard to read, whatever the terminal
# Lines that start so are commands to copy: never wrapped, since a wrapped command pastes as two.
COMMANDS = ("llmhost ", "pulumi ", "gcloud ", "aws ", "make ", ".venv/bin/llmhost ")


def terminal_width() -> int:
    """The width output is laid out for: $COLUMNS, else the terminal's own width, else DEFAULT_WIDTH."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), MIN_WIDTH)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, MIN_WIDTH)
    return DEFAULT_WIDTH


def _console() -> Console:
    return Console(width=terminal_width(), emoji=False, highlight=False)


def is_command(line: str) -> bool:
    return line.lstrip(" ").startswith(COMMANDS)


def _protect(text: str) -> str:
    """Short `code` and "quoted" spans keep their spaces (as NUL) so a wrap never splits a name in two."""
    return re.sub(r"`[^`]{1,40}`|\"[^\"]{1,40}\"", lambda m: m.group(0).replace(" ", "\0"), text)


def fit(text: str, width: Optional[int] = None) -> str:
    """`text` with each line longer than `width` wrapped at spaces, continuations indented two more than the line;
    a line that is a command to copy stays whole."""
    width = width or terminal_width()
    out: list[str] = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        if len(line) <= width or is_command(line):
            out.append(line)
            continue
        lead = " " * (len(line) - len(body))
        out += [w.replace("\0", " ") for w in textwrap.wrap(_protect(body), width=width, initial_indent=lead,
                                                            subsequent_indent=lead + "  ", break_on_hyphens=False)]
    return "\n".join(out)


def warn(text: str) -> None:
    click.echo(fit(f"warning: {text}"), err=True)


def say(console: Console, text: str, indent: int = 0, lead: Optional[str] = None) -> None:
    """Prose, wrapped to the console with a hanging indent (plain text: brackets in names are not markup); `lead`,
    the first words, are highlighted."""
    line = Text(fit(" " * indent + text, console.width))
    if lead:
        line.stylize("bold yellow", indent, indent + len(lead))
    console.print(line, soft_wrap=True)


def command(console: Console, cmd: str) -> None:
    """A command to copy, on its own line and never wrapped (a long one runs past the edge rather than in two)."""
    console.print(Text("  " + cmd), soft_wrap=True)


def find_project_dir(start: Optional[Path] = None) -> Path:
    """The directory holding the llm-hosting Pulumi.yaml: the given one, or the first above the cwd."""
    if start is not None:
        try:
            found = (start / PROJECT_FILE).is_file()
        except (OSError, ValueError):  # a path too long, or with a NUL: not a directory that can hold it
            found = False
        if not found:
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


class _Command(click.Command):
    """One help layout for every subcommand: usage, a one-line summary, then the positional arguments and the
    options, each with its help line (click lists an argument's `help` like an option's)."""

    def get_short_help_str(self, limit: int = 45) -> str:
        # The whole summary line, wrapped in the command list rather than cut with "...".
        return (self.short_help or (self.help or "").strip().split("\n", 1)[0]).strip()


class _Group(click.Group):
    """Bad input exits 2 with the message only: no traceback for a user's mistake."""

    command_class = _Command

    def make_context(self, info_name, args, parent=None, **extra):
        # Help follows the terminal too (click would cap it at 80 and ignore $COLUMNS in a pipe).
        extra.setdefault("terminal_width", min(terminal_width(), HELP_WIDTH))
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc.render()}".replace("\n", "\nerror: "), err=True)
            ctx.exit(2)


@click.group(name="llmhost", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=PACKAGE, prog_name="llmhost", message="%(prog)s %(version)s")
def main() -> None:
    """Decide where to host an LLM, write its Pulumi stack, and preview it offline."""


@main.command()
@click.argument("profile", type=click.Path(path_type=Path), help="the workload profile (YAML), e.g. stacks/profiles/startup-api.yaml")
@click.option("--stack", "stack", help="stack name: writes stacks/Pulumi.<stack>.yaml (default: the profile's name)")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), help="your own catalog YAML instead of planner/catalog.yaml")
@click.option("--json", "as_json", is_flag=True, help="print the decision as JSON instead of a table")
@click.option("--dry-run", "--print-only", "dry_run", is_flag=True, help="show the decision and write no file")
@click.option("--force", is_flag=True, help="overwrite a stack file that was edited by hand")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
def plan(profile: Path, stack: Optional[str], catalog_path: Optional[Path], as_json: bool, dry_run: bool, force: bool,
         project_dir: Optional[Path]) -> None:
    """Recommend a tier for PROFILE and write its stack, policy config and report."""
    from .catalog import load_catalog
    from .profile import load_profile
    from .rules import decide
    from .spend import horizon_costs
    from .stackgen import STACK_NAME_RULE, profile_field, stack_config_from, valid_stack_name, write_stack

    root = find_project_dir(project_dir)
    catalog = load_catalog(catalog_path)
    prof = load_profile(profile, catalog)
    profile_ref = _rel(profile, root)
    # The catalog as given (relative to the cwd): the stack checks `decide` applies to each candidate read it.
    cat_arg = str(catalog_path) if catalog_path else None
    cat_rel = _rel(catalog_path, root) if catalog_path else None
    decision = decide(prof, catalog, profile_ref, cat_arg)
    name = prof.name if stack is None else stack  # an empty --stack is refused, not replaced
    if not valid_stack_name(name):
        raise refuse(profile, "--stack", f"{name!r} is not a valid stack name ({STACK_NAME_RULE})")
    if dry_run:
        # What write_stack computes, without its files: the same refusal for a stack the program would not build.
        cfg = stack_config_from(decision, profile_ref, catalog, cat_rel)
        unbuilt = cfg.unbuilt()
        if unbuilt:
            raise refuse(profile_ref, profile_field(unbuilt[0], decision.profile), unbuilt[1])
        horizon, written = horizon_costs(decision.profile, catalog, profile_ref, cat_rel), []
    else:
        files = write_stack(decision, name, root / "stacks", profile_ref, catalog, force=force, catalog_path=cat_rel)
        cfg, horizon = files.config, files.horizon
        written = [files.stack_file, files.policy_file, files.report_file, files.chart_file]
    warning = cfg.deploy_warning()
    if warning:
        warn(f"stacks/Pulumi.{name}.yaml: {warning}")
    if cfg.cloud == "gcp" and not prof.gcp_billing_account:
        warn(f"{_rel(profile, root)}: gcp_billing_account is not set, so the stack gets no budget; set it to the Cloud "
             "Billing account (XXXXXX-XXXXXX-XXXXXX) and re-plan")
    if as_json:
        click.echo(json.dumps({**decision.as_dict(), "stack": name, **_home(decision),
                               "spend": cfg.spend.model_dump(by_alias=True, mode="json"),
                               "horizon": {"months": horizon.months, "monthly_cost_usd": horizon.series,
                                           "chosen": horizon.chosen},
                               "files": [_rel(f, root) for f in written]},
                              indent=2))
        return
    console = _console()
    _print_decision(console, decision, name, _today_costs(decision, catalog, profile_ref, cat_arg), horizon)
    for f in written:
        say(console, f"wrote {_rel(f, root)}")
    if dry_run:
        say(console, f"nothing written (--dry-run); to write stacks/Pulumi.{name}.yaml, its policy config, report and "
                     "chart:")
        command(console, shlex.join(["llmhost", "plan", profile_ref, "--stack", name,
                                     *(["--catalog", cat_rel] if cat_rel else [])]))
        return
    if cfg.required_secrets():
        say(console, "before `pulumi up`, store its secrets:")
        for key in cfg.required_secrets():
            command(console, f"pulumi config set --secret llm-hosting:{key} <value> --stack {name}")
    say(console, "preview it offline:")
    command(console, f"llmhost preview --stack {name}")


def _home(decision) -> dict:
    """The home region, and why the plan runs elsewhere (None when it runs there)."""
    return {"home_region": decision.profile.home_region, "region_note": decision.chosen.region_note}


def _money(v: Optional[float]) -> str:
    return "n/a" if v is None else f"${v:,.0f}"


def _option_key(c) -> tuple:
    """A candidate's identity across volumes: its label names the fleet, which changes with the volume."""
    return (c.tier, c.pattern, c.provider, c.api.provider if c.api else None, c.api.model if c.api else None)


def _today_costs(decision, catalog, source: str, catalog_path: Optional[str]) -> dict[tuple, Optional[float]]:
    """Each option's all-in monthly cost at today's volume, planned afresh for it (as month 0 of the horizon)."""
    from .rules import decide

    p = decision.profile
    if p.traffic.horizon_months == 0:
        return {_option_key(c): c.monthly_cost_usd for c in decision.candidates}
    today = p.model_copy(update={"traffic": p.traffic.model_copy(update={"horizon_months": 0})})
    try:
        d = decide(today, catalog, source, catalog_path, relax=False, explain=False)
    except InputError:  # nothing can serve today's volume (it is only the horizon's the profile plans for)
        return {}
    return {_option_key(c): c.monthly_cost_usd for c in d.candidates}


def _why_not(x, chosen) -> str:
    if x is chosen:
        return "chosen"
    rules = [r for r in x.reasons if not r.startswith("C1")]
    if not x.feasible:
        return "ruled out: " + "; ".join(rules or x.reasons)
    more = f"${x.monthly_cost_usd - chosen.monthly_cost_usd:,.0f}/month more"
    return "; ".join([more, *rules])


def _table(*columns: str, title: Optional[str] = None) -> Table:
    """A table whose first column names the rows (never folded) and whose other columns fold to the width."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    for i, col in enumerate(columns):
        table.add_column(col, overflow="fold", no_wrap=i == 0, ratio=None if i == 0 else 1)
    return table


def _print_decision(console: Console, decision, name: str, today: dict, horizon) -> None:
    """The decision as a person reads it: what was chosen and where, every option's cost today and at the horizon and
    why it lost, and the costs along the horizon."""
    c = decision.chosen
    months = decision.profile.traffic.horizon_months
    head = Text.assemble((name, "bold"), f": {c.tier}" + (f" ({c.pattern})" if c.pattern else "")
                         + f", network {decision.network}, {decision.profile.cloud} {c.region} — {c.label}")
    console.print(head)
    if c.region_note:
        # Leaving the home region is a residency and latency choice the reader must see, not a detail of the report.
        say(console, f"not in the home region: {c.region_note}.", indent=2, lead="not in the home region:")
    table = Table(title=f"all-in $/month, today and at the {months}-month horizon", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("option", overflow="fold", ratio=3)
    table.add_column("today", justify="right", no_wrap=True)
    table.add_column(f"month {months}", justify="right", no_wrap=True)
    table.add_column(f"why not (month {months})", overflow="fold", ratio=4)
    for x in decision.candidates:
        style = "bold" if x is c else None
        table.add_row(Text(x.label), _money(today.get(_option_key(x))), _money(x.monthly_cost_usd), Text(_why_not(x, c)),
                      style=style)
    console.print(table)
    say(console, f"revisit: {decision.revisit}")
    if horizon is not None and horizon.series:
        console.print(_horizon_table(horizon, console.width))


def _horizon_table(h, width: int) -> Table:
    """A row per option and a column per sampled month (as many as the terminal holds, today and the horizon always);
    the option chosen at each month is starred."""
    n = len(h.months)
    cols = max(3, min(7, (width - 26) // 12))
    picks = sorted({round(i * (n - 1) / (cols - 1)) for i in range(cols)}) if n > cols else list(range(n))
    table = Table(title="all-in $/month along the growth horizon, by month from today (* chosen that month)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("option", overflow="fold")
    for i in picks:
        table.add_column(f"month {h.months[i]}", justify="right", no_wrap=True)
    for key, values in h.series.items():
        label = key + (" (ruled out)" if key in h.ruled_out else "")
        table.add_row(Text(label), *[_money(values[i]) + ("*" if h.chosen[i] == key else " ") for i in picks])
    return table


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
@click.argument("profile", type=click.Path(path_type=Path), help="the workload profile the stack was planned from")
@click.argument("usage", type=click.Path(path_type=Path),
          help="observed usage (YAML): daily requests and tokens per traffic class and the peak-to-average ratio "
               "(README, \"Re-planning from observed usage\")")
@click.option("--stack", "stack", help="the stack planned from PROFILE (default: the profile's name)")
@click.option("--write", is_flag=True, help="write the re-planned stack files (without it nothing is written)")
@click.option("--force", is_flag=True, help="with --write: overwrite a stack file that was edited by hand")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), help="your own catalog YAML instead of planner/catalog.yaml")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
def replan(profile: Path, usage: Path, stack: Optional[str], write: bool, force: bool, catalog_path: Optional[Path],
           project_dir: Optional[Path]) -> None:
    """Re-plan PROFILE on the traffic observed in USAGE; writes only with --write."""
    from .catalog import load_catalog
    from .profile import load_profile
    from .rules import decide
    from .stack_config import load_stack_config
    from .stackgen import STACK_NAME_RULE, read_stack_file, valid_stack_name, write_stack
    from .usage import load_usage, observed_profile

    root = find_project_dir(project_dir)
    catalog = load_catalog(catalog_path)
    prof = load_profile(profile, catalog)
    observed_usage = load_usage(usage)
    observed = observed_profile(prof, observed_usage, usage)
    profile_ref = _rel(profile, root)
    name = prof.name if stack is None else stack  # an empty --stack is refused, not replaced
    if not valid_stack_name(name):
        raise refuse(profile, "--stack", f"{name!r} is not a valid stack name ({STACK_NAME_RULE})")
    cat_arg = str(catalog_path) if catalog_path else None
    stack_file = root / "stacks" / f"Pulumi.{name}.yaml"
    if stack_file.exists():
        # What the stack runs now: its own file (it may have been re-planned from usage before).
        before, before_label = _stack_summary(load_stack_config(read_stack_file(stack_file), _rel(stack_file, root))), \
            _rel(stack_file, root)
    else:
        before, before_label = _decision_summary(decide(prof, catalog, profile_ref, cat_arg)), f"{profile_ref} (no stack yet)"
    after = decide(observed, catalog, f"{profile_ref} with {_rel(usage, root)}", cat_arg)
    console = _console()
    t, o = prof.traffic, observed.traffic
    console.print(Text.assemble((name, "bold"), f": re-plan of {profile_ref} on {_rel(usage, root)} "
                                f"({observed_usage.window_days:g} days"
                                + (f", {observed_usage.source}" if observed_usage.source else "") + ")"))
    table = _table("", "profile", "observed")
    table.add_row("requests/day", f"{t.daily_requests:,}", f"{o.daily_requests:,}")
    table.add_row("tokens per request", f"{t.avg_input_tokens:,} + {t.avg_output_tokens:,}",
                  f"{o.avg_input_tokens:,} + {o.avg_output_tokens:,}")
    table.add_row("peak-to-average", f"{t.peak_to_average:g}", f"{o.peak_to_average:g}")
    table.add_row("growth %/month", f"{t.growth_monthly_percent:g}", f"{o.growth_monthly_percent:g}")
    console.print(table)
    plans = _table("", "now", "re-planned")
    plans.add_row("from", Text(before_label), Text(f"{profile_ref} with the observed traffic"))
    now = _decision_summary(after)
    for key, value in before.items():
        plans.add_row(key, Text(value), Text(now[key], style=None if now[key] == value else "bold"))
    console.print(plans)
    changed = (before["tier"], before["pattern"]) != (now["tier"], now["pattern"])
    why = next((r for r in after.reasons if r.startswith("C1")), after.chosen.label)
    say(console, f"decision {'changed' if changed else 'unchanged'}: {why}")
    if after.chosen.region_note:
        say(console, f"not in the home region: {after.chosen.region_note}.", indent=2, lead="not in the home region:")
    say(console, f"revisit: {after.revisit}")
    _print_changes(console, _stack_changes(root, name, prof, after, profile_ref, catalog, catalog_path), name)
    # The profile should say what the traffic is, or the next `llmhost plan` would undo the re-plan.
    differs = [f"{k}: {v}" for k, v in o.model_dump().items() if getattr(t, k) != v]
    if differs:
        say(console, "to keep the profile in step (the next `llmhost plan` plans from it), set its traffic to the "
                     "observed figures:")
        for line in differs:
            say(console, line, indent=4)
    if not write:
        say(console, f"nothing written; to write stacks/Pulumi.{name}.yaml and its report, run again with --write:")
        command(console, shlex.join(["llmhost", "replan", profile_ref, _rel(usage, root), "--stack", name,
                                     *(["--catalog", _rel(catalog_path, root)] if catalog_path else []), "--write"]))
        return
    files = write_stack(after, name, root / "stacks", profile_ref, catalog, force=force,
                        catalog_path=_rel(catalog_path, root) if catalog_path else None)
    for f in (files.stack_file, files.policy_file, files.report_file, files.chart_file):
        say(console, f"wrote {_rel(f, root)}")


def _print_changes(console: Console, diff, stack: str) -> None:
    """The stack changes for a terminal: the summary, then each resource and the properties that change (the values,
    often long, are in `llmhost diff` of the two `preview --json` inventories)."""
    from preview.diff import DELETE_STATEFUL, summary_line

    say(console, "stack changes, from offline previews of both (as `llmhost diff` compares them):")
    say(console, summary_line(diff, stack), indent=2)
    for c in diff.stateful_replacements:
        say(console, f"! {c.name} ({c.type}): {c.action}, forced by {', '.join(c.replaced_by)}", indent=2)
    for r in diff.stateful_deletions:
        say(console, f"! {r.name} ({r.type}): {DELETE_STATEFUL}", indent=2)
    for r in diff.added:
        say(console, f"+ {r.name} ({r.type})", indent=2)
    for r in diff.removed:
        say(console, f"- {r.name} ({r.type})" + (f": {DELETE_STATEFUL}" if r.stateful else ""), indent=2)
    for c in diff.changed:
        say(console, f"~ {c.name} ({c.type}): {c.action}", indent=2)
        say(console, ", ".join({"inputs": p.path, "options": f"(option) {p.path}", "parent": "(parent)"}[p.section]
                               for p in c.changes), indent=6)


def _stack_changes(root: Path, stack: str, profile, after, profile_ref: str, catalog, catalog_path):
    """`llmhost diff` of the stack as it is (or as the profile plans it, if it has no file yet) and as re-planned:
    both run offline through the real program, the re-plan from a scratch copy of the project's stack directory."""
    import shutil
    import tempfile

    from preview.diff import diff_inventories
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
    return diff_inventories(old, new, labels=(f"stacks/Pulumi.{stack}.yaml", "re-plan"))


@main.command()
@click.argument("profile_a", metavar="A", type=click.Path(path_type=Path), help="a workload profile (YAML)")
@click.argument("profile_b", metavar="B", type=click.Path(path_type=Path), help="another workload profile (YAML)")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), help="your own catalog YAML instead of planner/catalog.yaml")
@click.option("--json", "as_json", is_flag=True, help="print both decisions and the profile differences as JSON")
def compare(profile_a: Path, profile_b: Path, catalog_path: Optional[Path], as_json: bool) -> None:
    """Show the decisions for profiles A and B side by side; writes nothing."""
    from .catalog import load_catalog
    from .profile import load_profile
    from .rules import decide
    from .spend import horizon_costs

    catalog = load_catalog(catalog_path)
    cat_arg = str(catalog_path) if catalog_path else None
    profiles = [load_profile(profile_a, catalog), load_profile(profile_b, catalog)]  # both read (and refused) before either is planned
    decisions = [decide(p, catalog, str(path), cat_arg) for p, path in zip(profiles, (profile_a, profile_b))]
    differs = _profile_differences(*profiles)
    if as_json:
        click.echo(json.dumps({"a": {**decisions[0].as_dict(), **_home(decisions[0]), "profile_file": str(profile_a)},
                               "b": {**decisions[1].as_dict(), **_home(decisions[1]), "profile_file": str(profile_b)},
                               "profile_differences": [{"field": f, "a": a, "b": b} for f, a, b in differs]}, indent=2))
        return
    todays = [_today_costs(d, catalog, str(path), cat_arg) for d, path in zip(decisions, (profile_a, profile_b))]
    horizons = [horizon_costs(d.profile, catalog, str(path), cat_arg) for d, path in zip(decisions, (profile_a, profile_b))]
    console = _console()
    for tag, path, prof in (("A", profile_a, profiles[0]), ("B", profile_b, profiles[1])):
        say(console, f"{tag}: {path} ({prof.name})")
    table = _table("", f"A: {profiles[0].name}", f"B: {profiles[1].name}")
    rows: list[tuple[str, str, str]] = []
    for label, value in (("tier", lambda d, i: d.chosen.tier),
                         ("pattern", lambda d, i: d.chosen.pattern or "-"),
                         ("network", lambda d, i: d.network),
                         ("where", lambda d, i: f"{d.profile.cloud} {d.chosen.region}"),
                         ("serving", lambda d, i: d.chosen.label),
                         ("$/month today", lambda d, i: _money(todays[i].get(_option_key(d.chosen)))),
                         ("$/month at horizon", lambda d, i: f"{_money(d.chosen.monthly_cost_usd)} "
                                                             f"(month {d.profile.traffic.horizon_months})"),
                         ("chosen along the horizon", lambda d, i: " → ".join(dict.fromkeys(horizons[i].chosen))),
                         ("home region", lambda d, i: d.chosen.region_note or "runs in it"),
                         ("why", lambda d, i: "\n".join(f"- {r}" for r in d.reasons))):
        rows.append((label, value(decisions[0], 0), value(decisions[1], 1)))
    for label, a, b in rows:
        style = None if a == b else "bold"
        table.add_row(Text(label, style=style), Text(a), Text(b))
    console.print(table)
    if differs:
        changes = _table("profile field", "A", "B", title="what differs between the profiles")
        for field, a, b in differs:
            changes.add_row(Text(field), Text(_value(a)), Text(_value(b)))
        console.print(changes)
    else:
        say(console, "the profiles do not differ (apart from their name and description)")
    same = all(a == b for label, a, b in rows[:4])
    say(console, "same tier, pattern, network and region" if same else
            "the decisions differ in " + ", ".join(label for label, a, b in rows[:5] if a != b))


def _value(v) -> str:
    return "-" if v is None else v if isinstance(v, str) else json.dumps(v)


def _flatten(data, prefix: str = "") -> dict:
    """A profile as its dotted field names, the way a refusal names them (`traffic.daily_requests`)."""
    if isinstance(data, dict) and data:
        out: dict = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _profile_differences(a, b) -> list[tuple[str, object, object]]:
    """The fields whose values differ, by their profile names; name and description say nothing about the decision."""
    fa, fb = (_flatten(p.model_dump(mode="json")) for p in (a, b))
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and k not in ("name", "description")]


def _check_writable(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before anything runs (so nothing is registered or printed)."""
    import os

    parent = path.parent if str(path.parent) else Path(".")
    try:
        if not parent.is_dir():
            raise refuse(path, option, "its directory does not exist; create it or name a file in an existing one")
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise refuse(path, option, f"the file name is longer than the file system allows ({limit} bytes)")
    if path.is_dir():
        raise refuse(path, option, "is a directory; name a file to write the inventory to")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise refuse(path, option, "cannot be written (permission denied)")


@main.command()
@click.option("--stack", "stack", required=True, help="the stack to preview (stacks/Pulumi.<stack>.yaml)")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False), is_flag=False, flag_value="-",
              metavar="FILE", help="write the full inventory as JSON to FILE (relative to the cwd); alone or as `-`: "
                                   "print it instead of the tree")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), help="the project root (default: found from the cwd)")
@click.option("--skip-policies", is_flag=True, help="do not run the policy pack on the inventory")
def preview(stack: str, json_file: Optional[Path], project_dir: Optional[Path], skip_policies: bool) -> None:
    """Run the Pulumi program for STACK offline: no cloud, no Pulumi CLI."""
    from preview.harness import run_preview
    from preview.render import print_tree

    root = find_project_dir(project_dir)
    if json_file:
        _check_writable(json_file, "--json")
    inputs = None
    if not skip_policies:
        # Everything the pack reads is validated before the program runs: a bad policy config or exceptions register
        # is refused before any tree is printed or inventory written.
        from policies.engine import load_policy_inputs

        inputs = load_policy_inputs(root, stack)
    result = run_preview(root, stack)
    if result.deploy_warning:
        warn(f"stacks/Pulumi.{stack}.yaml: {result.deploy_warning}")
    to_stdout = json_file is not None and str(json_file) == "-"  # stdout then holds the JSON only
    if to_stdout:
        click.echo(json.dumps(result.inventory(), indent=2, sort_keys=True))
    else:
        print_tree(result, _console())
    if json_file and not to_stdout:
        try:
            json_file.write_text(json.dumps(result.inventory(), indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise refuse(json_file, "--json", f"cannot write the inventory: {exc.strerror or exc}") from None
        click.echo(f"wrote {json_file} ({len(result.resources)} resources)")
    if not skip_policies:
        # The policy pack, on the offline inventory: a mandatory violation fails like `pulumi preview` would.
        from policies.engine import check_preview

        report = check_preview(root, result, inputs=inputs)
        click.echo(fit(report.render_text()), err=to_stdout)
        click.get_current_context().exit(report.exit_code)


@main.command()
@click.option("--detail", is_flag=True, help="include what each policy checks, why, and how to remediate")
@click.option("--markdown", is_flag=True, help="print the catalogue as Markdown (what docs/policies.md holds)")
def policies(detail: bool, markdown: bool) -> None:
    """The policy catalogue: what each policy checks, its level and frameworks."""
    from policies.catalogue import render_markdown, render_text

    if markdown:  # a document, not terminal output: its lines are Markdown's, not the terminal's
        click.echo(render_markdown(), nl=False)
        return
    click.echo(fit(render_text(detail=detail, width=terminal_width())))


@main.command()
@click.argument("old", type=click.Path(path_type=Path), help="the inventory before the change (e.g. the PR's base)")
@click.argument("new", type=click.Path(path_type=Path), help="the inventory after the change (e.g. the PR's head)")
@click.option("--stack", help="the stack name for the heading (default: NEW's file name without .json)")
def diff(old: Path, new: Path, stack: Optional[str]) -> None:
    """Compare two `preview --json` inventories and print the changes as Markdown."""
    from preview.diff import main as diff_main

    # The Markdown is what CI posts on the pull request, so it is printed as it is, whatever the terminal's width.
    raise SystemExit(diff_main([str(old), str(new), *(["--stack", stack] if stack else [])]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
