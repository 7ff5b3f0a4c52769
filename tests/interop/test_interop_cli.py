"""The interop commands without a running node: import a bundle, convert a MISP event."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from detente.cli.demo import create_node, free_port
from detente.store.db import open_engine
from detente.store.schema import stix_objects
from interop.hotline import detente, write_json
from interop.stix_examples import bundle_of, indicator, library_bundle


def _home(tmp_path: Path) -> Path:
    home = create_node(tmp_path / "node", "IN-CERTIN", {"en": "CERT-In"}, "IN", ["en"], free_port())
    return home.path


def _stored(home: Path) -> int:
    engine = open_engine(f"sqlite:///{home / 'node.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(stix_objects)).scalar_one())
    finally:
        engine.dispose()


def test_indicators_import_checks_then_stores(tmp_path: Path) -> None:
    home = _home(tmp_path)
    bundle = library_bundle()
    path = write_json(tmp_path / "bundle.json", bundle)
    result = json.loads(
        detente(
            "indicators", "import", str(path), "--home", str(home), "--tlp", "GREEN", "--json"
        ).stdout
    )
    assert result["objects"] == result["stored"] == len(bundle["objects"])
    assert result["scope"] == "local"
    assert result["by_tlp"]["GREEN"] > 0 and result["by_tlp"]["AMBER"] > 0
    again = json.loads(
        detente("indicators", "import", str(path), "--home", str(home), "--json").stdout
    )
    assert again["stored"] == 0 and again["duplicates"] == len(bundle["objects"])
    human = detente("indicators", "import", str(path), "--home", str(home))
    assert "objects checked" in human.stdout


def test_a_bad_bundle_is_refused_naming_the_object(tmp_path: Path) -> None:
    home = _home(tmp_path)
    objects = [indicator(i) for i in range(50)]
    objects[42]["pattern"] = "[ipv4-addr:value = '1.2.3.4'"
    path = write_json(tmp_path / "bad.json", bundle_of(objects))
    refused = detente("indicators", "import", str(path), "--home", str(home), check=False)
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())  # Rich wraps long lines
    assert f"objects[42] ({objects[42]['id']}).pattern: at offset 28: expected ']'" in said
    assert _stored(home) == 0
    unknown_case = detente(
        "indicators",
        "import",
        str(path),
        "--home",
        str(home),
        "--case",
        "no-such-case",
        check=False,
    )
    assert unknown_case.returncode == 1
    assert "no case no-such-case" in " ".join(unknown_case.stderr.split())


def test_misp_import_prints_the_notification(tmp_path: Path) -> None:
    event = {
        "Event": {
            "info": "Phishing wave",
            "threat_level_id": "3",
            "date": "2026-11-01",
            "Tag": [{"name": "tlp:green"}],
            "Attribute": [
                {
                    "type": "url",
                    "value": "https://lure.example/",
                    "to_ids": True,
                    "category": "Network activity",
                }
            ],
        }
    }
    path = write_json(tmp_path / "event.json", event)
    out = json.loads(detente("misp", "import", str(path), "--json").stdout)
    assert out["tlp"] == "GREEN"
    assert out["body"]["category"] == "phishing" and out["body"]["severity"] == 1
    (indicator_obj,) = [o for o in out["body"]["indicators"]["objects"] if o["type"] == "indicator"]
    assert indicator_obj["pattern"] == "[url:value = 'https://lure.example/']"
