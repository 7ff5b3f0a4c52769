"""The after-action report: what an exercise showed, as JSON, Markdown and charts.

Figures come from the nodes' own records (cases, messages, receipts) after
the run, never from the runner's intentions: time to receipt, to a person's
acknowledgement and to an answer; deadlines met and missed; escalations the
nodes fired; pings answered; messages lost (sent but not held by their
recipient: must be 0); and the ``audit`` verdict over every report between
every pair of parties.  Everything in it is exercise traffic.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal

from detente.core.timefmt import format_time, parse_time
from detente.exercise.runner import RunResult
from detente.i18n import best_language, format_time_for, translator

__all__ = ["build_aar", "check_expectations", "write_aar"]


def _secs(a: str | None, b: str | None) -> float | None:
    if a is None or b is None:
        return None
    return (parse_time(b) - parse_time(a)).total_seconds()


def _dist(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_s": statistics.median(ordered),
        "p90_s": p90,
        "max_s": ordered[-1],
    }


def build_aar(result: RunResult) -> dict[str, Any]:
    """The report's data (JSON-ready)."""
    s = result.scenario
    items: list[dict[str, Any]] = []
    escalations: list[dict[str, Any]] = []
    reminders = 0
    timeline: list[dict[str, Any]] = []
    for party, data in result.nodes.items():
        for case in data["cases"]:
            for t in case["tracked"]:
                if t["direction"] != "out":
                    continue
                items.append({"party": party, "case": case["case"], **t})
            for e in case["events"]:
                # The escalating side's own record of it ("US-CISA escalated to senior ...").
                if e["kind"].startswith("escalation:") and e["detail"].startswith(
                    f"{party} escalated"
                ):
                    escalations.append({"party": party, "case": case["case"], **e})
                if e["kind"].startswith("reminder:"):
                    reminders += 1
                timeline.append({"party": party, "at": e["at"], "kind": e["kind"]})
        timeline.extend(
            {"party": party, "at": m["created"], "kind": f"sent {m['type']}"}
            for m in data["messages"]
            if m["direction"] == "out"
        )
    # Lost: sent by one node, not held by its recipient.
    held = {
        pid: {m["id"] for m in data["messages"] if m["direction"] == "in"}
        for pid, data in result.nodes.items()
    }
    sent = [
        (pid, m)
        for pid, data in result.nodes.items()
        for m in data["messages"]
        if m["direction"] == "out"
    ]
    lost = [
        {"id": m["id"], "from": pid, "to": m["to"], "type": m["type"]}
        for pid, m in sent
        if m["id"] not in held.get(m["to"], set())
    ]
    to_receipt = [v for i in items if (v := _secs(i["sent"], i["delivered"])) is not None]
    to_ack = [v for i in items if (v := _secs(i["sent"], i["acknowledged"])) is not None]
    to_answer = [v for i in items if (v := _secs(i["sent"], i["answered"])) is not None]
    deadlines: Counter[str] = Counter()
    for i in items:
        for name, due_key, done_key in (
            ("ack", "ack_due", "acknowledged"),
            ("answer", "answer_due", "answered"),
        ):
            if i[due_key] is None:
                continue
            done = i[done_key]
            met = done is not None and parse_time(done) <= parse_time(i[due_key])
            deadlines[f"{name}_{'met' if met else 'missed'}"] += 1
    pings = [i for i in items if i["type"] == "ping"]
    audit_ok = all(r["ok"] for r in result.reports.values())
    return {
        "exercise": True,
        "scenario": s.name,
        "source": s.source,
        "start": format_time(result.start),
        "end": format_time(result.end),
        "wall_seconds": round(result.wall_seconds, 2),
        "parties": [p.id for p in s.parties],
        "messages_sent": len(sent),
        "messages_lost": len(lost),
        "lost": lost,
        "time_to_receipt": _dist(to_receipt),
        "time_to_ack": _dist(to_ack),
        "time_to_answer": _dist(to_answer),
        "deadlines": {
            k: deadlines.get(k, 0) for k in ("ack_met", "ack_missed", "answer_met", "answer_missed")
        },
        "escalations": len(escalations),
        "escalation_list": sorted(escalations, key=lambda e: e["at"]),
        "reminders": reminders,
        "pings": {
            "sent": len(pings),
            "answered": sum(1 for p in pings if p["answered"]),
            "unanswered": sum(1 for p in pings if not p["answered"]),
        },
        "audit": {"ok": audit_ok, "reports": result.reports},
        "items": items,
        "timeline": sorted(timeline, key=lambda e: e["at"]),
        "officer_actions": result.officer_actions,
        "injected": result.injected,
    }


