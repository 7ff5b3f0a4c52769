"""The duty officer's console end to end, in a real Chromium, against real nodes on loopback.

US-CISA and IN-CERTIN run as ``detente serve --manual-clock`` processes; the
officers of IN-CERTIN's console were made with ``detente officer add``.  The
browser is Debian's Chromium, driven by Playwright (no browser download).

Shown here: an officer signs in and sees a notification that arrived from
another node, rendered in Hindi; acknowledges it (the ack names her); answers
a request with action taken; a deadline passes on the test-driven clock and
the escalation appears live, without reload; an Arabic page is right to
left; a viewer cannot send; a forged CSRF token is refused; five wrong
passwords lock an account; ping rounds, exercise reports, fork alarms and
the accountability report with its audit.  Screenshots go to the artefacts
directory printed at the end of the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from console.support import AGREEMENT, PASSWORD, Hotline, chromium_path
from detente.i18n import translator
from detente.node.clock import to_ms
from detente.store.db import open_engine
from detente.store.schema import alarms
from forms_examples import TLP_RED_MARKING, notification, stix_bundle
from node.cluster import send, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HI, AR = translator("hi"), translator("ar")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (.[test])"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=path, headless=True, args=["--headless", "--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Pages of IN-CERTIN's console, one browser context per officer."""

    def __init__(self, browser: Any, hotline: Hotline, artefacts: Path) -> None:
        self.browser, self.hotline, self.artefacts = browser, hotline, artefacts
        self.pages: dict[str, Any] = {}

    def page(self, officer: str) -> Any:
        if officer not in self.pages:
            context = self.browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{self.hotline.console}/login")
            page.fill("#name", officer)
            page.fill("#password", PASSWORD)
            page.click("form.login button[type=submit]")
            page.wait_for_url("**/console/inbox")
            self.pages[officer] = page
        return self.pages[officer]

    def go(self, officer: str, path: str) -> Any:
        page = self.page(officer)
        response = page.goto(f"{self.hotline.console}{path}")
        assert response is not None
        assert_accessible(page)
        return page

    def shot(self, page: Any, name: str) -> None:
        page.screenshot(path=str(self.artefacts / f"{name}.png"), full_page=True)

    def close(self) -> None:
        for page in self.pages.values():
            page.context.close()


