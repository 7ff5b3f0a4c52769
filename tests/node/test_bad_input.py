"""Bad input on every federation endpoint: a 4xx problem, a live node, nothing stored.

One real node process (RU-NCCC) runs; its peers US-CISA and CN-CNCERT are
members of the installed agreement but do not run (their keys sign what we
craft). Every case posts with httpx to RU's base URL, then checks the answer
is a 4xx ``application/problem+json`` whose ``detail`` names what is wrong,
that ``/api/v1/health`` still answers 200, and — reading RU's database
directly — that no row was added to any table the endpoints write. One
positive control per endpoint shows the same path does accept valid input,
so these tests can fail.

The node is started once per backend for the whole module (module-scoped
fixture): a process per case would cost minutes for ~40 cases. It uses the
same database factory as the ``db_url_factory`` fixture (``tests/db.py``).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

import db
from detente.core.agreement import Agreement
from detente.core.canonical import b64e, canonical
from detente.core.checkpoint import Checkpoint, cosign
from detente.core.envelope import Content, seal
from detente.core.fedrequest import sign_request
from detente.core.keys import PartyKeys
from detente.node.witness import witness_name
from detente.store.db import open_engine
from detente.store.schema import (
    alarms,
    channels_in,
    checkpoints,
    cosignatures,
    log_leaves,
    messages,
    outbox,
    peer_checkpoints,
    receipts,
)
from forms_examples import notification
from node.cluster import NodeProc, make_cluster

US, RU, CN = "US-CISA", "RU-NCCC", "CN-CNCERT"
OUTSIDER = "IN-CERTIN"  # in no agreement RU has installed
AGREEMENT = "test-agreement"
PROBLEM = "application/problem+json"
MiB = 1024 * 1024

# Tables a federation request could write (alarms are compared separately:
# raising an alarm about bad input would be legitimate; storing it is not).
COUNTED = {
    "messages": messages,
    "log_leaves": log_leaves,
    "receipts": receipts,
    "peer_checkpoints": peer_checkpoints,
    "cosignatures": cosignatures,
    "checkpoints": checkpoints,
    "channels_in": channels_in,
    "outbox": outbox,
}


@dataclass
class Env:
    ru: NodeProc
    agreement: Agreement
    us_keys: PartyKeys
    cn_keys: PartyKeys
    outsider_keys: PartyKeys
    engine: Engine
    http: httpx.Client
    seqs: Iterator[int]

    def envelope(
        self, *, seq: int | None = None, to: str = RU, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A valid envelope US-CISA sealed to ``to`` (by default one RU never stores)."""
        env = seal(
            Content("notification", "AMBER", body or notification("bad-input test")),
            sender=US,
            sender_keys=self.us_keys,
            recipient=to,
            agreement=self.agreement,
            seq=next(self.seqs) if seq is None else seq,
            now=datetime.now(UTC),
        )
        return env.to_json()

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for name, t in {**COUNTED, "alarms": alarms}.items()
            }

    def stored_in(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(messages).where(messages.c.direction == "in")
                ).scalar_one()
            )


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    backend: str = request.param
    admin = request.getfixturevalue("pg_admin_url") if backend == "postgresql" else None
    workdir: Path = tmp_path_factory.mktemp(f"bad-input-{backend}")
    with db.make_db_url(backend, workdir, admin) as new_db:
        nodes, agreement = make_cluster(workdir, [US, RU, CN], new_db)
        ru = nodes[RU]
        ru.start()
        engine = open_engine(ru.home.config().db_url)
        http = httpx.Client(base_url=ru.base, timeout=60)
        try:
            yield Env(
                ru=ru,
                agreement=agreement,
                us_keys=nodes[US].home.keys(),
                cn_keys=nodes[CN].home.keys(),
                outsider_keys=PartyKeys.generate(),
                engine=engine,
                http=http,
                seqs=itertools.count(100_000),  # far above anything RU stores
            )
        finally:
            http.close()
            ru.stop()
            engine.dispose()


