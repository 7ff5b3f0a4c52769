"""The ASGI app one node serves (``detente serve``).

Federation endpoints (``/federation/v1/...``) are for other nodes.  Their
inputs authenticate themselves: envelopes and checkpoints are signed, and a
resend request is signed by the asking node.  The client API
(``/api/v1/...``, OpenAPI at ``/docs`` and ``/openapi.json``) is for officers
and tools, with per-user bearer tokens (hashed at rest) and roles.

Bodies are size-limited before they are read; malformed input gets a 4xx
problem+json answer naming what is wrong, and nothing is stored.
"""

# No "from __future__ import annotations": FastAPI must see the Depends() objects.

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detente.api.problems import detente_error_handler, problem
from detente.api.taxii import install as install_interop
from detente.console import install_console
from detente.core.agreement import Agreement
from detente.core.canonical import b64e, parse
from detente.core.checkpoint import unverified_checkpoint, verify_cosignature
from detente.core.envelope import Content
from detente.core.fedrequest import verify_request
from detente.core.keys import ed25519_public
from detente.core.note import CosignatureV1Verifier
from detente.core.timefmt import format_time, parse_user_time
from detente.errors import DetenteError, EncodingError, NotAMemberError
from detente.node import cases, queries
from detente.node.clock import Clock, FakeClock, to_ms
from detente.node.config import NodeHome
from detente.node.report import build_report
from detente.node.scheduler import Scheduler
from detente.node.service import ROLES, Node
from detente.node.witness import witness_name

__all__ = ["create_app"]

log = logging.getLogger(__name__)
MAX_BODY = 32 * 1024 * 1024  # a delivery batch of a few thousand envelopes
MAX_BATCH = 2000


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before reading them all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await problem(413, "PayloadTooLarge", f"body over {self.limit} bytes")(
                    scope, receive, send
                )
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLargeError:
            await problem(413, "PayloadTooLarge", f"body over {self.limit} bytes")(
                scope, receive, send
            )


class _TooLargeError(Exception):
    pass


# -- client API models (they make the OpenAPI document) --------------------------


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agreement: str | None = Field(
        default=None,
        description="agreement id (its current version is used); a reply takes its case's",
    )
    to: list[str] | None = Field(default=None, description="recipients; all other members if empty")
    type: str = Field(description="message type: notification, request, response, ...")
    tlp: str = Field(description="TLP 2.0 label: CLEAR, GREEN, AMBER, AMBER+STRICT, RED")
    body: dict[str, Any] = Field(description="the form")
    personal_data: bool = False
    case: str | None = None
    reply_to: str | None = None
    exercise: bool = False


class SentMessage(BaseModel):
    id: str
    to: str
    seq: int


class ClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advance: float = Field(ge=0, le=366 * 24 * 3600, description="seconds to move the clock on")
    tick: bool = Field(default=True, description="then run the scheduler's due work")


class PingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agreement: str
    to: list[str] | None = Field(default=None, description="parties; all other members if empty")
    exercise: bool = False


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    role: str


async def _json_body(request: Request) -> Any:
    return parse(await request.body())


