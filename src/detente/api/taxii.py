"""TAXII 2.1 on the node (``/taxii2/``), and the client API's interop endpoints.

Implements the OASIS TAXII Version 2.1 specification (OASIS Standard,
sections named in brackets) for the objects a node holds
(:mod:`detente.interop.store`):

* Server Discovery ``GET /taxii2/`` [4.1] and one API Root ``/taxii2/hotline/`` [4.2];
* Collections [5.1, 5.2]: per installed agreement, one with every object of
  the agreement and one per TLP label the agreement allows (``<title>
  TLP:AMBER``); and ``local`` for objects imported on this node (writable
  by officers);
* Manifest [5.3], Objects [5.4 Get, 5.5 Add, 5.6 Get an object] and
  Object Versions [5.8] with ``limit``, ``next``, ``added_after``, ``match[id]``,
  ``match[type]``, ``match[version]`` (``last`` by default, ``first``,
  ``all``, timestamps) and ``match[spec_version]``; ``X-TAXII-Date-Added-
  First``/``-Last`` headers; Status resources for writes [4.3];
* media types ``application/taxii+json;version=2.1`` both ways (406 for an
  Accept it cannot meet, 415 for a body that is not it);
* authentication per API user with the node's tokens, as ``Authorization:
  Bearer <token>`` or HTTP Basic (user = token name, password = token);
  each user is served only objects at or below their TLP ceiling
  (:mod:`detente.interop.access`);
* errors as TAXII error message resources (title, description, http_status).

Not here: deleting objects [5.7] (optional in the specification; the
collections are records of what was exchanged), and asynchronous writes (a
write is checked and stored before the answer, whose status is ``complete``).

A write is all or nothing: one invalid object refuses the envelope (422,
naming the object's position, id and property) and nothing is stored.

Also here (``/api/v1/interop/…``, bearer tokens as the rest of the client
API): sightings reported by a tool, a MISP event turned into a notification
form, and a notification exported as a MISP event.  A tool that pushes STIX
writes it to the ``local`` collection over TAXII.
"""

# No "from __future__ import annotations": FastAPI must see the Depends() objects.

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select

from detente.core.envelope import Content
from detente.core.policy import TLP_LABELS, tlp_rank
from detente.errors import DetenteError, EncodingError
from detente.interop import misp
from detente.interop.access import max_tlp_for, readable
from detente.interop.ingest import check_objects, rows_for
from detente.interop.store import (
    Query,
    format_us,
    insert_rows,
    parse_us,
    query_objects,
    query_versions,
)
from detente.interop.validate import StixError
from detente.node.service import ROLES, Node
from detente.node.writer import Tx
from detente.store.schema import taxii_status

__all__ = ["API_ROOT", "MAX_CONTENT_LENGTH", "TAXII", "interop_router"]

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
API_ROOT = "hotline"
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
PAGE_DEFAULT = 1000
PAGE_MAX = 10_000
MAX_MATCH = 1000
LOCAL = "local"
_NAMESPACE = uuid.UUID("7a1f0c9e-5d1b-4f8e-8a7c-746178696932")


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str) -> None:
        super().__init__(description)
        self.status, self.title, self.description = status, title, description


def _error(status: int, title: str, description: str) -> Response:
    body = {"title": title, "description": description, "http_status": str(status)}
    response = Response(json.dumps(body).encode(), status_code=status, media_type=TAXII)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Detente TAXII", Bearer'
    return response


