"""The operator's commands on a store and a runtime: see where everything stands, resubmit or
discard what went to Error, run the workers and the nodes, find an entity in the other system.

Every command takes the same ``--config``/``--store`` pair, resolved by ``requires.located``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.failures import USAGE, fail
from ccbmdm.cli.params import (
    BatchOption,
    ConfigOption,
    ListFormat,
    LogFormatOption,
    LogLevelOption,
    ProjectDir,
    StoreOption,
    UnmaskOption,
    WorkersOption,
)
from ccbmdm.errors import CcbmdmError

if TYPE_CHECKING:
    from ccbmdm.runtime.messages.contracts import ContractRegistry
    from ccbmdm.runtime.observe import Overview
    from ccbmdm.runtime.store import Store


UNMASKED = "--unmask: personal data is shown below; keep it off logs and tickets"


@app.command()
def status(
    unmask: UnmaskOption = False,
    output: ListFormat = "text",
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Rows per lifecycle and state, the oldest waiting work, every Error and its reason; read
    without scanning a table (json: the shape docs/operating.md shows)."""
    from ccbmdm.runtime.observe import overview

    with requires.store(config, store, project_dir) as opened:
        current = overview(opened)
        if output == "json":
            sys.stdout.write(json.dumps(current.as_json(), indent=2) + "\n")
            return
        unmasked = None
        if unmask and current.errors:
            err.print(UNMASKED)
            unmasked = _unmasker(opened, project_dir)
        _print_overview(current, unmasked)


def _print_overview(current: Overview, unmasked: Callable[[int], str | None] | None) -> None:
    from rich.table import Table

    from ccbmdm.runtime.history import reads_as

    table = Table("lifecycle", "node", "state", "rows", title="ccbmdm status")
    for (lifecycle, node, state), rows in current.rows().items():
        table.add_row(lifecycle, node, reads_as(lifecycle, state), str(rows))
    out.print(table)
    if not current.oldest:
        out.print("nothing waits")
    for oldest in current.oldest:
        where = f"{oldest.lifecycle} {oldest.node}".strip()
        out.print(f"oldest {oldest.waiting}: {where}, {oldest.age_s(current.taken_at):.0f} s")
    errors = [entry for entry in current.errors if not entry.retrying]
    retrying = [entry for entry in current.errors if entry.retrying]
    for heading, entries in (
        (f"{current.in_error()} in ERROR", errors),
        (f"{len(retrying)} retrying after an error", retrying),
    ):
        if entries:
            out.print(f"{heading}:")
        for entry in entries:
            out.print(f"  {entry.kind} {entry.id} {escape(entry.key)}: {escape(entry.reason)}")
            shown = unmasked(entry.id) if unmasked and entry.kind == "sync_request" else None
            if shown:
                out.print(f"    unmasked: {escape(shown)}")


def _unmasker(store: Store, project_dir: Path | None) -> Callable[[int], str | None]:
    """The reasons of sync requests in Error with personal values, re-derived from the final
    snapshots kept with them, through the project's contracts."""
    from ccbmdm.codegen.catalogue import load_catalogue
    from ccbmdm.codegen.loader import load_contracts
    from ccbmdm.runtime.lifecycles.sync import unmasked_reasons

    project = requires.project(project_dir)
    contracts = load_contracts(project)
    flows = load_catalogue(project.contracts / "flows.yaml")
    senders = {
        flow.code: part.sender for flow in flows for part in flow.parts if part.name == "request"
    }
    return lambda request_id: unmasked_reasons(store, contracts, senders, request_id)


@app.command()
def show(
    request: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="What to show: KIND:N (sync_request, usage_request, mdm_sync_request, "
            "usage_transaction, outbox, inbox), a message id, or a request's number.",
        ),
    ],
    unmask: UnmaskOption = False,
    output: ListFormat = "text",
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """One request's life: its states with times and reasons, its messages with their bodies
    (personal data masked), the other nodes' rows for the same messages, and what to do next."""
    from ccbmdm.runtime.history import life
    from ccbmdm.runtime.history_text import describe

    with requires.store(config, store, project_dir) as opened:
        contracts = _contracts_for_bodies(project_dir)
        if unmask:
            err.print(UNMASKED)
        found = life(opened, request, contracts, unmask=unmask)
        if unmask and found.kind == "sync_request" and found.state == "ERROR":
            found = replace(found, unmasked_reason=_unmasker(opened, project_dir)(found.id))
        if output == "json":
            sys.stdout.write(json.dumps(found.as_json(), indent=2) + "\n")
            return
        for part in describe(found, opened.dsn):
            out.print(part)


def _contracts_for_bodies(project_dir: Path | None) -> ContractRegistry | None:
    """The project's contracts, to read message bodies with; None (bodies shown by size only)
    when the project's contracts cannot be read: the store still can."""
    from ccbmdm.codegen.loader import load_contracts

    try:
        return load_contracts(requires.project(project_dir))
    except CcbmdmError as exc:
        err.print(f"message bodies are not decoded: {exc}")
        return None