def create_app(home: Path, *, clock: Clock | None = None, run_scheduler: bool = True) -> FastAPI:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node = await anyio.to_thread.run_sync(lambda: Node(NodeHome(home), clock=clock))
        client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        scheduler = Scheduler(node, client)
        state.update(node=node, scheduler=scheduler)
        async with anyio.create_task_group() as tg:
            if run_scheduler:
                tg.start_soon(scheduler.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        await client.aclose()
        await anyio.to_thread.run_sync(node.close)

    app = FastAPI(
        title="Détente node",
        summary="A cyber hotline for states: federation and client API of one party's node.",
        version="1",
        lifespan=lifespan,
    )
    app.add_exception_handler(DetenteError, detente_error_handler)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own validation (query and body models): problem+json like the rest.
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, "InvalidRequest", f"{where}: {first.get('msg', 'invalid')}")

    def node() -> Node:
        return state["node"]  # type: ignore[no-any-return]

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def role_at_least(minimum: str) -> Callable[..., Awaitable[tuple[str, str]]]:
        async def check(
            authorization: Annotated[str | None, Header()] = None,
        ) -> tuple[str, str]:
            if not authorization or not authorization.lower().startswith("bearer "):
                raise _Unauthorized("missing bearer token")
            who = await run(node().authenticate, authorization[7:].strip())
            if who is None:
                raise _Unauthorized("unknown token")
            if ROLES.index(who[1]) < ROLES.index(minimum):
                raise _Forbidden(f"role {who[1]} may not do this (needs {minimum})")
            return who  # type: ignore[no-any-return]

        return check

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        response = problem(401, "Unauthorized", str(exc))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(_Forbidden)
    async def forbidden(request: Request, exc: Exception) -> JSONResponse:
        return problem(403, "Forbidden", str(exc))

    # -- federation -------------------------------------------------------------

    if isinstance(clock, FakeClock):
        manual: FakeClock = clock

        @app.post("/api/v1/clock", tags=["client"])
        async def move_clock(
            req: ClockRequest, who: Annotated[tuple[str, str], Depends(role_at_least("admin"))]
        ) -> dict[str, Any]:
            """Only on a node started with --manual-clock: move time on, run what is due."""
            manual.advance(req.advance)
            if not req.tick:
                return {"now": format_time(manual.now()), "next_due_ms": None}
            await state["scheduler"].tick()
            await anyio.to_thread.run_sync(node().workflow_tick)
            await state["scheduler"].delivery.settle()
            due = await run(node().next_workflow_due_ms)
            return {"now": format_time(manual.now()), "next_due_ms": due}

    @app.get("/federation/v1/card", tags=["federation"])
    async def card() -> dict[str, Any]:
        return node().card.to_json()

    @app.post("/federation/v1/deliver", tags=["federation"])
    async def deliver(request: Request) -> JSONResponse:
        obj = await _json_body(request)
        if not isinstance(obj, dict) or set(obj) != {"envelopes", "known_size"}:
            raise EncodingError("delivery must be {envelopes: [...], known_size: int|null}")
        envelopes, known = obj["envelopes"], obj["known_size"]
        if not isinstance(envelopes, list) or not envelopes:
            raise EncodingError("envelopes must be a non-empty list")
        if len(envelopes) > MAX_BATCH:
            raise EncodingError(f"at most {MAX_BATCH} envelopes per delivery")
        # bool is an int subclass: true must not pass as 1 (nor in resend seqs).
        if known is not None and (type(known) is not int or known < 0):
            raise EncodingError("known_size must be a non-negative integer or null")
        result = await run(node().receive, envelopes, known)
        return JSONResponse(result.to_json())

    @app.get("/federation/v1/checkpoint", tags=["federation"])
    async def federation_checkpoint(since: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        note, size = await run(node().latest_checkpoint)
        proof: list[bytes] = []
        proof_from = None
        if 0 < since <= size:
            proof = await run(node().log.consistency_proof, since, size)
            proof_from = since
        return {
            "checkpoint": note.decode(),
            "size": size,
            "consistency": [b64e(h) for h in proof],
            "proof_from": proof_from,
        }

    @app.post("/federation/v1/cosign", tags=["federation"])
    async def federation_cosign(request: Request) -> dict[str, Any]:
        obj = await _json_body(request)
        if not isinstance(obj, dict) or set(obj) != {"witness", "size", "line", "timestamp"}:
            raise EncodingError("cosignature must be {witness, size, line, timestamp}")
        witness = obj["witness"]
        peer = node().peers().get(witness) if isinstance(witness, str) else None
        if peer is None:
            raise NotAMemberError(f"{witness!r} is not a member of any installed agreement")
        if not isinstance(obj["line"], str) or not isinstance(obj["size"], int):
            raise EncodingError("cosignature line must be a string and size an integer")
        note = await run(queries.checkpoint_note, node(), obj["size"])
        cp = unverified_checkpoint(note)
        verifier = CosignatureV1Verifier(witness_name(witness), ed25519_public(peer.keys.ed25519))
        timestamp = verify_cosignature(cp, obj["line"], verifier)
        await run(node().store_cosignature, witness, cp.size, obj["line"], timestamp)
        return {"stored": True}

    @app.post("/federation/v1/resend", tags=["federation"])
    async def federation_resend(request: Request) -> dict[str, Any]:
        obj = await _json_body(request)
        sender = obj.get("from") if isinstance(obj, dict) else None
        card = node().peers().get(sender) if isinstance(sender, str) else None
        if card is None:
            raise NotAMemberError(f"{sender!r} is not a member of any installed agreement")
        body = verify_request(
            obj, kind="resend", me=node().id, sender_card=card, now=node().clock.now()
        )
        seqs = body.get("seqs")
        if not isinstance(seqs, list) or not all(type(s) is int and s > 0 for s in seqs):
            raise EncodingError("resend seqs must be a list of positive integers")
        count = await run(node().requeue, card.id, seqs)
        return {"requeued": count}

    # -- client API -----------------------------------------------------------------

    @app.get("/api/v1/health", tags=["client"])
    async def health() -> dict[str, Any]:
        n = node()
        return {"party": n.id, "log_size": n.log.size, "agreements": len(n.agreements)}

    @app.post("/api/v1/messages", tags=["client"], status_code=201)
    async def send(
        req: SendRequest, who: Annotated[tuple[str, str], Depends(role_at_least("officer"))]
    ) -> list[SentMessage]:
        content = Content(req.type, req.tlp, req.body, personal_data=req.personal_data)
        sent = await run(
            lambda: node().send(
                content,
                req.to,
                req.agreement,
                case=req.case,
                reply_to=req.reply_to,
                exercise=req.exercise,
                by=who[0],
            )
        )
        return [SentMessage(id=e.id, to=e.to, seq=e.seq) for e in sent]

    @app.post("/api/v1/messages/batch", tags=["client"], status_code=201)
    async def send_batch(
        reqs: list[SendRequest],
        who: Annotated[tuple[str, str], Depends(role_at_least("officer"))],
    ) -> list[SentMessage]:
        """Send many messages in one call (tools, imports, exercises); one commit."""
        if not reqs or len(reqs) > MAX_BATCH:
            raise EncodingError(f"a batch holds 1 to {MAX_BATCH} messages")
        specs = [
            node().spec(
                Content(r.type, r.tlp, r.body, personal_data=r.personal_data),
                r.to,
                r.agreement,
                case=r.case,
                reply_to=r.reply_to,
                exercise=r.exercise,
                by=who[0],
            )
            for r in reqs
        ]
        sent = await run(node().send_many, specs)
        return [SentMessage(id=e.id, to=e.to, seq=e.seq) for e in sent]

    @app.get("/api/v1/messages", tags=["client"])
    async def list_messages(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
        direction: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        return await run(  # type: ignore[no-any-return]
            lambda: queries.message_list(node(), direction=direction, limit=limit, offset=offset)
        )

    @app.get("/api/v1/messages/{message_id}", tags=["client"])
    async def get_message(
        message_id: str, who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))]
    ) -> dict[str, Any]:
        return await run(queries.message_detail, node(), message_id)  # type: ignore[no-any-return]

    @app.get("/api/v1/log/checkpoint", tags=["client"])
    async def log_checkpoint(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
    ) -> dict[str, Any]:
        return await run(queries.checkpoint_info, node())  # type: ignore[no-any-return]

    @app.get("/api/v1/log/proof/{message_id}", tags=["client"])
    async def log_proof(
        message_id: str, who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))]
    ) -> dict[str, Any]:
        return await run(queries.proof_for, node(), message_id)  # type: ignore[no-any-return]

    @app.get("/api/v1/agreements", tags=["client"])
    async def list_agreements(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
    ) -> list[dict[str, Any]]:
        return [a.to_json() for a in node().agreements]

    @app.post("/api/v1/agreements", tags=["client"])
    async def install_agreement(
        request: Request, who: Annotated[tuple[str, str], Depends(role_at_least("admin"))]
    ) -> dict[str, Any]:
        agreement = Agreement.from_json(await _json_body(request))
        new = await run(node().install_agreement, agreement)
        return {"installed": agreement.ref, "new": new}

    @app.get("/api/v1/peers", tags=["client"])
    async def peers(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
    ) -> list[dict[str, Any]]:
        return await run(queries.peer_list, node())  # type: ignore[no-any-return]

    @app.post("/api/v1/peers/witness", tags=["client"])
    async def witness_now(
        who: Annotated[tuple[str, str], Depends(role_at_least("officer"))],
    ) -> dict[str, Any]:
        """Run a witnessing round now (it also runs periodically)."""
        await state["scheduler"].witness.round()
        return {"witnessed": True}

    @app.get("/api/v1/alarms", tags=["client"])
    async def list_alarms(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
        all: bool = False,  # noqa: A002 - the query parameter's name
    ) -> list[dict[str, Any]]:
        return await run(lambda: queries.alarm_list(node(), include_acknowledged=all))  # type: ignore[no-any-return]

    # -- the workflow ----------------------------------------------------------------

    def now_ms() -> int:
        return to_ms(node().clock.now())

    @app.get("/api/v1/cases", tags=["workflow"])
    async def list_cases(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
        open_only: bool = False,
        exercise: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        return await run(  # type: ignore[no-any-return]
            lambda: cases.case_list(
                node(), now_ms(), open_only=open_only, exercise=exercise, limit=limit
            )
        )

    @app.get("/api/v1/cases/{case_id}", tags=["workflow"])
    async def get_case(
        case_id: str, who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))]
    ) -> dict[str, Any]:
        return await run(lambda: cases.case_detail(node(), case_id, now_ms()))  # type: ignore[no-any-return]

    @app.get("/api/v1/directory", tags=["workflow"])
    async def get_directory(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
        lang: str = "en",
    ) -> list[dict[str, Any]]:
        return cases.directory(node().agreements, lang)

    @app.post("/api/v1/ping", tags=["workflow"], status_code=201)
    async def send_ping(
        req: PingRequest, who: Annotated[tuple[str, str], Depends(role_at_least("officer"))]
    ) -> dict[str, Any]:
        """A ping round: each party's officer must answer with a pong (by hand)."""
        round_id, sent = await run(
            lambda: node().ping(req.agreement, req.to, by=who[0], exercise=req.exercise)
        )
        return {"round": round_id, "sent": [{"id": e.id, "to": e.to} for e in sent]}

    @app.get("/api/v1/ping/report", tags=["workflow"])
    async def get_ping_report(
        who: Annotated[tuple[str, str], Depends(role_at_least("viewer"))],
        round: str | None = None,  # noqa: A002 - the query parameter's name
    ) -> dict[str, Any]:
        return await run(lambda: cases.ping_report(node(), now_ms(), round_id=round))  # type: ignore[no-any-return]

    @app.get("/api/v1/report", tags=["workflow"])
    async def get_report(
        who: Annotated[tuple[str, str], Depends(role_at_least("supervisor"))],
        counterparty: str,
        since: str,
        until: str | None = None,
        exercise: bool = False,
    ) -> dict[str, Any]:
        """The signed accountability record towards ``counterparty`` (for ``detente audit``)."""
        since_ms = to_ms(parse_user_time(since, field="since"))
        until_ms = now_ms() + 1 if until is None else to_ms(parse_user_time(until, field="until"))
        if until_ms <= since_ms:
            raise EncodingError("until: must be after since")
        n = node()
        n.agreements_member_check(counterparty)
        await run(n.latest_checkpoint)  # cover everything committed so far
        return await run(  # type: ignore[no-any-return]
            lambda: build_report(
                n, n.keys, counterparty, since_ms=since_ms, until_ms=until_ms, exercise=exercise
            )
        )

    @app.post("/api/v1/tokens", tags=["client"], status_code=201)
    async def add_token(
        req: TokenRequest, who: Annotated[tuple[str, str], Depends(role_at_least("admin"))]
    ) -> dict[str, str]:
        token = await run(node().add_token, req.name, req.role)
        return {"name": req.name, "role": req.role, "token": token}

    install_interop(app, node)  # TAXII 2.1 at /taxii2/, interop client API (api/taxii.py)
    install_console(app, node, state)  # the duty officer's console at /console
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    return app


class _Unauthorized(Exception):  # noqa: N818 - mapped to 401, never escapes
    pass


class _Forbidden(Exception):  # noqa: N818 - mapped to 403, never escapes
    pass
