"""Real node processes exchanging messages: receipts, logs, witnesses, replays, forks."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import func, select

from detente.core.canonical import canonical
from detente.core.checkpoint import (
    Checkpoint,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosignature,
)
from detente.core.envelope import Envelope
from detente.core.keys import ed25519_public
from detente.core.logentry import log_signers, log_verifiers
from detente.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from detente.core.note import CosignatureV1Verifier
from detente.node.witness import witness_name
from detente.store.db import open_engine
from detente.store.schema import log_leaves, messages, peer_checkpoints, receipts
from forms_examples import OBSERVED, notification, response
from node.cluster import NodeProc, delivered, make_cluster, send, wait_until


@pytest.fixture
def trio(tmp_path: Path, db_url_factory: Callable[[str], str]) -> Iterator[dict[str, NodeProc]]:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC", "CN-CNCERT"], db_url_factory)
    try:
        for n in nodes.values():
            n.start()
        yield nodes
    finally:
        for n in nodes.values():
            n.stop()


def _count(node: NodeProc, table: Any) -> int:
    engine = open_engine(node.home.config().db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_three_nodes_send_receipt_and_witnessed_inclusion(trio: dict[str, NodeProc]) -> None:
    us, ru = trio["US-CISA"], trio["RU-NCCC"]
    sent = send(us, "test-agreement", None, text="ransomware C2 in your jurisdiction")
    assert sorted(m["to"] for m in sent) == ["CN-CNCERT", "RU-NCCC"]
    for m in sent:
        wait_until(lambda m=m: delivered(us, m["id"]), 30, f"receipt for {m['id']}")
    # A person on duty acknowledges, then answers (the case refuses the other order).
    ack = {"message": sent[0]["id"], "officer": "Duty officer Petrov", "read_at": OBSERVED}
    send(ru, "test-agreement", ["US-CISA"], msg_type="ack", body=ack)
    reply = send(
        ru, "test-agreement", ["US-CISA"], msg_type="response", body=response(sent[0]["id"])
    )
    wait_until(lambda: delivered(ru, reply[0]["id"]), 30, "receipt for the reply")

    # Both logs hold each message: the sender's and the recipient's.
    for m in sent:
        to = trio[m["to"]]
        assert us.call("GET", f"/api/v1/log/proof/{m['id']}")["leaf_index"] >= 0
        incoming = to.call("GET", f"/api/v1/messages/{m['id']}")
        assert incoming["direction"] == "in"
        assert incoming["content"]["body"] == notification("ransomware C2 in your jurisdiction")

    # Witness twice so each node cosigns the others' latest checkpoints.
    for _ in range(2):
        for n in trio.values():
            n.call("POST", "/api/v1/peers/witness")

    for m in sent:
        recipient = trio[m["to"]]
        card = recipient.home.card()
        proof = recipient.call("GET", f"/api/v1/log/proof/{m['id']}")
        info = recipient.call("GET", "/api/v1/log/checkpoint")
        # The proof's checkpoint is signed by the recipient (Ed25519 + ML-DSA-65) ...
        cp = verify_checkpoint(proof["checkpoint"].encode(), card.log_origin, log_verifiers(card))
        # ... and the leaf is in it (RFC 9162 inclusion), from the raw leaf data.
        leaf = base64.b64decode(proof["leaf_data"])
        verify_inclusion(
            leaf_hash(leaf),
            proof["leaf_index"],
            proof["tree_size"],
            [base64.b64decode(h) for h in proof["inclusion_proof"]],
            cp.root,
        )
        assert json.loads(leaf.split(b"\x00", 1)[1])["id"] == m["id"]
        # The latest checkpoint is cosigned by both other parties as witnesses.
        latest = Checkpoint.from_text(info["checkpoint"].split("\n\n")[0] + "\n")
        witnesses = {c["witness"]: c["line"] for c in info["cosignatures"]}
        assert set(witnesses) == set(trio) - {m["to"]}
        for witness, line in witnesses.items():
            key = ed25519_public(trio[witness].home.card().keys.ed25519)
            verify_cosignature(latest, line, CosignatureV1Verifier(witness_name(witness), key))

    assert us.call("GET", "/api/v1/alarms") == []

    # Each witness kept the peers' checkpoints with the consistency proofs linking them.
    engine = open_engine(us.home.config().db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(peer_checkpoints).where(peer_checkpoints.c.peer == "RU-NCCC")
            ).all()
    finally:
        engine.dispose()
    roots = {r.size: bytes(r.root) for r in rows}
    linked = [r for r in rows if r.proof_from is not None]
    assert linked, "no checkpoint was stored with a consistency proof"
    for r in linked:
        proof = [bytes(r.proof[i : i + 32]) for i in range(0, len(r.proof), 32)]
        verify_consistency(r.proof_from, r.size, proof, roots[r.proof_from], bytes(r.root))


def test_replayed_envelope_returns_original_receipt_and_stores_nothing(
    tmp_path: Path, db_url_factory: Callable[[str], str]
) -> None:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC"], db_url_factory)
    us, ru = nodes["US-CISA"], nodes["RU-NCCC"]
    try:
        us.start()
        ru.start()
        (m,) = send(us, "test-agreement", ["RU-NCCC"])
        wait_until(lambda: delivered(us, m["id"]), 30, "the first delivery")
        original = us.call("GET", f"/api/v1/messages/{m['id']}")
        envelope = Envelope.from_json(original["envelope"])
        before = {t.name: _count(ru, t) for t in (messages, receipts, log_leaves)}
        for _ in range(3):
            response = httpx.post(
                ru.base + "/federation/v1/deliver",
                content=canonical({"envelopes": [envelope.to_json()], "known_size": None}),
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["statuses"] == ["duplicate"]
            assert answer["receipts"][0] == original["receipt"]
        assert {t.name: _count(ru, t) for t in (messages, receipts, log_leaves)} == before
    finally:
        us.stop()
        ru.stop()


class _ForkingPeer(BaseHTTPRequestHandler):
    """Plays RU-NCCC's node with RU's real keys, showing two histories in turn."""

    notes: ClassVar[list[bytes]] = []
    forked = False

    def do_GET(self) -> None:
        cls = type(self)
        note = cls.notes[1 if cls.forked else 0]
        body = json.dumps(
            {"checkpoint": note.decode(), "size": 3, "consistency": [], "proof_from": None}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_peer_presenting_a_forked_checkpoint_is_recorded_and_alarmed(
    tmp_path: Path, db_url_factory: Callable[[str], str]
) -> None:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC"], db_url_factory)
    us, ru = nodes["US-CISA"], nodes["RU-NCCC"]
    ru_keys = ru.home.keys()
    signers = log_signers("RU-NCCC", ru_keys)
    origin = ru.home.card().log_origin
    one = sign_checkpoint(Checkpoint(origin, 3, b"\x01" * 32), signers)
    two = sign_checkpoint(Checkpoint(origin, 3, b"\x02" * 32), signers)  # same size, other root
    _ForkingPeer.notes, _ForkingPeer.forked = [one, two], False
    config = ru.home.config()
    server = ThreadingHTTPServer((config.listen_host, config.listen_port), _ForkingPeer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        us.start()
        us.call("POST", "/api/v1/peers/witness")
        assert us.call("GET", "/api/v1/alarms") == []
        _ForkingPeer.forked = True  # now RU shows another history of the same size
        us.call("POST", "/api/v1/peers/witness")
        alarms = us.call("GET", "/api/v1/alarms")
        forks = [a for a in alarms if a["kind"] == "fork"]
        assert len(forks) == 1, alarms
        assert forks[0]["peer"] == "RU-NCCC"
        # Both checkpoints are kept as evidence, byte for byte.
        assert {forks[0]["evidence"]["earlier"], forks[0]["evidence"]["later"]} == {
            one.decode(),
            two.decode(),
        }
        peers = us.call("GET", "/api/v1/peers")
        assert peers[0]["witnessed_size"] == 3
    finally:
        us.stop()
        server.shutdown()
        server.server_close()
