"""A node home whose first language is Russian: only its config.json, for CLI tests
that replace the client API with a stand-in."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = {
    "party_id": "RU-NCCC",
    "names": {"ru": "НКЦКИ"},
    "country": "RU",
    "role": "technical",
    "languages": ["ru", "en"],
    "availability": "24/7",
    "listen_host": "127.0.0.1",
    "listen_port": 1,
    "endpoint": "http://127.0.0.1:1",
    "db_url": "sqlite://",
}


def russian_home(path: Path) -> Path:
    (path / "config.json").write_text(json.dumps(CONFIG, ensure_ascii=False))
    return path
