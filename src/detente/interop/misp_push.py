"""Pushing an event to a MISP instance through its REST API.

The calls are MISP's automation API as ``pymisp`` makes them
(``PyMISP.add_event`` / ``update_event``): ``POST /events/add`` with the
event as JSON, the automation key in ``Authorization``, ``Accept`` and
``Content-Type`` ``application/json``.  MISP answers 200 with the stored
event, or 403 with ``"Event already exists"`` when the UUID is taken; then
the event is updated with ``POST /events/edit/<uuid>``.

Tested against a fake that records this contract (``tests/interop``): no
MISP server can run on the test machine.  Not here: building the event
(:mod:`.misp`).
"""

from __future__ import annotations

from typing import Any

import httpx

from detente.errors import DeliveryError

__all__ = ["push_event"]


def push_event(
    url: str, key: str, event: dict[str, Any], *, verify: bool = True, timeout: float = 30.0
) -> dict[str, Any]:
    """Add (or update) ``event`` on the MISP at ``url``: {uuid, id, action}."""
    headers = {
        "Authorization": key,
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": "detente",
    }
    base = url.rstrip("/")
    uuid = event["Event"]["uuid"]
    try:
        with httpx.Client(headers=headers, verify=verify, timeout=timeout) as client:
            response = client.post(f"{base}/events/add", json=event)
            action = "added"
            if response.status_code == 403 and "already exists" in response.text.lower():
                response = client.post(f"{base}/events/edit/{uuid}", json=event)
                action = "updated"
    except httpx.HTTPError as exc:
        raise DeliveryError(f"MISP at {base} not reachable: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise DeliveryError(f"MISP answered {response.status_code}: {response.text[:300]}")
    try:
        stored = response.json()["Event"]
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(
            f"MISP answered something that is not an event: {response.text[:300]}"
        ) from None
    return {"uuid": stored.get("uuid", uuid), "id": stored.get("id"), "action": action}
