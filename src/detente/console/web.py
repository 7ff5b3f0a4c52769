"""The console's pages: server-rendered HTML on the node's ASGI app, under ``/console``.

Every page works without JavaScript (forms post, links navigate); with it,
a page listens to ``/console/events`` (server-sent events) and refreshes its
live regions in place when what it shows changes.

Security, on the server:

- sign-in per officer (:mod:`detente.console.accounts`: Argon2id, lock-out);
  the session cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``
  and ``Secure`` when the request came over TLS;
- every form carries the session's CSRF token (the sign-in form a
  double-submit token), checked in constant time, and a cross-site
  ``Origin`` or ``Sec-Fetch-Site`` refuses the request outright;
- roles are checked by each route before anything is read or done
  (viewer < officer < supervisor < admin), whatever the page showed;
- responses carry a strict Content-Security-Policy (no inline script or
  style, nothing from elsewhere), ``nosniff``, ``frame-ancestors 'none'``,
  referrers only within the console, and pages are not cached.

The service layer is the REST API's: sending goes through
:meth:`Node.spec` and :meth:`Node.send_many` with ``by`` the officer's name;
an acknowledgement's ``officer`` is the signed-in officer's full name.

Not here: what the pages show (:mod:`detente.console.views`), form bodies
(:mod:`detente.console.compose`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
from babel.dates import format_timedelta
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detente.audit import audit_report
from detente.console import compose, views
from detente.console.accounts import Officer, Officers, role_at_least
from detente.console.live import ChangeFeed, alarm_version
from detente.core.agreement import Agreement
from detente.core.canonical import parse
from detente.core.envelope import Content
from detente.core.forms import FORMS
from detente.core.policy import TLP_LABELS
from detente.core.timefmt import format_time, parse_user_time
from detente.errors import DetenteError, EncodingError
from detente.i18n import (
    SUPPORTED,
    best_language,
    code_label,
    field_label,
    format_time_for,
    has_message,
    is_rtl,
    language_name,
    render_message,
    tlp_label,
    translator,
    verdict_sentence,
)
from detente.i18n.vocab import FIELD_KINDS, VOCABULARIES
from detente.node.clock import from_ms, to_ms
from detente.node.queries import NotFoundError
from detente.node.report import build_report
from detente.node.service import Node

__all__ = ["ConsoleApp", "install_console"]

_T = TypeVar("_T")
COOKIE = "detente_console"
LOGIN_COOKIE = "detente_console_login"
STREAM_SECONDS = 25.0  # an event stream ends (the browser reconnects) so a node can stop
HEARTBEAT_SECONDS = 10.0
MAX_UPLOAD = 32 * 1024 * 1024
_HERE = Path(__file__).resolve().parent
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
GROUP_LABELS = {
    "overdue": "Overdue",
    "escalated": "Escalated",
    "new": "New: awaiting acknowledgement",
    "owed": "Owed by us",
    "waiting": "Waiting for them",
    "settled": "Settled",
}
STEP_LABELS = {
    "acknowledge": "Acknowledge",
    "answer": "Answer",
    "pong": "Answer the ping",
    "await-ack": "Wait for their acknowledgement",
    "await-answer": "Wait for their answer",
    "await-pong": "Wait for their answer to the ping",
    "none": "Nothing owed",
}
SUBJECT_VOCABULARY = {
    "notification": "category",
    "request": "request-kind",
    "consultation": "level",
    "escalation": "level",
}


class Refused(Exception):  # noqa: N818 - an HTTP answer, rendered as a page
    """Stop handling a request and show a page saying why (403, 404, 400 …)."""

    def __init__(self, status: int, message: str, lang: str = "en") -> None:
        super().__init__(message)
        self.status, self.message, self.lang = status, message, lang


class _SignInFirst(Exception):  # noqa: N818 - a redirect to the sign-in page
    pass


@dataclass(frozen=True)
class Ctx:
    """The signed-in officer of one request."""

    officer: Officer
    csrf: str
    token: str

    @property
    def lang(self) -> str:
        return self.officer.lang


class Labels:
    """How values read in one language (the catalogues; TLP labels never translated)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.t = translator(lang)

    def code(self, vocabulary: str, code: object) -> str:
        return code_label(vocabulary, code, self.lang)

    def time(self, value: int | str | None) -> str:
        """A time (ms, or RFC 3339 text) for the reader, in UTC."""
        if value is None or value == "":
            return "–"
        if isinstance(value, int):
            value = format_time(from_ms(value))
        elif len(value) != 24:
            try:  # a STIX time, of any precision: shown like ours
                value = format_time(parse_user_time(value))
            except EncodingError:
                return value
        return format_time_for(value, self.lang)

    def pap_meaning(self, value: str, code: str) -> str:
        """What a PAP label allows, without the label the chip beside it shows."""
        return value.removeprefix(f"PAP:{code}").lstrip(" —-:")

    def relative(self, due_ms: int | None, now_ms: int) -> str:
        if due_ms is None:
            return ""
        delta = timedelta(milliseconds=due_ms - now_ms)
        return str(
            format_timedelta(
                delta, add_direction=True, threshold=1.5, locale=best_language(self.lang)
            )
        )

    def tlp(self, label: str) -> str:
        return tlp_label(label)

    def tlp_class(self, label: str) -> str:
        return views.tlp_class(label)

    def group(self, group: str) -> str:
        return self.t(GROUP_LABELS[group])

    def step(self, step: str) -> str:
        return self.t(STEP_LABELS[step])

    def role(self, role: str) -> str:
        return self.t(f"role:{role}")

    def party_role(self, role: str) -> str:
        return self.t(f"party-role:{role}") if has_message(f"party-role:{role}") else role

    def event(self, kind: str) -> str:
        return self.t(f"event:{kind}") if has_message(f"event:{kind}") else kind

    def subject(self, msg_type: str, subject: str) -> str:
        vocabulary = SUBJECT_VOCABULARY.get(msg_type)
        return subject if vocabulary is None else self.code(vocabulary, subject)

    def field(self, name: str) -> str:
        """A form field's label, or what a non-field input is called."""
        other = {
            "to": "To",
            "agreement": "Agreement",
            "tlp": "Sharing (TLP)",
            "personal_data": "Personal data",
            "exercise": "Exercise",
            "type": "Message type",
            "form": "The form",
        }
        return self.t(other[name]) if name in other else field_label(name, self.lang)

    def lang_name(self, tag: str) -> str:
        return language_name(tag, self.lang)

    def number(self, value: float | int | None) -> str:
        if value is None:
            return "–"
        return str(format_decimal(value, locale=best_language(self.lang)))

    def seconds(self, value: float | None) -> str:
        if value is None:
            return "–"
        return str(
            format_timedelta(
                timedelta(seconds=value), threshold=1.5, locale=best_language(self.lang)
            )
        )

    def rows(self, msg_type: str, body: Mapping[str, Any]) -> list[Any]:
        return render_message(msg_type, body, self.lang)


