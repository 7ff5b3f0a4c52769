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


# TLP:RED in STIX 2.1 (the marking definition the TLP 2.0 mapping fixes).
TLP_RED_MARKING = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def stix_bundle(*markings: str) -> dict[str, Any]:
    """A valid STIX 2.1 bundle with one indicator (a C2 server), optionally marked."""
    indicator: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-11-24T10:00:00.000Z",
        "modified": "2026-11-24T10:00:00.000Z",
        "name": "C2 server",
        "pattern": "[ipv4-addr:value = '198.51.100.23']",
        "pattern_type": "stix",
        "valid_from": "2026-11-24T10:00:00Z",
    }
    if markings:
        indicator["object_marking_refs"] = list(markings)
    return {
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [indicator],
    }