def check_expectations(aar: dict[str, Any], result: RunResult) -> list[str]:
    """What the scenario's ``expect`` asked for that the run did not show."""
    expect = result.scenario.expect
    failures = []
    if aar["messages_lost"] != expect.lost:
        failures.append(f"messages lost: {aar['messages_lost']}, expected {expect.lost}")
    for key in ("ack_met", "ack_missed", "answer_met", "answer_missed"):
        want = getattr(expect, key)
        if want is not None and aar["deadlines"][key] != want:
            failures.append(f"deadlines {key}: {aar['deadlines'][key]}, expected {want}")
    if expect.escalations is not None and aar["escalations"] != expect.escalations:
        failures.append(f"escalations: {aar['escalations']}, expected {expect.escalations}")
    if expect.pongs is not None and aar["pings"]["answered"] != expect.pongs:
        failures.append(f"pings answered: {aar['pings']['answered']}, expected {expect.pongs}")
    if not aar["audit"]["ok"]:
        failures.append("audit: a report between two parties does not hold up")
    return failures


# Chart text is drawn by matplotlib with its default font (DejaVu Sans), which has
# Latin (with Vietnamese and French diacritics) and Cyrillic, but no CJK or
# Devanagari glyphs, and matplotlib neither shapes nor reorders Arabic.  Charts
# are therefore labelled in the reader's language only for these; for Arabic,
# Chinese and Hindi they stay in English (the Markdown report, which any viewer
# renders with the system's fonts, is in the reader's language).  No font is
# ever downloaded.
CHART_LANGUAGES = ("en", "fr", "es", "ru", "vi")


def chart_language(lang: str) -> str:
    """The language the charts are labelled in for a reader of ``lang``."""
    reader = best_language(lang)
    return reader if reader in CHART_LANGUAGES else "en"


def _banner(lang: str) -> str:
    """The EXERCISE marking: the English word always, the reader's word after it."""
    reader = best_language(lang)
    return "EXERCISE" if reader == "en" else f"EXERCISE / {translator(reader)('EXERCISE')}"


def _fmt(seconds: float | None, lang: str = "en") -> str:
    if seconds is None:
        return "–"
    t, locale = translator(lang), best_language(lang)
    if seconds < 120:
        return t("{value} s").format(value=format_decimal(round(seconds), locale=locale))
    if seconds < 7200:
        value = format_decimal(round(seconds / 60, 1), format="0.0", locale=locale)
        return t("{value} min").format(value=value)
    value = format_decimal(round(seconds / 3600, 1), format="0.0", locale=locale)
    return t("{value} h").format(value=value)


