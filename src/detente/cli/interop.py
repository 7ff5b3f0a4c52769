"""``detente indicators``, ``misp``, ``taxii`` and ``sighting``: the interop commands.

Registered on the ``detente`` command by one import at the end of
:mod:`detente.cli.main`.  ``indicators import`` and ``taxii grant`` write
the node's database directly (short transactions; the node may be running);
the others go through the running node's client API, like the rest of the
CLI.  ``misp push`` talks to a MISP server's REST API.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from detente.cli.main import (
    DEFAULT_HOME,
    ApiClient,
    HomeOpt,
    JsonOpt,
    _print_json,
    app,
    console,
    err_console,
)
from detente.core.policy import tlp_rank
from detente.errors import ConfigError, EncodingError
from detente.node.config import NodeHome

indicators_app = typer.Typer(help="STIX 2.1 indicators: import bundles.", no_args_is_help=True)
misp_app = typer.Typer(help="MISP events in and out.", no_args_is_help=True)
taxii_app = typer.Typer(help="The node's TAXII 2.1 server.", no_args_is_help=True)
app.add_typer(indicators_app, name="indicators")
app.add_typer(misp_app, name="misp")
app.add_typer(taxii_app, name="taxii")


def _import_engine(home: Path) -> Any:
    from detente.interop.ingest import import_engine  # noqa: PLC0415

    return import_engine(NodeHome(home).config().db_url)


def _case_scope(engine: Any, case_id: str) -> str:
    from detente.store.schema import tracked  # noqa: PLC0415

    with engine.connect() as conn:
        ref = conn.execute(
            select(tracked.c.agreement).where(tracked.c.case_id == case_id).limit(1)
        ).scalar_one_or_none()
    if ref is None:
        raise EncodingError(f"--case: no case {case_id} on this node")
    return str(ref).split("@", 1)[0]


@indicators_app.command("import")
def indicators_import(
    file: Annotated[Path, typer.Argument(help="a STIX 2.1 bundle (JSON), any size")],
    home: HomeOpt = DEFAULT_HOME,
    case: Annotated[
        str | None, typer.Option(help="attach to this case (its agreement's collection)")
    ] = None,
    tlp: Annotated[str, typer.Option(help="TLP of objects that carry no TLP marking")] = "AMBER",
    json_out: JsonOpt = False,
) -> None:
    """Check a bundle (every object, patterns included), then store it for the TAXII server.

    Nothing is stored unless every object is valid; an error names the object's
    position, its id and the property.
    """
    from detente.interop.ingest import import_file  # noqa: PLC0415

    tlp = tlp.upper()
    tlp_rank(tlp)
    if not file.is_file():
        raise ConfigError(f"no bundle at {file}")
    engine = _import_engine(home)
    try:
        scope = _case_scope(engine, case) if case else "local"
        size = file.stat().st_size

        def now_us() -> int:
            return int(time.time() * 1_000_000)

        args: dict[str, Any] = {
            "scope": scope,
            "source": f"local:{os.environ.get('USER', 'cli')}",
            "default_tlp": tlp,
            "case_id": case,
            "now_us": now_us,
        }
        if json_out or not err_console.is_terminal:
            result = import_file(engine, file, **args)
        else:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=err_console, transient=True) as progress:
                tasks = {
                    "checking": progress.add_task("checking", total=size),
                    "storing": progress.add_task("storing ", total=size),
                }
                result = import_file(
                    engine,
                    file,
                    progress=lambda phase, done: progress.update(tasks[phase], completed=done),
                    **args,
                )
    finally:
        engine.dispose()
    if json_out:
        _print_json({**result.to_json(), "scope": scope, "case": case})
        return
    console.print(
        f"[green]{result.objects} objects checked[/green], {result.stored} stored "
        f"({result.duplicates} already held) in collection {scope!r}"
        + (f", case {case}" if case else "")
        + f" in {result.seconds_checking + result.seconds_storing:.1f} s"
    )
    table = Table("type", "objects")
    for name, count in sorted(result.by_type.items()):
        table.add_row(name, str(count))
    console.print(table)
    console.print("by TLP: " + ", ".join(f"{k} {v}" for k, v in sorted(result.by_tlp.items())))


@app.command()
def sighting(
    indicator: Annotated[str, typer.Argument(help="the indicator's STIX id (or value)")],
    first_seen: Annotated[str, typer.Option(help="RFC 3339 time or date")],
    last_seen: Annotated[str | None, typer.Option(help="default: first_seen")] = None,
    count: Annotated[int, typer.Option(min=1)] = 1,
    where: Annotated[str | None, typer.Option(help="where it was seen (free text)")] = None,
    notification: Annotated[
        str | None, typer.Option(help="the notification it came in (found if omitted)")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    json_out: JsonOpt = False,
) -> None:
    """Report that an indicator was seen: a signed sighting to the party that sent it."""
    body: dict[str, Any] = {
        "indicator": indicator,
        "count": count,
        "first_seen": first_seen,
        "last_seen": last_seen or first_seen,
    }
    if where:
        body["where"] = where
    if notification:
        body["notification"] = notification
    sent = ApiClient(home).call("POST", "/api/v1/interop/sightings", json=body)
    if json_out:
        _print_json(sent)
        return
    for s in sent:
        console.print(f"sighting {s['id']} sent to {s['to']} (seq {s['seq']})")


# -- MISP -------------------------------------------------------------------------------------


@misp_app.command("import")
def misp_import(
    file: Annotated[Path, typer.Argument(help="a MISP event as MISP exports it (JSON)")],
    agreement: Annotated[str | None, typer.Option(help="send under this agreement")] = None,
    to: Annotated[list[str] | None, typer.Option(help="recipient, repeatable")] = None,
    lang: Annotated[str, typer.Option(help="language of the event's info text")] = "en",
    concern: Annotated[str, typer.Option(help="why it concerns the recipient")] = "other",
    send: Annotated[bool, typer.Option(help="send it (else only print the form)")] = False,
    home: HomeOpt = DEFAULT_HOME,
    json_out: JsonOpt = False,
) -> None:
    """A MISP event as a notification: attributes as STIX indicators, tags as TLP/PAP."""
    from detente.interop.misp import convert_event  # noqa: PLC0415

    if file.stat().st_size > 32 * 1024 * 1024:
        raise EncodingError(f"{file}: a MISP event over 32 MiB cannot travel as one message")
    try:
        event_json = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise EncodingError(f"{file}: not JSON ({type(exc).__name__})") from None
    conversion = convert_event(event_json, lang=lang, concern=concern)
    result: dict[str, Any] = {
        "tlp": conversion.tlp,
        "body": conversion.body,
        "skipped": conversion.skipped,
    }
    if send:
        if agreement is None:
            raise EncodingError("--agreement is required with --send")
        result["sent"] = ApiClient(home).call(
            "POST",
            "/api/v1/messages",
            json={
                "agreement": agreement,
                "to": to,
                "type": "notification",
                "tlp": conversion.tlp,
                "body": conversion.body,
            },
        )
    if json_out:
        _print_json(result)
        return
    bundle = conversion.body.get("indicators", {"objects": []})
    console.print(
        f"TLP:{conversion.tlp}, category {conversion.body['category']}, severity "
        f"{conversion.body['severity']}, {len(bundle['objects'])} STIX objects"
    )
    for item in conversion.skipped:
        err_console.print(f"[yellow]skipped[/yellow] {item['type']} {item['value']}: {item['why']}")
    for s in result.get("sent", []):
        console.print(f"sent {s['id']} to {s['to']}")
    if not send:
        _print_json(conversion.body)


def _event(home: Path, message_id: str) -> dict[str, Any]:
    event_json: dict[str, Any] = ApiClient(home).call(
        "GET", f"/api/v1/interop/misp/events/{message_id}"
    )
    return event_json


@misp_app.command("export")
def misp_export(
    message_id: str,
    out: Annotated[Path | None, typer.Option(help="write the event here")] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """A notification (sent or received) as a MISP event (JSON, for MISP's import)."""
    text = json.dumps(_event(home, message_id), ensure_ascii=False, indent=1)
    if out is not None:
        out.write_text(text + "\n")
        console.print(f"MISP event written to {out}")
    else:
        typer.echo(text)


@misp_app.command("push")
def misp_push(
    message_id: str,
    url: Annotated[str, typer.Option(help="the MISP server, e.g. https://misp.example")],
    key: Annotated[
        str | None, typer.Option(envvar="DETENTE_MISP_KEY", help="MISP automation key")
    ] = None,
    insecure: Annotated[bool, typer.Option(help="do not verify the server's TLS")] = False,
    home: HomeOpt = DEFAULT_HOME,
    json_out: JsonOpt = False,
) -> None:
    """Send a notification to a MISP instance as an event (REST API, events/add)."""
    from detente.interop.misp_push import push_event  # noqa: PLC0415

    if not key:
        raise ConfigError("--key (or DETENTE_MISP_KEY) is required")
    result = push_event(url, key, _event(home, message_id), verify=not insecure)
    if json_out:
        _print_json(result)
        return
    console.print(f"MISP event {result['uuid']} {result['action']} at {url} (id {result['id']})")


# -- TAXII --------------------------------------------------------------------------------------


@taxii_app.command("grant")
def taxii_grant(
    name: Annotated[str, typer.Argument(help="the API user (token name)")],
    max_tlp: Annotated[str, typer.Option("--max-tlp", help="highest TLP served to them")],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Set the highest TLP the TAXII server serves an API user (RED only this way)."""
    from detente.interop.access import grant  # noqa: PLC0415

    engine = _import_engine(home)
    try:
        grant(engine, name, max_tlp.upper(), int(time.time() * 1000))
    finally:
        engine.dispose()
    console.print(f"{name} is served up to TLP:{max_tlp.upper()}")


@taxii_app.command("reindex")
def taxii_reindex(home: HomeOpt = DEFAULT_HOME, json_out: JsonOpt = False) -> None:
    """Index the STIX content of every stored message again (after an upgrade; idempotent)."""
    from detente.interop.index import reindex  # noqa: PLC0415

    engine = _import_engine(home)
    try:
        count = reindex(engine)
    finally:
        engine.dispose()
    if json_out:
        _print_json({"messages": count})
    else:
        console.print(f"{count} messages read; their STIX content is indexed")


@taxii_app.command("info")
def taxii_info(home: HomeOpt = DEFAULT_HOME, json_out: JsonOpt = False) -> None:
    """The TAXII discovery URL and the collections this node serves you."""
    client = ApiClient(home)
    headers = {"accept": "application/taxii+json;version=2.1"}
    root = client.call("GET", "/taxii2/", headers=headers)["api_roots"][0]
    listing = client.call("GET", root + "collections/", headers=headers)
    if json_out:
        _print_json({"discovery": client.base + "/taxii2/", "api_root": root, **listing})
        return
    console.print(f"discovery: {client.base}/taxii2/  api root: {root}")
    table = Table("id", "title", "read", "write")
    for c in listing.get("collections", []):
        table.add_row(c["id"], c["title"], str(c["can_read"]), str(c["can_write"]))
    console.print(table)