def _taxii(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Response(data, status_code=status, media_type=TAXII, headers=headers)


@dataclass(frozen=True)
class Collection:
    id: str
    scope: str
    tlp: str | None  # None: every label the reader may see
    title: str
    description: str
    alias: str
    writable: bool

    def labels(self, ceiling: str) -> tuple[str, ...]:
        allowed = readable(ceiling)
        if self.tlp is None:
            return allowed
        return (self.tlp,) if self.tlp in allowed else ()

    def info(self, ceiling: str, role: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "alias": self.alias,
            "can_read": bool(self.labels(ceiling)),
            "can_write": self.writable and ROLES.index(role) >= ROLES.index("officer"),
            "media_types": [STIX],
        }


def collections(node: Node) -> list[Collection]:
    """The node's collections, from its installed agreements (stable ids, UUIDv5)."""

    def cid(scope: str, tlp: str | None) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{node.id}/{scope}/{tlp or 'all'}"))

    out = [
        Collection(
            cid(LOCAL, None),
            LOCAL,
            None,
            f"{node.id} local",
            "Objects imported on this node (detente indicators import, TAXII writes)",
            "local",
            True,
        )
    ]
    for agreement in sorted(node.agreements, key=lambda a: a.id):
        title = agreement.titles.get("en") or next(iter(agreement.titles.values()))
        out.append(
            Collection(
                cid(agreement.id, None),
                agreement.id,
                None,
                f"{title} ({agreement.id})",
                f"Indicators and sightings exchanged under agreement {agreement.id}",
                agreement.id,
                False,
            )
        )
        out.extend(
            Collection(
                cid(agreement.id, label),
                agreement.id,
                label,
                f"{title} ({agreement.id}) TLP:{label}",
                f"Objects labelled TLP:{label} exchanged under agreement {agreement.id}",
                f"{agreement.id}-tlp-{label.lower().replace('+', '-')}",
                False,
            )
            for label in TLP_LABELS[: tlp_rank(agreement.policy.max_tlp) + 1]
        )
    return out


@dataclass(frozen=True)
class Reader:
    name: str
    role: str
    ceiling: str


def _acceptable(accept: str | None) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json":
            versions = [p.split("=", 1)[1] for p in params if p.startswith("version=")]
            if not versions or "2.1" in versions:
                return True
    return False


def _csv(request: Request, name: str) -> tuple[str, ...]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",")]
    return tuple(v.strip() for v in values if v.strip())


def _int_param(request: Request, name: str, default: int, low: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < low:
        raise TaxiiError(400, "Bad Request", f"{name} must be an integer of at least {low}")
    return int(raw)


def _query(request: Request, scope: str, labels: tuple[str, ...], *, filters: bool) -> Query:
    limit = min(_int_param(request, "limit", PAGE_DEFAULT, 1), PAGE_MAX)
    after = _int_param(request, "next", 0, 0)
    added_after = None
    raw = request.query_params.get("added_after")
    if raw:
        try:
            added_after = parse_us(raw)
        except ValueError:
            raise TaxiiError(400, "Bad Request", "added_after must be an RFC 3339 time") from None
    versions: tuple[str, ...] = ("last",)
    types: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    if filters:
        types, ids = _csv(request, "match[type]"), _csv(request, "match[id]")
        if len(types) + len(ids) > MAX_MATCH:
            raise TaxiiError(400, "Bad Request", f"at most {MAX_MATCH} ids and types per request")
        asked = _csv(request, "match[version]")
        if asked:
            parsed = []
            for value in asked:
                if value in ("first", "last", "all"):
                    parsed.append(value)
                    continue
                try:
                    parsed.append(str(parse_us(value)))
                except ValueError:
                    raise TaxiiError(
                        400, "Bad Request", "match[version] takes first, last, all or timestamps"
                    ) from None
            versions = tuple(parsed)
    spec_versions = _csv(request, "match[spec_version]")
    if spec_versions and "2.1" not in spec_versions:
        labels = ()  # everything here is STIX 2.1: nothing matches
    return Query(scope, labels, after, added_after, types, ids, versions, limit)


def _page_headers(rows: list[Any]) -> dict[str, str]:
    if not rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": format_us(int(rows[0].date_added)),
        "X-TAXII-Date-Added-Last": format_us(int(rows[-1].date_added)),
    }