def _markdown(aar: dict[str, Any], failures: list[str], charts: list[str], lang: str = "en") -> str:
    reader = best_language(lang)
    t = translator(reader)
    d = aar["deadlines"]
    p = aar["pings"]
    held = t("all hold up") if aar["audit"]["ok"] else t("FAILED")
    lines = [
        f"# {_banner(reader)} — "
        + t("After-action report: {scenario}").format(scenario=aar["scenario"]),
        "",
        f"**{_banner(reader)}.** " + t("Exercise traffic only; nothing here is a real incident."),
        "",
        t("Source: {source}").format(source=aar["source"]),
        "",
        t("Scenario time {start} to {end}; played in {seconds}. Parties: {parties}.").format(
            start=format_time_for(aar["start"], reader),
            end=format_time_for(aar["end"], reader),
            seconds=_fmt(aar["wall_seconds"], reader),
            parties=", ".join(aar["parties"]),
        ),
        "",
        f"| {t('Measure')} | {t('Value')} |",
        "| --- | --- |",
        f"| {t('Messages sent')} | {aar['messages_sent']} |",
        f"| {t('Messages lost')} | {aar['messages_lost']} |",
        f"| {t('Acknowledgements in time / late or missing')} | "
        f"{d['ack_met']} / {d['ack_missed']} |",
        f"| {t('Answers in time / late or missing')} | {d['answer_met']} / {d['answer_missed']} |",
        f"| {t('Reminders')} | {aar['reminders']} |",
        f"| {t('Escalations')} | {aar['escalations']} |",
        f"| {t('Pings sent / answered / unanswered')} | "
        f"{p['sent']} / {p['answered']} / {p['unanswered']} |",
        f"| {t('Audit of every report')} | {held} |",
        "",
        f"| {t('Time from sending to')} | {t('Count')} | {t('Median')} | "
        f"{t('90th percentile')} | {t('Longest')} |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label in (
        ("time_to_receipt", "the machine receipt"),
        ("time_to_ack", "a person's acknowledgement"),
        ("time_to_answer", "an answer"),
    ):
        dist = aar[key]
        lines.append(
            f"| {t(label)} | {dist['n']} | {_fmt(dist.get('median_s'), reader)} | "
            f"{_fmt(dist.get('p90_s'), reader)} | {_fmt(dist.get('max_s'), reader)} |"
        )
    lines += ["", f"## {t('Escalations')}", ""]
    # The detail is the node's own record, as it wrote it.
    lines += [
        f"- {format_time_for(e['at'], reader)} {e['detail']}" for e in aar["escalation_list"]
    ] or [f"- {t('None')}"]
    lines += ["", f"## {t('Audit per report')}", ""]
    for pair, r in aar["audit"]["reports"].items():
        lines.append(
            "- "
            + t("{pair}: items: {count}; {verdict}").format(
                pair=pair, count=r["items"], verdict=t("holds up") if r["ok"] else t("FAILED")
            )
        )
    lines += ["", f"## {t('Expectations')}", ""]
    # What was not met is said in English, as the checks word it.
    lines += [f"- {t('Not met: {failure}').format(failure=f)}" for f in failures] or [
        f"- {t('All met')}"
    ]
    lines += ["", f"## {t('Charts')}", ""] + [f"![{c}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def _charts(aar: dict[str, Any], out: Path, lang: str = "en") -> list[str]:
    import matplotlib  # noqa: PLC0415 - heavy, and only for the report

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = chart_language(lang)
    t = translator(shown)
    banner = _banner(shown)
    start = parse_time(aar["start"])
    names = []
    parties = aar["parties"]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(parties) + 2))
    markers = {
        "sent": ("o", "tab:blue"),
        "ack": ("s", "tab:green"),
        "response": ("D", "tab:olive"),
        "escalation": ("^", "tab:red"),
        "reminder": ("v", "tab:orange"),
        "overdue": ("x", "tab:red"),
        "pong": ("P", "tab:purple"),
    }
    legend = {  # catalogue keys of the legend's labels
        "sent": "Sent",
        "ack": "type:ack",
        "response": "type:response",
        "escalation": "Escalation",
        "reminder": "Reminder",
        "overdue": "Overdue",
        "pong": "type:pong",
    }
    seen_labels: set[str] = set()
    for e in aar["timeline"]:
        kind = e["kind"].split(":")[0].split(" ")[0]
        marker, colour = markers.get(kind, (".", "tab:gray"))
        minutes = (parse_time(e["at"]) - start).total_seconds() / 60
        label = (t(legend[kind]) if kind in legend else kind) if kind not in seen_labels else None
        seen_labels.add(kind)
        ax.scatter(minutes, parties.index(e["party"]), marker=marker, color=colour, label=label)
    ax.set_yticks(range(len(parties)), parties)
    ax.set_xlabel(t("Scenario minutes"))
    ax.set_title(
        f"{banner} — " + t("{scenario}: timeline per party").format(scenario=aar["scenario"])
    )
    if seen_labels:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=100)
    plt.close(fig)
    names.append("timeline.png")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key, label in zip(
        axes,
        ("time_to_receipt", "time_to_ack", "time_to_answer"),
        (
            "Time to receipt (s)",
            "Time to acknowledgement (min)",
            "Time to answer (min)",
        ),
        strict=True,
    ):
        values = [
            v / (1 if key == "time_to_receipt" else 60)
            for i in aar["items"]
            if (
                v := _secs(
                    i["sent"],
                    i[
                        {
                            "time_to_receipt": "delivered",
                            "time_to_ack": "acknowledged",
                            "time_to_answer": "answered",
                        }[key]
                    ],
                )
            )
            is not None
        ]
        ax.hist(values or [0], bins=20, color="tab:blue")
        ax.set_title(t(label))
    fig.suptitle(f"{banner} — {aar['scenario']}")
    fig.tight_layout()
    fig.savefig(out / "times.png", dpi=100)
    plt.close(fig)
    names.append("times.png")

    d = aar["deadlines"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        [
            t("Acknowledgement: met"),
            t("Acknowledgement: missed"),
            t("Answer: met"),
            t("Answer: missed"),
            t("Escalations"),
        ],
        [d["ack_met"], d["ack_missed"], d["answer_met"], d["answer_missed"], aar["escalations"]],
        color=["tab:green", "tab:red", "tab:green", "tab:red", "tab:orange"],
    )
    ax.tick_params(axis="x", labelrotation=20, labelsize="small")
    ax.set_title(f"{banner} — " + t("Deadlines met and missed, and escalations"))
    fig.tight_layout()
    fig.savefig(out / "deadlines.png", dpi=100)
    plt.close(fig)
    names.append("deadlines.png")
    return names


def write_aar(result: RunResult, out: Path, lang: str = "en") -> tuple[dict[str, Any], list[str]]:
    """Write report.json, report.md and the charts into ``out``; return data and failures.

    report.md (and, where the default font can draw the script, the charts) is
    in the reader's language ``lang``; report.json holds codes and wire times.
    """
    out.mkdir(parents=True, exist_ok=True)
    aar = build_aar(result)
    failures = check_expectations(aar, result)
    aar["expectations_failed"] = failures
    charts = _charts(aar, out, lang)
    (out / "report.json").write_text(json.dumps(aar, ensure_ascii=False, indent=1) + "\n")
    (out / "report.md").write_text(_markdown(aar, failures, charts, lang), encoding="utf-8")
    return aar, failures
