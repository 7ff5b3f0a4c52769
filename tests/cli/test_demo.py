"""The README's first command: ``detente demo`` runs three nodes end to end and stops them."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_end_to_end() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "detente", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for party in ("US-CISA", "RU-NCCC", "CN-CNCERT"):
        assert f"{party}: log verify passed" in run.stdout
    assert "all nodes stopped" in run.stdout
