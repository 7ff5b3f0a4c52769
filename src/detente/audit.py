"""``detente audit``: check an accountability report offline, as a third party.

The arbiter has the agreement (its members' public keys, every member's
signature on it) and the report bundle; nothing else — no node, no network,
no trust in either party.  For each item the verdict rests only on
signatures and proofs:

- *sent*: the envelope verifies under the author's Ed25519 key, and it is in
  the author's own log (inclusion proof against the author's signed
  checkpoint);
- *delivered*: the counterparty's receipt verifies (their signature, the
  checkpoint of their log it names, the envelope's inclusion in it), and
  that checkpoint agrees with the counterparty's log as the author witnessed
  it (their signed checkpoints, linked by consistency proofs);
- *acknowledged* / *answered*: an ``ack``, ``pong`` or ``response`` envelope
  signed by the counterparty, naming the item, whose disclosed plaintext
  matches its signed content hash (so its status — ``declined`` and its
  grounds — is theirs).

Then the report's claims are compared with what was proven, and its counts
with its items.  The report's own signature says who assembled it; a bundle
altered after signing fails that check, and every item is still judged on its
own evidence, so a verdict never depends on the author's honesty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detente.core.agreement import Agreement
from detente.core.canonical import b64d, signing_input
from detente.core.checkpoint import Checkpoint, verify_checkpoint
from detente.core.envelope import Content, Envelope, check_disclosed_content
from detente.core.keys import verify_ed25519, verify_mldsa65
from detente.core.logentry import entry_leaf_hash, envelope_entry, log_verifiers
from detente.core.merkle import verify_consistency, verify_inclusion
from detente.core.party import PartyCard
from detente.core.receipt import Receipt, verify_receipt
from detente.core.timefmt import parse_time
from detente.errors import DetenteError, EncodingError, ProofError, VerificationError

__all__ = ["AuditResult", "ItemVerdict", "audit_report"]

REPORT_DOMAIN = "report"
_CHUNK = 250
COUNTS = ("sent", "delivered", "acknowledged", "answered", "overdue", "declined")


@dataclass
class ItemVerdict:
    message: str
    type: str
    verdict: str  # one sentence, as printed
    proven: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # against the counterparty
    # What the verdict sentence is made of (to say it in another language).
    officer: str | None = None
    ack_due: str | None = None
    answer_due: str | None = None
    receipt_ok: bool = False
    withheld: bool = False


@dataclass
class AuditResult:
    party: str
    counterparty: str
    report_signed: bool
    agreement_source: str
    items: list[ItemVerdict]
    problems: list[str]  # the report does not hold up (tampered, forged, miscounted)
    findings: list[str]  # the evidence shows the counterparty's log is inconsistent
    counts: dict[str, dict[str, int]]

    @property
    def ok(self) -> bool:
        """The report is authentic and every claim in it is proven."""
        return self.report_signed and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "party": self.party,
            "counterparty": self.counterparty,
            "report_signed": self.report_signed,
            "agreement": self.agreement_source,
            "problems": self.problems,
            "findings": self.findings,
            "counts_proven": self.counts,
            "items": [
                {
                    "message": i.message,
                    "type": i.type,
                    "verdict": i.verdict,
                    "proven": i.proven,
                    "problems": i.problems,
                    "findings": i.findings,
                }
                for i in self.items
            ],
        }


class _BadBundleError(EncodingError):
    """The bundle is not a report."""


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise _BadBundleError(f"{where}: {key} is missing")
    value = obj[key]
    if not isinstance(value, kind):
        raise _BadBundleError(f"{where}.{key} has the wrong type")
    return value


def audit_report(bundle: Any, agreements: Sequence[Agreement] = ()) -> AuditResult:
    """Judge ``bundle`` (a parsed ``detente report --json``) against ``agreements``.

    ``agreements`` are the arbiter's own copies; if none are given, the
    versions embedded in the bundle are used, and the result says so (the
    arbiter should compare their digests with a copy from the parties).
    Raises :class:`~detente.errors.EncodingError` only when the bundle is not
    a report at all; everything else becomes a problem or a finding.
    """
    report = _get(bundle, "report", dict, "bundle")
    signatures = _get(bundle, "signatures", dict, "bundle")
    party = _get(report, "party", str, "report")
    counterparty = _get(report, "counterparty", str, "report")
    items_raw = _get(report, "items", list, "report")
    problems: list[str] = []
    findings: list[str] = []

    by_ref: dict[str, Agreement] = {}
    embedded = [Agreement.from_json(a) for a in _get(report, "agreements", list, "report")]
    if agreements:
        source = "the arbiter's copy"
        for a in agreements:
            by_ref[a.ref] = a
        for a in embedded:
            mine = by_ref.get(a.ref)
            if mine is not None and mine.digest() != a.digest():
                problems.append(f"agreement {a.ref} in the report differs from the arbiter's copy")
    else:
        source = "embedded in the report (compare its digest with the parties' copy)"
        for a in embedded:
            by_ref[a.ref] = a
    if not by_ref:
        raise _BadBundleError("no agreement to judge the report by")
    for a in list(by_ref.values()):
        try:
            a.verify_signatures()
        except VerificationError as exc:
            problems.append(f"agreement {a.ref}: {exc}")
            del by_ref[a.ref]
    cards = _cards(by_ref.values())
    author, other = cards.get(party), cards.get(counterparty)
    if author is None or other is None:
        missing = party if author is None else counterparty
        raise _BadBundleError(f"{missing} is not a member of the agreement(s) the report names")

    # -- the report's own signature ----------------------------------------------
    signed = True
    data = signing_input(REPORT_DOMAIN, report)
    try:
        verify_ed25519(
            author.keys.ed25519,
            b64d(_get(signatures, "ed25519", str, "signatures")),
            data,
            what=f"report by {party}",
        )
        verify_mldsa65(
            author.keys.mldsa65,
            b64d(_get(signatures, "ml_dsa_65", str, "signatures")),
            data,
            what=f"report by {party}",
        )
    except (VerificationError, EncodingError) as exc:
        signed = False
        problems.append(f"the report is not signed by {party} as it stands ({exc})")

    # -- the author's log and the counterparty's witnessed log -------------------
    ours: Checkpoint | None = None
    try:
        ours = verify_checkpoint(
            _get(report, "our_checkpoint", str, "report").encode(),
            author.log_origin,
            log_verifiers(author),
        )
    except DetenteError as exc:
        problems.append(f"{party}'s checkpoint does not verify: {exc}")
    their_roots, chain_problems = _their_log(report, other)
    findings.extend(chain_problems)

    cache: dict[str, Checkpoint] = {}
    until = parse_time(_get(report, "until", str, "report"), field="report.until")
    notes = _get(report, "receipt_checkpoints", dict, "report")

    def judge(lo: int) -> tuple[list[ItemVerdict], list[str]]:
        out: list[ItemVerdict] = []
        bad: list[str] = []
        for i in range(lo, min(lo + _CHUNK, len(items_raw))):
            try:
                out.append(
                    _item(
                        items_raw[i],
                        i,
                        party,
                        counterparty,
                        by_ref,
                        author,
                        ours,
                        their_roots,
                        cache,
                        until,
                        notes,
                    )
                )
            except (DetenteError, KeyError, TypeError, ValueError) as exc:
                bad.append(f"item {i}: malformed ({exc})")
        return out, bad

    # Signature checks release the GIL: chunks of items on one thread per CPU.
    verdicts: list[ItemVerdict] = []
    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 8))) as pool:
        for out, bad in pool.map(judge, range(0, len(items_raw), _CHUNK)):
            verdicts.extend(out)
            problems.extend(bad)
    for v in verdicts:
        problems.extend(f"{v.message}: {p}" for p in v.problems)
        findings.extend(f"{v.message}: {f}" for f in v.findings)

    # -- counts -------------------------------------------------------------------
    claimed_counts = report.get("counts")
    recount = _count([raw.get("claimed", {}) | {"type": raw.get("type")} for raw in items_raw])
    if claimed_counts != recount:
        problems.append(
            f"the report's counts do not match its items (counts say {claimed_counts}, "
            f"the items add up to {recount})"
        )
    proven_counts = _count([v.proven | {"type": v.type} for v in verdicts])
    return AuditResult(
        party, counterparty, signed, source, verdicts, problems, findings, proven_counts
    )


def _cards(agreements: Any) -> dict[str, PartyCard]:
    return {card.id: card for a in agreements for card in a.members}


def _count(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        c = counts.setdefault(str(row.get("type")), dict.fromkeys(COUNTS, 0))
        c["sent"] += 1
        c["delivered"] += row.get("delivered") is not None
        c["acknowledged"] += row.get("acknowledged") is not None
        c["answered"] += row.get("answered") is not None
        c["overdue"] += bool(row.get("overdue"))
        c["declined"] += row.get("status") == "declined"
    return counts


def _their_log(report: Mapping[str, Any], other: PartyCard) -> tuple[dict[int, bytes], list[str]]:
    """The counterparty's checkpoints the author witnessed: size -> root, if consistent."""
    roots: dict[int, bytes] = {}
    problems: list[str] = []
    previous: Checkpoint | None = None
    for j, entry in enumerate(_get(report, "their_log", list, "report")):
        try:
            cp = verify_checkpoint(
                _get(entry, "note", str, f"their_log[{j}]").encode(),
                other.log_origin,
                log_verifiers(other),
            )
        except DetenteError as exc:
            problems.append(f"{other.id}'s witnessed checkpoint {j} does not verify: {exc}")
            continue
        if previous is not None and entry.get("proof_from") == previous.size:
            proof = [b64d(h) for h in entry.get("proof", [])]
            try:
                verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
            except (ProofError, EncodingError):
                problems.append(
                    f"{other.id}'s log forked: its checkpoints at sizes {previous.size} and "
                    f"{cp.size} are not consistent"
                )
        roots[cp.size] = cp.root
        previous = cp
    return roots, problems


