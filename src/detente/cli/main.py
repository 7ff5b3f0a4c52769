"""Entry point of the ``detente`` command.

Exit codes: 0 success, 1 a Détente error (message printed, naming what is
wrong), 2 bad usage (Typer's own).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from detente.errors import DetenteError

app = typer.Typer(
    name="detente",
    help="Détente: a cyber hotline for states.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.command()
def demo() -> None:
    """Show the trust core at work: seal, deliver, receipt, log proof, verify."""
    from detente.cli.selfcheck import run_selfcheck  # noqa: PLC0415 - keeps --help fast

    table = Table(title="Détente self-check: the trust core, in memory", show_lines=False)
    table.add_column("step", style="bold")
    table.add_column("result")
    run_selfcheck(table.add_row)
    console.print(table)
    console.print("[green]all checks passed[/green]")


@app.command()
def version() -> None:
    """Print the version."""
    from detente import __version__  # noqa: PLC0415

    console.print(__version__)


def main() -> None:
    try:
        app()
    except DetenteError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
