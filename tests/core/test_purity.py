"""The core is sans-I/O (STYLE.md rule 1): no network, database, web framework or clock."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

CORE = pathlib.Path(__file__).resolve().parents[2] / "src" / "detente" / "core"
FORBIDDEN_MODULES = {
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sqlite3",
    "httpx",
    "starlette",
    "fastapi",
    "uvicorn",
    "socket",
    "ssl",
    "asyncio",
    "requests",
    "urllib.request",
    "http",
    "time",
    "threading",
    "subprocess",
    "selectors",
}
CORE_FILES = sorted(CORE.glob("*.py"))


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_imports_no_io(path: pathlib.Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)
    }
    assert not bad, f"{path.name} imports I/O modules: {sorted(bad)}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_reads_no_clock(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = {
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    clock = {c for c in calls if c.split(".")[1] in {"now", "utcnow", "today", "time", "monotonic"}}
    assert not clock, f"{path.name} reads the clock: {sorted(clock)}"


def test_importing_the_core_loads_no_io_module() -> None:
    """Also catches I/O pulled in indirectly, through a dependency."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import detente.core.envelope, detente.core.agreement, detente.core.receipt\n"
        "import detente.core.merkle, detente.core.checkpoint, detente.core.note\n"
        "new = set(sys.modules) - before\n"
        "bad = sorted(m for m in new if m.split('.')[0] in "
        "{'sqlalchemy','httpx','starlette','fastapi','uvicorn','socket','psycopg','sqlite3'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing detente.core loads {out}"


def test_purity_check_can_fail(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom datetime import datetime\nx = datetime.now()\n")
    assert "socket" in _imports(bad)
