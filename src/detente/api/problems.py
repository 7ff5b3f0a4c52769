"""RFC 9457 problem details for every error a request can cause."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from detente.errors import (
    CaseTransitionError,
    ConfigError,
    DeliveryError,
    DetenteError,
    EncodingError,
    NotAMemberError,
    PolicyError,
    ReplayError,
    StorageError,
    SupersededAgreementError,
    UnknownAgreementError,
    VerificationError,
    WrongRecipientError,
)
from detente.node.queries import NotFoundError
from detente.node.service import DeliveryRefusedError

__all__ = ["problem", "status_for"]

PROBLEM = "application/problem+json"


def status_for(exc: BaseException) -> int:
    if isinstance(exc, DeliveryRefusedError):
        return status_for(exc.cause)
    table: list[tuple[type[BaseException], int]] = [
        (NotFoundError, 404),
        (EncodingError, 400),
        (UnknownAgreementError, 422),
        (SupersededAgreementError, 422),
        (NotAMemberError, 403),
        (WrongRecipientError, 421),
        (VerificationError, 422),
        (CaseTransitionError, 409),
        (PolicyError, 403),
        (ReplayError, 409),
        (StorageError, 503),
        (DeliveryError, 502),
        (ConfigError, 500),
    ]
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, DetenteError) else 500


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def detente_error_handler(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    extra: dict[str, Any] = {}
    name = type(exc).__name__
    if isinstance(exc, DeliveryRefusedError):
        extra = {"index": exc.index, "message_id": exc.message_id}
        name = type(exc.cause).__name__
    return problem(status, name, str(exc), **extra)
