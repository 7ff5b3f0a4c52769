"""The console over plain HTTP against real node processes: what the server enforces.

No browser here (these run even where Chromium is missing): sessions and
cookie flags, security headers, CSRF and same-origin checks on every form,
roles, lock-out, the live-update stream, and compose's field-by-field errors.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from console.support import AGREEMENT, PASSWORD, Hotline, csrf_of, sign_in
from forms_examples import notification
from node.cluster import send


def client() -> httpx.Client:
    return httpx.Client(timeout=30, follow_redirects=False)


@contextmanager
def signed_in(hotline: Hotline, name: str) -> Iterator[httpx.Client]:
    with client() as c:
        response = sign_in(c, hotline.inn.base, name)
        assert response.status_code == 303, response.text
        yield c


def test_pages_need_a_session(hotline: Hotline) -> None:
    with client() as c:
        page = c.get(f"{hotline.console}/inbox?type=request")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login?next=%2Fconsole%2Finbox%3Ftype%3Drequest"
        assert c.get(f"{hotline.console}/events").status_code == 401
    with httpx.Client(timeout=30, cookies={"detente_console": "bogus"}) as c:
        assert c.get(f"{hotline.console}/cases/x", follow_redirects=False).status_code == 303


def test_session_cookie_and_security_headers(hotline: Hotline) -> None:
    with client() as c:
        login = c.get(f"{hotline.console}/login")
        assert "httponly" in login.headers["set-cookie"].lower()
        response = sign_in(c, hotline.inn.base, "tester")
        assert response.status_code == 303 and response.headers["location"] == "/console/inbox"
        cookie = next(
            v
            for k, v in response.headers.multi_items()
            if k == "set-cookie" and v.startswith("detente_console=")
        )
        flags = [f.strip().lower() for f in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
        assert "secure" not in flags  # plain HTTP on loopback; Secure when the request is TLS
        page = c.get(f"{hotline.console}/inbox")
        assert page.status_code == 200
        h = page.headers
        assert "script-src 'self'" in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["cache-control"] == "no-store"
        assert re.fullmatch(r"app;dur=\d+\.\d", h["server-timing"])
        # No inline script or style anywhere: the CSP forbids them.
        assert "<script>" not in page.text and "style=" not in page.text


def test_every_form_checks_csrf_and_origin(hotline: Hotline) -> None:
    with signed_in(hotline, "tester") as c:
        page = c.get(f"{hotline.console}/inbox")
        token = csrf_of(page.text)
        url = f"{hotline.console}/preferences"
        form = {"lang": "ru", "next": "/console/inbox"}
        assert c.post(url, data={**form, "csrf": "forged"}).status_code == 403
        assert c.post(url, data=form).status_code == 403
        evil = c.post(url, data={**form, "csrf": token}, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403
        cross = c.post(url, data={**form, "csrf": token}, headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403
        assert 'lang="en"' in c.get(f"{hotline.console}/inbox").text  # nothing changed
        ok = c.post(url, data={**form, "csrf": token}, headers={"origin": hotline.inn.base})
        assert ok.status_code == 303
        assert 'lang="ru"' in c.get(f"{hotline.console}/inbox").text
        c.post(url, data={"lang": "en", "next": "/console/inbox", "csrf": token})
    with client() as c:
        # The sign-in form carries a double-submit token: without its cookie, refused.
        refused = c.post(
            f"{hotline.console}/login",
            data={"csrf": "x", "name": "tester", "password": PASSWORD},
        )
        assert refused.status_code == 403


def test_roles_are_enforced_on_the_server(hotline: Hotline) -> None:
    with signed_in(hotline, "looker") as c:  # a viewer, reading French
        token = csrf_of(c.get(f"{hotline.console}/inbox").text)
        compose = c.get(f"{hotline.console}/compose")
        assert compose.status_code == 403
        assert "Lecteur" in compose.text and "Officier de permanence" in compose.text
        for path, data in (
            ("/compose", {"type": "notification"}),
            ("/ping", {"agreement": AGREEMENT}),
            ("/alarms/1/ack", {}),
        ):
            response = c.post(f"{hotline.console}{path}", data={**data, "csrf": token})
            assert response.status_code == 403, path
        assert c.get(f"{hotline.console}/accountability").status_code == 403
        assert c.get(f"{hotline.console}/log").status_code == 200  # reading is allowed
    with signed_in(hotline, "tester") as c:  # an officer: not a supervisor
        assert c.get(f"{hotline.console}/accountability").status_code == 403
        assert c.get(f"{hotline.console}/compose").status_code == 200


def _officers(hotline: Hotline) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "detente",
            "officer",
            "list",
            "--json",
            "--home",
            str(hotline.inn.home.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_lockout_after_five_wrong_passwords_and_unlock(hotline: Hotline) -> None:
    with client() as c:
        statuses = [
            sign_in(c, hotline.inn.base, "lockhttp", f"not the password {i}").status_code
            for i in range(5)
        ]
        assert statuses == [401, 401, 401, 401, 423]
        assert sign_in(c, hotline.inn.base, "lockhttp").status_code == 423
        assert sign_in(c, hotline.inn.base, "nobody-here").status_code == 401
    row = next(r for r in _officers(hotline) if r["name"] == "lockhttp")
    assert row["locked"] is True
    subprocess.run(
        [
            sys.executable,
            "-m",
            "detente",
            "officer",
            "unlock",
            "lockhttp",
            "--home",
            str(hotline.inn.home.path),
        ],
        check=True,
        capture_output=True,
    )
    with client() as c:
        assert sign_in(c, hotline.inn.base, "lockhttp").status_code == 303


def test_the_event_stream_tells_of_a_new_message(hotline: Hotline) -> None:
    with signed_in(hotline, "tester") as c, c.stream("GET", f"{hotline.console}/events") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        lines = s.iter_lines()
        first = None
        for line in lines:
            if line.startswith("data: "):
                first = json.loads(line[6:])
                break
        assert first is not None
        started = time.monotonic()
        send(hotline.us, AGREEMENT, ["IN-CERTIN"], body=notification("for the stream"))
        for line in lines:
            if line.startswith("data: "):
                parts = json.loads(line[6:])
                if parts["log"] > first["log"]:
                    break
        assert time.monotonic() - started < 3.0


def test_compose_names_every_bad_field_and_warns_of_personal_data(hotline: Hotline) -> None:
    with signed_in(hotline, "tester") as c:
        token = csrf_of(c.get(f"{hotline.console}/compose").text)
        before = len(hotline.inn.call("GET", "/api/v1/messages", params={"direction": "out"}))
        bad = c.post(
            f"{hotline.console}/compose",
            data={
                "csrf": token,
                "type": "notification",
                "action": "send",
                "agreement": AGREEMENT,
                "tlp": "AMBER",
                "category": "ransomware",
                "severity": "4",
                "observed": "yesterday",
                "activity_text": "call +44 20 7946 0958 or mail duty@example.org",
                "activity_lang": "en",
                "concern": "other",
                "indicators_json": '{"type": "bundle", "id": "bundle--x", "objects": [',
            },
        )
        assert bad.status_code == 422
        page = bad.text
        for name in ("observed", "activity", "indicators"):
            assert f'id="err-{name}"' in page, name
        assert "not valid JSON" in page
        assert "looks like personal data" in page and 'class="pd-warning"' in page
        # A well-formed bundle with a bad pattern: the stix2 check names the object.
        bundle = {
            "type": "bundle",
            "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
            "objects": [
                {
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                    "created": "2026-11-24T10:00:00.000Z",
                    "modified": "2026-11-24T10:00:00.000Z",
                    "pattern": "[ipv4-addr:value = ",
                    "pattern_type": "stix",
                    "valid_from": "2026-11-24T10:00:00Z",
                }
            ],
        }
        form = {
            "csrf": token,
            "type": "notification",
            "agreement": AGREEMENT,
            "tlp": "AMBER",
            "category": "ransomware",
            "severity": "4",
            "observed": "2026-11-24T12:00",
            "activity_text": "C2 servers at 203.0.113.7",
            "activity_lang": "en",
            "concern": "other",
        }
        files = {
            "indicators_file": ("bundle.json", json.dumps(bundle).encode(), "application/json")
        }
        stix = c.post(f"{hotline.console}/compose", data={**form, "action": "check"}, files=files)
        assert stix.status_code == 422
        assert "indicators.objects[0]" in stix.text and 'id="err-indicators"' in stix.text
        bundle["objects"][0]["pattern"] = "[ipv4-addr:value = '198.51.100.23']"
        files = {
            "indicators_file": ("bundle.json", json.dumps(bundle).encode(), "application/json")
        }
        checked = c.post(
            f"{hotline.console}/compose", data={**form, "action": "check"}, files=files
        )
        assert checked.status_code == 200, checked.text
        assert 'class="notice"' in checked.text and "198.51.100.23" in checked.text
        # TLP above the agreement's highest label: refused by policy, shown at the TLP field.
        tlp = c.post(f"{hotline.console}/compose", data={**form, "tlp": "RED", "action": "send"})
        assert tlp.status_code == 422 and 'id="err-tlp"' in tlp.text
        after = len(hotline.inn.call("GET", "/api/v1/messages", params={"direction": "out"}))
        assert after == before  # nothing was sent
