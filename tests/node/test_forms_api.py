"""The node refuses bad forms and undeclared personal data before anything is sealed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from forms_examples import notification
from node.cluster import NodeProc, make_cluster


@pytest.fixture
def node(tmp_path: Path, db_url_factory: Callable[[str], str]) -> Any:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC"], db_url_factory)
    us = nodes["US-CISA"]
    us.start()
    try:
        yield us
    finally:
        us.stop()


def _post(us: NodeProc, body: dict[str, Any], **extra: Any) -> Any:
    return us.api.post(
        "/api/v1/messages",
        json={
            "agreement": "test-agreement",
            "type": "notification",
            "tlp": "AMBER",
            "body": body,
            **extra,
        },
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"severity": 9}, "severity"),
        ({"category": "cyberwar"}, "category"),
        ({"activity": "plain text"}, "activity"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_form_is_refused_naming_the_field(
    node: NodeProc, change: dict[str, Any], field: str
) -> None:
    before = node.call("GET", "/api/v1/messages", params={"direction": "out"})
    response = _post(node, {**notification(), **change})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith(f"{field}: ")
    assert node.call("GET", "/api/v1/messages", params={"direction": "out"}) == before


def test_missing_field_is_refused(node: NodeProc) -> None:
    body = notification()
    del body["concern"]
    response = _post(node, body)
    assert response.status_code == 400
    assert response.json()["detail"] == "concern: is required"


def test_undeclared_personal_data_is_refused_naming_the_field(node: NodeProc) -> None:
    response = _post(node, notification("contact the admin at ivan.petrov@example.ru"))
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith("activity.text: looks like personal data (email")
    assert "ivan.petrov@example.ru" not in detail  # the warning does not repeat it


def test_declared_personal_data_meets_the_agreement(node: NodeProc) -> None:
    response = _post(node, notification("contact ivan.petrov@example.ru"), personal_data=True)
    assert response.status_code == 403  # this agreement does not allow personal data
    assert "agreement forbids it" in response.json()["detail"]


def test_valid_form_is_sent(node: NodeProc) -> None:
    response = _post(node, notification())
    assert response.status_code == 201, response.text


def test_unknown_message_is_404(node: NodeProc) -> None:
    response = node.api.get("/api/v1/messages/01a20f2b-a293-7ce7-a69b-64aba22eea5d")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "no message" in response.json()["detail"]
    proof = node.api.get("/api/v1/log/proof/01a20f2b-a293-7ce7-a69b-64aba22eea5d")
    assert proof.status_code == 404


def test_openapi_is_served(node: NodeProc) -> None:
    spec = httpx.get(node.base + "/openapi.json").json()
    for path in (
        "/api/v1/messages",
        "/api/v1/messages/batch",
        "/api/v1/log/proof/{message_id}",
        "/federation/v1/deliver",
        "/federation/v1/checkpoint",
    ):
        assert path in spec["paths"], path
    assert httpx.get(node.base + "/docs").status_code == 200


def test_stix_bundle_that_does_not_validate_is_refused(node: NodeProc) -> None:
    before = node.call("GET", "/api/v1/messages", params={"direction": "out"})
    indicator = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-11-24T10:00:00.000Z",
        "modified": "2026-11-24T10:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.23'",  # the bracket is not closed
        "pattern_type": "stix",
        "valid_from": "2026-11-24T10:00:00Z",
    }
    bundle = {
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [indicator],
    }
    response = _post(node, {**notification(), "indicators": bundle})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith(
        "indicators.objects[0] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f).pattern: "
    )
    assert node.call("GET", "/api/v1/messages", params={"direction": "out"}) == before
