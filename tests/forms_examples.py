"""Valid form bodies for tests and benchmarks (the node refuses invalid forms)."""

from __future__ import annotations

from typing import Any

OBSERVED = "2026-11-24T12:00:00.000Z"


def notification(text: str = "scanning from 203.0.113.7", *, severity: int = 2) -> dict[str, Any]:
    return {
        "category": "ddos",
        "severity": severity,
        "observed": OBSERVED,
        "activity": {"lang": "en", "text": text},
        "concern": "infrastructure-in-your-jurisdiction",
    }


def response(request_id: str, text: str = "servers taken down") -> dict[str, Any]:
    return {
        "request": request_id,
        "status": "action-taken",
        "details": {"lang": "en", "text": text},
    }
