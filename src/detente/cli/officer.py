"""``detente officer``: the console's officer accounts (add, list, change, lock, unlock).

These commands write the node's database directly, like ``detente init``
does, so the first administrator can be created before anyone can sign in;
they are small transactions that do not touch the log, safe while the node
runs (SQLite's WAL and busy timeout; PostgreSQL's own locking).  Passwords
are read from the terminal (twice, hidden) or, for scripts, one line from
standard input with ``--password-stdin``; they are never taken as an
argument, which would leave them in the shell's history and the process list.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detente.console.accounts import MIN_PASSWORD, ROLES, Officers
from detente.errors import EncodingError
from detente.i18n import SUPPORTED
from detente.node.config import NodeHome
from detente.store.db import migrate, open_engine

officer_app = typer.Typer(
    help="Officer accounts of the duty officer's console (/console).", no_args_is_help=True
)
console = Console()

HomeOpt = Annotated[
    Path,
    typer.Option("--home", envvar="DETENTE_HOME", help="the node's directory", show_default=True),
]
DEFAULT_HOME = Path("detente-home")
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]


def _officers(home: Path) -> Officers:
    config = NodeHome(home).config()
    engine = open_engine(config.db_url)
    migrate(engine)  # a no-op on a node's current database
    return Officers(engine)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first: str = typer.prompt(f"password (at least {MIN_PASSWORD} characters)", hide_input=True)
    again: str = typer.prompt("the same password again", hide_input=True)
    if first != again:
        raise EncodingError("the two passwords differ")
    return first


@officer_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="sign-in name, e.g. ivanova")],
    role: Annotated[str, typer.Option(help="|".join(ROLES))] = "officer",
    full_name: Annotated[
        str | None,
        typer.Option(help="how the officer signs acknowledgements (default: the name)"),
    ] = None,
    lang: Annotated[str, typer.Option(help="console language: " + ", ".join(SUPPORTED))] = "en",
    password_stdin: StdinOpt = False,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Create an officer account (the password is asked for, never given as an argument)."""
    officers = _officers(home)
    try:
        officer = officers.add(name, full_name or name, role, lang, _password(password_stdin))
    finally:
        officers.engine.dispose()
    console.print(
        f"officer {officer.name} ({officer.full_name}), role {officer.role}, "
        f"language {officer.lang}: sign in at /console"
    )


@officer_app.command("list")
def list_officers(
    home: HomeOpt = DEFAULT_HOME,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Officer accounts: role, language, lock-out state."""
    officers = _officers(home)
    try:
        rows = officers.roster()
    finally:
        officers.engine.dispose()
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title="officers")
    for column in ("name", "full name", "role", "language", "state", "failed sign-ins"):
        table.add_column(column)
    for r in rows:
        state = "disabled" if r["disabled"] else ("LOCKED" if r["locked"] else "active")
        table.add_row(
            r["name"], r["full_name"], r["role"], r["lang"], state, str(r["failed_logins"])
        )
    console.print(table)


def _change(home: Path, action: str, name: str, fn: str, *args: object) -> None:
    officers = _officers(home)
    try:
        getattr(officers, fn)(name, *args)
    finally:
        officers.engine.dispose()
    console.print(f"officer {name}: {action}")


@officer_app.command("set-password")
def set_password(name: str, password_stdin: StdinOpt = False, home: HomeOpt = DEFAULT_HOME) -> None:
    """Set a new password (ends the officer's sessions, lifts a lock-out)."""
    _change(home, "password changed", name, "set_password", _password(password_stdin))


@officer_app.command("set-role")
def set_role(
    name: str,
    role: Annotated[str, typer.Argument(help="|".join(ROLES))],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Change an officer's role (effective at their next page)."""
    _change(home, f"role {role}", name, "set_role", role)


@officer_app.command("set-lang")
def set_lang(
    name: str,
    lang: Annotated[str, typer.Argument(help=", ".join(SUPPORTED))],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Change an officer's console language."""
    _change(home, f"language {lang}", name, "set_lang", lang)


@officer_app.command("unlock")
def unlock(name: str, home: HomeOpt = DEFAULT_HOME) -> None:
    """Lift a lock-out after repeated wrong passwords."""
    _change(home, "unlocked", name, "unlock")


@officer_app.command("disable")
def disable(name: str, home: HomeOpt = DEFAULT_HOME) -> None:
    """Disable an account (its sessions end at once; its record stays)."""
    _change(home, "disabled", name, "set_disabled", True)


@officer_app.command("enable")
def enable(name: str, home: HomeOpt = DEFAULT_HOME) -> None:
    """Enable a disabled account."""
    _change(home, "enabled", name, "set_disabled", False)