class SecurityHeaders:
    """Security headers on every console response, and the server time it took."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        static = scope.get("path", "").startswith(f"{scope.get('root_path', '')}/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                elapsed = (time.perf_counter() - started) * 1000
                headers += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"server-timing", f"app;dur={elapsed:.1f}".encode()),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)


class ConsoleApp:
    """The console's routes for one node (``node`` is read when a request comes)."""

    def __init__(self, node: Callable[[], Node], state: Mapping[str, Any]) -> None:
        self._node = node
        self.state = state
        self._officers: Officers | None = None
        self.feed = ChangeFeed(node)
        self.env = Environment(
            loader=FileSystemLoader(str(_HERE / "templates")),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._forks: tuple[tuple[int, int], list[dict[str, Any]]] | None = None

    @property
    def node(self) -> Node:
        return self._node()

    @property
    def officers(self) -> Officers:
        if self._officers is None:
            self._officers = Officers(self.node.write_engine, reads=self.node.engine)
        return self._officers

    # -- the app ---------------------------------------------------------------------

    def asgi(self) -> ASGIApp:
        r = Route
        routes = [
            r("/", self.home),
            r("/login", self.login_page, methods=["GET"]),
            r("/login", self.login, methods=["POST"]),
            r("/logout", self.logout, methods=["POST"]),
            r("/preferences", self.preferences, methods=["POST"]),
            r("/inbox", self.inbox),
            r("/cases/{case_id}", self.case),
            r("/compose", self.compose_page, methods=["GET"]),
            r("/compose", self.compose_send, methods=["POST"]),
            r("/messages/{message_id}/ack", self.ack, methods=["POST"]),
            r("/messages/{message_id}/pong", self.pong, methods=["POST"]),
            r("/directory", self.directory),
            r("/ping", self.ping, methods=["POST"]),
            r("/accountability", self.accountability),
            r("/accountability/export", self.export),
            r("/audit", self.audit, methods=["POST"]),
            r("/exercises", self.exercises),
            r("/exercises/{name}", self.exercise),
            r("/exercises/{name}/{chart}", self.exercise_chart),
            r("/log", self.log),
            r("/alarms/{alarm_id:int}/ack", self.alarm_ack, methods=["POST"]),
            r("/events", self.events),
            Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={
                Refused: self._refused,
                _SignInFirst: self._sign_in_first,
                HTTPException: self._http_error,
                DetenteError: self._detente_error,
            },
        )
        return SecurityHeaders(app)

    # -- plumbing ----------------------------------------------------------------------

    @staticmethod
    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(fn, *args)

    def _request_lang(self, request: Request) -> str:
        asked = request.query_params.get("lang")
        if asked in SUPPORTED:
            return str(asked)
        header = request.headers.get("accept-language", "")
        tags = [part.split(";")[0].strip() for part in header.split(",") if part.strip()]
        return best_language(tags)

    async def auth(self, request: Request, minimum: str = "viewer") -> Ctx:
        token = request.cookies.get(COOKIE, "")
        found = await self.run(self.officers.session, token) if token else None
        if found is None:
            raise _SignInFirst
        officer, csrf = found
        if not role_at_least(officer.role, minimum):
            t = translator(officer.lang)
            raise Refused(
                403,
                t("Your role ({role}) may not do this; it needs {needed}.").format(
                    role=t(f"role:{officer.role}"), needed=t(f"role:{minimum}")
                ),
                officer.lang,
            )
        return Ctx(officer, csrf, token)

    async def form(self, request: Request, ctx: Ctx | None) -> FormData:
        """The posted form, after the same-origin and CSRF checks."""
        lang = ctx.lang if ctx else self._request_lang(request)
        t = translator(lang)
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise Refused(403, t("Refused: the form was not sent from this console."), lang)
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise Refused(403, t("Refused: the form was not sent from this console."), lang)
        form = await request.form(max_files=8, max_fields=500, max_part_size=MAX_UPLOAD)
        given = form.get("csrf")
        expected = ctx.csrf if ctx else request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not Officers.csrf_ok(
            expected, given if isinstance(given, str) else None
        ):
            raise Refused(
                403,
                t("Refused: the form's security token is missing or wrong. Reload the page."),
                lang,
            )
        return form

    def _forks_cached(self) -> list[dict[str, Any]]:
        # Read again only when an alarm was raised or acknowledged since (two index look-ups).
        with self.node.engine.connect() as conn:
            version = alarm_version(conn)
        if self._forks is None or self._forks[0] != version:
            self._forks = (version, views.fork_alarms(self.node))
        return self._forks[1]

    def render(
        self,
        request: Request,
        template: str,
        ctx: Ctx | None,
        *,
        status: int = 200,
        lang: str | None = None,
        **data: Any,
    ) -> HTMLResponse:
        """Render a page (called in a worker thread: it may read the store)."""
        lang = lang or (ctx.lang if ctx else "en")
        node = self.node
        now = views.node_now_ms(node)
        officer = ctx.officer if ctx else None
        data.setdefault("exercise_banner", False)
        data.setdefault("nav", "")
        data.setdefault("live_parts", "log events alarms")
        page = self.env.get_template(template).render(
            base=self.base(request),
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            lang=lang,
            dir="rtl" if is_rtl(lang) else "ltr",
            t=translator(lang),
            L=Labels(lang),
            officer=officer,
            csrf=ctx.csrf if ctx else "",
            party=node.id,
            party_name=node.card.name(lang),
            now=now,
            forks=self._forks_cached() if ctx else [],
            languages=[(code, language_name(code, code)) for code in SUPPORTED],
            may=lambda minimum: officer is not None and officer.may(minimum),
            parts=json.dumps(self.feed.last or {}),
            query=urlencode,
            **data,
        )
        return HTMLResponse(page, status_code=status)

    async def page(
        self, request: Request, template: str, ctx: Ctx | None, work: Callable[[], dict[str, Any]]
    ) -> HTMLResponse:
        await self.feed.current()  # the version the page is rendered at (for live updates)

        def go() -> HTMLResponse:
            return self.render(request, template, ctx, **work())

        response: HTMLResponse = await self.run(go)
        return response

    def _error_page(self, request: Request, status: int, message: str, lang: str) -> Response:
        ctx = request.state.ctx if hasattr(request.state, "ctx") else None
        try:
            return self.render(
                request, "error.html", ctx, status=status, lang=lang, message=message
            )
        except DetenteError:
            return HTMLResponse(message, status_code=status)

    async def _refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)  # noqa: S101 - registered for Refused only
        return await self.run(self._error_page, request, exc.status, exc.message, exc.lang)

    async def _detente_error(self, request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 400
        lang = request.state.ctx.lang if hasattr(request.state, "ctx") else "en"
        return await self.run(self._error_page, request, status, str(exc), lang)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101
        lang = self._request_lang(request)
        t = translator(lang)
        message = t("Not found.") if exc.status_code == 404 else str(exc.detail)
        return await self.run(self._error_page, request, exc.status_code, message, lang)

    async def _sign_in_first(self, request: Request, exc: Exception) -> Response:
        if request.url.path.endswith("/events"):
            return Response(status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_q = urlencode({"next": target}) if request.method == "GET" else ""
        return RedirectResponse(f"{self.base(request)}/login?{next_q}", status_code=303)

    def _safe_next(self, request: Request, value: str | None) -> str:
        base = self.base(request)
        if value and value.startswith(f"{base}/") and "//" not in value and "\\" not in value:
            return value
        return f"{base}/inbox"

    async def _ctx(self, request: Request, minimum: str = "viewer") -> Ctx:
        ctx = await self.auth(request, minimum)
        request.state.ctx = ctx
        return ctx

    # -- signing in and out ---------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{self.base(request)}/inbox", status_code=303)

    def _login_response(
        self, request: Request, status: int, error: str | None, name: str = ""
    ) -> HTMLResponse:
        lang = self._request_lang(request)
        token = secrets.token_urlsafe(32)
        response = self.render(
            request,
            "login.html",
            None,
            status=status,
            lang=lang,
            login_csrf=token,
            error=error,
            name=name,
            next=self._safe_next(request, request.query_params.get("next")),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=self.base(request) or "/",
        )
        return response

    async def login_page(self, request: Request) -> Response:
        response: Response = await self.run(self._login_response, request, 200, None)
        return response

    async def login(self, request: Request) -> Response:
        form = await self.form(request, None)
        name = str(form.get("name") or "").strip().lower()
        password = str(form.get("password") or "")
        t = translator(self._request_lang(request))
        result = await self.run(self.officers.sign_in, name, password)
        if result.outcome != "ok":
            message = {
                "wrong": t("Wrong name or password."),
                "locked": t(
                    "This account is locked after repeated wrong passwords. "
                    "Try again later or ask an administrator to unlock it."
                ),
                "disabled": t("This account is disabled."),
            }[result.outcome]
            status = 423 if result.outcome == "locked" else 401
            response: Response = await self.run(
                self._login_response, request, status, message, name
            )
            return response
        assert result.token is not None  # noqa: S101 - ok carries a token
        target = self._safe_next(request, str(form.get("next") or ""))
        redirect = RedirectResponse(target, status_code=303)
        redirect.set_cookie(
            COOKIE,
            result.token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=self.base(request) or "/",
        )
        redirect.delete_cookie(LOGIN_COOKIE, path=self.base(request) or "/")
        return redirect

    async def logout(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        await self.form(request, ctx)
        await self.run(self.officers.sign_out, ctx.token)
        redirect = RedirectResponse(f"{self.base(request)}/login", status_code=303)
        redirect.delete_cookie(COOKIE, path=self.base(request) or "/")
        return redirect

    async def preferences(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        form = await self.form(request, ctx)
        lang = str(form.get("lang") or "")
        if lang not in SUPPORTED:
            raise Refused(400, f"{lang!r}: not a console language", ctx.lang)
        await self.run(self.officers.set_own_lang, ctx.officer.name, lang)
        target = self._safe_next(request, str(form.get("next") or ""))
        return RedirectResponse(target, status_code=303)

    # -- the inbox and cases ------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        filters = views.InboxFilters.from_query(request.query_params)

        def work() -> dict[str, Any]:
            data = views.inbox(self.node, views.node_now_ms(self.node), filters)
            return {
                "nav": "inbox",
                "data": data,
                "f": filters,
                "groups": views.GROUPS,
                "types": views.INBOX_TYPES,
                "exercise_banner": data["exercise_shown"],
            }

        return await self.page(request, "inbox.html", ctx, work)

    async def case(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        case_id = request.path_params["case_id"]

        def work() -> dict[str, Any]:
            now = views.node_now_ms(self.node)
            data = views.case_view(self.node, case_id, now)
            return {
                "nav": "inbox",
                "c": data,
                "exercise_banner": data["exercise"],
                "sent": request.query_params.get("sent"),
            }

        return await self.page(request, "case.html", ctx, work)

    # -- compose and reply ---------------------------------------------------------------

    def _compose_data(self, draft: compose.Draft, ctx: Ctx, **extra: Any) -> dict[str, Any]:
        node = self.node
        fields = list(FORMS[draft.type])
        target = views.reply_target(node, draft.ref) if draft.ref else None
        peers = [
            {"agreement": a.id, "party": m.id, "name": m.name(ctx.lang)}
            for a in node.agreements
            for m in a.members
            if m.id != node.id
        ]
        stix = {
            name: views.stix_rows(draft.body.get(name), draft.tlp)
            for name in compose.STIX_FIELDS
            if name in draft.body
        }
        return {
            "nav": "compose",
            "d": draft,
            "types": compose.COMPOSE_TYPES,
            "fields": fields,
            "reply_field": compose.REPLY_TYPES.get(draft.type),
            "new_case": draft.type in compose.NEW_TYPES,
            "target": target,
            "agreements": [(a.id, a.titles) for a in node.agreements],
            "peers": peers,
            "tlps": TLP_LABELS,
            "choices": {
                name: VOCABULARIES[v]
                for name in fields
                if (v := FIELD_KINDS.get(name, ("", None))[1]) is not None
            },
            "kinds": {name: FIELD_KINDS.get(name, ("other", None))[0] for name in fields},
            "vocab_of": {name: FIELD_KINDS.get(name, ("", None))[1] for name in fields},
            "required": {name for name, rule in FORMS[draft.type].items() if rule.required},
            "text_langs": SUPPORTED,
            "stix": stix,
            "exercise_banner": draft.exercise,
            "checked": False,
            **extra,
        }

    async def compose_page(self, request: Request) -> Response:
        ctx = await self._ctx(request, "officer")
        msg_type = request.query_params.get("type", "notification")
        if msg_type not in compose.COMPOSE_TYPES:
            msg_type = "notification"
        ref = request.query_params.get("ref") or None

        def work() -> dict[str, Any]:
            node = self.node
            draft = compose.Draft(msg_type, {})
            draft.ref = ref
            target = views.reply_target(node, ref) if ref else None
            if target is not None:
                draft.tlp, draft.exercise = str(target["tlp"]), bool(target["exercise"])
            now = format_time(node.clock.now())
            draft.values = {
                "observed": [compose.wire_to_local(now)],
                "window_start": [compose.wire_to_local(now)],
            }
            for name in compose.TEXT_FIELDS:
                draft.values[f"{name}_lang"] = [ctx.lang]
            if len(node.agreements) == 1:
                draft.agreement = next(iter(node.agreements)).id
            return self._compose_data(draft, ctx)

        return await self.page(request, "compose.html", ctx, work)

    async def compose_send(self, request: Request) -> Response:
        ctx = await self._ctx(request, "officer")
        form = await self.form(request, ctx)
        fields: dict[str, list[str]] = {}
        files: dict[str, bytes] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if data:
                    files[key] = data
            elif key != "csrf":
                fields.setdefault(key, []).append(value)
        msg_type = (fields.get("type") or ["notification"])[0]
        action = (fields.get("action") or ["send"])[0]

        def work() -> Response:
            node = self.node
            draft = compose.build(
                msg_type,
                fields,
                files,
                officer_full_name=ctx.officer.full_name,
                now=node.clock.now(),
            )
            if draft.ok:
                try:
                    spec = node.spec(
                        Content(draft.type, draft.tlp, draft.body, draft.personal_data),
                        draft.to or None,
                        draft.agreement,
                        exercise=draft.exercise,
                        by=ctx.officer.name,
                    )
                except DetenteError as exc:
                    where, text = compose.error_of(exc)
                    draft.errors[where] = text
            if not draft.ok:
                return self.render(
                    request, "compose.html", ctx, status=422, **self._compose_data(draft, ctx)
                )
            if action == "check":
                return self.render(
                    request, "compose.html", ctx, **self._compose_data(draft, ctx, checked=True)
                )
            try:
                sent = node.send_many([spec])
            except DetenteError as exc:
                where, text = compose.error_of(exc)
                draft.errors[where] = text
                return self.render(
                    request, "compose.html", ctx, status=422, **self._compose_data(draft, ctx)
                )
            for env in sent:
                self.officers.record(
                    ctx.officer.name, f"send:{env.type}", env.id, f"to {env.to} ({env.tlp})"
                )
            case_id = sent[0].case or sent[0].id
            return RedirectResponse(
                f"{self.base(request)}/cases/{case_id}?sent={sent[0].type}#m-{sent[0].id}",
                status_code=303,
            )

        await self.feed.current()
        response: Response = await self.run(work)
        return response

    async def _reply(self, request: Request, msg_type: str) -> Response:
        ctx = await self._ctx(request, "officer")
        await self.form(request, ctx)
        message_id = request.path_params["message_id"]

        def work() -> Response:
            node = self.node
            target = views.reply_target(node, message_id)
            t = translator(ctx.lang)
            if target is None or target["direction"] != "in":
                raise Refused(404, t("Not found."), ctx.lang)
            field = compose.REPLY_TYPES[msg_type]
            body = {field: message_id, "officer": ctx.officer.full_name}
            if msg_type == "ack":
                body["read_at"] = format_time(node.clock.now())
            try:
                sent = node.send(
                    Content(msg_type, str(target["tlp"]), body),
                    None,
                    None,
                    exercise=bool(target["exercise"]),
                    by=ctx.officer.name,
                )
            except DetenteError as exc:
                raise Refused(409, str(exc), ctx.lang) from exc
            for env in sent:
                self.officers.record(
                    ctx.officer.name, f"send:{msg_type}", env.id, f"answers {message_id}"
                )
            return RedirectResponse(
                f"{self.base(request)}/cases/{target['case_id']}?sent={msg_type}#m-{message_id}",
                status_code=303,
            )

        response: Response = await self.run(work)
        return response

    async def ack(self, request: Request) -> Response:
        return await self._reply(request, "ack")

    async def pong(self, request: Request) -> Response:
        return await self._reply(request, "pong")

    # -- directory and ping tests ---------------------------------------------------------

    async def directory(self, request: Request) -> Response:
        ctx = await self._ctx(request)

        def work() -> dict[str, Any]:
            node = self.node
            now = views.node_now_ms(node)
            return {
                "nav": "directory",
                "agreements": views.directory_view(node, now, ctx.lang),
                "round": request.query_params.get("round"),
                "ping_agreements": [
                    a.id for a in node.agreements if "ping" in a.policy.message_types
                ],
            }

        return await self.page(request, "directory.html", ctx, work)

    async def ping(self, request: Request) -> Response:
        ctx = await self._ctx(request, "officer")
        form = await self.form(request, ctx)
        agreement = str(form.get("agreement") or "")
        exercise = form.get("exercise") == "1"

        def work() -> Response:
            try:
                round_id, sent = self.node.ping(
                    agreement, None, by=ctx.officer.name, exercise=exercise
                )
            except DetenteError as exc:
                raise Refused(400, str(exc), ctx.lang) from exc
            self.officers.record(
                ctx.officer.name,
                "ping",
                round_id[:64],
                f"{agreement}: " + ", ".join(e.to for e in sent),
            )
            return RedirectResponse(
                f"{self.base(request)}/directory?{urlencode({'round': round_id})}",
                status_code=303,
            )

        response: Response = await self.run(work)
        return response

    # -- accountability --------------------------------------------------------------------

    def _report(self, ctx: Ctx, q: Mapping[str, str]) -> dict[str, Any] | None:
        counterparty = q.get("counterparty") or ""
        since = q.get("since") or ""
        if not counterparty or not since:
            return None
        node = self.node
        t = translator(ctx.lang)
        try:
            since_ms = to_ms(parse_user_time(since, field=t("Since")))
            until = q.get("until") or ""
            until_ms = (
                views.node_now_ms(node) + 1
                if not until
                else to_ms(parse_user_time(until, field=t("Until")))
            )
            if until_ms <= since_ms:
                raise EncodingError(t("The end must be after the start."))
            node.agreements_member_check(counterparty)
            node.latest_checkpoint()
            return build_report(
                node,
                node.keys,
                counterparty,
                since_ms=since_ms,
                until_ms=until_ms,
                exercise=q.get("exercise") == "1",
            )
        except DetenteError as exc:
            raise Refused(400, str(exc), ctx.lang) from exc

    async def accountability(self, request: Request) -> Response:
        ctx = await self._ctx(request, "supervisor")
        q = request.query_params

        def work() -> dict[str, Any]:
            bundle = self._report(ctx, q)
            if bundle is not None:
                self.officers.record(
                    ctx.officer.name, "report", q.get("counterparty"), f"since {q.get('since')}"
                )
            return {
                "nav": "accountability",
                "peers": sorted(self.node.peers()),
                "q": dict(q),
                "bundle": bundle,
                "export_query": urlencode(dict(q)),
                "exercise_banner": bool(bundle and bundle["report"]["exercise"]),
                "audit": None,
            }

        return await self.page(request, "accountability.html", ctx, work)

    async def export(self, request: Request) -> Response:
        ctx = await self._ctx(request, "supervisor")
        q = request.query_params

        def work() -> Response:
            bundle = self._report(ctx, q)
            if bundle is None:
                raise Refused(
                    400, translator(ctx.lang)("Choose a counterparty and a start."), ctx.lang
                )
            r = bundle["report"]
            self.officers.record(ctx.officer.name, "report-export", r["counterparty"], r["since"])
            name = f"report-{r['party']}-{r['counterparty']}-{r['since'][:10]}.json"
            return Response(
                json.dumps(bundle, ensure_ascii=False, indent=1) + "\n",
                media_type="application/json",
                headers={"content-disposition": f'attachment; filename="{name}"'},
            )

        response: Response = await self.run(work)
        return response

    async def audit(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        form = await self.form(request, ctx)
        t = translator(ctx.lang)
        upload = form.get("bundle")
        raw = await upload.read() if isinstance(upload, UploadFile) else b""
        extra = form.get("agreement")
        agreement_raw = await extra.read() if isinstance(extra, UploadFile) else b""

        def work() -> Response:
            if not raw:
                raise Refused(400, t("Choose a report file to audit."), ctx.lang)
            node = self.node
            try:
                bundle = parse(raw)
                agreements = list(node.agreement_versions.values())
                if agreement_raw:
                    agreements.append(Agreement.from_json(parse(agreement_raw)))
                result = audit_report(bundle, agreements)
            except DetenteError as exc:
                raise Refused(400, t("Not a report: {error}").format(error=exc), ctx.lang) from exc
            self.officers.record(
                ctx.officer.name,
                "audit",
                result.counterparty,
                f"report by {result.party}: {'holds up' if result.ok else 'does not hold up'}",
            )
            raw_items = {
                i.get("message"): i for i in bundle["report"]["items"] if isinstance(i, dict)
            }
            items = []
            for item in result.items:
                src = raw_items.get(item.message, {})
                items.append(
                    {
                        "message": item.message,
                        "type": item.type,
                        "verdict": item.verdict,
                        "sentence": verdict_sentence(
                            item.proven,
                            None,
                            ctx.lang,
                            ack_due=src.get("ack_due"),
                            answer_due=src.get("answer_due"),
                        ),
                        "problems": item.problems,
                        "findings": item.findings,
                    }
                )
            return self.render(
                request,
                "accountability.html",
                ctx,
                nav="accountability",
                peers=sorted(node.peers()),
                q={},
                bundle=None,
                export_query="",
                audit={
                    "result": result,
                    "items": items,
                    "general": [
                        p
                        for p in result.problems
                        if not any(p.startswith(i.message) for i in result.items)
                    ],
                },
            )

        response: Response = await self.run(work)
        return response

    # -- exercises ------------------------------------------------------------------------

    async def exercises(self, request: Request) -> Response:
        ctx = await self._ctx(request)

        def work() -> dict[str, Any]:
            reports = views.exercise_reports(self.node)
            return {
                "nav": "exercises",
                "reports": reports,
                "report": None,
                "exercise_banner": bool(reports),
                "folder": str(views.exercise_dir(self.node)),
            }

        return await self.page(request, "exercises.html", ctx, work)

    async def exercise(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        name = request.path_params["name"]

        def work() -> dict[str, Any]:
            report = views.exercise_report(self.node, name)
            if report is None:
                raise Refused(404, translator(ctx.lang)("Not found."), ctx.lang)
            return {"nav": "exercises", "report": report, "exercise_banner": True}

        return await self.page(request, "exercise.html", ctx, work)

    async def exercise_chart(self, request: Request) -> Response:
        ctx = await self._ctx(request)
        path = views.exercise_chart(
            self.node, request.path_params["name"], request.path_params["chart"]
        )
        if path is None:
            raise Refused(404, translator(ctx.lang)("Not found."), ctx.lang)
        return FileResponse(path, media_type="image/png")

    # -- log status and alarms -------------------------------------------------------------

    async def log(self, request: Request) -> Response:
        ctx = await self._ctx(request)

        def work() -> dict[str, Any]:
            status = views.log_status(self.node)
            for alarm in status["alarms"]:
                alarm["needs"] = views.alarm_role(alarm["kind"])
            return {
                "nav": "log",
                "s": status,
                "live_parts": "log events alarms witness",
            }

        return await self.page(request, "log.html", ctx, work)

    async def alarm_ack(self, request: Request) -> Response:
        ctx = await self._ctx(request, "officer")
        await self.form(request, ctx)
        alarm_id = int(request.path_params["alarm_id"])

        def work() -> Response:
            node = self.node
            t = translator(ctx.lang)
            kind = views.alarm_kind(node, alarm_id)
            if kind is None:
                raise Refused(404, t("Not found."), ctx.lang)
            needed = views.alarm_role(kind)
            if not ctx.officer.may(needed):
                raise Refused(
                    403,
                    t("Your role ({role}) may not do this; it needs {needed}.").format(
                        role=t(f"role:{ctx.officer.role}"), needed=t(f"role:{needed}")
                    ),
                    ctx.lang,
                )
            alarm = views.acknowledge_alarm(node, alarm_id, views.node_now_ms(node))
            if alarm is not None:
                self.officers.record(
                    ctx.officer.name,
                    "alarm-ack",
                    str(alarm_id),
                    f"{alarm['kind']} ({alarm['peer']}): {alarm['detail']}",
                )
            self.feed.invalidate()
            return RedirectResponse(f"{self.base(request)}/log#alarms", status_code=303)

        response: Response = await self.run(work)
        return response

    # -- live updates ------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        await self._ctx(request)
        feed = self.feed

        async def stream() -> Any:
            yield "retry: 1000\n\n"
            started = last_beat = time.monotonic()
            last: dict[str, int] | None = None
            while time.monotonic() - started < STREAM_SECONDS:
                parts = await feed.current()
                if parts != last:
                    yield f"event: change\ndata: {json.dumps(parts)}\n\n"
                    last, last_beat = parts, time.monotonic()
                elif time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                    yield ": keep-alive\n\n"
                    last_beat = time.monotonic()
                await anyio.sleep(feed.interval)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )


def install_console(app: Any, node: Callable[[], Node], state: Mapping[str, Any]) -> None:
    """Mount the console at ``/console`` on the node's ASGI app."""
    app.mount("/console", ConsoleApp(node, state).asgi())
