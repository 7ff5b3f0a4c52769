"""Officers of the console: accounts, passwords, lock-out, sessions, and what they did.

Officer accounts live in the node's database (table ``officers``), apart from
API tokens: a token is a 256-bit random secret a tool holds, a password is
something a person remembers, so passwords get a memory-hard KDF — Argon2id
(RFC 9106) through ``argon2-cffi``, with its default parameters (the RFC's
second recommended option: 64 MiB, 3 passes, 4 lanes), re-hashed on the next
sign-in when the parameters change.

Lock-out: :data:`MAX_FAILURES` wrong passwords in a row lock the account for
:data:`LOCK_SECONDS` (or until ``detente officer unlock``); while it is
locked no password is even checked.  An unknown name costs the same Argon2
verification as a known one, so timing does not tell which names exist.

Sessions: the browser holds a 256-bit random token; the store keeps its
SHA-256 only, with the session's CSRF token and its end.  The role is read
from the officer's row on every request, so a changed role or a disabled
account takes effect at once.

Times here are the wall clock (``now`` is injectable for tests), never the
node's clock: a node run on a manual clock for a rehearsal must not expire
or extend anybody's session.

Not here: cookies, forms and HTTP (:mod:`detente.console.web`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, and_, delete, insert, select, update

from detente.errors import EncodingError
from detente.i18n import SUPPORTED
from detente.store.db import mapped_errors
from detente.store.schema import console_actions, console_sessions, officers

__all__ = [
    "LOCK_SECONDS",
    "MAX_FAILURES",
    "MIN_PASSWORD",
    "ROLES",
    "SESSION_SECONDS",
    "Officer",
    "Officers",
    "SignIn",
    "role_at_least",
]

ROLES = ("viewer", "officer", "supervisor", "admin")  # the same ladder as API tokens
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600  # a duty shift
MIN_PASSWORD = 12
_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
_HASHER = PasswordHasher()  # Argon2id, RFC 9106 low-memory defaults
# Argon2 takes 64 MiB per hash: a burst of sign-ins must not take the node's memory.
_KDF_SLOTS = threading.BoundedSemaphore(2)


def role_at_least(role: str, minimum: str) -> bool:
    """Whether ``role`` may do what needs ``minimum`` (viewer < officer < supervisor < admin)."""
    return ROLES.index(role) >= ROLES.index(minimum)


def _hash(password: str) -> str:
    with _KDF_SLOTS:
        return _HASHER.hash(password)


def _verify(stored: str, password: str) -> bool:
    with _KDF_SLOTS:
        try:
            return _HASHER.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    # Verified against for unknown names, so they cost what a known name costs.
    if not _DUMMY:
        _DUMMY.append(_hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Officer:
    """A signed-in officer, as the console sees them."""

    name: str
    full_name: str
    role: str
    lang: str

    def may(self, minimum: str) -> bool:
        return role_at_least(self.role, minimum)


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a sign-in: ``ok`` with a session, or why not."""

    outcome: str  # ok | wrong | locked | disabled
    officer: Officer | None = None
    token: str | None = None  # the session cookie's value (ok only)
    failures_left: int | None = None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise EncodingError(f"a password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise EncodingError("a password must have at most 1024 characters")


class Officers:
    """Officer accounts and console sessions in one node's database."""

    def __init__(
        self,
        engine: Engine,
        *,
        reads: Engine | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        # A node's read engine never takes SQLite's write lock: a page view must not
        # queue behind the writer (``reads``); writes go through ``engine``.
        self.engine = engine
        self.reads = reads or engine
        self._now = now

    def now_ms(self) -> int:
        return int(self._now() * 1000)

    # -- accounts (the CLI) -----------------------------------------------------------

    def add(self, name: str, full_name: str, role: str, lang: str, password: str) -> Officer:
        if not _NAME_RE.match(name):
            raise EncodingError(
                f"officer name {name!r}: 2-64 lower-case letters, digits, '.', '_', '-', "
                "starting with a letter"
            )
        full_name = full_name.strip()
        if not full_name or len(full_name) > 200:
            raise EncodingError("full name: 1 to 200 characters (it signs acknowledgements)")
        self._check_role(role)
        self._check_lang(lang)
        check_password(password)
        hashed = _hash(password)
        now = self.now_ms()
        with mapped_errors("adding an officer"), self.engine.begin() as conn:
            if conn.execute(select(officers.c.name).where(officers.c.name == name)).first():
                raise EncodingError(f"an officer named {name!r} already exists")
            conn.execute(
                insert(officers).values(
                    name=name,
                    full_name=full_name,
                    role=role,
                    lang=lang,
                    password_hash=hashed,
                    failed_logins=0,
                    locked_until=None,
                    disabled=False,
                    created_at=now,
                    password_changed_at=now,
                )
            )
            self._record(conn, name, "account-created", None, f"role {role}, language {lang}")
        return Officer(name, full_name, role, lang)

    def roster(self) -> list[dict[str, Any]]:
        now = self.now_ms()
        with mapped_errors("listing officers"), self.reads.connect() as conn:
            rows = conn.execute(select(officers).order_by(officers.c.name)).all()
        return [
            {
                "name": r.name,
                "full_name": r.full_name,
                "role": r.role,
                "lang": r.lang,
                "failed_logins": r.failed_logins,
                "locked": r.locked_until is not None and r.locked_until > now,
                "disabled": bool(r.disabled),
                "created_at": r.created_at,
            }
            for r in rows
        ]

    def _update(self, name: str, what: str, **values: Any) -> None:
        with mapped_errors(f"changing officer {name}"), self.engine.begin() as conn:
            done = conn.execute(update(officers).where(officers.c.name == name).values(**values))
            if not done.rowcount:
                raise EncodingError(f"no officer named {name!r}")
            if "password_hash" in values or values.get("disabled"):
                conn.execute(delete(console_sessions).where(console_sessions.c.officer == name))
            self._record(conn, name, "account-changed", None, what)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        self._update(
            name,
            "password changed; sessions ended",
            password_hash=_hash(password),
            password_changed_at=self.now_ms(),
            failed_logins=0,
            locked_until=None,
        )

    def set_role(self, name: str, role: str) -> None:
        self._check_role(role)
        self._update(name, f"role {role}", role=role)

    def set_lang(self, name: str, lang: str) -> None:
        self._check_lang(lang)
        self._update(name, f"language {lang}", lang=lang)

    def unlock(self, name: str) -> None:
        self._update(name, "unlocked", failed_logins=0, locked_until=None)

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._update(name, "disabled" if disabled else "enabled", disabled=disabled)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise EncodingError(f"role {role!r} is not one of {', '.join(ROLES)}")

    @staticmethod
    def _check_lang(lang: str) -> None:
        if lang not in SUPPORTED:
            raise EncodingError(f"language {lang!r} is not one of {', '.join(SUPPORTED)}")

    # -- signing in --------------------------------------------------------------------

    def sign_in(self, name: str, password: str) -> SignIn:
        """Check a password; count failures and lock; open a session on success."""
        now = self.now_ms()
        with mapped_errors("reading an officer"), self.reads.connect() as conn:
            row = conn.execute(select(officers).where(officers.c.name == name)).first()
        if row is None:
            _verify(_dummy_hash(), password)
            self.record(name[:64] or "?", "sign-in-failed", None, "unknown name")
            return SignIn("wrong")
        if row.locked_until is not None and row.locked_until > now:
            self.record(name, "sign-in-refused", None, "account locked")
            return SignIn("locked")
        if row.disabled:
            _verify(row.password_hash, password)
            self.record(name, "sign-in-refused", None, "account disabled")
            return SignIn("disabled")
        if not _verify(row.password_hash, password):
            return self._failed(name)
        officer = Officer(row.name, row.full_name, row.role, row.lang)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        rehash = _HASHER.check_needs_rehash(row.password_hash)
        new_hash = _hash(password) if rehash else None
        with mapped_errors("opening a session"), self.engine.begin() as conn:
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if new_hash is not None:
                values["password_hash"] = new_hash
            conn.execute(update(officers).where(officers.c.name == name).values(**values))
            conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
            conn.execute(
                insert(console_sessions).values(
                    token_hash=_digest(token),
                    officer=name,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + SESSION_SECONDS * 1000,
                )
            )
            self._record(conn, name, "sign-in", None, "")
        return SignIn("ok", officer, token)

    def _failed(self, name: str) -> SignIn:
        now = self.now_ms()
        with mapped_errors("counting a failed sign-in"), self.engine.begin() as conn:
            conn.execute(
                update(officers)
                .where(officers.c.name == name)
                .values(failed_logins=officers.c.failed_logins + 1)
            )
            failures = int(
                conn.execute(
                    select(officers.c.failed_logins).where(officers.c.name == name)
                ).scalar_one()
            )
            if failures >= MAX_FAILURES:
                conn.execute(
                    update(officers)
                    .where(officers.c.name == name)
                    .values(locked_until=now + LOCK_SECONDS * 1000, failed_logins=0)
                )
                conn.execute(delete(console_sessions).where(console_sessions.c.officer == name))
                self._record(conn, name, "locked", None, f"{failures} wrong passwords in a row")
                return SignIn("locked", failures_left=0)
            self._record(conn, name, "sign-in-failed", None, f"wrong password ({failures})")
        return SignIn("wrong", failures_left=MAX_FAILURES - failures)

    def session(self, token: str) -> tuple[Officer, str] | None:
        """The officer and CSRF token of a live session, or None."""
        if not token or len(token) > 200:
            return None
        with mapped_errors("reading a session"), self.reads.connect() as conn:
            row = conn.execute(
                select(
                    officers.c.name,
                    officers.c.full_name,
                    officers.c.role,
                    officers.c.lang,
                    officers.c.disabled,
                    console_sessions.c.csrf,
                    console_sessions.c.expires_at,
                )
                .join(officers, officers.c.name == console_sessions.c.officer)
                .where(console_sessions.c.token_hash == _digest(token))
            ).first()
        if row is None or row.disabled or row.expires_at <= self.now_ms():
            return None
        return Officer(row.name, row.full_name, row.role, row.lang), str(row.csrf)

    def sign_out(self, token: str) -> None:
        with mapped_errors("ending a session"), self.engine.begin() as conn:
            found = conn.execute(
                select(console_sessions.c.officer).where(
                    console_sessions.c.token_hash == _digest(token)
                )
            ).scalar_one_or_none()
            if found is not None:
                conn.execute(
                    delete(console_sessions).where(console_sessions.c.token_hash == _digest(token))
                )
                self._record(conn, str(found), "sign-out", None, "")

    @staticmethod
    def csrf_ok(expected: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(expected.encode(), given.encode())

    # -- what officers did ---------------------------------------------------------------

    def _record(self, conn: Any, officer: str, action: str, ref: str | None, detail: str) -> None:
        conn.execute(
            insert(console_actions).values(
                at=self.now_ms(), officer=officer, action=action, ref=ref, detail=detail[:2000]
            )
        )

    def record(self, officer: str, action: str, ref: str | None, detail: str) -> None:
        """Attribute an action to an officer (sent messages, alarms acknowledged, …)."""
        with mapped_errors("recording an officer's action"), self.engine.begin() as conn:
            self._record(conn, officer, action, ref, detail)

    def actions(self, officer: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(console_actions).order_by(console_actions.c.id.desc()).limit(limit)
        if officer is not None:
            query = query.where(console_actions.c.officer == officer)
        with mapped_errors("reading officers' actions"), self.reads.connect() as conn:
            return [
                {
                    "id": r.id,
                    "at": r.at,
                    "officer": r.officer,
                    "action": r.action,
                    "ref": r.ref,
                    "detail": r.detail,
                }
                for r in conn.execute(query)
            ]

    def set_own_lang(self, officer: str, lang: str) -> None:
        """An officer chooses their language in the console."""
        self._check_lang(lang)
        with mapped_errors("saving a preference"), self.engine.begin() as conn:
            conn.execute(
                update(officers)
                .where(and_(officers.c.name == officer, officers.c.disabled.is_(False)))
                .values(lang=lang)
            )
            self._record(conn, officer, "preferences", None, f"language {lang}")
