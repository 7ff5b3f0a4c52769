"""Two real nodes on 127.0.0.1 for the interop tests (one pair for the whole session).

US-CISA and RU-NCCC under an agreement that allows up to TLP:RED, so RU's
TAXII server has a collection per TLP label.  API users on RU: ``viewer``
(role viewer: up to GREEN), ``tool`` (officer: up to AMBER+STRICT) and
``redreader`` (officer, granted RED with ``detente taxii grant``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detente.core.policy import MESSAGE_TYPES, Policy
from node.cluster import NodeProc, delivered, make_cluster, send, wait_until

AGREEMENT = "test-agreement"
TAXII = "application/taxii+json;version=2.1"


@dataclass
class Hotline:
    us: NodeProc
    ru: NodeProc
    tokens: dict[str, str]  # RU's API users -> token
    workdir: Path

    def taxii_root(self, node: NodeProc) -> str:
        return f"{node.base}/taxii2/hotline/"

    def collection_id(self, node: NodeProc, alias: str) -> str:
        listing = node.call("GET", "/taxii2/hotline/collections/", headers={"accept": TAXII})
        return str(next(c["id"] for c in listing["collections"] if c["alias"] == alias))

    def notify(
        self, body: dict[str, Any], tlp: str = "AMBER", sender: NodeProc | None = None
    ) -> str:
        origin = sender or self.us
        (sent,) = send(
            origin,
            AGREEMENT,
            ["RU-NCCC" if origin is self.us else "US-CISA"],
            body=body,
            tlp=tlp,
        )
        wait_until(lambda: delivered(origin, sent["id"]), 30, "delivery")
        return str(sent["id"])


def detente(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "detente", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


@pytest.fixture(scope="session")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    workdir = tmp_path_factory.mktemp("interop")
    policy = Policy(message_types=frozenset(MESSAGE_TYPES), max_tlp="RED")
    nodes, _ = make_cluster(workdir, ["US-CISA", "RU-NCCC"], policy=policy)
    for n in nodes.values():
        n.start()
    try:
        ru = nodes["RU-NCCC"]
        tokens = {}
        for name, role in (("viewer", "viewer"), ("tool", "officer"), ("redreader", "officer")):
            tokens[name] = ru.call("POST", "/api/v1/tokens", json={"name": name, "role": role})[
                "token"
            ]
        detente("taxii", "grant", "redreader", "--max-tlp", "RED", "--home", str(ru.home.path))
        yield Hotline(nodes["US-CISA"], ru, tokens, workdir)
    finally:
        for n in nodes.values():
            n.stop()


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path
