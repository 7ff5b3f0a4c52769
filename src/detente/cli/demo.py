"""``detente demo``: three real nodes on 127.0.0.1, each a process with its own SQLite.

US-CISA, RU-NCCC and CN-CNCERT create keys, sign a trilateral agreement and
install it; US-CISA notifies the others of ransomware infrastructure and
RU-NCCC asks US-CISA to preserve data.  The demo prints the receipts, the
cross-witnessed checkpoints and a passing ``log verify`` for every node,
then stops everything.  Everything runs through the real path: HTTP between
processes, durable commits, signed receipts.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from detente.core.agreement import Agreement
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time
from detente.errors import DeliveryError
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.service import Node, init_node

__all__ = ["create_node", "run_demo", "start_node_process", "wait_healthy"]

PARTIES = [
    ("US-CISA", {"en": "Cybersecurity and Infrastructure Security Agency"}, "US", ["en"]),
    (
        "RU-NCCC",
        {
            "ru": "Национальный координационный центр по компьютерным инцидентам",
            "en": "National Computer Incident Coordination Center",
        },
        "RU",
        ["ru", "en"],
    ),
    (
        "CN-CNCERT",
        {"zh": "国家计算机网络应急技术处理协调中心", "en": "CNCERT/CC"},
        "CN",
        ["zh", "en"],
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_node(
    home: Path,
    party_id: str,
    names: dict[str, str],
    country: str | None,
    languages: list[str],
    port: int,
    db_url: str | None = None,
) -> NodeHome:
    """``detente init`` as a function: keys, config, card, database, CLI token."""
    return init_node(
        home,
        party_id=party_id,
        names=names,
        country=country,
        languages=languages,
        listen_port=port,
        db_url=db_url,
    )


def start_node_process(home: Path, log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "detente", "serve", "--home", str(home)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(
    base: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DeliveryError(f"node at {base} exited with code {proc.returncode}")
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DeliveryError(f"node at {base} did not become healthy in {timeout:.0f} s")


class _Api:
    def __init__(self, home: NodeHome) -> None:
        config = home.config()
        self.base = f"http://{config.listen_host}:{config.listen_port}"
        self.client = httpx.Client(
            base_url=self.base, timeout=30, headers={"authorization": f"Bearer {home.cli_token()}"}
        )

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        response = self.client.request(method, path, **kw)
        if response.status_code >= 400:
            raise DeliveryError(f"{self.base}{path}: {response.status_code} {response.text}")
        return response.json()


def run_demo(console: Console, keep: bool = False) -> None:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="detente-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        homes = {
            pid: create_node(workdir / pid, pid, names, country, langs, free_port())
            for pid, names, country, langs in PARTIES
        }
        now = SystemClock().now()
        agreement = Agreement(
            id="trilateral-ict-security",
            version=1,
            titles={
                "en": "Trilateral agreement on cooperation in ICT security",
                "ru": "Трёхстороннее соглашение о сотрудничестве в области МИБ",
                "zh": "三方信息安全合作协定",
            },
            members=tuple(h.card() for h in homes.values()),
            policy=Policy(message_types=frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
            valid_from=now - timedelta(minutes=5),
            valid_until=now + timedelta(days=365),
        )
        for pid, home in homes.items():
            agreement = agreement.sign(pid, home.keys())
        for home in homes.values():
            node = Node(home)
            try:
                node.install_agreement(agreement)
            finally:
                node.close()
        console.print(
            f"[bold]agreement[/bold] {agreement.ref} signed by all three members "
            "(Ed25519 + ML-DSA-65) and installed on every node"
        )

        for pid, home in homes.items():
            procs.append(start_node_process(home.path, workdir / f"{pid}.log"))
        apis = {pid: _Api(home) for pid, home in homes.items()}
        for proc, api in zip(procs, apis.values(), strict=True):
            wait_healthy(api.base, proc)
        console.print(
            "[bold]nodes[/bold] " + ", ".join(f"{p} at {a.base}" for p, a in apis.items())
        )

        sent = apis["US-CISA"](
            "POST",
            "/api/v1/messages",
            json={
                "agreement": agreement.id,
                "type": "notification",
                "tlp": "AMBER",
                "case": "RW-2026-0042",
                "body": {
                    "category": "ransomware",
                    "severity": 4,
                    "observed": format_time(now),
                    "activity": {
                        "lang": "en",
                        "text": "command-and-control servers of a ransomware operation "
                        "at 203.0.113.7 (c2.example)",
                    },
                    "concern": "infrastructure-in-your-jurisdiction",
                    "requested_actions": ["takedown"],
                    "pap": "AMBER",
                },
            },
        )
        sent += apis["RU-NCCC"](
            "POST",
            "/api/v1/messages",
            json={
                "agreement": agreement.id,
                "to": ["US-CISA"],
                "type": "request",
                "tlp": "AMBER",
                "case": "RW-2026-0042",
                "body": {
                    "kind": "preservation",
                    "legal_basis": ["agreement art. 5"],
                    "facts": {
                        "lang": "ru",
                        "text": "Пострадавшие организации находятся в нашей юрисдикции",
                    },
                    "urgency": "urgent",
                    "follow_up": "mutual legal assistance request",
                },
            },
        )
        senders = {m["id"]: ("RU-NCCC" if m["to"] == "US-CISA" else "US-CISA") for m in sent}
        deadline = time.monotonic() + 30
        details: dict[str, Any] = {}
        while len(details) < len(sent) and time.monotonic() < deadline:
            for m in sent:
                detail = apis[senders[m["id"]]]("GET", f"/api/v1/messages/{m['id']}")
                if detail["delivery"] == "delivered" and detail["receipt"]:
                    details[m["id"]] = detail
            time.sleep(0.1)
        if len(details) < len(sent):
            raise DeliveryError("not every message was receipted within 30 s")

        table = Table(
            title="signed receipts, verified by each sender (signature, checkpoint "
            "Ed25519 + ML-DSA-65, inclusion proof)"
        )
        for column in ("message", "type", "from → to", "received", "log index", "tree size"):
            table.add_column(column)
        for m in sent:
            receipt = details[m["id"]]["receipt"]
            size = details[m["id"]]["receipt_checkpoint"].split("\n")[1]
            table.add_row(
                m["id"][:13] + "…",
                details[m["id"]]["type"],
                f"{receipt['to']} → {receipt['from']}",
                receipt["received"][11:23],
                str(receipt["log_index"]),
                size,
            )
        console.print(table)

        for _ in range(2):  # two rounds: each node witnesses the others' latest heads
            for api in apis.values():
                api("POST", "/api/v1/peers/witness")
        table = Table(title="cross-witnessed checkpoints")
        for column in ("log", "size", "root", "cosigned by"):
            table.add_column(column)
        for api in apis.values():
            info = api("GET", "/api/v1/log/checkpoint")
            root = info["checkpoint"].split("\n")[2]
            table.add_row(
                info["origin"],
                str(info["size"]),
                root[:16] + "…",
                ", ".join(c["witness"] for c in info["cosignatures"]) or "-",
            )
        console.print(table)
        alarms = [a for api in apis.values() for a in api("GET", "/api/v1/alarms")]
        if alarms:
            raise DeliveryError(f"unexpected alarms: {alarms}")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
    try:
        from detente.node.verify import verify_home  # noqa: PLC0415

        for pid, home in homes.items():
            report = verify_home(home)
            status = (
                "[green]log verify passed[/green]" if report.ok else "[red]log verify FAILED[/red]"
            )
            console.print(
                f"{pid}: {status}: {report.size} entries, "
                f"{report.checkpoints_checked} checkpoints, {report.receipts_checked} receipts"
            )
            if not report.ok:
                for problem in report.problems:
                    console.print(f"  {problem}")
                raise DeliveryError(f"log verify failed for {pid}")
        console.print(
            f"[green]demo complete[/green] in {time.monotonic() - started:.1f} s; all nodes stopped"
        )
    finally:
        if keep:
            console.print(f"node directories kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
