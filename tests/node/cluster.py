"""Real node processes on 127.0.0.1 for tests: create, sign, install, start, kill, restart.

Each node is ``python -m detente serve`` in its own process with its own
database (SQLite file, or a fresh PostgreSQL database), talking HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from detente.cli.demo import create_node, free_port, wait_healthy
from detente.core.agreement import Agreement
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.service import Node
from forms_examples import notification


@dataclass
class NodeProc:
    party_id: str
    home: NodeHome
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    extra_args: list[str] = field(default_factory=list)
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        config = self.home.config()
        return f"http://{config.listen_host}:{config.listen_port}"

    @property
    def api(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base,
                timeout=30,
                headers={"authorization": f"Bearer {self.home.cli_token()}"},
            )
        return self._client

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self.api.request(method, path, **kw)
        assert response.status_code < 400, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "detente", "serve", "--home", str(self.home.path)]
        with (self.workdir / f"{self.party_id}.log").open("ab") as log:  # the child has its own fd
            self.proc = subprocess.Popen(
                [*cmd, "--log-level", "warning", *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_healthy(self.base, self.proc, timeout=60)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def restart(self) -> None:
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def log_text(self) -> str:
        path = self.workdir / f"{self.party_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""


PARTY_NAMES = {
    "US-CISA": ({"en": "CISA"}, "US"),
    "RU-NCCC": ({"ru": "НКЦКИ", "en": "NCCC"}, "RU"),
    "CN-CNCERT": ({"zh": "国家互联网应急中心", "en": "CNCERT/CC"}, "CN"),
}


def make_cluster(
    workdir: Path,
    party_ids: list[str],
    new_db: Callable[[str], str] | None = None,
    *,
    policy: Policy | None = None,
    agreement_id: str = "test-agreement",
    valid_for: timedelta = timedelta(days=30),
) -> tuple[dict[str, NodeProc], Agreement]:
    """Create the nodes (not started), sign and install one agreement on all."""
    nodes: dict[str, NodeProc] = {}
    for pid in party_ids:
        names, country = PARTY_NAMES.get(pid, ({"en": pid}, None))
        db_url = new_db(pid.lower().replace("-", "_")) if new_db else None
        home = create_node(workdir / pid, pid, names, country, ["en"], free_port(), db_url)
        nodes[pid] = NodeProc(pid, home, workdir)
    now = SystemClock().now()
    agreement = Agreement(
        id=agreement_id,
        version=1,
        titles={"en": "Test agreement"},
        members=tuple(n.home.card() for n in nodes.values()),
        policy=policy or Policy(message_types=frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
        valid_from=now - timedelta(minutes=5),
        valid_until=now + valid_for,
    )
    for pid, n in nodes.items():
        agreement = agreement.sign(pid, n.home.keys())
    for n in nodes.values():
        node = Node(n.home)
        try:
            node.install_agreement(agreement)
        finally:
            node.close()
    return nodes, agreement


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def send(
    node: NodeProc,
    agreement_id: str,
    to: list[str] | None = None,
    *,
    text: str = "x",
    msg_type: str = "notification",
    tlp: str = "AMBER",
    body: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = node.call(
        "POST",
        "/api/v1/messages",
        json={
            "agreement": agreement_id,
            "to": to,
            "type": msg_type,
            "tlp": tlp,
            "body": body if body is not None else notification(text),
        },
    )
    return result


def delivered(node: NodeProc, message_id: str) -> bool:
    detail = node.call("GET", f"/api/v1/messages/{message_id}")
    return bool(detail["delivery"] == "delivered" and detail["receipt"])