@app.command()
def discard(
    request_id: Annotated[
        int, typer.Argument(help="The sync request, as `ccbmdm status` lists it.")
    ],
    reason: Annotated[str, typer.Option(help="Why it is discarded; kept with the request.")],
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Discard a sync request in Error (the change will not reach MDM), with a reason."""
    from ccbmdm.runtime.operations import discard as discard_request

    if not reason.strip():
        fail("a discard needs a reason: --reason TEXT", USAGE)
    with requires.store(config, store, project_dir) as opened:
        discard_request(opened, request_id, reason)
    out.print(f"sync request {request_id} discarded")


@app.command()
def resubmit(
    request_ids: Annotated[
        list[int] | None,
        typer.Argument(help="Sync requests in Error, as `ccbmdm status` lists them."),
    ] = None,
    all_errors: Annotated[
        bool, typer.Option("--all-errors", help="Resubmit every sync request in Error.")
    ] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Send sync requests in Error again: the final snapshot re-taken, a new message id, the
    same sync request id. Pressed twice, it sends once."""
    from ccbmdm.runtime.operations import resubmit as resubmit_requests

    if bool(request_ids) == all_errors:
        fail("name the sync requests to resubmit, or pass --all-errors (not both)", USAGE)
    with requires.runtime(config, store, project_dir) as runtime:
        if runtime.monitor is None:
            fail("this runtime hosts no ccb node, so it has no sync requests to resubmit")
        result = resubmit_requests(runtime.monitor, None if all_errors else list(request_ids or []))
    done = result.sent + result.discarded + result.errors
    if done == 0:
        fail("nothing resubmitted: no such request in ERROR (see `ccbmdm status`)")
    out.print(
        f"resubmitted {done}: {result.sent} sent, {result.discarded} without difference "
        f"(discarded), {result.errors} in Error again"
    )


@app.command()
def monitor(
    once: Annotated[
        bool, typer.Option("--once", help="Work until nothing is due, then exit.")
    ] = False,
    workers: WorkersOption = 1,
    batch: BatchOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Move every lifecycle and message on: claim due work, send, process, rescue passed leases."""
    from ccbmdm.runtime import logs
    from ccbmdm.runtime.supervisor import work_until_stopped
    from ccbmdm.runtime.worker import StillBusy

    logs.configure(log_level, log_format)
    with requires.runtime(config, store, project_dir, creates=True) as runtime:
        if not once:
            out.print(f"monitoring with {workers} worker(s); Ctrl-C stops after the current batch")
            work_until_stopped(runtime, workers, batch)
            return
        try:
            with err.status("working until nothing is due…"):
                moved = runtime.worker(batch).drain()
        except StillBusy as exc:
            fail(f"{exc}; run the monitor without --once, or with more --workers")
        out.print(f"moved {moved} item(s); nothing more is due")


@app.command(name="run")
def run_runtime(
    workers: WorkersOption = 1,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Serve every hosted node's HTTP endpoint (with /healthz, /readyz and /metrics, and the
    operator's console under /console) and run the workers until stopped."""
    from ccbmdm.runtime import logs
    from ccbmdm.runtime.console.app import PREFIX
    from ccbmdm.runtime.metrics import share_between_processes
    from ccbmdm.runtime.supervisor import work_until_stopped

    logs.configure(log_level, log_format)
    with ExitStack() as stack:
        stack.callback(share_between_processes())  # the workers' measurements, for /metrics
        runtime = stack.enter_context(requires.runtime(config, store, project_dir, creates=True))
        for url in runtime.serve(stack):
            out.print(f"listening: {url}")
            out.print(f"  console: {url.partition(': ')[2]}{PREFIX}/")
        hosted = ", ".join(runtime.nodes)
        out.print(f"running {hosted} with {workers} worker(s); Ctrl-C stops")
        work_until_stopped(runtime, workers, None)
    out.print("stopped")


@app.command("link")
def link_command(
    system: Annotated[str, typer.Argument(help="Where the entity is: ccb or mdm.")],
    kind: Annotated[
        str,
        typer.Argument(
            help="CCB: person, sa, sa-360, sp, usage-request, meter; MDM: service-point."
        ),
    ],
    entity_id: Annotated[str, typer.Argument(help="Its id in that system.")],
    ccb_url: Annotated[
        str, typer.Option("--ccb-url", help="Where the CCB simulator serves its pages.")
    ] = "http://127.0.0.1:8401",
    mdm_url: Annotated[
        str, typer.Option("--mdm-url", help="Where the MDM simulator serves its pages.")
    ] = "http://127.0.0.1:8402",
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Print the address, in the other system, of an entity (through MDM's cross-reference)."""
    from ccbmdm.runtime.sim.links import Bases, link

    with requires.store(config, store, project_dir) as opened:
        url = link(opened, system.lower(), kind, entity_id, Bases(ccb_url, mdm_url))
    out.print(url)