def refused(
    e: Env,
    send: Callable[[], httpx.Response],
    *,
    status: int | tuple[int, ...] | None = None,
    detail: str | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``send``; check a 4xx problem naming ``detail``, a live node, nothing stored."""
    before = e.counts()
    response = send()
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        wanted = status if isinstance(status, tuple) else (status,)
        assert response.status_code in wanted, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    for word in (detail,) if isinstance(detail, str) else detail:
        assert word.lower() in body["detail"].lower(), body["detail"]
    assert e.http.get("/api/v1/health").status_code == 200, "the node stopped answering"
    after = e.counts()
    assert {k: after[k] for k in COUNTED} == {k: before[k] for k in COUNTED}, (before, after)
    assert after["alarms"] >= before["alarms"]
    return body


def post_json(e: Env, path: str, obj: Any) -> Callable[[], httpx.Response]:
    data = json.dumps(obj).encode()
    return lambda: e.http.post(path, content=data, headers={"content-type": "application/json"})


def post_raw(e: Env, path: str, data: bytes) -> Callable[[], httpx.Response]:
    return lambda: e.http.post(path, content=data, headers={"content-type": "application/json"})


def flip_b64(text: str, index: int = -10) -> str:
    """Flip one bit of the byte at ``index`` of a base64 value."""
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return b64e(bytes(raw))


# -- /federation/v1/deliver -----------------------------------------------------------

DELIVER = "/federation/v1/deliver"


def test_deliver_accepts_a_valid_envelope(env: Env) -> None:
    """Positive control: the next envelope of the channel is stored and receipted."""
    before = env.counts()
    seq = env.stored_in() + 1
    response = post_json(env, DELIVER, {"envelopes": [env.envelope(seq=seq)], "known_size": None})()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["statuses"] == ["accepted"]
    assert len(answer["receipts"]) == 1
    after = env.counts()
    assert after["messages"] == before["messages"] + 1
    assert after["receipts"] == before["receipts"] + 1
    assert after["log_leaves"] == before["log_leaves"] + 2  # the envelope and its receipt


@pytest.mark.parametrize(
    ("attack", "body", "detail"),
    [
        ("malformed_json", b'{"envelopes": [', "invalid JSON"),
        ("not_utf8", b'{"envelopes": "\xff\xfe"}', "UTF-8"),
        ("not_an_object", b"[1, 2, 3]", "delivery must be"),
        ("missing_known_size", b'{"envelopes": []}', "delivery must be"),
        ("extra_member", b'{"envelopes": [], "known_size": null, "x": 1}', "delivery must be"),
        ("envelopes_not_a_list", b'{"envelopes": {}, "known_size": null}', "envelopes"),
        ("empty_envelope_list", b'{"envelopes": [], "known_size": null}', "non-empty"),
        ("float_known_size", b'{"envelopes": [], "known_size": 1.5}', "float"),
        ("float_exponent", b'{"envelopes": [], "known_size": 1e3}', "float"),
        ("nan", b'{"envelopes": [], "known_size": NaN}', "not JSON"),
        (
            "duplicate_keys",
            b'{"envelopes": [], "envelopes": [1], "known_size": null}',
            "duplicate key",
        ),
        ("deeply_nested_10000", b"[" * 10_000 + b"]" * 10_000, "nested"),
        (
            "deeply_nested_in_envelopes",
            b'{"envelopes": ' + b"[" * 10_000 + b"]" * 10_000 + b', "known_size": null}',
            "nested",
        ),
        ("nested_just_over_the_limit", b"[" * 40 + b"]" * 40, "nested"),
        ("huge_integer", b'{"envelopes": [], "known_size": 9007199254740993}', "range"),
        ("envelope_not_an_object", b'{"envelopes": [1], "known_size": null}', "envelope 0"),
    ],
)
def test_deliver_refuses_malformed_body(env: Env, attack: str, body: bytes, detail: str) -> None:
    refused(env, post_raw(env, DELIVER, body), status=400, detail=detail)


@pytest.mark.parametrize(
    ("attack", "known_size", "detail"),
    [
        ("known_size_string", "5", "known_size"),
        ("known_size_negative", -1, "known_size"),
        ("known_size_bool", True, "known_size"),
        ("known_size_list", [1], "known_size"),
    ],
)
def test_deliver_refuses_bad_known_size(
    env: Env, attack: str, known_size: Any, detail: str
) -> None:
    body = {"envelopes": [env.envelope()], "known_size": known_size}
    refused(env, post_json(env, DELIVER, body), status=400, detail=detail)


def test_deliver_refuses_float_inside_an_envelope(env: Env) -> None:
    envelope = env.envelope()
    data = canonical({"envelopes": [envelope], "known_size": None})
    data = data.replace(f'"seq":{envelope["seq"]}'.encode(), f'"seq":{envelope["seq"]}.0'.encode())
    refused(env, post_raw(env, DELIVER, data), status=400, detail="float")


def test_deliver_refuses_oversize_body_with_length(env: Env) -> None:
    data = b" " * (33 * MiB)  # announced in content-length: refused before it is read
    refused(env, post_raw(env, DELIVER, data), status=413, detail="body over")


def test_deliver_refuses_oversize_body_chunked(env: Env) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: refused once 32 MiB are read
        block = b" " * MiB
        for _ in range(33):
            yield block

    def send() -> httpx.Response:
        return env.http.post(
            DELIVER, content=chunks(), headers={"content-type": "application/json"}
        )

    refused(env, send, status=413, detail="body over")


def test_deliver_refuses_too_many_envelopes(env: Env) -> None:
    one = env.envelope()
    body = {"envelopes": [one] * 2001, "known_size": None}
    refused(env, post_json(env, DELIVER, body), status=400, detail="at most 2000")


def test_deliver_refuses_unknown_envelope_field(env: Env) -> None:
    envelope = {**env.envelope(), "extra": "x"}
    body = refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=400,
        detail=("unknown fields", "extra"),
    )
    assert body["index"] == 0


def test_deliver_refuses_missing_envelope_field(env: Env) -> None:
    envelope = env.envelope()
    del envelope["content_hash"]
    refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=400,
        detail=("lacks fields", "content_hash"),
    )


def test_deliver_refuses_unknown_agreement(env: Env) -> None:
    envelope = {**env.envelope(), "agreement": "no-such-agreement@1"}
    refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=422,
        detail="no-such-agreement",
    )


def test_deliver_refuses_bad_signature(env: Env) -> None:
    envelope = env.envelope()
    envelope["sig"] = flip_b64(envelope["sig"])
    body = refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=422,
        detail=envelope["id"],
    )
    assert body["title"] == "SignatureError"
    assert body["message_id"] == envelope["id"]


def test_deliver_refuses_changed_header(env: Env) -> None:
    """A validly signed envelope whose header was changed in transit (seq bumped)."""
    envelope = env.envelope()
    envelope["seq"] += 1
    body = refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=422,
    )
    assert body["title"] == "SignatureError"


def test_deliver_refuses_envelope_for_another_party(env: Env) -> None:
    """Genuinely sealed and signed by US-CISA, but to CN-CNCERT."""
    envelope = env.envelope(to=CN)
    refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=421,
        detail=f"addressed to {CN}",
    )


def test_deliver_refuses_envelope_from_non_member(env: Env) -> None:
    envelope = {**env.envelope(), "from": OUTSIDER}
    refused(
        env,
        post_json(env, DELIVER, {"envelopes": [envelope], "known_size": None}),
        status=403,
        detail=OUTSIDER,
    )


def test_deliver_batch_with_bad_second_envelope_stores_nothing(env: Env) -> None:
    """A valid envelope (the channel's next seq) then a bad one: the batch is refused whole."""
    good = env.envelope(seq=env.stored_in() + 1)
    bad = env.envelope()
    bad["sig"] = flip_b64(bad["sig"])
    body = refused(
        env,
        post_json(env, DELIVER, {"envelopes": [good, bad], "known_size": None}),
        status=422,
        detail=("envelope 1", bad["id"]),
    )
    assert body["index"] == 1
    assert body["message_id"] == bad["id"]


def test_deliver_batch_with_the_same_envelope_twice_stores_nothing(env: Env) -> None:
    """The same (valid, next-in-channel) envelope twice in one batch is a replay: 4xx."""
    one = env.envelope(seq=env.stored_in() + 1)
    refused(
        env,
        post_json(env, DELIVER, {"envelopes": [one, one], "known_size": None}),
        detail=one["id"],
    )


# -- /federation/v1/checkpoint ------------------------------------------------------------

CHECKPOINT = "/federation/v1/checkpoint"


def test_checkpoint_answers_valid_request(env: Env) -> None:
    response = env.http.get(CHECKPOINT, params={"since": 0})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["size"] > 0
    assert answer["checkpoint"].startswith(env.ru.home.card().log_origin)


@pytest.mark.parametrize(
    ("attack", "since"),
    [("negative_since", "-1"), ("non_numeric_since", "abc"), ("float_since", "1.5")],
)
def test_checkpoint_refuses_bad_since(env: Env, attack: str, since: str) -> None:
    before = env.counts()
    response = env.http.get(CHECKPOINT, params={"since": since})
    # FastAPI's own query validation, mapped to problem+json like every other error.
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "since" in response.json()["detail"]
    assert env.http.get("/api/v1/health").status_code == 200
    after = env.counts()
    assert {k: after[k] for k in COUNTED} == {k: before[k] for k in COUNTED}


def test_checkpoint_since_beyond_size_gives_no_proof(env: Env) -> None:
    response = env.http.get(CHECKPOINT, params={"since": 10**12})
    assert response.status_code == 200
    assert response.json()["proof_from"] is None


# -- /federation/v1/cosign ---------------------------------------------------------------

COSIGN = "/federation/v1/cosign"


def latest_checkpoint(e: Env) -> Checkpoint:
    answer = e.http.get(CHECKPOINT).json()
    note: str = answer["checkpoint"]
    return Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")


def cosignature(e: Env, witness: str = US, keys: PartyKeys | None = None) -> dict[str, Any]:
    cp = latest_checkpoint(e)
    timestamp = int(datetime.now(UTC).timestamp())
    line = cosign(cp, witness_name(witness), (keys or e.us_keys).ed25519, timestamp)
    return {"witness": witness, "size": cp.size, "line": line, "timestamp": timestamp}


def test_cosign_accepts_valid_cosignature(env: Env) -> None:
    before = env.counts()
    response = post_json(env, COSIGN, cosignature(env))()
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": True}
    assert env.counts()["cosignatures"] == before["cosignatures"] + 1


@pytest.mark.parametrize(
    ("attack", "body", "status", "detail"),
    [
        ("malformed_json", b'{"witness": "US-CISA", ', 400, "invalid JSON"),
        ("not_an_object", b'"cosignature"', 400, "cosignature must be"),
        ("missing_fields", b'{"witness": "US-CISA", "size": 1}', 400, "cosignature must be"),
        (
            "float_size",
            b'{"witness": "US-CISA", "size": 1.0, "line": "", "timestamp": 1}',
            400,
            "float",
        ),
        (
            "size_not_int",
            b'{"witness": "US-CISA", "size": "1", "line": "x", "timestamp": 1}',
            400,
            "integer",
        ),
        (
            "line_not_str",
            b'{"witness": "US-CISA", "size": 1, "line": 7, "timestamp": 1}',
            400,
            "string",
        ),
        (
            "witness_not_str",
            b'{"witness": 7, "size": 1, "line": "x", "timestamp": 1}',
            403,
            "not a member",
        ),
    ],
)
def test_cosign_refuses_malformed_body(
    env: Env, attack: str, body: bytes, status: int, detail: str
) -> None:
    refused(env, post_raw(env, COSIGN, body), status=status, detail=detail)


def test_cosign_refuses_non_member_witness(env: Env) -> None:
    body = cosignature(env, OUTSIDER, env.outsider_keys)
    refused(env, post_json(env, COSIGN, body), status=403, detail=OUTSIDER)


def test_cosign_refuses_size_with_no_checkpoint(env: Env) -> None:
    body = {**cosignature(env), "size": 10**9}
    refused(env, post_json(env, COSIGN, body), detail="no checkpoint of size")


def test_cosign_refuses_garbage_line(env: Env) -> None:
    body = {**cosignature(env), "line": "this is not a signature line"}
    refused(env, post_json(env, COSIGN, body), status=422, detail="signature line")


def test_cosign_refuses_bad_signature(env: Env) -> None:
    body = cosignature(env)
    prefix, b64 = body["line"].rstrip("\n").rsplit(" ", 1)
    body["line"] = f"{prefix} {flip_b64(b64)}\n"
    refused(env, post_json(env, COSIGN, body), status=422)


def test_cosign_refuses_line_by_another_witness(env: Env) -> None:
    """CN-CNCERT's valid cosignature, presented as US-CISA's."""
    body = {**cosignature(env, CN, env.cn_keys), "witness": US}
    refused(env, post_json(env, COSIGN, body), status=422, detail="not from witness")


# -- /federation/v1/resend ---------------------------------------------------------------

RESEND = "/federation/v1/resend"


def resend_request(
    e: Env,
    *,
    sender: str = US,
    keys: PartyKeys | None = None,
    to: str = RU,
    age: timedelta = timedelta(0),
    seqs: Any = None,
) -> dict[str, Any]:
    return sign_request(
        "resend",
        {"seqs": [1, 2] if seqs is None else seqs},
        sender=sender,
        keys=keys or e.us_keys,
        to=to,
        now=datetime.now(UTC) - age,
    )


def test_resend_accepts_valid_request(env: Env) -> None:
    response = post_json(env, RESEND, resend_request(env))()
    assert response.status_code == 200, response.text
    assert response.json() == {"requeued": 0}  # RU never sent US anything


def test_resend_refuses_unsigned_request(env: Env) -> None:
    request = resend_request(env)
    del request["sig"]
    refused(env, post_json(env, RESEND, request), status=400, detail="sig")


def test_resend_refuses_bad_signature(env: Env) -> None:
    request = resend_request(env)
    request["sig"] = flip_b64(request["sig"])
    refused(env, post_json(env, RESEND, request), status=422, detail="resend request from")


def test_resend_refuses_changed_body(env: Env) -> None:
    request = resend_request(env)
    request["body"] = {"seqs": [1, 2, 3]}
    refused(env, post_json(env, RESEND, request), status=422, detail="resend request from")


def test_resend_refuses_signature_by_another_member(env: Env) -> None:
    """Claims to be from US-CISA, signed with CN-CNCERT's key."""
    request = resend_request(env, keys=env.cn_keys)
    refused(env, post_json(env, RESEND, request), status=422, detail="resend request from")


def test_resend_refuses_non_member(env: Env) -> None:
    request = resend_request(env, sender=OUTSIDER, keys=env.outsider_keys)
    refused(env, post_json(env, RESEND, request), status=403, detail=OUTSIDER)


def test_resend_refuses_stale_request(env: Env) -> None:
    request = resend_request(env, age=timedelta(minutes=10))
    refused(env, post_json(env, RESEND, request), status=422, detail="within 5 minutes")


def test_resend_refuses_future_request(env: Env) -> None:
    request = resend_request(env, age=-timedelta(minutes=10))
    refused(env, post_json(env, RESEND, request), status=422, detail="within 5 minutes")


def test_resend_refuses_request_to_another_party(env: Env) -> None:
    request = resend_request(env, to=CN)
    refused(env, post_json(env, RESEND, request), status=421, detail=f"addressed to {CN}")


@pytest.mark.parametrize(
    ("attack", "seqs"),
    [("seqs_not_list", "1"), ("seq_zero", [0]), ("seq_bool", [True]), ("seq_string", ["1"])],
)
def test_resend_refuses_bad_seqs(env: Env, attack: str, seqs: Any) -> None:
    request = resend_request(env, seqs=seqs)
    refused(env, post_json(env, RESEND, request), status=400, detail="seqs")


@pytest.mark.parametrize(
    ("attack", "body", "detail"),
    [
        ("malformed_json", b'{"kind": ', "invalid JSON"),
        ("not_an_object", b"[]", "not a member"),
        ("deeply_nested", b"[" * 10_000 + b"]" * 10_000, "nested"),
    ],
)
def test_resend_refuses_malformed_body(env: Env, attack: str, body: bytes, detail: str) -> None:
    refused(env, post_raw(env, RESEND, body), detail=detail)


def test_deliver_refuses_a_sealed_envelope_whose_form_is_bad(env: Env) -> None:
    """A peer whose node did not check its form: refused by the recipient, nothing stored."""
    before = env.counts()
    bad = env.envelope(body={**notification(), "severity": 9})
    response = post_json(env, DELIVER, {"envelopes": [bad], "known_size": None})()
    assert response.status_code == 400, response.text
    assert "severity: must be an integer from 0 to 5" in response.json()["detail"]
    assert env.counts() == before