def assert_accessible(page: Any) -> None:
    """Every control has a label (or is a button with text); the page states its language."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll(
                'input:not([type=hidden]), select, textarea, button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                    && !(e.tagName === 'BUTTON' && e.textContent.trim()))
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []
    assert page.evaluate("document.documentElement.lang")


@pytest.fixture(scope="module")
def console(browser: Any, hotline: Hotline, artefacts: Path) -> Iterator[Console]:
    c = Console(browser, hotline, artefacts)
    try:
        yield c
    finally:
        c.close()


def post(hotline: Hotline, msg_type: str, body: dict[str, Any], **kw: Any) -> str:
    (sent,) = send(hotline.us, AGREEMENT, ["IN-CERTIN"], msg_type=msg_type, body=body, **kw)
    return str(sent["id"])


def test_notification_arrives_live_rendered_in_hindi_and_is_acknowledged(
    console: Console, hotline: Hotline
) -> None:
    page = console.go("sharma", "/inbox")
    assert page.evaluate("document.documentElement.lang") == "hi"
    assert page.inner_text("h1") == HI("Inbox")
    page.keyboard.press("Tab")  # keyboard: the first stop skips to the content
    assert page.evaluate("document.activeElement.className") == "skip"
    page.evaluate("window.__marker = 'not reloaded'")

    body = {
        **notification("C2 servers of a ransomware operation at 203.0.113.7", severity=4),
        "category": "ransomware",
        "indicators": stix_bundle(TLP_RED_MARKING),
        "pap": "AMBER",
        "handling": ["H1"],
    }
    started = time.monotonic()
    message = post(hotline, "notification", body)
    row = page.wait_for_selector(f"tr[data-message='{message}']", timeout=10_000)
    shown_after = time.monotonic() - started
    hotline.notes["first_shown_s"] = shown_after
    print(f"notification sent by US-CISA shown in IN-CERTIN's open inbox after {shown_after:.3f} s")
    assert shown_after < 3.0  # sent, delivered, receipted and shown; the bench measures <= 1 s
    assert page.evaluate("window.__marker") == "not reloaded"
    assert row.get_attribute("data-group") == "new"
    assert HI("New: awaiting acknowledgement") in row.inner_text()
    console.shot(page, "inbox-hi")

    page.click(f"tr[data-message='{message}'] a")
    page.wait_for_url("**/console/cases/**")
    assert_accessible(page)
    card = page.locator(f"#m-{message}")
    content = card.locator("table.form").inner_text()
    for label in (HI("category:ransomware"), HI("field:activity"), HI("severity:4")):
        assert label in content
    original = card.locator("blockquote")
    assert original.get_attribute("lang") == "en"
    assert "203.0.113.7" in original.inner_text()
    assert "[en]" in card.locator("p.note[data-lang-tag]").inner_text()
    tlp = card.locator("h3 .tlp")
    assert tlp.inner_text() == "TLP:AMBER"  # TLP 2.0: capitals, never translated
    assert tlp.evaluate("e => getComputedStyle(e).color") == "rgb(255, 192, 0)"
    assert tlp.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(0, 0, 0)"
    indicator = card.locator("table.indicators tbody tr").first
    assert "198.51.100.23" in indicator.inner_text()
    assert indicator.locator(".tlp").inner_text() == "TLP:RED"  # the object's own marking
    assert card.locator(".labels .tlp").first.inner_text() == "PAP:AMBER"
    assert card.locator("[data-proof=receipt-issued]").count() == 1
    assert page.locator(".ladder li[aria-current=step]").first.inner_text() == HI("level:technical")
    console.shot(page, "case-hi")

    # Keyboard: focus the button and press Enter.
    page.focus("[data-action=ack]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert (
        "Duty officer Sharma" in page.locator(f"[data-message='{message}'] dd.acked").inner_text()
    )
    wait_until(
        lambda: (
            (hotline.tracked(hotline.us, message) or {}).get("acknowledged_by")
            == "Duty officer Sharma"
        ),
        20,
        "the acknowledgement at US-CISA, naming the officer",
    )
    events = page.locator("tr[data-event=ack]").inner_text()
    assert "Duty officer Sharma" in events and "sharma" in events  # who, and which account
    hotline.notes["acked"] = message


def test_request_is_answered_with_action_taken(console: Console, hotline: Hotline) -> None:
    request = post(
        hotline,
        "request",
        {
            "kind": "takedown",
            "legal_basis": ["2013 US-RU cyber CBM package, art. 2"],
            "facts": {"lang": "en", "text": "ransomware operators control 198.51.100.23"},
            "urgency": "urgent",
        },
    )
    page = console.page("sharma")
    wait_until(lambda: hotline.tracked(hotline.inn, request) is not None, 20, "the request")
    page = console.go("sharma", "/inbox")
    page.click(f"tr[data-message='{request}'] a")
    page.wait_for_url("**/console/cases/**")
    page.click(f"[data-message='{request}'] [data-action=ack]")
    page.wait_for_load_state()
    page.click(f"[data-message='{request}'] [data-action=respond]")
    page.wait_for_url("**/console/compose?**")
    assert_accessible(page)
    assert page.input_value("#f-request") == request
    page.select_option("#f-status", "action-taken")
    page.fill("#f-details", "C2 सर्वर ज़ब्त कर लिए गए")
    page.select_option("#f-details-lang", "hi")
    with page.expect_navigation():
        page.click("button[value=send]")
    assert "/console/cases/" in page.url
    assert page.locator(".notice").inner_text() == HI("Sent: {type}").format(
        type=HI("type:response")
    )
    wait_until(
        lambda: (hotline.tracked(hotline.us, request) or {}).get("answer_status") == "action-taken",
        20,
        "the answer at US-CISA",
    )
    page.reload()
    assert HI("status:action-taken") in page.locator(f"[data-message='{request}']").inner_text()


def test_escalation_appears_live_when_a_deadline_passes(console: Console, hotline: Hotline) -> None:
    # Severity 5: a person must acknowledge within 15 minutes (the policy's table).
    urgent = post(hotline, "notification", notification("ransomware on the grid", severity=5))
    page = console.go("sharma", "/inbox")
    page.wait_for_selector(f"tr[data-message='{urgent}'][data-group=new]")
    page.evaluate("window.__marker = 'not reloaded'")
    updates = page.evaluate("window.detenteConsole.updates")

    hotline.advance(16 * 60)  # nobody acknowledged: US-CISA's node escalates to senior
    row = page.wait_for_selector(f"tr[data-message='{urgent}'][data-level=senior]", timeout=15_000)
    assert page.evaluate("window.__marker") == "not reloaded"
    assert page.evaluate("window.detenteConsole.updates") > updates
    assert row.get_attribute("data-group") == "overdue"  # our acknowledgement is late too
    assert HI("level:senior") in row.inner_text()
    page.click(f"tr[data-message='{urgent}'] a")
    page.wait_for_url("**/console/cases/**")
    assert page.locator("tr[data-event='escalation:senior']").count() == 1
    assert page.locator(".ladder li[aria-current=step]").first.inner_text() == HI("level:senior")


def test_ping_round_from_the_directory(console: Console, hotline: Hotline) -> None:
    page = console.go("sharma", "/directory")
    with page.expect_navigation():
        page.click("form[action$='/ping'] button[type=submit]")
    assert "round=" in page.url

    def pings() -> list[dict[str, Any]]:
        inbox = hotline.us.call("GET", "/api/v1/messages", params={"direction": "in"})
        return [m for m in inbox if m["type"] == "ping"]

    wait_until(lambda: bool(pings()), 20, "the ping at US-CISA")
    hotline.advance(150)
    send(
        hotline.us,
        AGREEMENT,
        None,
        msg_type="pong",
        body={"ping": pings()[0]["id"], "officer": "US duty officer"},
    )
    cell = page.locator("tr[data-party='US-CISA'] td.answer-time")
    wait_until(lambda: cell.inner_text() not in ("", "–"), 15, "the answer time, live")
    assert "1 / 1" in page.locator("tr[data-party='US-CISA']").inner_text()
    console.shot(page, "directory-hi")


def test_arabic_pages_are_right_to_left(console: Console, hotline: Hotline) -> None:
    page = console.go("amira", "/inbox")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.inner_text("h1") == AR("Inbox")
    page = console.go("amira", f"/cases/{_case_of(hotline, hotline.notes['acked'])}")
    assert page.evaluate("getComputedStyle(document.querySelector('main')).direction") == "rtl"
    assert AR("category:ransomware") in page.inner_text("main")
    console.shot(page, "case-ar")


def _case_of(hotline: Hotline, message_id: str) -> str:
    for case in hotline.inn.call("GET", "/api/v1/cases", params={"limit": 1000}):
        detail = hotline.inn.call("GET", f"/api/v1/cases/{case['case']}")
        if any(t["message"] == message_id for t in detail["tracked"]):
            return str(case["case"])
    raise AssertionError(message_id)


def test_a_viewer_cannot_send(console: Console, hotline: Hotline) -> None:
    page = console.go("vikram", "/inbox")
    assert page.locator("nav a[href$='/compose']").count() == 0
    response = page.goto(f"{hotline.console}/compose")
    assert response is not None and response.status == 403
    assert "Viewer" in page.inner_text("main") or "viewer" in page.inner_text("main")
    fresh = post(hotline, "notification", notification("a viewer must not acknowledge this"))
    wait_until(lambda: hotline.tracked(hotline.inn, fresh) is not None, 20, "the notification")
    page = console.go("vikram", f"/cases/{_case_of(hotline, fresh)}")
    assert page.locator("[data-action=ack]").count() == 0
    # Even a well-formed request with the viewer's own valid CSRF token is refused.
    status = page.evaluate(
        """async ([url, csrf]) => (await fetch(url, {method: 'POST',
              headers: {'content-type': 'application/x-www-form-urlencoded'},
              body: 'csrf=' + encodeURIComponent(csrf)})).status""",
        [
            f"{hotline.console}/messages/{fresh}/ack",
            page.get_attribute("form[action$='/logout'] input[name=csrf]", "value"),
        ],
    )
    assert status == 403
    assert (hotline.tracked(hotline.inn, fresh) or {})["acknowledged"] is None
    hotline.notes["unacked"] = fresh


def test_a_forged_csrf_token_is_refused(console: Console, hotline: Hotline) -> None:
    target = hotline.notes["unacked"]
    page = console.go("sharma", f"/cases/{_case_of(hotline, target)}")
    page.evaluate(
        "document.querySelectorAll('input[name=csrf]').forEach(i => { i.value = 'forged' })"
    )
    with page.expect_navigation() as nav:
        page.click(f"[data-message='{target}'] [data-action=ack]")
    assert nav.value.status == 403
    assert HI("Refused: the form's security token is missing or wrong. Reload the page.") in (
        page.inner_text("main")
    )
    assert (hotline.tracked(hotline.inn, target) or {})["acknowledged"] is None


def test_five_wrong_passwords_lock_the_account(console: Console, hotline: Hotline) -> None:
    context = console.browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{hotline.console}/login")
        for attempt in range(5):
            page.fill("#name", "lockme")
            page.fill("#password", f"wrong password {attempt}")
            with page.expect_navigation() as nav:
                page.click("form.login button[type=submit]")
            expected = 423 if attempt == 4 else 401
            assert nav.value.status == expected, attempt
        assert "locked" in page.inner_text("#login-error")
        page.fill("#name", "lockme")
        page.fill("#password", PASSWORD)  # the right password no longer opens it
        with page.expect_navigation() as nav:
            page.click("form.login button[type=submit]")
        assert nav.value.status == 423
        assert "/console/login" in page.url
    finally:
        context.close()


def _write_aar(folder: Path) -> None:
    """An after-action report with its charts, as ``detente exercise run`` writes one."""
    from detente.exercise import aar as aar_module

    folder.mkdir(parents=True, exist_ok=True)
    start = "2021-11-04T08:00:00.000Z"
    report = {
        "exercise": True,
        "scenario": "UN points-of-contact ping test",
        "source": "seeds/003: First Committee backs the Russia-US draft resolution on ICT security",
        "start": start,
        "end": "2021-11-04T11:00:00.000Z",
        "wall_seconds": 41.3,
        "parties": ["UN-ODA", "US-CISA", "RU-NCCC", "IN-CERTIN"],
        "messages_sent": 9,
        "messages_lost": 0,
        "lost": [],
        "time_to_receipt": {"n": 3, "median_s": 0.04, "p90_s": 0.09, "max_s": 0.09},
        "time_to_ack": {"n": 2, "median_s": 600.0, "p90_s": 1200.0, "max_s": 1200.0},
        "time_to_answer": {"n": 2, "median_s": 600.0, "p90_s": 4300.0, "max_s": 4300.0},
        "deadlines": {"ack_met": 1, "ack_missed": 1, "answer_met": 1, "answer_missed": 2},
        "escalations": 1,
        "escalation_list": [
            {
                "party": "UN-ODA",
                "at": "2021-11-04T09:06:00.000Z",
                "detail": "UN-ODA escalated to senior (response-overdue)",
            }
        ],
        "reminders": 2,
        "pings": {"sent": 3, "answered": 2, "unanswered": 1},
        "audit": {"ok": True, "reports": {}},
        "items": [
            {
                "sent": start,
                "delivered": "2021-11-04T08:00:00.040Z",
                "acknowledged": "2021-11-04T08:10:00.000Z",
                "answered": "2021-11-04T08:10:00.000Z",
            },
            {
                "sent": start,
                "delivered": "2021-11-04T08:00:00.090Z",
                "acknowledged": "2021-11-04T08:20:00.000Z",
                "answered": "2021-11-04T09:11:40.000Z",
            },
        ],
        "timeline": [
            {"party": "UN-ODA", "at": "2021-11-04T08:05:00.000Z", "kind": "sent ping"},
            {"party": "US-CISA", "at": "2021-11-04T08:10:00.000Z", "kind": "pong"},
            {"party": "RU-NCCC", "at": "2021-11-04T08:20:00.000Z", "kind": "pong"},
            {"party": "UN-ODA", "at": "2021-11-04T08:50:00.000Z", "kind": "reminder:answer"},
            {"party": "UN-ODA", "at": "2021-11-04T09:05:00.000Z", "kind": "overdue:answer"},
            {"party": "UN-ODA", "at": "2021-11-04T09:06:00.000Z", "kind": "escalation:senior"},
        ],
        "officer_actions": [],
        "injected": [],
        "expectations_failed": [],
    }
    charts = aar_module._charts(report, folder)
    assert len(charts) == 3
    (folder / "report.json").write_text(json.dumps(report, indent=1))


def test_exercise_reports_and_the_exercise_banner(console: Console, hotline: Hotline) -> None:
    _write_aar(hotline.inn.home.path / "exercises" / "un-poc-2021")
    page = console.go("sharma", "/exercises")
    assert page.locator(".exercise-banner").count() == 1
    with page.expect_navigation():
        page.click("a[href$='/exercises/un-poc-2021']")
    assert_accessible(page)
    assert "EXERCISE" in page.inner_text(".exercise-banner")
    images = page.locator("figure.chart img")
    assert images.count() == 3
    for i in range(3):
        images.nth(i).scroll_into_view_if_needed()
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    console.shot(page, "exercise-report-hi")

    # Exercise traffic in the inbox: marked on its row, and the page says so.
    (drill,) = hotline.us.call(
        "POST",
        "/api/v1/messages",
        json={
            "agreement": AGREEMENT,
            "to": ["IN-CERTIN"],
            "type": "notification",
            "tlp": "GREEN",
            "body": notification("drill: simulated DDoS"),
            "exercise": True,
        },
    )
    page = console.go("sharma", "/inbox?exercise=exercise")
    page.wait_for_selector(f"tr[data-message='{drill['id']}'] .badge.exercise")
    assert page.locator(".exercise-banner").count() == 1


def test_fork_alarm_is_red_on_every_page_until_a_supervisor_acknowledges_it(
    console: Console, hotline: Hotline
) -> None:
    page = console.go("sharma", "/directory")
    assert page.locator(".alarm-banner").count() == 0
    engine = open_engine(hotline.inn.home.config().db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(alarms).values(
                    kind="fork",
                    peer="US-CISA",
                    detail="US-CISA's log forked: two roots for one tree size",
                    evidence=b"{}",
                    created_at=to_ms(time_now()),
                )
            )
    finally:
        engine.dispose()
    banner = page.wait_for_selector(".alarm-banner[role=alert]", timeout=10_000)  # live
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(176, 0, 0)"
    # An officer sees it everywhere but cannot acknowledge it.
    page = console.go("sharma", "/log")
    assert page.locator(".alarm-banner").count() == 1
    assert page.locator("tr.alarm-fork [data-action=alarm-ack]").count() == 0
    console.shot(page, "log-fork-alarm-hi")
    watcher = console.go("sharma", "/inbox")

    boss = console.go("amira", "/log")
    with boss.expect_navigation():
        boss.click("tr.alarm-fork [data-action=alarm-ack]")
    assert boss.locator(".alarm-banner").count() == 0
    watcher.wait_for_selector(".alarm-banner", state="detached", timeout=10_000)  # live


def time_now() -> Any:
    from detente.node.clock import SystemClock

    return SystemClock().now()


def test_accountability_report_export_and_audit(
    console: Console, hotline: Hotline, artefacts: Path
) -> None:
    since = hotline.now()[:10]
    page = console.go("amira", f"/accountability?counterparty=US-CISA&since={since}")
    assert page.locator("table.counts-table tbody tr").count() >= 1
    with page.expect_download() as download:
        page.click("a[href*='/accountability/export']")
    bundle = artefacts / "report-IN-CERTIN-US-CISA.json"
    download.value.save_as(bundle)
    report = json.loads(bundle.read_text())
    assert report["report"]["counterparty"] == "US-CISA"
    page.set_input_files("#a-bundle", str(bundle))
    with page.expect_navigation():
        page.click("form[action$='/audit'] button[type=submit]")
    verdict = page.locator("#verdict")
    assert "ok" in (verdict.get_attribute("class") or "")
    assert AR("VERDICT: the report is authentic and every claim in it is proven") in (
        verdict.inner_text()
    )
    console.shot(page, "accountability-audit-ar")
    # Only a supervisor sees it.
    response = console.page("sharma").goto(f"{hotline.console}/accountability")
    assert response is not None and response.status == 403
