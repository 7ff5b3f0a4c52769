"""MISP both ways, with pymisp as the other side; and `detente misp push` against a fake MISP.

No MISP server can run on the test machine (it needs PHP, MySQL and Redis),
so the push is tested against a fake that records the REST contract pymisp
uses (``POST /events/add``; ``403 Event already exists``; ``POST
/events/edit/<uuid>``) and checks every event it receives loads in pymisp.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pymisp
import pytest
from pymisp import MISPEvent

from detente.core.envelope import Content
from detente.core.forms import validate as validate_form
from detente.interop.ingest import check_objects
from detente.interop.misp import convert_event, notification_to_event
from detente.stix import validate_form_stix
from interop.hotline import TAXII, Hotline, detente, write_json
from interop.stix_examples import library_bundle

_SCHEMA = json.loads((Path(pymisp.__file__).parent / "data" / "schema.json").read_text())


def misp_load(event: dict[str, Any]) -> MISPEvent:
    """Load as pymisp does, after checking pymisp's own JSON schema of an event."""
    jsonschema.validate(event, _SCHEMA)
    loaded = MISPEvent()
    loaded.load(copy.deepcopy(event))
    return loaded


SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# An event as MISP 2.4 exports it (GET /events/view/<id>.json), trimmed of nothing
# that matters: string numbers, Org/Orgc, tags with colours, an object, a galaxy.
MISP_EXPORT: dict[str, Any] = {
    "Event": {
        "id": "1234",
        "orgc_id": "2",
        "org_id": "2",
        "date": "2026-11-20",
        "threat_level_id": "1",
        "info": "Ransomware C2 infrastructure hosted in your networks",
        "published": True,
        "uuid": "5f3b0a7e-7c1e-4d2a-9c2f-0a1b2c3d4e5f",
        "attribute_count": "6",
        "analysis": "2",
        "timestamp": "1795000000",
        "distribution": "1",
        "proposal_email_lock": False,
        "locked": False,
        "publish_timestamp": "1795000100",
        "sharing_group_id": "0",
        "disable_correlation": False,
        "extends_uuid": "",
        "Org": {"id": "2", "name": "CERT-EX", "uuid": "5f3b0a7e-0000-4d2a-9c2f-0a1b2c3d4e5f"},
        "Orgc": {"id": "2", "name": "CERT-EX", "uuid": "5f3b0a7e-0000-4d2a-9c2f-0a1b2c3d4e5f"},
        "Attribute": [
            {
                "id": "1",
                "type": "ip-dst",
                "category": "Network activity",
                "to_ids": True,
                "uuid": "6a1b2c3d-1111-4e5f-8a9b-0c1d2e3f4a5b",
                "event_id": "1234",
                "distribution": "5",
                "timestamp": "1795000000",
                "comment": "C2 server",
                "sharing_group_id": "0",
                "deleted": False,
                "disable_correlation": False,
                "object_id": "0",
                "object_relation": None,
                "first_seen": None,
                "last_seen": None,
                "value": "198.51.100.7",
                "Tag": [{"id": "7", "name": "tlp:red", "colour": "#CC0033", "exportable": True}],
            },
            {
                "id": "2",
                "type": "domain",
                "category": "Network activity",
                "to_ids": True,
                "uuid": "6a1b2c3d-2222-4e5f-8a9b-0c1d2e3f4a5b",
                "event_id": "1234",
                "distribution": "5",
                "timestamp": "1795000000",
                "comment": "",
                "deleted": False,
                "value": "c2.example",
            },
            {
                "id": "3",
                "type": "url",
                "category": "Network activity",
                "to_ids": False,
                "uuid": "6a1b2c3d-3333-4e5f-8a9b-0c1d2e3f4a5b",
                "event_id": "1234",
                "distribution": "5",
                "timestamp": "1795000000",
                "deleted": False,
                "value": "http://c2.example/gate.php",
            },
            {
                "id": "4",
                "type": "text",
                "category": "Other",
                "to_ids": False,
                "uuid": "6a1b2c3d-4444-4e5f-8a9b-0c1d2e3f4a5b",
                "event_id": "1234",
                "distribution": "5",
                "timestamp": "1795000000",
                "deleted": False,
                "value": "free text that has no STIX form",
            },
            {
                "id": "5",
                "type": "sha256",
                "category": "Payload delivery",
                "to_ids": True,
                "uuid": "6a1b2c3d-5555-4e5f-8a9b-0c1d2e3f4a5b",
                "event_id": "1234",
                "distribution": "5",
                "timestamp": "1795000000",
                "deleted": True,
                "value": SHA256,
            },
        ],
        "Object": [
            {
                "id": "9",
                "name": "file",
                "meta-category": "file",
                "uuid": "7b2c3d4e-0000-4f5a-9b8c-1d2e3f4a5b6c",
                "timestamp": "1795000000",
                "distribution": "5",
                "deleted": False,
                "Attribute": [
                    {
                        "id": "6",
                        "type": "filename|sha256",
                        "category": "Payload delivery",
                        "to_ids": True,
                        "uuid": "6a1b2c3d-6666-4e5f-8a9b-0c1d2e3f4a5b",
                        "object_relation": "file",
                        "timestamp": "1795000000",
                        "deleted": False,
                        "value": f"locker.exe|{SHA256}",
                    },
                    {
                        "id": "7",
                        "type": "ip-dst|port",
                        "category": "Network activity",
                        "to_ids": True,
                        "uuid": "6a1b2c3d-7777-4e5f-8a9b-0c1d2e3f4a5b",
                        "object_relation": "c2",
                        "timestamp": "1795000000",
                        "deleted": False,
                        "value": "203.0.113.9|8443",
                    },
                ],
            },
        ],
        "Tag": [
            {"id": "1", "name": "tlp:amber", "colour": "#FFC000", "exportable": True},
            {"id": "2", "name": "PAP:GREEN", "colour": "#00ff00", "exportable": True},
            {"id": "3", "name": 'circl:incident-classification="ransomware"', "exportable": True},
        ],
        "Galaxy": [],
        "RelatedEvent": [],
        "ShadowAttribute": [],
    }
}


