"""The command tree and the two consoles every command writes to.

Standard output carries a command's result (a message, a table, JSON); standard error carries
progress, warnings and failures, so that a result can be piped on.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ccbmdm import __version__
from ccbmdm.help_labels import use_plain_labels

use_plain_labels()
# -h as well as --help, on every command and group.
HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    context_settings=HELP,
    name="ccbmdm",
    help="Contract-first integration of CCB and MDM: compile contracts, validate messages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
docs_app = typer.Typer(
    context_settings=HELP,
    help="The documentation site: the contract and mapping reference with the guides.",
    no_args_is_help=True,
)
sim_app = typer.Typer(
    context_settings=HELP,
    help="The reference simulators of CCB and MDM, as HTTP services or for one task.",
    no_args_is_help=True,
)
ccb_app = typer.Typer(
    context_settings=HELP, help="The reference CCB: serve it (no command), or one task."
)
mdm_app = typer.Typer(
    context_settings=HELP, help="The reference MDM: serve it (no command), or one task."
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"ccbmdm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Contract-first integration of CCB and MDM."""
