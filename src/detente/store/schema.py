"""The node's tables (SQLAlchemy Core).

Times are integer milliseconds since the epoch (UTC) in the store, RFC 3339
strings on the wire.  Wire objects are stored as the exact canonical bytes
that were signed or received, so hashes can be recomputed from the store
without re-encoding (``detente log verify`` relies on it).

The migration in ``migrations/versions`` must create exactly these tables;
``tests/store/test_migrations.py`` compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Facts about this node: its party id, the schema's purpose.
node_info = Table(
    "node_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Every agreement version ever installed (the chain is evidence too).
agreements = Table(
    "agreements",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("document", LargeBinary, nullable=False),
    Column("installed_at", BigInteger, nullable=False),
)

# Every envelope this node sent ("out") or received ("in").
messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("direction", String(3), nullable=False),
    Column("agreement", String(80), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("created", String(24), nullable=False),
    Column("type", String(16), nullable=False),
    Column("tlp", String(16), nullable=False),
    Column("case_id", String(64)),
    Column("reply_to", String(36)),
    Column("exercise", Boolean, nullable=False),
    Column("envelope_hash", String(71), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("plaintext", LargeBinary),
    Column("log_index", BigInteger, nullable=False),
    Column("stored_at", BigInteger, nullable=False),
    UniqueConstraint("sender", "recipient", "seq", name="uq_messages_channel_seq"),
)
Index("ix_messages_direction_stored", messages.c.direction, messages.c.stored_at)

# Delivery state of outgoing envelopes: the durable outbox.
outbox = Table(
    "outbox",
    metadata,
    Column("message_id", String(36), ForeignKey("messages.id"), primary_key=True),
    Column("recipient", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),  # pending | delivered | rejected
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", BigInteger),
)
Index("ix_outbox_pending", outbox.c.state, outbox.c.recipient, outbox.c.seq)

# Receipts this node issued (for envelopes in) and got (for envelopes out).
receipts = Table(
    "receipts",
    metadata,
    Column("message_id", String(36), ForeignKey("messages.id"), primary_key=True),
    Column("direction", String(6), nullable=False),  # issued | got
    Column("receipt_hash", String(71), nullable=False),
    Column("receipt", LargeBinary, nullable=False),
    Column("checkpoint_hash", String(71), nullable=False),  # the note, in `notes`
    Column("log_index", BigInteger, nullable=False),
)

# Checkpoint notes that receipts name by hash (issued and got), kept once each.
notes = Table(
    "notes",
    metadata,
    Column("hash", String(71), primary_key=True),
    Column("note", LargeBinary, nullable=False),
)

# Next sequence number per outgoing channel (this node -> recipient).
channels_out = Table(
    "channels_out",
    metadata,
    Column("recipient", String(32), primary_key=True),
    Column("next_seq", BigInteger, nullable=False),
)

# What arrived per incoming channel (sender -> this node).
channels_in = Table(
    "channels_in",
    metadata,
    Column("sender", String(32), primary_key=True),
    Column("contiguous", BigInteger, nullable=False),  # every seq <= this has arrived
    Column("max_seq", BigInteger, nullable=False),
    Column("gap_reported_at", BigInteger),
)

# The log: RFC 9162 leaves, and the complete subtrees above them.
log_leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("ref", String(36), nullable=False),
)
log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# Checkpoints this node signed of its own log, and witnesses' cosignatures.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", LargeBinary, nullable=False),
    Column("signed_at", BigInteger, nullable=False),
)
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("witness", String(32), primary_key=True),
    Column("line", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

# Peers' checkpoints this node verified (signature + consistency), as witness.
peer_checkpoints = Table(
    "peer_checkpoints",
    metadata,
    Column("peer", String(32), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", LargeBinary, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    # The RFC 9162 consistency proof from the previous stored size (evidence):
    # concatenated 32-byte hashes; NULL for the first checkpoint of a peer.
    Column("proof_from", BigInteger),
    Column("proof", LargeBinary),
)

# Alarms for the duty officer: forks, gaps, rejected deliveries, bad receipts.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("peer", String(32)),
    Column("detail", Text, nullable=False),
    Column("evidence", LargeBinary),
    Column("created_at", BigInteger, nullable=False),
    Column("acknowledged_at", BigInteger),
)

# Client API tokens (SHA-256 of a 256-bit random token; the token itself is
# shown once).  Tokens are high-entropy, so a fast hash is the right one;
# officers' passwords, when the console comes, get a memory-hard KDF.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

# The workflow: every message that sets a deadline (a notification, request,
# consultation, escalation or ping), sent or received, with where it stands.
# One row per envelope, so a notification to three parties is three rows of
# one case.  Times are ms; NULL until the event happens.
tracked = Table(
    "tracked",
    metadata,
    Column("message_id", String(36), ForeignKey("messages.id"), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("direction", String(3), nullable=False),  # out: we wait; in: we owe
    Column("counterparty", String(32), nullable=False),
    Column("agreement", String(80), nullable=False),
    Column("type", String(16), nullable=False),
    Column("subject", String(64), nullable=False),  # category, request kind, level, round
    Column("refers", String(36)),  # a preservation-extension: the request it extends
    Column("severity", Integer),
    Column("urgency", String(10)),
    Column("exercise", Boolean, nullable=False),
    Column("sent_at", BigInteger, nullable=False),
    Column("state", String(24), nullable=False),  # core.case.CaseState
    Column("level", String(16), nullable=False),  # the ladder rung
    Column("delivered_at", BigInteger),
    Column("ack_due", BigInteger),
    Column("acked_at", BigInteger),
    Column("ack_message", String(36)),
    Column("ack_officer", String(200)),
    Column("answer_due", BigInteger),
    Column("answered_at", BigInteger),
    Column("answer_message", String(36)),
    Column("answer_status", String(24)),
    Column("preserved_until", BigInteger),
    Column("missed_at", BigInteger),  # first deadline missed
    Column("flags", Integer, nullable=False),  # workflow.FLAG_*: reminders sent, overdue
    Column("next_check", BigInteger),  # when the scheduler must look again
)
Index("ix_tracked_next_check", tracked.c.next_check)
Index("ix_tracked_counterparty", tracked.c.counterparty, tracked.c.type, tracked.c.sent_at)
Index("ix_tracked_case", tracked.c.case_id)

# What happened to a case and when: deadlines set, reminders, overdue
# deadlines, escalations, state changes (with who did it).
case_events = Table(
    "case_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), nullable=False),
    Column("message_id", String(36)),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)
Index("ix_case_events_case", case_events.c.case_id, case_events.c.id)
Index("ix_messages_case", messages.c.case_id)

# -- interoperability (detente.interop): STIX objects served over TAXII 2.1 ------

# Every STIX object version this node holds: from notifications and requests
# sent or received (scope: the agreement's id), sightings reported back, and
# local imports (scope "local").  One row per (scope, id, version); `seq`
# orders them as they were added (TAXII's date_added order and paging).
# `object` is the object's JSON as validated (re-serialised, never the raw
# input: what is served is exactly what was checked).  Times: date_added and
# version_us are microseconds since the epoch; `version` is the object's own
# timestamp text (modified, else created, else date_added).
stix_objects = Table(
    "stix_objects",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(80), nullable=False),
    Column("stix_id", String(300), nullable=False),
    Column("type", String(250), nullable=False),
    Column("version", String(40), nullable=False),
    Column("version_us", BigInteger, nullable=False),
    Column("date_added", BigInteger, nullable=False),
    Column("is_last", Boolean, nullable=False),  # the newest version in its scope
    Column("tlp", String(16), nullable=False),  # TLP 2.0 label that decides who may read it
    Column("case_id", String(64)),
    Column("message_id", String(36)),  # the message it came in (or went out in)
    Column("source", String(64), nullable=False),  # party id, or "local:<who>"
    Column("object", LargeBinary, nullable=False),
    UniqueConstraint("scope", "stix_id", "version_us", name="uq_stix_objects_version"),
)
Index("ix_stix_objects_scope_seq", stix_objects.c.scope, stix_objects.c.seq)
Index("ix_stix_objects_scope_type", stix_objects.c.scope, stix_objects.c.type, stix_objects.c.seq)
Index("ix_stix_objects_scope_added", stix_objects.c.scope, stix_objects.c.date_added)

# TAXII 2.1 status resources (section 4.3): the outcome of each write.
taxii_status = Table(
    "taxii_status",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("scope", String(80), nullable=False),
    Column("owner", String(64), nullable=False),  # the API user who wrote
    Column("status", String(16), nullable=False),  # pending | complete
    Column("request_timestamp", BigInteger, nullable=False),  # microseconds
    Column("total_count", Integer, nullable=False),
    Column("success_count", Integer, nullable=False),
    Column("failure_count", Integer, nullable=False),
    Column("pending_count", Integer, nullable=False),
    Column("details", LargeBinary, nullable=False),  # JSON: successes, failures
)

# Per API user, the highest TLP the TAXII server serves them, overriding the
# default of their role (see detente.interop.access).
taxii_grants = Table(
    "taxii_grants",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("max_tlp", String(16), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# -- the duty officer's console (detente.console) ----------------------------------

# Officers who sign in to the console: separate from API tokens.  Passwords
# are kept only as Argon2id hashes (PHC strings: parameters and salt
# included).  `failed_logins` counts wrong passwords in a row; at
# console.accounts.MAX_FAILURES the account is locked until `locked_until`
# (ms, wall clock) or until an admin unlocks it.  `full_name` is how the
# officer signs an acknowledgement (the ack form's `officer`).
officers = Table(
    "officers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("full_name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # viewer | officer | supervisor | admin
    Column("lang", String(16), nullable=False),  # the officer's catalogue language
    Column("password_hash", Text, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", BigInteger),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("password_changed_at", BigInteger, nullable=False),
)

# Console sessions: SHA-256 of the cookie's 256-bit random token (the token
# itself is only in the officer's browser), the CSRF token every form of the
# session carries, and when the session ends (ms, wall clock).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("officer", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_console_sessions_officer", console_sessions.c.officer)

# What each officer did in the console, and when (ms, wall clock): sign-ins
# (and failures, lock-outs), messages sent (`ref`: the message id), alarms
# acknowledged (`ref`: the alarm id), reports exported, audits run.
console_actions = Table(
    "console_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("officer", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("ref", String(64)),
    Column("detail", Text, nullable=False),
)
Index("ix_console_actions_action", console_actions.c.action, console_actions.c.id)
Index("ix_console_actions_officer", console_actions.c.officer, console_actions.c.id)