def test_an_event_as_misp_exports_it_becomes_a_notification() -> None:
    conversion = convert_event(MISP_EXPORT)
    body = conversion.body
    assert conversion.tlp == "AMBER"
    assert body["pap"] == "GREEN"
    assert body["severity"] == 3  # threat level High
    assert body["category"] == "ransomware"
    assert body["observed"] == "2026-11-20T00:00:00.000Z"
    objects = body["indicators"]["objects"]
    patterns = {o["pattern"] for o in objects if o["type"] == "indicator"}
    assert patterns == {
        "[ipv4-addr:value = '198.51.100.7']",
        "[domain-name:value = 'c2.example']",
        f"[file:name = 'locker.exe' AND file:hashes.'SHA-256' = '{SHA256}']",
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = "
        "'203.0.113.9' AND network-traffic:dst_port = 8443]",
    }
    ip = next(o for o in objects if o.get("pattern", "").startswith("[ipv4"))
    assert ip["id"] == "indicator--6a1b2c3d-1111-4e5f-8a9b-0c1d2e3f4a5b"
    assert 'misp:type="ip-dst"' in ip["labels"]
    # The attribute's tlp:red tag makes that indicator RED, the rest take the event's AMBER.
    assert ip["object_marking_refs"] == ["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]
    assert [o["type"] for o in objects].count("url") == 1  # to_ids false: an observable
    assert conversion.skipped == [
        {"type": "text", "value": "free text that has no STIX form", "why": "no STIX object"}
    ]
    # The node would take it: the form, the stix2 library's checks, and ours.
    validate_form("notification", body)
    validate_form_stix("notification", body)
    check_objects(objects)


def test_pymisp_loads_every_event_detente_exports() -> None:
    bundle = library_bundle()
    body = {
        "category": "ransomware",
        "severity": 4,
        "observed": "2026-11-24T12:00:00.000Z",
        "activity": {"lang": "ru", "text": "Серверы управления", "translated_from": "ru"},
        "concern": "infrastructure-in-your-jurisdiction",
        "indicators": bundle,
        "pap": "AMBER",
    }
    event = notification_to_event(
        Content("notification", "AMBER", body),
        message_id="01900000-0000-7000-8000-000000000001",
        sender="US-CISA",
        created="2026-11-24T12:00:00.000Z",
        org="RU-NCCC",
    )
    loaded = misp_load(event)
    assert loaded.threat_level_id == 1
    assert {t.name for t in loaded.tags} >= {"tlp:amber", "PAP:AMBER"}
    by_type = {(a.type, a.value) for a in loaded.attributes}
    assert ("ip-dst", "198.51.100.7") in by_type  # the observable
    assert ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") in by_type
    assert (
        "stix2-pattern",
        "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'c2.example']",
    ) in by_type
    assert ("yara", "rule x { condition: true }") in by_type
    assert any(a.type == "comment" and "not mapped" in a.value for a in loaded.attributes)


def test_misp_to_detente_to_misp_keeps_the_attributes() -> None:
    event = MISPEvent()
    event.info = "Phishing kit"
    event.threat_level_id = 2
    event.add_tag("tlp:green")
    for misp_type, value in (
        ("ip-src", "192.0.2.10"),
        ("hostname", "login.example"),
        ("email-src", "lure@example.net"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("url", "https://login.example/x"),
        ("mutex", "Global\\kit"),
        ("AS", "AS64500"),
    ):
        event.add_attribute(misp_type, value, to_ids=misp_type != "AS")
    conversion = convert_event(json.loads(event.to_json()))
    tlp, body = conversion.tlp, conversion.body
    assert tlp == "GREEN" and body["category"] == "phishing"
    back = notification_to_event(
        Content("notification", tlp, body),
        message_id="01900000-0000-7000-8000-000000000002",
        sender="US-CISA",
        created="2026-11-24T12:00:00.000Z",
        org="RU-NCCC",
    )
    loaded = misp_load(back)
    before = {(a.type, a.value) for a in event.attributes}
    after = {(a.type, a.value) for a in loaded.attributes}
    assert before == after


def test_events_built_with_pymisp_travel_over_the_hotline(hotline: Hotline) -> None:
    event = MISPEvent()
    event.info = "DDoS botnet controllers"
    event.threat_level_id = 1
    event.add_tag("tlp:amber")
    event.add_attribute("ip-dst", "198.51.100.99", to_ids=True, comment="controller")
    event.add_attribute("domain", "cnc.example", to_ids=True)
    path = write_json(hotline.workdir / "pymisp-event.json", json.loads(event.to_json()))
    out = detente(
        "misp",
        "import",
        str(path),
        "--agreement",
        "test-agreement",
        "--to",
        "RU-NCCC",
        "--concern",
        "infrastructure-in-your-jurisdiction",
        "--send",
        "--home",
        str(hotline.us.home.path),
        "--json",
    )
    result = json.loads(out.stdout)
    (sent,) = result["sent"]
    from node.cluster import delivered, wait_until

    wait_until(lambda: delivered(hotline.us, sent["id"]), 30, "delivery")
    # RU exports what it received as a MISP event; pymisp loads it; the attributes survive.
    exported = hotline.ru.call("GET", f"/api/v1/interop/misp/events/{sent['id']}")
    loaded = misp_load(exported)
    assert {(a.type, a.value) for a in loaded.attributes} == {
        ("ip-dst", "198.51.100.99"),
        ("domain", "cnc.example"),
    }
    assert "tlp:amber" in {t.name for t in loaded.tags}
    # And RU serves the indicators over TAXII in the agreement's collection.
    cid = hotline.collection_id(hotline.ru, "test-agreement")
    served = hotline.ru.call(
        "GET",
        f"/taxii2/hotline/collections/{cid}/objects/",
        headers={"accept": TAXII},
        params={"match[type]": "indicator", "limit": 10_000},
    )
    patterns = {o["pattern"] for o in served["objects"]}
    assert "[ipv4-addr:value = '198.51.100.99']" in patterns


class _FakeMisp(BaseHTTPRequestHandler):
    """MISP's event REST contract, as pymisp's add_event/update_event use it."""

    key = "misp-automation-key-0123456789"
    events: ClassVar[dict[str, dict[str, Any]]] = {}
    calls: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.calls.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != self.key:
            self._answer(
                403, {"name": "Authentication failed.", "message": "Authentication failed."}
            )
            return
        if "application/json" not in self.headers.get("Accept", ""):
            self._answer(406, {"name": "Not acceptable"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length))
        misp_load(payload)  # what pymisp would not load, the fake refuses
        uuid = payload["Event"]["uuid"]
        if self.path == "/events/add":
            if uuid in self.events:
                self._answer(
                    403,
                    {
                        "name": "Event already exists",
                        "message": "Event already exists",
                        "url": "/events/add",
                        "errors": {"Event": {"uuid": uuid}},
                    },
                )
                return
            self.events[uuid] = {**payload["Event"], "id": str(len(self.events) + 1)}
        elif self.path == f"/events/edit/{uuid}" and uuid in self.events:
            self.events[uuid] = {**payload["Event"], "id": self.events[uuid]["id"]}
        else:
            self._answer(404, {"name": "Invalid event", "message": "Invalid event"})
            return
        self._answer(200, {"Event": self.events[uuid]})


@pytest.fixture
def fake_misp() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeMisp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_misp_push_adds_then_updates(hotline: Hotline, fake_misp: str) -> None:
    body = {
        "category": "ddos",
        "severity": 2,
        "observed": "2026-11-24T12:00:00.000Z",
        "activity": {"lang": "en", "text": "reflection attack sources"},
        "concern": "traffic-through-your-networks",
    }
    message = hotline.notify(body, tlp="GREEN")
    args = [
        "misp",
        "push",
        message,
        "--url",
        fake_misp,
        "--key",
        _FakeMisp.key,
        "--home",
        str(hotline.ru.home.path),
        "--json",
    ]
    first = json.loads(detente(*args).stdout)
    second = json.loads(detente(*args).stdout)
    assert (first["action"], second["action"]) == ("added", "updated")
    assert first["uuid"] == second["uuid"] and first["id"] == second["id"] == "1"
    assert [path for path, _ in _FakeMisp.calls[-3:]] == [
        "/events/add",
        "/events/add",
        f"/events/edit/{first['uuid']}",
    ]
    refused = detente(
        *args[:-3], "--key", "wrong", "--home", str(hotline.ru.home.path), check=False
    )
    assert refused.returncode == 1
    assert "MISP answered 403" in refused.stderr


def test_stix_made_from_misp_parses_with_stix2_and_passes_the_validator() -> None:
    import stix2
    from stix2validator import ValidationOptions, validate_instance

    for obj in convert_event(MISP_EXPORT).body["indicators"]["objects"]:
        stix2.parse(copy.deepcopy(obj), allow_custom=False, version="2.1")
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, [e.message for e in result.errors]
