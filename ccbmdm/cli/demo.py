"""`ccbmdm demo`: a synthetic utility run end to end between the reference simulators."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.params import ProjectDir
from ccbmdm.runtime.store.dsn import redacted

# Not the shared --store: the demo replaces what it names, so it takes a store only when one is
# named on its command line, never from the environment or a runtime configuration.
DemoStore = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="A SQLite file, replaced if present (default: target/demo.db), or a "
        "postgresql:// DSN, where the demo creates a schema of its own.",
        show_default=False,
    ),
]


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option("--customers", min=1, max=1_000_000, help="Customers to generate.")
    ] = 1000,
    store: DemoStore = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes sharing the store for the initial sync, the billing run and "
            "the bills' completion.",
        ),
    ] = 1,
    project_dir: ProjectDir = None,
) -> None:
    """Run a synthetic utility end to end between the reference CCB and MDM, with a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ccbmdm.runtime.sim.demo import fresh_store, run_demo

    project = requires.project(project_dir)
    dsn = fresh_store(store or str(project.target / "demo.db"))
    err.print(f"the demo's store: {escape(redacted(dsn))}")
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, console=err) as bars:

        def phase(name: str, total: int) -> Any:
            task = bars.add_task(name, total=total)
            return lambda done: bars.advance(task, done)

        report = run_demo(project, dsn, customers, phase, workers=workers)
    _print_demo(report)
    named = shlex.quote(redacted(dsn))
    out.print(f"the store: {escape(named)}; inspect it with:")
    out.print(f"  ccbmdm show ID --store {escape(named)}")
    out.print(f"  ccbmdm status --store {escape(named)}")


def _print_demo(report: Any) -> None:
    from rich.table import Table

    workers = f", {report.workers} workers" if report.workers > 1 else ""
    out.print(f"[bold]ccbmdm demo[/]: {report.customers} customers{workers}")
    phases = Table("phase", "seconds", title="time per phase")
    for name, seconds in report.phases:
        phases.add_row(name, f"{seconds:.1f}")
    phases.add_row("total", f"{sum(s for _, s in report.phases):.1f}")
    out.print(phases)
    messages = Table("flow", "part", "messages", title="messages relayed by the bridge")
    for (flow, part), count in sorted(report.messages.items()):
        messages.add_row(flow, part, str(count))
    out.print(messages)
    requests = Table("machine", "state", "requests", title="requests per state")
    for (machine, state), count in sorted(report.requests.items()):
        requests.add_row(machine, state, str(count))
    out.print(requests)
    if report.bills:
        bills = Table("billing", "count", title="bills")
        for name, count in sorted(report.bills.items()):
            bills.add_row(name, str(count))
        out.print(bills)
    if report.rate_check:
        out.print(f"rate check: {escape(report.rate_check)}")
    if report.errors:
        out.print(f"[bold red]{len(report.errors)} in Error:[/]")
        for machine, key, reason in report.errors:
            out.print(f"  {machine} {escape(key)}: {escape(reason)}")
    else:
        out.print("no request in Error")
