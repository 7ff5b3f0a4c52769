"""The console's speed: the inbox over 10,000 cases, and how soon a new message shows.

1. Two in-process nodes (US-CISA, IN-CERTIN) exchange 10,000 cases by
   function call (notifications of every severity, requests, pings, some
   acknowledged, some exercise traffic) — the store is then what a busy
   node's is.
2. IN-CERTIN's real app (``create_app``: the REST API and the console) is
   served by uvicorn on 127.0.0.1; an officer signs in over HTTP.
3. Server time of each page, from the console's ``Server-Timing`` header
   (the handler: queries, grouping, template), p50/p95 over repeated
   requests: the inbox (first page, filtered, last page), a case, the
   directory.  Target: inbox <= 300 ms.
4. Latency of a new message: US-CISA delivers an envelope to IN-CERTIN's
   federation endpoint over HTTP; from the moment the delivery answers with
   its receipt (committed) to the moment an open console has been told over
   server-sent events *and* has fetched the inbox showing the message (what
   the page's script does).  Target: <= 1 s.

Usage: python bench/bench_console.py [--cases 10000] [--runs 30] [--messages 20]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from detente.api.app import create_app
from detente.console.accounts import Officers
from detente.core.agreement import Agreement
from detente.core.envelope import Content
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time
from detente.exercise.inprocess import _deliver
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.service import Node
from detente.store.db import open_engine

PASSWORD = "bench password 2026"  # noqa: S105 - a throw-away account
CATEGORIES = ("ransomware", "ddos", "phishing", "botnet-c2", "intrusion-government")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(i: int) -> tuple[str, dict[str, Any]]:
    if i % 10 == 7:
        return "request", {
            "kind": ("takedown", "information", "preservation")[i % 3],
            "legal_basis": ["bench agreement, art. 2"],
            "facts": {"lang": "en", "text": f"bench request {i}"},
            "urgency": ("normal", "urgent", "emergency")[i % 3],
        }
    if i % 10 == 9:
        return "ping", {"round": f"bench-{i // 100}"}
    return "notification", {
        "category": CATEGORIES[i % len(CATEGORIES)],
        "severity": i % 6,
        "observed": "2026-11-24T12:00:00.000Z",
        "activity": {"lang": "en", "text": f"bench activity {i} at 203.0.113.{i % 250}"},
        "concern": "infrastructure-in-your-jurisdiction",
    }


def build(root: Path, n_cases: int, port: int) -> tuple[NodeHome, NodeHome]:
    homes = [
        NodeHome.init(
            root / "us", party_id="US-CISA", names={"en": "CISA"}, country="US", listen_port=1
        ),
        NodeHome.init(
            root / "in",
            party_id="IN-CERTIN",
            names={"en": "CERT-In"},
            country="IN",
            listen_port=port,
        ),
    ]
    now = SystemClock().now()
    agreement = Agreement(
        id="bench",
        version=1,
        titles={"en": "bench"},
        members=tuple(h.card() for h in homes),
        policy=Policy(frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    for h in homes:
        agreement = agreement.sign(h.config().party_id, h.keys())
    us, inn = Node(homes[0]), Node(homes[1])
    try:
        for n in (us, inn):
            n.install_agreement(agreement)
        started = time.perf_counter()
        for lo in range(0, n_cases, 500):
            specs = []
            for i in range(lo, min(lo + 500, n_cases)):
                msg_type, form = body(i)
                tlp = "CLEAR" if msg_type == "ping" else "AMBER"
                specs.append(
                    us.spec(
                        Content(msg_type, tlp, form), ["IN-CERTIN"], "bench", exercise=i % 13 == 0
                    )
                )
            sent = us.send_many(specs)
            _deliver(us, inn)
            acks = [
                inn.spec(
                    Content(
                        "ack",
                        "AMBER",
                        {
                            "message": e.id,
                            "officer": "Bench officer",
                            "read_at": format_time(SystemClock().now()),
                        },
                    ),
                    None,
                    None,
                )
                for k, e in enumerate(sent)
                if k % 3 == 0 and e.type != "ping"
            ]
            if acks:
                inn.send_many(acks)
            _deliver(inn, us)
            print(f"  {min(lo + 500, n_cases):>6} cases", end="\r", flush=True)
        print(f"  {n_cases} cases built in {time.perf_counter() - started:.1f} s")
    finally:
        us.close()
        inn.close()
    engine = open_engine(homes[1].config().db_url)
    Officers(engine).add("bench", "Bench officer", "officer", "en", PASSWORD)
    engine.dispose()
    return homes[0], homes[1]


def sign_in(client: httpx.Client) -> None:
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    done = client.post(
        "/console/login", data={"csrf": token.group(1), "name": "bench", "password": PASSWORD}
    )
    assert done.status_code == 303, done.text


def timing(response: httpx.Response) -> float:
    found = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    assert response.status_code == 200, response.status_code
    assert found is not None
    return float(found.group(1))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="detente-bench-console-"))
    port = free_port()
    try:
        print(f"building {args.cases} cases between two in-process nodes ...")
        us_home, in_home = build(root, args.cases, port)
        app = create_app(in_home.path, run_scheduler=False)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                sign_in(client)
                inbox = client.get("/console/inbox")
                case_id = re.search(r"/console/cases/([0-9a-f-]+)", inbox.text)
                assert case_id is not None
                total = re.search(r'data-count="settled">([^<]+)<', inbox.text)
                print(
                    f"inbox: {len(inbox.content) / 1024:.0f} KiB, settled {total and total.group(1)}"
                )
                first = f"inbox, first page (100 of {args.cases:,})"
                pages = {
                    first: "/console/inbox",
                    "inbox, filtered (requests)": "/console/inbox?type=request",
                    "inbox, filtered (overdue)": "/console/inbox?group=overdue",
                    "inbox, page 50": f"/console/inbox?offset={100 * 50}",
                    "case view": f"/console/cases/{case_id.group(1)}",
                    "directory": "/console/directory",
                }
                results: dict[str, dict[str, float]] = {}
                for name, path in pages.items():
                    client.get(path)  # warm
                    times = [timing(client.get(path)) for _ in range(args.runs)]
                    results[name] = {
                        "p50_ms": statistics.median(times),
                        "p95_ms": pct(times, 0.95),
                        "max_ms": max(times),
                    }
                    print(
                        f"{name:<38} server time p50 {results[name]['p50_ms']:7.1f} ms   "
                        f"p95 {results[name]['p95_ms']:7.1f} ms   max {results[name]['max_ms']:7.1f} ms"
                    )
                latency = live_latency(base, client, us_home, args.messages)
                print(
                    f"new message -> open console (SSE + page fetch), {len(latency)} messages: "
                    f"p50 {statistics.median(latency) * 1000:.0f} ms   p95 "
                    f"{pct(latency, 0.95) * 1000:.0f} ms   max {max(latency) * 1000:.0f} ms"
                )
                ok = results[first]["p95_ms"] <= 300 and max(latency) <= 1.0
                print(
                    json.dumps(
                        {
                            "cases": args.cases,
                            "pages": results,
                            "live_p50_ms": statistics.median(latency) * 1000,
                            "live_p95_ms": pct(latency, 0.95) * 1000,
                            "targets_met": ok,
                        }
                    )
                )
        finally:
            server.should_exit = True
            thread.join(timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def live_latency(base: str, client: httpx.Client, us_home: NodeHome, count: int) -> list[float]:
    """From a delivery's receipt to an open console showing the message."""
    us = Node(us_home)
    out: list[float] = []
    try:
        with (
            httpx.Client(base_url=base, timeout=30, cookies=client.cookies) as sse,
            sse.stream("GET", "/console/events") as stream,
        ):
            lines = stream.iter_lines()
            last = None
            for line in lines:
                if line.startswith("data: "):
                    last = json.loads(line[6:])
                    break
            for i in range(count):
                content = Content("notification", "AMBER", body(i * 10)[1])
                (env,) = us.send(content, ["IN-CERTIN"], "bench")
                delivered = client.post(
                    "/federation/v1/deliver",
                    json={"envelopes": [env.to_json()], "known_size": None},
                )
                assert delivered.status_code == 200, delivered.text
                t0 = time.perf_counter()  # the receipt is back: committed at IN-CERTIN
                for line in lines:
                    if line.startswith("data: "):
                        parts = json.loads(line[6:])
                        if last is None or parts["log"] > last["log"]:
                            last = parts
                            break
                page = client.get("/console/inbox")
                assert env.id in page.text
                out.append(time.perf_counter() - t0)
                time.sleep(0.05)
    finally:
        us.close()
    return out


if __name__ == "__main__":
    main()
