"""``detente exercise``: check a scenario, run it on a compressed clock, write the report."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from detente.exercise.scenario import load_scenario

exercise_app = typer.Typer(
    help="Rehearse the hotline: scenarios on a compressed clock, after-action reports.",
    no_args_is_help=True,
)
console = Console()


@exercise_app.command("check")
def check(scenario: Path) -> None:
    """Check a scenario file (schema, parties, forms); errors name the line."""
    s = load_scenario(scenario)
    console.print(
        f"{scenario}: {s.name} — {len(s.parties)} parties, {len(s.injects)} injects, "
        f"{s.duration / 3600:.1f} h of scenario time"
    )


@exercise_app.command("run")
def run(
    scenario: Path,
    speed: Annotated[
        float,
        typer.Option(help="scenario seconds per real second (60: a minute a second; 0: flat out)"),
    ] = 60.0,
    out: Annotated[Path | None, typer.Option(help="where to write the report")] = None,
    seed: Annotated[int | None, typer.Option(help="the officers' random seed")] = None,
    keep: Annotated[bool, typer.Option(help="keep the nodes' directories")] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="host every party's node in this process (own keys and store each; "
            "the network simulated): for scenarios with many parties",
        ),
    ] = False,
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            help="the reader's language for report.md, the charts (Latin and Cyrillic scripts; "
            "others get English charts) and this summary; report.json holds codes",
        ),
    ] = "en",
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Run a scenario with real node processes on 127.0.0.1 and write the after-action report.

    Exits 1 if a message was lost, an audit failed or the scenario's expectations
    were not met.
    """
    from detente.exercise.aar import write_aar  # noqa: PLC0415
    from detente.exercise.runner import ExerciseRun  # noqa: PLC0415
    from detente.i18n import best_language, translator  # noqa: PLC0415

    s = load_scenario(scenario)
    target = out or Path(f"exercise-{scenario.stem}")
    workdir = Path(tempfile.mkdtemp(prefix="detente-exercise-"))
    quiet = json_out or not console.is_terminal
    progress = Progress(
        TextColumn("[yellow]EXERCISE[/yellow] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counters]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    task = progress.add_task(s.name, total=1.0, counters="")

    def on_progress(done: float, counters: dict[str, int]) -> None:
        text = " ".join(f"{k} {v}" for k, v in counters.items())
        progress.update(task, completed=done, counters=text)

    if in_process:
        from detente.exercise.inprocess import InProcessRun  # noqa: PLC0415

        exercise: ExerciseRun = InProcessRun(
            s, workdir, speed=speed, seed=seed, on_progress=on_progress
        )
    else:
        exercise = ExerciseRun(s, workdir, speed=speed, seed=seed, on_progress=on_progress)
    try:
        with progress:
            exercise.setup()
            result = exercise.run()
    finally:
        exercise.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    reader = best_language(lang)
    t = translator(reader)
    aar, failures = write_aar(result, target, reader)
    if json_out:
        console.print_json(json.dumps({k: v for k, v in aar.items() if k != "timeline"}))
    else:
        d = aar["deadlines"]
        banner = "EXERCISE" if reader == "en" else f"EXERCISE / {t('EXERCISE')}"
        summary = t(
            "{scenario}: messages sent: {sent}, lost: {lost}; acknowledgements in time: "
            "{ack_met}, late or missing: {ack_missed}; answers in time: {answer_met}, "
            "late or missing: {answer_missed}; escalations: {escalations}; audit: {audit}"
        ).format(
            scenario=s.name,
            sent=aar["messages_sent"],
            lost=aar["messages_lost"],
            ack_met=d["ack_met"],
            ack_missed=d["ack_missed"],
            answer_met=d["answer_met"],
            answer_missed=d["answer_missed"],
            escalations=aar["escalations"],
            audit=t("all hold up") if aar["audit"]["ok"] else t("FAILED"),
        )
        console.print(f"[yellow]{banner}[/yellow] {summary}")
        for failure in failures:
            # The failure itself is worded in English, as the checks write it.
            console.print(
                t("Not met: {failure}").format(failure=failure), style="red", markup=False
            )
        console.print(
            t("report: {path} (and report.json, *.png)").format(path=target / "report.md")
        )
        if keep:
            console.print(t("nodes kept in {path}").format(path=workdir))
    if failures or aar["messages_lost"]:
        raise typer.Exit(1)


@exercise_app.command("scale")
def scale(
    parties: Annotated[int, typer.Option(help="how many parties (2 to 200)")] = 200,
    notify: Annotated[bool, typer.Option(help="also a notification to all, acknowledged")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """In one process: a ping round (and a notification round) across many parties' nodes.

    Each party has its own keys, store and node; only the network is simulated.
    """
    from detente.exercise.inprocess import run_scale  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="detente-scale-"))
    quiet = json_out or not console.is_terminal
    progress = Progress(
        TextColumn("[yellow]EXERCISE[/yellow] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        disable=quiet,
    )
    task = progress.add_task("setting up", total=parties)

    def on_progress(what: str, done: int, total: int) -> None:
        progress.update(task, description=what, completed=done, total=total)

    try:
        with progress:
            result = run_scale(workdir, parties, notify=notify, progress=on_progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if json_out:
        console.print_json(json.dumps(result.to_json()))
        return
    console.print(
        f"[yellow]EXERCISE[/yellow] {result.parties} parties in one process: set up in "
        f"{result.setup_s:.1f} s; ping round {result.ping_round_s:.1f} s "
        f"({result.pongs} pongs); notification round {result.notification_round_s:.1f} s "
        f"({result.acks} acknowledgements); {result.receipts_verified} receipts verified; "
        f"peak memory {result.peak_rss_mb:.0f} MB"
    )
