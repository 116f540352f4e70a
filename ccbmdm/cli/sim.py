"""`ccbmdm sim`: the reference simulators of CCB and MDM, as HTTP services or for one task."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, ccb_app, err, mdm_app, out, sim_app
from ccbmdm.cli.failures import USAGE, fail
from ccbmdm.cli.params import (
    BridgeOption,
    ConfigOption,
    DeliveryOption,
    LogFormatOption,
    LogLevelOption,
    PortOption,
    ProjectDir,
    SimStore,
    StoreOption,
    TokenOption,
    ViewerOption,
    ViewerPasswordOption,
)
from ccbmdm.runtime import logs

if TYPE_CHECKING:
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator

app.add_typer(sim_app, name="sim")
sim_app.add_typer(ccb_app, name="ccb")
sim_app.add_typer(mdm_app, name="mdm")


def _serve_simulator(
    name: Literal["ccb", "mdm"],
    port: int,
    store: str | None,
    bridge: str,
    token_env: str,
    viewer: tuple[str, str],
    delivery: Path | None,
    project_dir: Path | None,
) -> None:
    """A runtime hosting one simulator's node on ``port``; the bridge is reached over HTTP."""
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import load_delivery, simulator_config
    from ccbmdm.runtime.supervisor import work_until_stopped

    project = requires.project(project_dir)
    project.target.mkdir(parents=True, exist_ok=True)
    config = simulator_config(
        name,
        store or str(project.target / f"{name}.db"),
        f"127.0.0.1:{port}",
        bridge,
        token_env,
        viewer,
        None if delivery is None else load_delivery(delivery),
    )
    runtime = Runtime(config, project)
    with ExitStack() as stack:
        stack.callback(runtime.close)
        for url in runtime.serve(stack):
            out.print(f"listening: {url}")
        user, password_env = viewer
        out.print(
            f"pages: for {user} (HTTP Basic, password in {password_env})"
            if config.nodes[name].viewers
            else f"pages: only with the bridge's token (set {password_env} for a browser)"
        )
        out.print(f"the {name.upper()} simulator is running; Ctrl-C stops it")
        work_until_stopped(runtime, 1, None)
    out.print("stopped")


def _service(name: Literal["ccb", "mdm"], default_port: int) -> Callable[..., None]:
    """The command that serves one simulator: the same options for both, but for the port."""

    def serve(
        context: typer.Context,
        port: PortOption = default_port,
        store: SimStore = None,
        bridge: BridgeOption = "http://127.0.0.1:8400",
        token_env: TokenOption = "CCBMDM_SIM_TOKEN",
        viewer: ViewerOption = "operator",
        viewer_password_env: ViewerPasswordOption = "CCBMDM_SIM_VIEWER_PASSWORD",
        delivery: DeliveryOption = None,
        log_level: LogLevelOption = "info",
        log_format: LogFormatOption = "auto",
        project_dir: ProjectDir = None,
    ) -> None:
        if context.invoked_subcommand is None:
            logs.configure(log_level, log_format)
            viewing = (viewer, viewer_password_env)
            _serve_simulator(name, port, store, bridge, token_env, viewing, delivery, project_dir)

    serve.__doc__ = (
        f"Serve the reference {name.upper()} over HTTP, with its monitors, until stopped."
    )
    return serve


ccb_app.callback(invoke_without_command=True)(_service("ccb", 8401))
mdm_app.callback(invoke_without_command=True)(_service("mdm", 8402))


@ccb_app.command("initial-load")
def sim_initial_load(
    config: ConfigOption = None, store: StoreOption = None, project_dir: ProjectDir = None
) -> None:
    """Create one sync request per CCB entity with the initial-load flag (docs/flows.md §0.2)."""
    from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator

    with requires.runtime(config, store, project_dir) as runtime:
        ccb = runtime.systems.get("ccb")
        if not isinstance(ccb, CcbSimulator):
            fail("this runtime does not host the reference CCB")
        with err.status("capturing every entity…"):
            count = ccb.initial_load()
    out.print(
        f"{count} sync request(s) created with the initial-load flag; `ccbmdm monitor` sends them"
    )


@contextmanager
def _mdm_simulator(
    config: Path | None, store: str | None, project_dir: Path | None
) -> Iterator[tuple[Runtime, MdmSimulator]]:
    """The runtime and the reference MDM it hosts (the command needs it hosted)."""
    from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator

    with requires.runtime(config, store, project_dir) as runtime:
        mdm = runtime.systems.get("mdm")
        if not isinstance(mdm, MdmSimulator):
            fail("this runtime does not host the reference MDM")
        yield runtime, mdm


@mdm_app.command("import-espi")
def sim_import_espi(
    feed: Annotated[
        Path, typer.Argument(help="A NAESB ESPI (Green Button) XML feed.", dir_okay=False)
    ],
    sp: Annotated[
        str, typer.Option("--sp", help="The CCB SP whose installed interval MC gets it.")
    ],
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Load a Green Button feed as the interval channel of an SP's installed configuration."""
    from ccbmdm.runtime.sim.mdm.espi import EspiError
    from ccbmdm.runtime.sim.mdm.measurements import MeasurementError, import_espi

    with _mdm_simulator(config, store, project_dir) as (runtime, _):
        try:
            with err.status(f"importing {feed.name}…"):
                result = import_espi(runtime.store, feed, sp)
        except (EspiError, MeasurementError, OSError) as exc:
            fail(f"{feed}: {exc}")
    out.print(
        f"{result.values} interval value(s) of {result.seconds_per_interval // 60} minutes on MC "
        f"{result.mc_id}, {result.first_end} to {result.last_end}; {result.skipped} outside the "
        f"installation, {result.gaps} gap(s)"
    )


@mdm_app.command("correct-read")
def sim_correct_read(
    sp: Annotated[str, typer.Option("--sp", help="The CCB SP whose measurement is corrected.")],
    at: Annotated[
        str, typer.Option("--at", help="The interval's end or the read's instant, with offset.")
    ],
    value: Annotated[str, typer.Option("--value", help="The corrected value (a decimal).")],
    config: ConfigOption = None,
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Correct a measurement in MDM: usage already billed with it is notified to CCB (flow 13),
    which cancels and rebills; usage not yet on a bill is marked stale."""
    from decimal import Decimal, InvalidOperation

    from ccbmdm.runtime.messages.lexical import parse_datetime
    from ccbmdm.runtime.sim.mdm.measurements import MeasurementError

    try:
        instant = parse_datetime(at)
        Decimal(value)
    except (ValueError, InvalidOperation) as exc:
        fail(f"--at takes an ISO date-time with offset and --value a decimal: {exc}", USAGE)
    with _mdm_simulator(config, store, project_dir) as (_, mdm):
        try:
            result = mdm.usage.correct_read(sp_id=sp, at=instant, value=value)
        except (MeasurementError, LookupError, ValueError) as exc:
            fail(str(exc))
    out.print(
        f"MC {result.mc_id} at {result.measurement_date_time}: {result.old_value} -> "
        f"{result.new_value}; {len(result.corrected)} usage transaction(s) notified to CCB, "
        f"{len(result.stale)} stale, {len(result.unchanged)} unchanged"
    )
