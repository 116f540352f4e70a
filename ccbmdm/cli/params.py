"""Every option of the command line, declared once; a command lists the ones it takes.

An option that means something else on one command is a variant with a name of its own (the
site's ``--strict``, a simulator's ``--store``), so that one name never carries two meanings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ccbmdm.cli.failures import chosen_format
from ccbmdm.codegen import report as reports
from ccbmdm.runtime import logs

RUNTIME_CONFIG = "ccbmdm_runtime.yaml"


def _remember(value: reports.Format) -> reports.Format:
    chosen_format.set(value)
    return value


OutputFormat = Annotated[
    reports.Format,
    typer.Option(
        "--format",
        callback=_remember,
        help="How findings are written: text for people, json (a list of findings) or sarif "
        "(SARIF 2.1.0, for code scanning) on standard output.",
    ),
]
ListFormat = Annotated[
    Literal["text", "json"], typer.Option("--format", help="text, or json on standard output.")
]
Strict = Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings too.")]
ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="The project folder (default: search upward from the working directory "
        "for ccbmdm_project.yaml).",
        file_okay=False,
    ),
]

# The store and the runtime: one pair on every command that touches them, resolved by
# requires.located (docs/runtime.md, "Which store a command uses").
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The store: a SQLite file or a postgresql:// DSN (else $CCBMDM_STORE, else the "
        "store of the runtime configuration, else target/runtime.db in the project).",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The runtime configuration: store, nodes, credentials by environment variable, "
        f"delivery (else $CCBMDM_CONFIG, else {RUNTIME_CONFIG} found upward from the working "
        "directory in the project, else SQLite in target/ with the reference simulators).",
        dir_okay=False,
        show_default=False,
    ),
]
UnmaskOption = Annotated[
    bool,
    typer.Option(
        "--unmask",
        help="Show the values of personal data that reasons withhold (***), re-derived from "
        "the data itself; for an operator's terminal, never for a log or a ticket.",
    ),
]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, max=64, help="Worker processes sharing the store.")
]
BatchOption = Annotated[
    int | None,
    typer.Option("--batch", min=1, max=10_000, help="Items per claim (default: the config's)."),
]

# The logs of the commands that run the runtime: run, monitor, the simulators as services.
LogLevelOption = Annotated[
    logs.Level,
    typer.Option(
        "--log-level",
        envvar="CCBMDM_LOG_LEVEL",
        help="The least severe log lines written to standard error: debug, info (every "
        "delivery and lifecycle move), warning (retries, faults) or error.",
    ),
]
LogFormatOption = Annotated[
    logs.Format,
    typer.Option(
        "--log-format",
        envvar="CCBMDM_LOG_FORMAT",
        help="json (one JSON object a line), text (lines for people), or auto: text on a "
        "terminal, json otherwise.",
    ),
]

# The documentation site.
SiteOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        file_okay=False,
        help="Folder of the built HTML (default: the project's target/site).",
    ),
]
SiteStrict = Annotated[
    bool,
    typer.Option("--strict", help="Fail on any warning of the site build (a broken link, a page)."),
]

# The simulators as services: each keeps a store of its own, beside the bridge's.
SimStore = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Its SQLite file or postgresql:// DSN (default: target/ccb.db or target/mdm.db).",
        show_default=False,
    ),
]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")]
BridgeOption = Annotated[
    str, typer.Option("--bridge", help="The bridge's base URL (a runtime serving it).")
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token-env",
        help="The environment variable holding the bearer token the simulator and the bridge "
        "present to each other.",
    ),
]
ViewerOption = Annotated[
    str,
    typer.Option(
        "--viewer",
        help="The user an operator gives a browser (HTTP Basic) to read the entity pages.",
    ),
]
ViewerPasswordOption = Annotated[
    str,
    typer.Option(
        "--viewer-password-env",
        help="The environment variable holding that user's password; unset, only the bridge's "
        "token reads the pages.",
    ),
]
DeliveryOption = Annotated[
    Path | None,
    typer.Option(
        "--delivery",
        help="A YAML file whose delivery: settings (as in a runtime configuration) replace the "
        "simulator's (lease 30 s, backoff from 1 s to 30 s, retry window 10 min).",
        dir_okay=False,
    ),
]