def _item(
    raw: Mapping[str, Any],
    i: int,
    party: str,
    counterparty: str,
    agreements: Mapping[str, Agreement],
    author: PartyCard,
    ours: Checkpoint | None,
    their_roots: Mapping[int, bytes],
    cache: dict[str, Checkpoint],
    until: datetime,
    notes: Mapping[str, str],
) -> ItemVerdict:
    where = f"item {i}"
    message = _get(raw, "message", str, where)
    claimed = _get(raw, "claimed", dict, where)
    env = Envelope.from_json(_get(raw, "envelope", dict, where))
    v = ItemVerdict(message, str(raw.get("type")), "", {})
    proven: dict[str, Any] = {
        "delivered": None,
        "acknowledged": None,
        "answered": None,
        "status": None,
        "overdue": False,
    }
    v.proven = proven
    if env.id != message or env.from_ != party or env.to != counterparty or env.type != v.type:
        v.problems.append("the envelope is not the message the item describes")
    agreement = agreements.get(env.agreement)
    if agreement is None:
        v.problems.append(f"the envelope names agreement {env.agreement}, not given")
        v.verdict = "cannot be judged: unknown agreement"
        return v
    try:
        verify_ed25519(author.keys.ed25519, env.sig, env.signed_bytes(), what="the envelope")
    except VerificationError:
        v.problems.append(f"the envelope is not signed by {party}: not sent as shown")
    log = raw.get("log")
    if log is None or ours is None:
        v.problems.append(f"no proof that the message is in {party}'s own log")
    else:
        try:
            verify_inclusion(
                entry_leaf_hash(envelope_entry(env)),
                int(log["leaf_index"]),
                ours.size,
                [b64d(h) for h in log["proof"]],
                ours.root,
            )
        except (ProofError, EncodingError):
            v.problems.append(f"not in {party}'s own log as its checkpoint shows")

    # -- delivered: their receipt ---------------------------------------------------
    receipt_obj = raw.get("receipt")
    receipt_ok = False
    if receipt_obj is not None:
        receipt = Receipt.from_json(receipt_obj)
        note = notes.get(receipt.checkpoint_hash)
        try:
            if note is None:
                raise VerificationError("the checkpoint it names is not in the report")
            cp = verify_receipt(receipt, env, agreement, note.encode(), checkpoint_cache=cache)
            receipt_ok = True
            proven["delivered"] = receipt.received
            witnessed = their_roots.get(cp.size)
            if witnessed is not None and witnessed != cp.root:
                v.findings.append(
                    "receipt present but log entry missing: the recipient's log is inconsistent "
                    f"(its witnessed checkpoint at size {cp.size} has another root)"
                )
            elif their_roots and max(their_roots) >= cp.size and witnessed is None:
                pass  # witnessed at other sizes only: the chain of proofs speaks for it
        except ProofError:
            v.findings.append(
                "receipt present but log entry missing: the recipient's log is inconsistent "
                "(the receipt's inclusion proof fails against the checkpoint it names)"
            )
            proven["delivered"] = receipt.received
            receipt_ok = True
        except (VerificationError, EncodingError) as exc:
            v.problems.append(f"the receipt does not verify ({exc}): forged or altered")

    # -- acknowledged / answered: their signed replies -----------------------------
    acked_by = None
    valid: list[tuple[Envelope, Content | None]] = []
    for k, reply in enumerate(raw.get("replies", [])):
        try:
            r_env = Envelope.from_json(reply["envelope"])
            withheld = reply.get("plaintext") is None
            plaintext = None if withheld else b64d(reply["plaintext"])
            content = _disclosed(r_env, plaintext, agreements, counterparty, party)
            if r_env.reply_to != message:
                raise VerificationError(f"it answers {r_env.reply_to}, not this message")
        except (DetenteError, KeyError, TypeError) as exc:
            v.problems.append(f"reply {k} does not verify ({exc}): a forged acknowledgement")
            continue
        valid.append((r_env, content))
    # Earliest first; at equal times an ack before the answer it precedes.
    valid.sort(key=lambda rc: (rc[0].created, rc[0].type != "ack"))
    for r_env, content in valid:
        at = r_env.created
        body = content.body if content is not None else {}
        status = body.get("status", "withheld") if r_env.type == "response" else None
        if proven["acknowledged"] is None:
            proven["acknowledged"] = at
        if acked_by is None and r_env.type in ("ack", "pong"):
            acked_by = body.get("officer")
        if r_env.type == "pong" or (status is not None and status != "acknowledged"):
            if proven["answered"] is None:
                proven["answered"] = at
            if status is not None:
                proven["status"] = status
    if proven["answered"] is not None and proven["delivered"] is None:
        # An answer proves delivery even without the receipt.
        proven["delivered"] = proven["answered"]

    # -- overdue: a deadline passed by the report's end, and nothing proves it met --
    closed = proven["status"] in ("declined", "completed")
    for due_key, done_key in (("ack_due", "acknowledged"), ("answer_due", "answered")):
        due = raw.get(due_key)
        if due is not None and proven[done_key] is None and not closed:
            proven["overdue"] = proven["overdue"] or parse_time(due, field=due_key) <= until
    if bool(claimed.get("overdue")) != proven["overdue"]:
        v.problems.append(
            "claims it is overdue, but an answer in time is proven"
            if claimed.get("overdue")
            else "does not claim it is overdue, but its deadline passed unmet"
        )

    for key in ("delivered", "acknowledged", "answered"):
        if claimed.get(key) is not None and proven[key] is None:
            v.problems.append(f"claims {key} at {claimed[key]}, but nothing proves it")
    withheld = proven["status"] == "withheld"
    if withheld:
        proven["status"] = None  # not disclosed: the claimed status stands unproven
    elif claimed.get("status") is not None and claimed.get("status") != proven["status"]:
        v.problems.append(
            f"claims the answer was {claimed['status']}, the signed answers say {proven['status']}"
        )
    if claimed.get("delivered") is None and receipt_ok:
        v.problems.append("holds a valid receipt but does not claim delivery")
    v.verdict = _sentence(proven, acked_by, raw, receipt_ok)
    v.officer, v.ack_due, v.answer_due = acked_by, raw.get("ack_due"), raw.get("answer_due")
    v.receipt_ok, v.withheld = receipt_ok, withheld
    if withheld:
        v.verdict += " (the answer's content is withheld under its handling labels)"
    return v