def _envelope(rows: list[Any], more: bool) -> bytes:
    # Objects are stored as the JSON they were checked as: spliced, not re-encoded.
    head = b'{"more":true,"next":"%d"' % rows[-1].seq if more else b'{"more":false'
    if not rows:
        return head + b"}"
    return head + b',"objects":[' + b",".join(bytes(r.object) for r in rows) + b"]}"


class _WriteObjects:
    """A TAXII write, run by the node's writer (serialised with the node's own writes)."""

    needs_checkpoint = False

    def __init__(self, rows: list[dict[str, Any]], status: dict[str, Any], scope: str, owner: str):
        self.rows, self.status, self.scope, self.owner = rows, status, scope, owner

    def apply(self, tx: Tx) -> None:
        done = insert_rows(tx.conn, self.rows, tx.now_ms * 1000)
        self.status["success_count"] = len(self.rows)
        details = {"successes": self.status["successes"], "failures": [], "pendings": []}
        tx.conn.execute(
            insert(taxii_status).values(
                id=self.status["id"],
                scope=self.scope,
                owner=self.owner,
                status="complete",
                request_timestamp=self.status["_request_us"],
                total_count=self.status["total_count"],
                success_count=len(self.rows),
                failure_count=0,
                pending_count=0,
                details=json.dumps(details).encode(),
            )
        )
        self.duplicates = done.duplicates

    def complete(self, tx: Tx, checkpoint: bytes) -> None:
        return None


class SightingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicator: str = Field(description="the indicator's STIX id (or the value it matched)")
    count: int = Field(ge=1, le=2**31, default=1)
    first_seen: str
    last_seen: str
    where: str | None = None
    notification: str | None = Field(
        default=None, description="the notification it came in; found from the indicator if absent"
    )


