"""The hot loop of ``detente log verify``: one range of leaves, checked byte for byte.

:mod:`detente.node.verify` compiles one query in which the database itself
compares each leaf's entry with the entry its ``messages`` / ``receipts`` rows
imply (a flag per row), and hands it here with a range of leaf indices.  For
each row this module hashes the entry (the leaf hash, kept for the tree) and
the stored envelope or receipt, and checks both against the stored hashes;
it rebuilds the range's complete subtrees and compares the stored tree nodes
inside the range; in deep mode it checks each receipt's signature without
re-encoding it (receipts got: also the peer's checkpoint, once per note, and
the inclusion proof of the envelope's leaf), the Ed25519 verifications on a
thread pool when given one (they release the GIL).

What it deliberately does not do: explain a failure.  A row it cannot vouch
for is returned by index, and ``verify.py`` re-reads it and runs its detailed
checks, which name the entry and what is wrong with it; so every message has
one source, and a row is never passed here that the detailed checks would
fault.  It does not import SQLAlchemy or the store: the compiled SQL and the
DBAPI connect arguments are given, so a fresh worker process starts quickly
(the audit splits the log over one process per core; see ``verify_log``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import json
import re
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from detente.core.canonical import SIGNING_PREFIX
from detente.core.checkpoint import Checkpoint, verify_checkpoint
from detente.core.logentry import log_verifiers
from detente.core.merkle import MerkleTree, root_from_inclusion_proof
from detente.core.party import PartyCard
from detente.errors import DetenteError, StorageError

__all__ = [
    "ENVELOPE",
    "ISSUED",
    "LEAF_PREFIX",
    "RECEIPT_GOT",
    "ChunkResult",
    "Query",
    "ScanSpec",
    "Scanner",
    "envelope_entry_bytes",
    "init_worker",
    "scan_in_worker",
]

LEAF_PREFIX = SIGNING_PREFIX + b"leaf\x00"
_RECEIPT_PREFIX = SIGNING_PREFIX + b"receipt\x00"

#: The flag the scan query gives a row whose entry is byte for byte the one its
#: rows imply (0: anything else, left to the detailed checks).
ENVELOPE, ISSUED, RECEIPT_GOT = 1, 2, 3

_PLAIN = re.compile(r'[^"\\\x00-\x1f]*').fullmatch
_Signature = tuple[Ed25519PublicKey, bytes, bytes]  # key, signature, signed bytes
_THREADS_FROM = 64  # signatures from which a batch is shared among threads
# The quotes in an entry of each flag's template: more means a value holds one.
_QUOTES = {ENVELOPE: 32, ISSUED: 26, RECEIPT_GOT: 26}
_ESCAPED = bytes(range(0x20)) + b"\\"
_LOG_INDEX = b'"log_index":'
_NOTE_HASH = re.compile(r"sha256:[0-9a-f]{64}").fullmatch
_MESSAGE_ID = b',"message_id":"'


def _entry_plain(entry: bytes, flag: int) -> bool:
    """The rest of the scan query's flag: the entry needs no JSON escape.

    The query fills the template with the raw column values.  If the entry
    holds no backslash and no control character (but the prefix's NUL) and
    exactly the template's quotes, no value holds a quote, a backslash or a
    control character, so the entry is the canonical one of the columns
    (RFC 8785 writes other characters as they are).
    """
    if entry.count(b'"') != _QUOTES[flag] or len(entry.translate(None, _ESCAPED)) != len(entry) - 1:
        return False
    if flag != RECEIPT_GOT:
        return True
    # The peer's index, between the text the query matched: a JSON integer.
    start = entry.find(_LOG_INDEX) + len(_LOG_INDEX)
    digits = entry[start : entry.find(_MESSAGE_ID, start)]
    return digits.isdigit() and (digits == b"0" or not digits.startswith(b"0"))


@dataclass(frozen=True)
class Query:
    """A compiled statement and its bound values, run on a bare DBAPI cursor."""

    sql: str
    params: dict[str, Any]  # every bound value; the named ones are replaced per call
    positional: tuple[str, ...] | None  # parameter order for a qmark driver, else None

    def args(self, **values: Any) -> Any:
        params = {**self.params, **values}
        if self.positional is None:
            return params
        return tuple(params[name] for name in self.positional)


@dataclass(frozen=True)
class ScanSpec:
    """Everything a worker needs, picklable: how to connect, what to run, whose log."""

    driver: str  # the DBAPI module: "sqlite3.dbapi2" or "psycopg"
    connect_args: tuple[Any, ...]
    connect_kwargs: dict[str, Any]
    leaves: Query  # the flagged leaf rows, ``lo <= idx < hi`` (verify._scan_query)
    nodes: Query  # the hashes of stored nodes at ``level``, ``lo <= idx < hi``, in order
    node_rows: Query  # the same as ``(idx, hash)``
    note: Query  # a checkpoint note by its hash
    my_ed25519: bytes  # this node's key, which signs the receipts it issues
    deep: bool
    # (agreement ref, member id) -> card JSON: who signs receipts got, with which keys.
    members: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class ChunkResult:
    """What one range of leaves gave; ``suspects`` are for the detailed checks."""

    lo: int
    rows: int  # leaves read
    complete: bool  # no index in the range is missing
    levels: list[bytes]  # leaf hashes, then each level of complete subtrees, concatenated
    suspects: list[int]  # leaf indices not vouched for, in order
    envelopes: int = 0  # rows vouched for, by kind
    receipts: int = 0
    node_diffs: list[tuple[int, int]] = field(default_factory=list)  # (level, idx)
    nodes_seen: list[int] = field(default_factory=list)  # stored nodes read, by level


class Scanner:
    """Runs :class:`ScanSpec` queries on one DBAPI connection (one read snapshot)."""

    def __init__(
        self, spec: ScanSpec, connection: Any, pool: Executor | None = None, threads: int = 1
    ) -> None:
        self.spec = spec
        self.connection = connection
        self.pool = pool  # for signatures (the connection stays on the calling thread)
        self.threads = threads
        self.my_key = Ed25519PublicKey.from_public_bytes(spec.my_ed25519)
        self.members = {key: PartyCard.from_json(card) for key, card in spec.members.items()}
        self.keys: dict[tuple[str, str], Ed25519PublicKey] = {}
        self.checkpoints: dict[tuple[str, str, str], Checkpoint | None] = {}

    def _rows(self, query: Query, **values: Any) -> list[Any]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(query.sql, query.args(**values))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def scan(self, lo: int, hi: int, chunk_bits: int) -> ChunkResult:
        """Check leaves ``lo <= idx < hi``; ``lo`` is a multiple of ``2**chunk_bits``."""
        sha = hashlib.sha256
        hashes: list[bytes] = []
        append = hashes.append
        suspects: list[int] = []
        counts = [0, 0, 0, 0]
        signed: list[tuple[int, int, bytes, bytes | None]] = []  # deep: (idx, flag, receipt, env)
        plain = _entry_plain
        cursor = self.connection.cursor()
        try:
            cursor.execute(self.spec.leaves.sql, self.spec.leaves.args(lo=lo, hi=hi))
            if self.spec.deep:
                for stored, entry, blob, blob_hash, flag, envelope in cursor:
                    digest = sha(b"\x00" + entry).digest()
                    append(digest)
                    if (
                        flag
                        and stored == digest
                        and blob_hash == "sha256:" + sha(blob).hexdigest()
                        and plain(entry, flag)
                    ):
                        if flag == ENVELOPE:
                            counts[flag] += 1
                        else:
                            signed.append((lo + len(hashes) - 1, flag, blob, envelope))
                    else:
                        suspects.append(lo + len(hashes) - 1)
            else:
                # The hot path: about two microseconds of Python per leaf, most of
                # it in SHA-256; the database compared the columns with the entry.
                for stored, entry, blob, blob_hash, flag in cursor:
                    digest = sha(b"\x00" + entry).digest()
                    append(digest)
                    if (
                        flag
                        and stored == digest
                        and blob_hash == "sha256:" + sha(blob).hexdigest()
                        and plain(entry, flag)
                    ):
                        counts[flag] += 1
                    else:
                        suspects.append(lo + len(hashes) - 1)
        finally:
            cursor.close()
        if signed:
            # Parse on this thread, then verify the signatures on the pool (the
            # Ed25519 verification releases the GIL: about 4/5 of the work).
            prepared = [
                (idx, flag, self.issued(receipt) if flag == ISSUED else self.got(receipt, env))
                for idx, flag, receipt, env in signed
            ]
            ok = iter(self.verify_all([item for _, _, item in prepared if item is not None]))
            for idx, flag, item in prepared:
                if item is not None and next(ok):
                    counts[flag] += 1
                else:
                    suspects.append(idx)
            suspects.sort()
        result = ChunkResult(
            lo=lo,
            rows=len(hashes),
            complete=len(hashes) == hi - lo,
            levels=[b"".join(hashes)],
            suspects=suspects,
            envelopes=counts[ENVELOPE],
            receipts=counts[ISSUED] + counts[RECEIPT_GOT],
        )
        if result.complete:
            self.check_nodes(result, hashes, chunk_bits)
        return result

    def check_nodes(self, result: ChunkResult, hashes: list[bytes], chunk_bits: int) -> None:
        """Rebuild the range's complete subtrees; compare the stored nodes inside it.

        The range starts on a multiple of ``2**chunk_bits``, so its subtrees of
        up to that height are the whole tree's, at ``lo >> level`` onwards.
        """
        levels = MerkleTree.from_leaf_hashes(hashes).levels
        result.nodes_seen = [0]
        for level in range(1, chunk_bits + 1):
            want = list(levels[level]) if level < len(levels) else []
            result.levels.append(b"".join(want))
            base = result.lo >> level
            seen = 0
            if want:
                stored = [
                    row[0]
                    for row in self._rows(
                        self.spec.nodes, level=level, lo=base, hi=base + len(want)
                    )
                ]
                seen = len(stored)
                if stored != want:
                    seen = 0
                    for idx, digest in self._rows(
                        self.spec.node_rows, level=level, lo=base, hi=base + len(want)
                    ):
                        seen += 1
                        if digest != want[idx - base]:
                            result.node_diffs.append((level, idx))
            result.nodes_seen.append(seen)

    # -- deep: signatures, with as few parses as possible --------------------------

    def issued(self, data: bytes) -> _Signature | None:
        """A receipt we issued: our own Ed25519 signature, to verify."""
        return _signature(self.my_key, data)

    def got(self, data: bytes, envelope: bytes | None) -> _Signature | None:
        """A receipt got: what :func:`~detente.core.receipt.verify_receipt` checks, read
        straight from the stored bytes, but the signature, which is returned to verify.

        The envelope's fields, the peer's checkpoint note (verified once per
        note and signer) and the inclusion proof of the envelope's leaf; the
        signature is over the stored canonical bytes without their ``sig``
        member.  The wire-format checks of both objects are not repeated:
        their bytes are fixed by the hash chain, and were checked when they
        were committed.  None (or a failed signature) sends the receipt to the
        full ``verify_receipt``.
        """
        if envelope is None:
            return None
        try:
            receipt = json.loads(data)
            env = json.loads(envelope)
            env_hash = "sha256:" + hashlib.sha256(envelope).hexdigest()
            ref, to = env["agreement"], env["to"]
            if (
                receipt["envelope_hash"] != env_hash
                or receipt["message_id"] != env["id"]
                or receipt["agreement"] != ref
                or receipt["from"] != to
                or receipt["to"] != env["from"]
            ):
                return None
            signer = self.members.get((ref, to))
            if signer is None:
                return None
            cp = self.checkpoint(receipt["checkpoint_hash"], ref, signer)
            index = receipt["log_index"]
            if cp is None or type(index) is not int or type(env["exercise"]) is not bool:
                return None
            entry = envelope_entry_bytes(
                env_hash,
                env["id"],
                ref,
                env["from"],
                to,
                env["seq"],
                env["type"],
                env["exercise"],
            )
            if entry is None:
                return None
            leaf = hashlib.sha256(b"\x00" + entry).digest()
            if (
                root_from_inclusion_proof(leaf, index, cp.size, _proof(receipt["inclusion"]))
                != cp.root
            ):
                return None
            return _signature(self.key(ref, signer), data)
        except (DetenteError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def verify_all(self, items: list[_Signature]) -> list[bool]:
        """Verify signatures, on the thread pool if there is one and they are many."""
        threads = self.threads
        if self.pool is None or threads < 2 or len(items) < _THREADS_FROM:
            return _verify_slice(items)
        parts = list(self.pool.map(_verify_slice, [items[i::threads] for i in range(threads)]))
        out = [False] * len(items)
        for i, part in enumerate(parts):
            out[i::threads] = part
        return out

    def issued_ok(self, data: bytes) -> bool:
        item = self.issued(data)
        return item is not None and _verify_slice([item])[0]

    def got_ok(self, data: bytes, envelope: bytes) -> bool:
        item = self.got(data, envelope)
        return item is not None and _verify_slice([item])[0]

    def key(self, ref: str, card: PartyCard) -> Ed25519PublicKey:
        key = self.keys.get((ref, card.id))
        if key is None:
            key = Ed25519PublicKey.from_public_bytes(card.keys.ed25519)
            self.keys[(ref, card.id)] = key
        return key

    def checkpoint(self, digest: str, ref: str, signer: PartyCard) -> Checkpoint | None:
        """The peer's checkpoint a receipt names, verified once per note and signer."""
        if type(digest) is not str or not _NOTE_HASH(digest):
            return None  # not a value to send to the database (the full check says why)
        key = (digest, ref, signer.id)
        if key in self.checkpoints:
            return self.checkpoints[key]
        cp: Checkpoint | None = None
        rows = self._rows(self.spec.note, hash=digest)
        if rows:
            note = bytes(rows[0][0])
            if "sha256:" + hashlib.sha256(note).hexdigest() == digest:
                try:
                    cp = verify_checkpoint(note, signer.log_origin, log_verifiers(signer))
                except DetenteError:
                    cp = None
        self.checkpoints[key] = cp
        return cp


def _proof(items: list[Any]) -> list[bytes]:
    """Strict, canonical base64 (as :func:`~detente.core.canonical.b64d`), in fewer calls."""
    out = []
    for text in items:
        raw = binascii.a2b_base64(text, strict_mode=True)
        if binascii.b2a_base64(raw, newline=False) != text.encode():
            raise ValueError("inclusion proof hash is not canonical base64")
        out.append(raw)
    return out


def _signature(key: Ed25519PublicKey, data: bytes) -> _Signature | None:
    """The key, signature and signed bytes of a receipt, without parsing it.

    The stored bytes are canonical JSON, where "sig" sorts between "received"
    and "to": dropping that member gives the signed body without re-encoding
    (a quote inside a string is escaped, so the pattern cannot occur inside a
    value).  Bytes that are not canonical fail to verify and get the full check.
    """
    start = data.find(b',"sig":"')
    end = data.find(b'"', start + 8) if start >= 0 else -1
    if end < 0:
        return None
    try:
        sig = base64.b64decode(data[start + 8 : end], validate=True)
    except (ValueError, binascii.Error):
        return None
    return key, sig, _RECEIPT_PREFIX + data[:start] + data[end + 1 :]


def _verify_slice(items: list[_Signature]) -> list[bool]:
    out = []
    for key, sig, message in items:
        try:
            key.verify(sig, message)
        except InvalidSignature:
            out.append(False)
        else:
            out.append(True)
    return out


def envelope_entry_bytes(
    env_hash: str,
    message_id: str,
    agreement: str,
    sender: str,
    recipient: str,
    seq: int,
    type_: str,
    exercise: bool,
) -> bytes | None:
    """``entry_bytes(envelope_entry(...))`` by formatting, or None if a value needs escaping.

    RFC 8785 orders the members by name and writes no spaces; strings without
    a quote, a backslash or a control character are written as they are.
    """
    text = env_hash + message_id + agreement + sender + recipient + type_
    if not _PLAIN(text) or type(seq) is not int:
        return None
    return (
        LEAF_PREFIX
        + (
            f'{{"agreement":"{agreement}","exercise":{"true" if exercise else "false"},'
            f'"from":"{sender}","hash":"{env_hash}","id":"{message_id}","kind":"envelope",'
            f'"seq":{seq},"to":"{recipient}","type":"{type_}"}}'
        ).encode()
    )


# -- in a worker process: one connection, one snapshot, many ranges ----------------

_worker: Scanner | None = None
_driver_error: type[Exception] = Exception


def init_worker(spec: ScanSpec) -> None:
    """``ProcessPoolExecutor`` initializer: connect and open a read-only snapshot."""
    global _worker, _driver_error  # noqa: PLW0603 - one scanner per worker process
    driver = importlib.import_module(spec.driver)
    _driver_error = driver.Error
    try:
        connection = driver.connect(*spec.connect_args, **spec.connect_kwargs)
        if spec.driver.startswith("sqlite3"):
            connection.isolation_level = None
            for pragma in ("query_only=ON", "mmap_size=17179869184", "busy_timeout=10000"):
                connection.execute(f"PRAGMA {pragma}")
            connection.execute("BEGIN")
        else:  # psycopg: the next statement opens a REPEATABLE READ, read-only transaction
            connection.isolation_level = driver.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
    except _driver_error as exc:
        raise StorageError(f"database error while verifying the log: {type(exc).__name__}") from exc
    _worker = Scanner(spec, connection)


def scan_in_worker(lo: int, hi: int, chunk_bits: int) -> ChunkResult:
    if _worker is None:
        raise RuntimeError("scan_in_worker runs in a process set up by init_worker")
    try:
        return _worker.scan(lo, hi, chunk_bits)
    except _driver_error as exc:
        raise StorageError(f"database error while verifying the log: {type(exc).__name__}") from exc