def _disclosed(
    env: Envelope,
    plaintext: bytes | None,
    agreements: Mapping[str, Agreement],
    sender: str,
    recipient: str,
) -> Content | None:
    """A reply signed by ``sender``, and the plaintext it signed (no decryption needed).

    None when the content was withheld under its handling labels: the signed
    header still proves the reply's type, time and what it answers.
    """
    agreement = agreements.get(env.agreement)
    if agreement is None:
        raise VerificationError(f"names agreement {env.agreement}, not given")
    if env.from_ != sender or env.to != recipient:
        raise VerificationError(f"is from {env.from_} to {env.to}")
    card = agreement.member(sender)
    verify_ed25519(card.keys.ed25519, env.sig, env.signed_bytes(), what=f"{env.type} {env.id}")
    if plaintext is None:
        return None
    return check_disclosed_content(env, plaintext)


def _sentence(
    proven: Mapping[str, Any], officer: str | None, raw: Mapping[str, Any], receipt_ok: bool
) -> str:
    if proven["delivered"] is None:
        text = "never delivered: no receipt"
        if raw.get("ack_due"):
            text += f" (acknowledgement was due {raw['ack_due']})"
        return text
    text = f"delivered at {proven['delivered']}"
    if not receipt_ok:
        text += " (no receipt; an answer proves it)"
    if proven["acknowledged"] is not None:
        text += f" and acknowledged at {proven['acknowledged']}"
        if officer:
            text += f" by {officer}"
    else:
        text += ", never acknowledged"
        if raw.get("ack_due"):
            text += f" (due {raw['ack_due']})"
    if proven["answered"] is not None:
        status = proven["status"] or "answered"
        text += f"; answered ({status}) at {proven['answered']}"
    elif raw.get("answer_due"):
        text += f"; no answer (due {raw['answer_due']})"
    return text