def interop_router(node: Callable[[], Node]) -> APIRouter:
    """The TAXII 2.1 server and the interop client API, for the app's node."""
    router = APIRouter()

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def authenticate(request: Request) -> Reader:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        n = node()
        if scheme == "bearer" and credentials:
            who = n.authenticate(credentials)
        elif scheme == "basic" and credentials:
            try:
                user, _, password = (
                    base64.b64decode(credentials, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                raise TaxiiError(401, "Unauthorized", "malformed Basic credentials") from None
            who = n.authenticate(password)
            if who is not None and who[0] != user:
                who = None
        else:
            raise TaxiiError(401, "Unauthorized", "credentials required (Basic or Bearer)")
        if who is None:
            raise TaxiiError(401, "Unauthorized", "unknown user or token")
        with n.engine.connect() as conn:
            ceiling = max_tlp_for(conn, who[0], who[1])
        return Reader(who[0], who[1], ceiling)

    async def reader(request: Request) -> Reader:
        if not _acceptable(request.headers.get("accept")):
            raise TaxiiError(406, "Not Acceptable", f"this server answers {TAXII}")
        return await run(authenticate, request)  # type: ignore[no-any-return]

    who_t = Annotated[Reader, Depends(reader)]

    def find(collection_id: str) -> Collection:
        for c in collections(node()):
            if c.id == collection_id:
                return c
        raise TaxiiError(404, "Not Found", f"no collection {collection_id}")

    def readable_collection(collection_id: str, who: Reader) -> tuple[Collection, tuple[str, ...]]:
        c = find(collection_id)
        labels = c.labels(who.ceiling)
        if not labels:
            raise TaxiiError(
                403, "Forbidden", f"{who.name} may read up to TLP:{who.ceiling}, not TLP:{c.tlp}"
            )
        return c, labels

    def root_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + f"/taxii2/{API_ROOT}/"

    def check_root(api_root: str) -> None:
        if api_root != API_ROOT:
            raise TaxiiError(404, "Not Found", f"no API root {api_root!r}")

    # -- discovery, API root, collections -------------------------------------------

    @router.get("/taxii2/", tags=["taxii"])
    async def discovery(request: Request, who: who_t) -> Response:
        return _taxii(
            {
                "title": f"Détente node {node().id}",
                "description": "Indicators and sightings exchanged over the hotline (TAXII 2.1)",
                "default": root_url(request),
                "api_roots": [root_url(request)],
            }
        )

    @router.get("/taxii2/{api_root}/", tags=["taxii"])
    async def api_root_info(api_root: str, who: who_t) -> Response:
        check_root(api_root)
        return _taxii(
            {
                "title": f"Détente hotline of {node().id}",
                "description": "One collection per agreement, and per TLP label it allows",
                "versions": [TAXII],
                "max_content_length": MAX_CONTENT_LENGTH,
            }
        )

    @router.get("/taxii2/{api_root}/collections/", tags=["taxii"])
    async def list_collections(api_root: str, who: who_t) -> Response:
        check_root(api_root)
        infos = [c.info(who.ceiling, who.role) for c in collections(node())]
        return _taxii({"collections": infos})

    @router.get("/taxii2/{api_root}/collections/{collection_id}/", tags=["taxii"])
    async def get_collection(api_root: str, collection_id: str, who: who_t) -> Response:
        check_root(api_root)
        return _taxii(find(collection_id).info(who.ceiling, who.role))

    # -- objects, manifest, versions --------------------------------------------------

    @router.get("/taxii2/{api_root}/collections/{collection_id}/objects/", tags=["taxii"])
    async def get_objects(
        api_root: str, collection_id: str, request: Request, who: who_t
    ) -> Response:
        check_root(api_root)
        c, labels = readable_collection(collection_id, who)
        q = _query(request, c.scope, labels, filters=True)

        def read() -> tuple[list[Any], bool]:
            with node().engine.connect() as conn:
                return query_objects(conn, q, with_objects=True)

        rows, more = await run(read)
        return Response(_envelope(rows, more), media_type=TAXII, headers=_page_headers(rows))

    @router.get("/taxii2/{api_root}/collections/{collection_id}/manifest/", tags=["taxii"])
    async def get_manifest(
        api_root: str, collection_id: str, request: Request, who: who_t
    ) -> Response:
        check_root(api_root)
        c, labels = readable_collection(collection_id, who)
        q = _query(request, c.scope, labels, filters=True)

        def read() -> tuple[list[Any], bool]:
            with node().engine.connect() as conn:
                return query_objects(conn, q, with_objects=False)

        rows, more = await run(read)
        body: dict[str, Any] = {"more": more}
        if more:
            body["next"] = str(rows[-1].seq)
        if rows:
            body["objects"] = [
                {
                    "id": r.stix_id,
                    "date_added": format_us(int(r.date_added)),
                    "version": r.version,
                    "media_type": STIX,
                }
                for r in rows
            ]
        return _taxii(body, headers=_page_headers(rows))

    @router.get(
        "/taxii2/{api_root}/collections/{collection_id}/objects/{object_id}/", tags=["taxii"]
    )
    async def get_object(
        api_root: str, collection_id: str, object_id: str, request: Request, who: who_t
    ) -> Response:
        check_root(api_root)
        c, labels = readable_collection(collection_id, who)
        q = _query(request, c.scope, labels, filters=True)
        q = Query(
            q.scope, q.tlps, q.after_seq, q.added_after_us, (), (object_id,), q.versions, q.limit
        )

        def read() -> tuple[list[Any], bool]:
            with node().engine.connect() as conn:
                return query_objects(conn, q, with_objects=True)

        rows, more = await run(read)
        if not rows and q.after_seq == 0:
            raise TaxiiError(404, "Not Found", f"no object {object_id} here for {who.name}")
        return Response(_envelope(rows, more), media_type=TAXII, headers=_page_headers(rows))

    @router.get(
        "/taxii2/{api_root}/collections/{collection_id}/objects/{object_id}/versions/",
        tags=["taxii"],
    )
    async def get_versions(
        api_root: str, collection_id: str, object_id: str, request: Request, who: who_t
    ) -> Response:
        check_root(api_root)
        c, labels = readable_collection(collection_id, who)
        q = _query(request, c.scope, labels, filters=False)

        def read() -> tuple[list[Any], bool]:
            with node().engine.connect() as conn:
                return query_versions(conn, q, object_id)

        rows, more = await run(read)
        if not rows and q.after_seq == 0:
            raise TaxiiError(404, "Not Found", f"no object {object_id} here for {who.name}")
        body: dict[str, Any] = {"more": more, "versions": [r.version for r in rows]}
        if more:
            body["next"] = str(rows[-1].seq)
        return _taxii(body, headers=_page_headers(rows))

    # -- writes and status --------------------------------------------------------------

    @router.post("/taxii2/{api_root}/collections/{collection_id}/objects/", tags=["taxii"])
    async def add_objects(
        api_root: str, collection_id: str, request: Request, who: who_t
    ) -> Response:
        check_root(api_root)
        c = find(collection_id)
        if not c.info(who.ceiling, who.role)["can_write"]:
            raise TaxiiError(403, "Forbidden", f"{who.name} may not write to {c.title}")
        content_type = request.headers.get("content-type", "").replace(" ", "").lower()
        if content_type.split(";")[0] != "application/taxii+json" or (
            "version=" in content_type and "version=2.1" not in content_type
        ):
            raise TaxiiError(415, "Unsupported Media Type", f"send {TAXII}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_CONTENT_LENGTH:
            raise TaxiiError(413, "Payload Too Large", f"at most {MAX_CONTENT_LENGTH} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_CONTENT_LENGTH:
                raise TaxiiError(413, "Payload Too Large", f"at most {MAX_CONTENT_LENGTH} bytes")
        request_us = int(time.time() * 1_000_000)
        try:
            envelope = json.loads(bytes(data), parse_constant=_no_constant)
        except RecursionError:
            raise TaxiiError(400, "Bad Request", "the envelope is nested too deeply") from None
        except ValueError as exc:
            raise TaxiiError(400, "Bad Request", f"the body is not JSON: {exc}") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
            raise TaxiiError(400, "Bad Request", "send a TAXII envelope {objects: [...]}")
        extra = set(envelope) - {"objects", "more", "next"}
        if extra:
            raise TaxiiError(400, "Bad Request", f"{sorted(extra)[0]} is not an envelope property")
        objects = envelope["objects"]
        try:
            local = check_objects(objects)
        except StixError as exc:
            raise TaxiiError(422, "Unprocessable Entity", str(exc)) from None
        rows = rows_for(objects, local, scope=c.scope, source=f"taxii:{who.name}")
        status = {
            "id": str(uuid.uuid4()),
            "status": "complete",
            "request_timestamp": format_us(request_us),
            "_request_us": request_us,
            "total_count": len(objects),
            "success_count": len(objects),
            "successes": [
                {"id": o["id"], "version": o.get("modified") or o.get("created") or ""}
                for o in objects
            ],
            "failure_count": 0,
            "failures": [],
            "pending_count": 0,
            "pendings": [],
        }
        await run(node().writer.run, _WriteObjects(rows, status, c.scope, who.name))
        del status["_request_us"]
        return _taxii(status, status=202)

    @router.get("/taxii2/{api_root}/status/{status_id}/", tags=["taxii"])
    async def get_status(api_root: str, status_id: str, who: who_t) -> Response:
        check_root(api_root)

        def read() -> Any:
            with node().engine.connect() as conn:
                return conn.execute(
                    select(taxii_status).where(taxii_status.c.id == status_id)
                ).first()

        row = await run(read)
        if row is None or (row.owner != who.name and who.role != "admin"):
            raise TaxiiError(404, "Not Found", f"no status {status_id} for {who.name}")
        details = json.loads(bytes(row.details))
        return _taxii(
            {
                "id": row.id,
                "status": row.status,
                "request_timestamp": format_us(int(row.request_timestamp)),
                "total_count": row.total_count,
                "success_count": row.success_count,
                "successes": details["successes"],
                "failure_count": row.failure_count,
                "failures": details["failures"],
                "pending_count": row.pending_count,
                "pendings": details["pendings"],
            }
        )

    # -- client API: sightings, MISP ----------------------------------------------------

    async def officer(request: Request) -> Reader:
        who: Reader = await run(authenticate, request)
        if ROLES.index(who.role) < ROLES.index("officer"):
            raise TaxiiError(403, "Forbidden", f"role {who.role} may not do this (needs officer)")
        return who

    officer_t = Annotated[Reader, Depends(officer)]

    @router.post("/api/v1/interop/sightings", tags=["interop"], status_code=201)
    async def report_sighting(req: SightingRequest, who: officer_t) -> JSONResponse:
        """Report that an indicator was seen: a signed ``sighting`` message to its source."""
        from detente.interop.sightings import report  # noqa: PLC0415

        sent = await run(
            lambda: report(
                node(),
                req.indicator,
                count=req.count,
                first_seen=req.first_seen,
                last_seen=req.last_seen,
                where=req.where,
                notification=req.notification,
                by=who.name,
            )
        )
        return JSONResponse([{"id": e.id, "to": e.to, "seq": e.seq} for e in sent], 201)

    @router.post("/api/v1/interop/misp/notification", tags=["interop"])
    async def misp_to_notification(request: Request, who: officer_t) -> JSONResponse:
        """A MISP event (as MISP exports it) as a notification form and its TLP (not sent)."""
        event = json.loads(await request.body(), parse_constant=_no_constant)
        tlp, body = misp.event_to_notification(event)
        return JSONResponse({"tlp": tlp, "body": body})

    @router.get("/api/v1/interop/misp/events/{message_id}", tags=["interop"])
    async def message_as_misp(message_id: str, request: Request) -> JSONResponse:
        """A notification (sent or received) as a MISP event that MISP can import."""
        who: Reader = await run(authenticate, request)
        from detente.node.queries import message_detail  # noqa: PLC0415

        detail = await run(message_detail, node(), message_id)
        content = detail.get("content")
        if content is None or content["type"] != "notification":
            raise EncodingError(f"{message_id} is not a notification this node can read")
        if tlp_rank(content["tlp"]) > tlp_rank(who.ceiling):
            raise TaxiiError(403, "Forbidden", f"{who.name} may read up to TLP:{who.ceiling}")
        event = misp.notification_to_event(
            Content(content["type"], content["tlp"], content["body"]),
            message_id=message_id,
            sender=str(detail["from"]),
            created=str(detail["created"]),
            org=node().id,
        )
        return JSONResponse(event)

    return router


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def install(app: Any, node: Callable[[], Node]) -> None:
    """Mount the router on ``app`` and map TAXII errors (one call from ``create_app``)."""
    app.include_router(interop_router(node))

    async def taxii_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TaxiiError)  # noqa: S101 - registered for this class only
        if request.url.path.startswith("/taxii2"):
            return _error(exc.status, exc.title, exc.description)
        return JSONResponse(
            {
                "type": "about:blank",
                "title": exc.title,
                "status": exc.status,
                "detail": exc.description,
            },
            status_code=exc.status,
            media_type="application/problem+json",
        )

    app.add_exception_handler(TaxiiError, taxii_error)

    async def detente_error_on_taxii(request: Request, exc: Exception) -> Response:
        # DetenteErrors raised under /taxii2 answer in TAXII's error format.
        from detente.api.problems import detente_error_handler, status_for  # noqa: PLC0415

        if request.url.path.startswith("/taxii2"):
            return _error(status_for(exc), type(exc).__name__, str(exc))
        return await detente_error_handler(request, exc)

    app.add_exception_handler(DetenteError, detente_error_on_taxii)
