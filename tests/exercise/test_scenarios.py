"""Each shipped scenario runs end to end with real node processes, flat out.

The after-action report must show no message lost, every audit holding up,
and exactly the deadlines met and missed, escalations and pongs the
scenario expects (its ``expect`` block, explained in each file).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detente.errors import ConfigError
from detente.exercise.aar import write_aar
from detente.exercise.inprocess import InProcessRun
from detente.exercise.runner import ExerciseRun
from detente.exercise.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def test_five_scenarios_ship() -> None:
    assert len(SCENARIOS) == 5


def _play(kind: type[ExerciseRun], path: Path, tmp_path: Path) -> tuple[Any, Any]:
    """Run the scenario flat out; check what every run must show; (report data, result)."""
    run = kind(load_scenario(path), tmp_path / "nodes", speed=0)
    try:
        run.setup()
        result = run.run()
    finally:
        run.stop()
    aar, failures = write_aar(result, tmp_path / "report")
    assert aar["messages_lost"] == 0, aar["lost"]
    assert failures == []
    assert aar["audit"]["ok"], aar["audit"]
    return aar, result


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_runs_end_to_end(path: Path, tmp_path: Path) -> None:
    aar, result = _play(ExerciseRun, path, tmp_path)
    assert aar["exercise"] is True
    for name in ("report.json", "report.md", "timeline.png", "times.png", "deadlines.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert (tmp_path / "report" / "report.md").read_text().startswith("# EXERCISE")
    # Every message the nodes hold from this run is marked as exercise traffic.
    for data in result.nodes.values():
        assert all(m["exercise"] for m in data["messages"])


def _bad(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return str(info.value)


def test_scenario_errors_name_the_line(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "scenarios" / "un-poc-ping-test.yaml").read_text()
    lines = text.splitlines()
    policy_line = next(i for i, line in enumerate(lines) if line.strip() == "policy:") + 1
    broken = text.replace("pong_deadline: 3600", "pong_deadline: -5")
    assert _bad(tmp_path, broken).startswith(
        f"{tmp_path / 'bad.yaml'}:{policy_line}: agreement.policy: policy pong_deadline"
    )
    wrong_type = text.replace("type: ping", "type: telegram")
    message = _bad(tmp_path, wrong_type)
    type_line = next(i for i, line in enumerate(lines) if "type: ping" in line) + 1
    assert f"bad.yaml:{type_line}: injects.0.type:" in message and "telegram" in message
    assert "bad.yaml:2: not valid YAML" in _bad(tmp_path, "name: [unclosed\n")
    stranger = text.replace("from: UN-ODA", "from: XX-NOBODY")
    assert "injects.0.from: XX-NOBODY is not a party" in _bad(tmp_path, stranger)


def test_bad_form_in_a_scenario_names_the_body_field(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "scenarios" / "us-ru-ransomware.yaml").read_text()
    message = _bad(tmp_path, text.replace("severity: 4", "severity: 9"))
    assert "injects.0.body.severity: must be an integer from 0 to 5" in message
    line = next(i for i, s in enumerate(text.splitlines()) if "severity: 4" in s) + 1
    assert f"bad.yaml:{line}:" in message


def test_cli_check(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "detente", "exercise", "check", str(SCENARIOS[0])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    refused = subprocess.run(
        [sys.executable, "-m", "detente", "exercise", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "bad.yaml:1:" in refused.stderr


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_in_process_gives_the_same_verdicts(path: Path, tmp_path: Path) -> None:
    """--in-process: every party's node in this process; the same expectations hold."""
    _play(InProcessRun, path, tmp_path)
