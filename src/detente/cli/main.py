"""Entry point of the ``detente`` command.

Every command takes ``--home`` (or ``DETENTE_HOME``; default ``./detente-home``)
and ``--json``.  Human output is Rich tables; errors are one line on stderr
and exit code 1 (2 for bad usage, Typer's own).  Commands that change a
running node's state go through its client API; ``log verify``, ``log
checkpoint`` and ``log prove`` read the store directly, so an auditor can run
them with the node stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from detente.cli.exercise import exercise_app
from detente.cli.officer import officer_app
from detente.core.agreement import Agreement
from detente.core.canonical import parse
from detente.core.keys import format_fingerprint
from detente.core.party import PartyCard
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.errors import ConfigError, DeliveryError, DetenteError, EncodingError
from detente.node.clock import SystemClock
from detente.node.config import NodeHome

app = typer.Typer(
    name="detente",
    help="Détente: a cyber hotline for states.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agreement_app = typer.Typer(help="Create, sign, install and show agreements.", no_args_is_help=True)
log_app = typer.Typer(help="The node's verifiable log.", no_args_is_help=True)
token_app = typer.Typer(help="Client API tokens.", no_args_is_help=True)
app.add_typer(agreement_app, name="agreement")
app.add_typer(log_app, name="log")
app.add_typer(token_app, name="token")
app.add_typer(exercise_app, name="exercise")
app.add_typer(officer_app, name="officer")

console = Console()
err_console = Console(stderr=True)

HomeOpt = Annotated[
    Path,
    typer.Option("--home", envvar="DETENTE_HOME", help="the node's directory", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
DEFAULT_HOME = Path("detente-home")

LangOpt = Annotated[
    str | None,
    typer.Option("--lang", help="the reader's language (default: the node's first language)"),
]


def _reader(home: Path | None, lang: str | None) -> tuple[str, Any]:
    """The reader's language and its translator (the node's first language by default)."""
    from detente.i18n import best_language, translator  # noqa: PLC0415

    requested = lang or "en"
    if lang is None and home is not None:
        with contextlib.suppress(DetenteError, OSError):
            requested = (NodeHome(home).config().languages or ["en"])[0]
    reader = best_language(requested)
    return reader, translator(reader)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        lang, sep, text = value.partition("=")
        if not sep or not lang or not text:
            raise EncodingError(f"{what} must be LANG=TEXT, e.g. en=Example (got {value!r})")
        out[lang] = text
    return out


@contextmanager
def node_lock(home: Path, *, wait: bool) -> Iterator[bool]:
    """The node's exclusive lock: ``serve`` holds it; direct store writers take it.

    Yields False (without the lock) if ``wait`` is False and the node is running.
    """
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class ApiClient:
    """The local node's client API, with the CLI token from the home directory."""

    def __init__(self, home: Path) -> None:
        node_home = NodeHome(home)
        config = node_home.config()
        self.base = f"http://{config.listen_host}:{config.listen_port}"
        self._client = httpx.Client(
            base_url=self.base,
            headers={"authorization": f"Bearer {node_home.cli_token()}"},
            timeout=60.0,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"the node is not reachable at {self.base} ({type(exc).__name__}); "
                "is 'detente serve' running?"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise DeliveryError(f"node answered {response.status_code}: {detail}")
        return response.json()


# -- init, card, serve ------------------------------------------------------------


@app.command()
def init(
    party_id: Annotated[str, typer.Option("--id", help="party id, e.g. US-CISA")],
    name: Annotated[list[str], typer.Option(help="LANG=NAME, repeatable")],
    home: HomeOpt = DEFAULT_HOME,
    country: Annotated[
        str | None, typer.Option(help="ISO 3166 alpha-2, none for regional bodies")
    ] = None,
    role: Annotated[
        str, typer.Option(help="technical|senior|hotline|law-enforcement|platform")
    ] = "technical",
    language: Annotated[
        list[str] | None, typer.Option("--lang", help="working language, repeatable")
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8750,
    endpoint: Annotated[str | None, typer.Option(help="URL peers reach this node at")] = None,
    db: Annotated[str | None, typer.Option(help="database URL (default: SQLite in HOME)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a node: keys (0600), configuration, party card, database, CLI token."""
    from detente.node.service import init_node  # noqa: PLC0415 - heavy imports only when needed

    node_home = init_node(
        home,
        party_id=party_id,
        names=_pairs(name, "--name"),
        country=country,
        role=role,
        languages=language or ["en"],
        listen_host=host,
        listen_port=port,
        endpoint=endpoint,
        db_url=db,
    )
    card = node_home.card()
    if json_out:
        _print_json({"home": str(home), "card": card.to_json()})
        return
    # --lang here is the node's working languages: the reader's is the first of them.
    _, t = _reader(home, None)
    created = t("node {party} created in {home}").format(party=party_id, home=home)
    console.print(f"[green]{created}[/green]")
    fingerprint = format_fingerprint(card.keys.fingerprint)
    console.print(f"{t('Fingerprint')}: [bold]{fingerprint}[/bold]")
    console.print(
        t("party card: {path} (hand it to the other agencies)").format(path=home / "card.json")
    )


@app.command()
def card(home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False) -> None:
    """Show this node's party card (its public keys and endpoint)."""
    party = NodeHome(home).card()
    if json_out:
        _print_json(party.to_json())
        return
    _, t = _reader(home, lang)
    table = Table(title=t("Party card {id}").format(id=party.id), show_header=False)
    table.add_row(t("Names"), ", ".join(f"{k}: {v}" for k, v in party.names.items()))
    table.add_row(t("Role"), party.role)
    table.add_row(t("Endpoint"), party.endpoint)
    table.add_row(t("Fingerprint"), format_fingerprint(party.keys.fingerprint))
    ed, ml = party.log_verifier_keys()
    table.add_row(t("Log key (C2SP)"), ed)
    table.add_row(t("Log key (ML-DSA-65)"), ml[:60] + "…")
    console.print(table)


@app.command()
def serve(
    home: HomeOpt = DEFAULT_HOME,
    host: Annotated[str | None, typer.Option(help="override the configured address")] = None,
    port: Annotated[int | None, typer.Option(help="override the configured port")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    manual_clock: Annotated[
        str | None,
        typer.Option(
            help="tests and rehearsals: start the node's clock at this time (RFC 3339) and "
            "move it only through POST /api/v1/clock (admin token)",
            hidden=True,
        ),
    ] = None,
) -> None:
    """Run the node: federation endpoints, client API and background workers."""
    import logging  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from detente.api.app import create_app  # noqa: PLC0415

    config = NodeHome(home).config()
    clock = None
    if manual_clock is not None:
        from detente.core.timefmt import parse_time  # noqa: PLC0415
        from detente.node.clock import FakeClock  # noqa: PLC0415

        clock = FakeClock(parse_time(manual_clock, field="--manual-clock"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with node_lock(home, wait=False) as locked:
        if not locked:
            raise ConfigError(f"a node is already running from {home}")
        uvicorn.run(
            create_app(home, clock=clock),
            host=host or config.listen_host,
            port=port or config.listen_port,
            log_level=log_level,
            access_log=False,
        )


# -- agreements -----------------------------------------------------------------------


def _load_agreement(path: Path) -> Agreement:
    try:
        return Agreement.from_json(parse(path.read_bytes()))
    except FileNotFoundError:
        raise ConfigError(f"no agreement file at {path}") from None


@agreement_app.command("create")
def agreement_create(
    agreement_id: Annotated[str, typer.Option("--id", help="agreement id, a lower-case slug")],
    title: Annotated[list[str], typer.Option(help="LANG=TITLE, repeatable")],
    member: Annotated[list[Path], typer.Option(help="a member's card.json, repeatable")],
    out: Annotated[Path, typer.Option(help="where to write the (unsigned) agreement")],
    max_tlp: Annotated[str, typer.Option(help="highest TLP allowed")] = "AMBER",
    types: Annotated[list[str] | None, typer.Option("--type", help="allowed message type")] = None,
    personal_data: Annotated[bool, typer.Option(help="allow personal data")] = False,
    kem: Annotated[str, typer.Option(help="MLKEM768_X25519 or X25519")] = "MLKEM768_X25519",
    valid_days: Annotated[int, typer.Option(help="validity from now, in days")] = 365,
    previous: Annotated[Path | None, typer.Option(help="the version this one succeeds")] = None,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Draft an agreement (version 1, or the next version of --previous)."""
    cards = [PartyCard.from_json(parse(p.read_bytes())) for p in member]
    now = SystemClock().now()
    prev = _load_agreement(previous) if previous else None
    agreement = Agreement(
        id=agreement_id,
        version=prev.version + 1 if prev else 1,
        titles=_pairs(title, "--title"),
        members=tuple(cards),
        policy=Policy(
            message_types=frozenset(types or MESSAGE_TYPES),
            max_tlp=max_tlp,
            personal_data=personal_data,
            kem=kem,
        ),
        valid_from=now - timedelta(minutes=5),
        valid_until=now + timedelta(days=valid_days),
        previous=prev.digest() if prev else None,
    )
    out.write_bytes(agreement.to_bytes())
    if json_out:
        _print_json({"agreement": agreement.ref, "file": str(out)})
    else:
        _, t = _reader(None, lang)
        console.print(
            t("agreement {ref} drafted in {path}; every member must sign it").format(
                ref=agreement.ref, path=out
            )
        )


@agreement_app.command("sign")
def agreement_sign(
    file: Path,
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add this node's signature (Ed25519 + ML-DSA-65) to an agreement file."""
    node_home = NodeHome(home)
    agreement = _load_agreement(file).sign(node_home.config().party_id, node_home.keys())
    file.write_bytes(agreement.to_bytes())
    signed = sorted({s.party for s in agreement.signatures})
    missing = [m.id for m in agreement.members if m.id not in signed]
    if json_out:
        _print_json({"agreement": agreement.ref, "signed_by": signed, "missing": missing})
    else:
        _, t = _reader(home, lang)
        console.print(
            t("signed {ref}; still to sign: {parties}").format(
                ref=agreement.ref, parties=", ".join(missing) or t("nobody")
            )
        )


@agreement_app.command("install")
def agreement_install(
    file: Path, home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False
) -> None:
    """Install a fully signed agreement (first version, or the next one)."""
    agreement = _load_agreement(file)
    agreement.verify_signatures()
    with node_lock(home, wait=False) as locked:
        if locked:
            from detente.node.service import Node  # noqa: PLC0415

            node = Node(NodeHome(home))
            try:
                new = node.install_agreement(agreement)
            finally:
                node.close()
        else:
            new = ApiClient(home).call("POST", "/api/v1/agreements", content=agreement.to_bytes())[
                "new"
            ]
    if json_out:
        _print_json({"installed": agreement.ref, "new": new})
    else:
        _, t = _reader(home, lang)
        done = t("agreement {ref} installed") if new else t("agreement {ref} was already installed")
        console.print(done.format(ref=agreement.ref))


@agreement_app.command("show")
def agreement_show(file: Path, lang: LangOpt = None, json_out: JsonOpt = False) -> None:
    """Show an agreement file: members, fingerprints, policy, signatures."""
    from detente.i18n import code_label, pick, tlp_label  # noqa: PLC0415

    agreement = _load_agreement(file)
    if json_out:
        _print_json(agreement.to_json())
        return
    reader, t = _reader(None, lang)
    signed = {s.party for s in agreement.signatures}
    table = Table(title=f"{agreement.ref}: {pick(agreement.titles, reader)}")
    for column in ("Member", "Role", "Fingerprint", "Signed"):
        table.add_column(t(column))
    for m in agreement.members:
        table.add_row(
            f"{m.id} ({pick(m.names, reader)})" if m.names else m.id,
            m.role,
            format_fingerprint(m.keys.fingerprint),
            t("yes") if m.id in signed else f"[red]{t('no')}[/red]",
        )
    console.print(table)
    policy = agreement.policy
    console.print(
        t(
            "message types: {types}; highest TLP: {tlp}; personal data: {personal}; KEM: {kem}"
        ).format(
            types=", ".join(code_label("type", c, reader) for c in sorted(policy.message_types)),
            tlp=tlp_label(policy.max_tlp),
            personal=t("yes") if policy.personal_data else t("no"),
            kem=policy.kem,
        )
    )


# -- messages --------------------------------------------------------------------------


@app.command()
def send(
    agreement: Annotated[str, typer.Option(help="agreement id")],
    message_type: Annotated[str, typer.Option("--type", help="notification, request, ...")],
    body: Annotated[str, typer.Option(help="the form as JSON, or @FILE")],
    to: Annotated[
        list[str] | None, typer.Option(help="recipient, repeatable (default: all)")
    ] = None,
    tlp: Annotated[str, typer.Option(help="TLP 2.0 label")] = "AMBER",
    case: Annotated[str | None, typer.Option(help="case id")] = None,
    reply_to: Annotated[str | None, typer.Option(help="message id this answers")] = None,
    exercise: Annotated[bool, typer.Option(help="mark as EXERCISE traffic")] = False,
    personal_data: Annotated[bool, typer.Option(help="the form holds personal data")] = False,
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a message through the running node."""
    text = Path(body[1:]).read_text() if body.startswith("@") else body
    form = parse(text)
    sent = ApiClient(home).call(
        "POST",
        "/api/v1/messages",
        json={
            "agreement": agreement,
            "to": to,
            "type": message_type,
            "tlp": tlp,
            "body": form,
            "case": case,
            "reply_to": reply_to,
            "exercise": exercise,
            "personal_data": personal_data,
        },
    )
    if json_out:
        _print_json(sent)
        return
    _, t = _reader(home, lang)
    for item in sent:
        console.print(
            t("queued {id} to {party} (sequence number {seq})").format(
                id=item["id"], party=item["to"], seq=item["seq"]
            )
        )


@app.command()
def inbox(
    home: HomeOpt = DEFAULT_HOME,
    limit: Annotated[int, typer.Option(help="how many")] = 50,
    outgoing: Annotated[bool, typer.Option(help="show sent messages instead")] = False,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List received (or sent) messages, newest first."""
    from detente.i18n import code_label, format_time_for, tlp_label  # noqa: PLC0415

    rows = ApiClient(home).call(
        "GET", "/api/v1/messages", params={"direction": "out" if outgoing else "in", "limit": limit}
    )
    if json_out:
        _print_json(rows)
        return
    reader, t = _reader(home, lang)
    table = Table(title=t("Sent messages") if outgoing else t("Inbox"))
    for column in ("ID", "From", "To", "Type", "TLP", "Case", "Created", "Delivery"):
        table.add_column("TLP" if column == "TLP" else t(column))  # TLP: never translated
    for r in rows:
        mark = f"[yellow]{t('EXERCISE')}[/yellow] " if r["exercise"] else ""
        table.add_row(
            r["id"],
            r["from"],
            r["to"],
            mark + code_label("type", r["type"], reader),
            tlp_label(r["tlp"]),
            r["case"] or "",
            format_time_for(r["created"], reader),
            code_label("delivery", r["delivery"], reader) if r["delivery"] else "",
        )
    console.print(table)


@app.command()
def show(
    message_id: str,
    home: HomeOpt = DEFAULT_HOME,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="the reader's language, e.g. ru, ar, zh-Hans (default: the node's first "
            "language); free text stays in its original language",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one message: header, content in the reader's language, receipt."""
    from rich.text import Text  # noqa: PLC0415

    from detente.i18n import (  # noqa: PLC0415 - Babel only when a person reads
        SUPPORTED,
        best_language,
        code_label,
        format_time_for,
        is_rtl,
        render_message,
        tlp_label,
        translator,
    )

    detail = ApiClient(home).call("GET", f"/api/v1/messages/{message_id}")
    if json_out:
        _print_json(detail)  # machine-readable: codes, as on the wire
        return
    requested = lang or (NodeHome(home).config().languages or ["en"])[0]
    reader = best_language(requested)
    t = translator(reader)
    if requested.replace("_", "-").split("-")[0].lower() not in SUPPORTED:
        err_console.print(
            t("no catalogue for {requested}; shown in {shown}").format(
                requested=requested, shown=reader
            )
        )
    rtl = is_rtl(reader)
    table = Table(title=t("Message {id}").format(id=message_id), show_header=False)
    table.add_column(justify="right" if rtl else "left", style="bold")
    table.add_column(justify="right" if rtl else "left")
    if detail.get("exercise"):
        # The English marker stays, as on every screen; the reader's word follows it.
        banner = "EXERCISE" if reader == "en" else f"EXERCISE / {t('EXERCISE')}"
        table.add_row(Text(banner, style="bold yellow"), Text(""))

    def coded(label: str, code: str | None) -> Text:
        text = Text(label)
        if code is not None and code != label:
            text.append(f"  ({code})", style="dim")
        return text

    direction = detail.get("direction")
    delivery = detail.get("delivery")
    msg_type = str(detail.get("type"))
    header: list[tuple[str, Text]] = [
        (t("Direction"), coded(code_label("direction", direction, reader), direction)),
        (t("From"), Text(str(detail.get("from")))),
        (t("To"), Text(str(detail.get("to")))),
        (t("Agreement"), Text(str(detail.get("agreement") or ""))),
        (t("Sequence number"), Text(str(detail.get("seq")))),
        (t("Message type"), coded(code_label("type", msg_type, reader), msg_type)),
        # TLP 2.0 labels are never translated.
        (t("Sharing (TLP)"), Text(tlp_label(str(detail.get("tlp"))))),
        (t("Case"), Text(str(detail.get("case") or ""))),
        (t("Reply to"), Text(str(detail.get("reply_to") or ""))),
        (t("Created"), Text(format_time_for(str(detail.get("created")), reader))),
        (t("Exercise"), Text(t("yes") if detail.get("exercise") else t("no"))),
        (t("Envelope hash"), Text(str(detail.get("envelope_hash")))),
        (t("Log index"), Text("" if detail.get("log_index") is None else str(detail["log_index"]))),
        (
            t("Delivery"),
            coded(code_label("delivery", delivery, reader), delivery) if delivery else Text(""),
        ),
    ]
    for label, value in header:
        table.add_row(Text(label), value)
    table.add_section()
    content = detail.get("content")
    if not content:
        table.add_row(Text(t("Content")), Text(t("not available on this node"), style="dim"))
    else:
        if content.get("personal_data"):
            table.add_row(Text(t("Personal data")), Text(t("yes"), style="bold red"))
        for row in render_message(content["type"], content["body"], reader):
            # Codes are shown next to their label: the shared vocabulary across languages.
            value = coded(row.value, row.code if row.kind in ("code", "codes") else None)
            if row.note:
                value.append("\n" + row.note, style="dim italic")
            table.add_row(Text(row.label), value)
    table.add_section()
    receipt = detail.get("receipt")
    table.add_row(
        Text(t("Receipt")),
        Text(
            t("received {received}, log index {index}").format(
                received=format_time_for(receipt["received"], reader),
                index=receipt["log_index"],
            )
            if receipt
            else t("none yet")
        ),
    )
    console.print(table)


@app.command()
def peers(home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False) -> None:
    """Members of installed agreements, what we witnessed of their logs, what is pending."""
    rows = ApiClient(home).call("GET", "/api/v1/peers")
    alarms = ApiClient(home).call("GET", "/api/v1/alarms")
    if json_out:
        _print_json({"peers": rows, "alarms": alarms})
        return
    _, t = _reader(home, lang)
    table = Table(title=t("Peers"))
    for column in ("ID", "Name", "Role", "Endpoint", "Witnessed size", "Pending"):
        table.add_column(t(column))
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["role"],
            r["endpoint"],
            str(r["witnessed_size"]),
            str(r["pending"]),
        )
    console.print(table)
    for alarm in alarms:
        console.print(
            f"[red]{t('ALARM')}[/red] {alarm['kind']} {alarm['peer'] or ''}: {alarm['detail']}"
        )


@app.command()
def alarms(home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False) -> None:
    """Unacknowledged alarms: forks, gaps, refused deliveries, bad receipts."""
    from detente.i18n import format_time_for  # noqa: PLC0415

    rows = ApiClient(home).call("GET", "/api/v1/alarms")
    if json_out:
        _print_json(rows)
        return
    reader, t = _reader(home, lang)
    for alarm in rows:
        peer = alarm["peer"] or ""
        created = format_time_for(alarm["created"], reader)
        # The kind is a code and the detail the node's own record: both as they are.
        console.print(f"[red]{alarm['kind']}[/red] {created} {peer}: {alarm['detail']}")
    if not rows:
        console.print(t("No alarms."))


# -- the workflow: cases, acknowledgements, directory, pings, report, audit -------------


def _when(text: str, option: str) -> str:
    """An RFC 3339 time, or a date (midnight UTC), as the API takes it."""
    from detente.core.timefmt import format_time, parse_user_time  # noqa: PLC0415

    return format_time(parse_user_time(text, field=option))


@app.command()
def cases(
    home: HomeOpt = DEFAULT_HOME,
    open_only: Annotated[bool, typer.Option("--open", help="only cases not closed")] = False,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cases, newest first: state, ladder level, next deadline, overdue items."""
    from detente.i18n import code_label, format_time_for  # noqa: PLC0415

    rows = ApiClient(home).call("GET", "/api/v1/cases", params={"open_only": open_only})
    if json_out:
        _print_json(rows)
        return
    reader, t = _reader(home, lang)
    table = Table(title=t("Cases"))
    for column in (
        "Case",
        "Opened",
        "Type",
        "Subject",
        "With",
        "States",
        "Level",
        "Next deadline",
        "Overdue",
    ):
        table.add_column(t(column))
    for c in rows:
        states = ", ".join(f"{code_label('state', k, reader)} {v}" for k, v in c["states"].items())
        table.add_row(
            (f"[yellow]{t('EXERCISE')}[/yellow] " if c["exercise"] else "") + c["case"],
            format_time_for(c["opened"], reader),
            code_label("type", c["type"], reader),
            c["subject"],
            ", ".join(c["counterparties"]),
            states,
            code_label("level", c["level"], reader),
            format_time_for(c["next_deadline"], reader) if c["next_deadline"] else "",
            f"[red]{c['overdue']}[/red]" if c["overdue"] else "0",
        )
    console.print(table)


@app.command()
def case(
    case_id: str, home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False
) -> None:
    """One case: deadlines per message, every message, every event."""
    from detente.i18n import code_label, format_time_for  # noqa: PLC0415

    detail = ApiClient(home).call("GET", f"/api/v1/cases/{case_id}")
    if json_out:
        _print_json(detail)
        return
    reader, t = _reader(home, lang)

    def when(value: str | None) -> str:
        return format_time_for(value, reader) if value else ""

    if detail["exercise"]:
        console.print(f"[yellow]{t('EXERCISE')}[/yellow]")
    table = Table(title=t("Case {id}").format(id=case_id))
    for column in (
        "Message",
        "Type",
        "With",
        "State",
        "Level",
        "Acknowledgement due",
        "Acknowledged",
        "Answer due",
        "Answered",
        "Overdue",
    ):
        table.add_column(t(column))
    for row in detail["tracked"]:
        acked = when(row["acknowledged"])
        if row["acknowledged_by"]:
            acked += " " + t("by {officer}").format(officer=row["acknowledged_by"])
        answered = when(row["answered"])
        if row["answer_status"]:
            answered += " " + code_label("status", row["answer_status"], reader)
        table.add_row(
            row["message"],
            f"{code_label('type', row['type'], reader)} "
            f"({code_label('direction', row['direction'], reader)})",
            row["counterparty"],
            code_label("state", row["state"], reader),
            code_label("level", row["level"], reader),
            when(row["ack_due"]),
            acked,
            when(row["answer_due"]),
            answered,
            ", ".join(code_label("owed", o, reader) for o in row["overdue"]),
        )
    console.print(table)
    history = Table(title=t("History"))
    for column in ("At", "Event", "Detail"):
        history.add_column(t(column))
    for m in detail["messages"]:
        history.add_row(
            when(m["created"]),
            f"{code_label('type', m['type'], reader)} "
            f"({code_label('direction', m['direction'], reader)})",
            f"{m['from']} -> {m['to']} {m['id']}",
        )
    for e in detail["events"]:
        history.add_row(when(e["at"]), code_label("event", e["kind"], reader), e["detail"])
    console.print(history)


def _reply(
    home: Path, msg_type: str, body: dict[str, Any], json_out: bool, lang: str | None = None
) -> None:
    from detente.i18n import code_label  # noqa: PLC0415

    sent = ApiClient(home).call(
        "POST", "/api/v1/messages", json={"type": msg_type, "tlp": "AMBER", "body": body}
    )
    if json_out:
        _print_json(sent)
        return
    reader, t = _reader(home, lang)
    for item in sent:
        console.print(
            t("{type} {id} queued to {party}").format(
                type=code_label("type", msg_type, reader), id=item["id"], party=item["to"]
            )
        )


@app.command()
def ack(
    message_id: str,
    officer: Annotated[str, typer.Option(help="your name: a person on duty acknowledges")],
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Acknowledge, as the officer on duty, that you read a message (not a machine receipt)."""
    from detente.core.timefmt import format_time  # noqa: PLC0415

    read_at = format_time(SystemClock().now())
    body = {"message": message_id, "officer": officer, "read_at": read_at}
    _reply(home, "ack", body, json_out, lang)


@app.command()
def respond(
    request_id: str,
    status: Annotated[
        str,
        typer.Option(
            help="acknowledged, need-more-information, in-progress, "
            "action-taken, declined, completed"
        ),
    ],
    details: Annotated[
        str | None, typer.Option(help="what was done, what is needed, or why")
    ] = None,
    lang: Annotated[str, typer.Option(help="language of the details")] = "en",
    home: HomeOpt = DEFAULT_HOME,
    reader_lang: Annotated[
        str | None,
        typer.Option(
            "--reader-lang",
            help="the reader's language (default: the node's first language); "
            "--lang is the language of the details",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a request (or a notification, a consultation) in its case."""
    body: dict[str, Any] = {"request": request_id, "status": status}
    if details:
        body["details"] = {"lang": lang, "text": details}
    _reply(home, "response", body, json_out, reader_lang)


@app.command()
def pong(
    ping_id: str,
    officer: Annotated[str, typer.Option(help="your name: only a person's answer counts")],
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a ping test by hand."""
    _reply(home, "pong", {"ping": ping_id, "officer": officer}, json_out, lang)


@app.command()
def directory(
    home: HomeOpt = DEFAULT_HOME,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="the reader's language, also for names and titles "
            "(default: the node's first language)",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Points of contact per agreement: party, role, languages, hours, ladder levels."""
    from detente.i18n import code_label  # noqa: PLC0415

    reader, t = _reader(home, lang)
    rows = ApiClient(home).call("GET", "/api/v1/directory", params={"lang": lang or reader})
    if json_out:
        _print_json(rows)
        return
    for a in rows:
        ladder = " -> ".join(
            code_label("level", r["level"], reader)
            + (" " + t("(+{seconds} s)").format(seconds=r["after"]) if r["after"] else "")
            for r in a["ladder"]
        )
        title = t("{title} ({agreement}, version {version}); escalation ladder: {ladder}")
        table = Table(
            title=title.format(
                title=a["title"], agreement=a["agreement"], version=a["version"], ladder=ladder
            )
        )
        for column in ("Party", "Name", "Role", "Languages", "Hours", "Endpoint"):
            table.add_column(t(column))
        for c in a["contacts"]:
            table.add_row(
                c["party"],
                c["name"],
                c["role"],
                ", ".join(c["languages"]),
                c["hours"],
                c["endpoint"],
            )
        console.print(table)


@app.command()
def ping(
    agreement: Annotated[str, typer.Option(help="agreement id")],
    to: Annotated[list[str] | None, typer.Option(help="party, repeatable (default: all)")] = None,
    report_round: Annotated[
        str | None, typer.Option("--report", help="show the answers to this round instead")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ping test: each party's officer must answer by hand (detente pong); or --report ROUND."""
    client = ApiClient(home)
    if report_round is None:
        result = client.call("POST", "/api/v1/ping", json={"agreement": agreement, "to": to})
        if json_out:
            _print_json(result)
            return
        _, t = _reader(home, lang)
        console.print(
            t("ping round {round} sent to: {parties}").format(
                round=result["round"], parties=", ".join(s["to"] for s in result["sent"])
            )
        )
        return
    report = client.call("GET", "/api/v1/ping/report", params={"round": report_round})
    if json_out:
        _print_json(report)
        return
    _, t = _reader(home, lang)
    table = Table(title=t("Ping round {round}").format(round=report_round))
    for column in (
        "Party",
        "Sent",
        "Answered",
        "Median (s)",
        "90th percentile (s)",
        "Unanswered",
        "Pending",
    ):
        table.add_column(t(column))
    for p in report["parties"]:
        table.add_row(
            p["party"],
            str(p["sent"]),
            str(p["answered"]),
            "" if p["answer_seconds_median"] is None else f"{p['answer_seconds_median']:.0f}",
            "" if p["answer_seconds_p90"] is None else f"{p['answer_seconds_p90']:.0f}",
            str(p["unanswered"]),
            str(p["pending"]),
        )
    console.print(table)


@app.command()
def report(
    counterparty: Annotated[str, typer.Option(help="the other party, e.g. RU-NCCC")],
    since: Annotated[str, typer.Option(help="start (RFC 3339 time or YYYY-MM-DD)")],
    until: Annotated[str | None, typer.Option(help="end (default: now)")] = None,
    exercise: Annotated[bool, typer.Option(help="report exercise traffic instead")] = False,
    out: Annotated[Path | None, typer.Option(help="write the signed report here")] = None,
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The signed accountability record towards a counterparty (check it with detente audit)."""
    params: dict[str, Any] = {
        "counterparty": counterparty,
        "since": _when(since, "--since"),
        "exercise": exercise,
    }
    if until is not None:
        params["until"] = _when(until, "--until")
    bundle = ApiClient(home).call("GET", "/api/v1/report", params=params)
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if out is not None:
        out.write_text(text + "\n")
    if json_out:
        if out is None:
            _print_json(bundle)
        return
    r = bundle["report"]
    from detente.i18n import code_label, format_time_for  # noqa: PLC0415

    reader, t = _reader(home, lang)
    title = t("{party} to {counterparty}, {since} to {until}").format(
        party=r["party"],
        counterparty=r["counterparty"],
        since=format_time_for(r["since"], reader),
        until=format_time_for(r["until"], reader),
    )
    table = Table(title=title + (f" [{t('EXERCISE')}]" if r["exercise"] else ""))
    columns = ("sent", "delivered", "acknowledged", "answered", "overdue", "declined")
    table.add_column(t("Type"))
    for column in ("Sent", "Delivered", "Acknowledged", "Answered", "Overdue", "Declined"):
        table.add_column(t(column))
    for msg_type, c in r["counts"].items():
        table.add_row(code_label("type", msg_type, reader), *(str(c[k]) for k in columns))
    console.print(table)
    if out is not None:
        console.print(
            t("signed report written to {path}; items: {count}").format(
                path=out, count=len(r["items"])
            )
        )


@app.command()
def audit(
    bundle: Path,
    agreement: Annotated[
        list[Path] | None, typer.Option(help="your copy of the agreement, repeatable")
    ] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="the reader's language")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a report offline, as a third party: signatures, receipts, proofs, counts."""
    from detente.audit import audit_report  # noqa: PLC0415

    try:
        data = parse(bundle.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"no report at {bundle}") from None
    result = audit_report(data, [_load_agreement(p) for p in agreement or []])
    if json_out:
        _print_json(result.to_json())
    else:
        from detente.i18n import code_label, verdict_sentence  # noqa: PLC0415

        reader, t = _reader(None, lang)
        console.print(
            t("report by {party} about {counterparty}; agreement: {source}").format(
                party=result.party, counterparty=result.counterparty, source=result.agreement_source
            )
        )
        for item in result.items:
            mark = (
                "[red]✗[/red]"
                if item.problems
                else ("[yellow]![/yellow]" if item.findings else "✓")
            )
            sentence = verdict_sentence(
                item.proven,
                item.officer,
                reader,
                ack_due=item.ack_due,
                answer_due=item.answer_due,
                receipt_ok=item.receipt_ok,
                withheld=item.withheld,
            )
            console.print(
                f"{mark} {code_label('type', item.type, reader)} {item.message}: {sentence}"
            )
            for text in item.problems:
                console.print(f"    [red]{t('problem')}:[/red] {text}")
            for text in item.findings:
                console.print(f"    [yellow]{t('finding')}:[/yellow] {text}")
        for text in result.problems:
            if not any(text.startswith(i.message) for i in result.items):
                console.print(f"[red]{t('problem')}:[/red] {text}")
        for text in result.findings:
            if not any(text.startswith(i.message) for i in result.items):
                console.print(f"[yellow]{t('finding')}:[/yellow] {text}")
        proven_all = t("VERDICT: the report is authentic and every claim in it is proven")
        console.print(
            f"[green]{proven_all}[/green]"
            if result.ok
            else "[red]"
            + t("VERDICT: the report does not hold up; problems: {count}").format(
                count=len(result.problems)
            )
            + "[/red]"
        )
    if not result.ok:
        raise typer.Exit(1)


@token_app.command("add")
def token_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer|officer|supervisor|admin")] = "officer",
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API token (shown once; stored only as a hash)."""
    result = ApiClient(home).call("POST", "/api/v1/tokens", json={"name": name, "role": role})
    if json_out:
        _print_json(result)
    else:
        from detente.i18n import code_label  # noqa: PLC0415

        reader, t = _reader(home, lang)
        console.print(
            t("token for {name} ({role}), shown only once: {token}").format(
                name=name,
                role=code_label("role", role, reader),
                token=f"[bold]{result['token']}[/bold]",
            )
        )


# -- the log --------------------------------------------------------------------------------


@log_app.command("checkpoint")
def log_checkpoint(
    home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False
) -> None:
    """The latest signed checkpoint, its witnesses' cosignatures, and the log's keys."""
    from detente.node.offline import checkpoint_offline  # noqa: PLC0415

    info = checkpoint_offline(NodeHome(home))
    if json_out:
        _print_json(info)
        return
    _, t = _reader(home, lang)
    console.print(info["cosigned"], end="")  # the signed note: as signed, never translated
    console.print(t("verifier key: {key}").format(key=info["verifier_keys"]["ed25519"]))


@log_app.command("prove")
def log_prove(
    message_id: str, home: HomeOpt = DEFAULT_HOME, lang: LangOpt = None, json_out: JsonOpt = False
) -> None:
    """Inclusion proof of a message's log entry against the latest checkpoint."""
    from detente.node.offline import proof_offline  # noqa: PLC0415

    proof = proof_offline(NodeHome(home), message_id)
    if json_out:
        _print_json(proof)
        return
    _, t = _reader(home, lang)
    table = Table(title=t("Inclusion proof of {id}").format(id=message_id), show_header=False)
    table.add_row(t("Leaf index"), str(proof["leaf_index"]))
    table.add_row(t("Tree size"), str(proof["tree_size"]))
    table.add_row(t("Proof"), "\n".join(proof["inclusion_proof"]))
    console.print(table)
    console.print(proof["checkpoint"], end="")


@log_app.command("verify")
def log_verify(
    home: HomeOpt = DEFAULT_HOME,
    lang: LangOpt = None,
    json_out: JsonOpt = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="check the store against the signed log, without re-verifying every "
            "receipt's signature (they were verified when committed)",
        ),
    ] = False,
) -> None:
    """Rebuild the log from the store; check every checkpoint signed and receipt got."""
    from rich.progress import Progress  # noqa: PLC0415

    from detente.node.verify import verify_home  # noqa: PLC0415

    _, t = _reader(home, lang)
    if json_out:
        report = verify_home(NodeHome(home), deep=not fast)
    else:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(t("verifying"), total=None)
            report = verify_home(
                NodeHome(home),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                deep=not fast,
            )
    if json_out:
        _print_json(
            {
                "ok": report.ok,
                "size": report.size,
                "checkpoints_checked": report.checkpoints_checked,
                "receipts_checked": report.receipts_checked,
                "problems": report.problems,
            }
        )
    elif report.ok:
        console.print(
            f"[green]{t('log verified')}[/green]: "
            + t("entries: {size}; checkpoints: {checkpoints}; receipts: {receipts}").format(
                size=report.size,
                checkpoints=report.checkpoints_checked,
                receipts=report.receipts_checked,
            )
        )
    else:
        for problem in report.problems:
            err_console.print(f"[red]{t('FAIL')}[/red] {problem}")
    if not report.ok:
        raise typer.Exit(1)


# -- demo --------------------------------------------------------------------------------------


@app.command()
def demo(
    selfcheck: Annotated[bool, typer.Option(help="only the in-memory core self-check")] = False,
) -> None:
    """Three real nodes on 127.0.0.1: agreement, notification, request, receipts, witnesses."""
    from detente.cli.selfcheck import run_selfcheck  # noqa: PLC0415

    table = Table(title="Détente self-check: the trust core, in memory")
    table.add_column("step", style="bold")
    table.add_column("result")
    run_selfcheck(table.add_row)
    console.print(table)
    if selfcheck:
        return
    from detente.cli.demo import run_demo  # noqa: PLC0415

    # Piped output gets Rich's 80 columns by default, which cuts the tables.
    run_demo(console if console.is_terminal else Console(width=120))


@app.command()
def version() -> None:
    """Print the version."""
    from detente import __version__  # noqa: PLC0415

    console.print(__version__)


import detente.cli.interop  # noqa: E402, F401 - registers indicators, misp, taxii, sighting


def main() -> None:
    try:
        app()
    except DetenteError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] {exc.strerror or exc}: {exc.filename or ''}")
        sys.exit(1)
