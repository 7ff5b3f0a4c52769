"""The `detente` command, end to end, as the README shows it: real processes.

The proof that `log prove --json` prints is checked with an RFC 9162 / C2SP
verifier written here from the RFC text with hashlib and `cryptography` only —
no Détente code — as an independent auditor would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from detente.cli.demo import free_port

FORM = {
    "category": "ransomware",
    "severity": 4,
    "observed": "2026-11-24T12:00:00.000Z",
    "activity": {"lang": "en", "text": "ransomware C2 at 203.0.113.7"},
    "concern": "infrastructure-in-your-jurisdiction",
}


def detente(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "detente", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    if check:
        assert result.returncode == 0, f"detente {' '.join(args)}: {result.stderr}"
    return result


def detente_json(*args: str) -> Any:
    return json.loads(detente(*args, "--json").stdout)


# -- an independent RFC 9162 / C2SP verifier (no Détente imports) -------------------


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc9162_root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, written from the RFC."""
    fn, sn = index, size - 1
    r = hashlib.sha256(b"\x00" + leaf).digest()
    for p in proof:
        if sn == 0:
            raise AssertionError("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0, "proof too short"
    return r


def c2sp_check_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Verify a signed note's Ed25519 line under a C2SP verifier key; parse the checkpoint."""
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 0x01
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        _, line_name, blob_b64 = line.split(" ")
        blob = base64.b64decode(blob_b64)
        if line_name == name and blob[:4].hex() == key_id_hex:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], text.encode())
            origin, size, root = text.splitlines()[:3]
            return origin, int(size), base64.b64decode(root)
    raise AssertionError("no signature line from the verifier key")


# -- the README's flow ---------------------------------------------------------------------


@pytest.fixture
def two_nodes(tmp_path: Path) -> Any:
    homes = {}
    # RU-NCCC works in Russian: `show` defaults to it (test_show_in_the_readers_language).
    for pid, name, lang in (("US-CISA", "en=CISA", "en"), ("RU-NCCC", "ru=НКЦКИ", "ru")):
        home = tmp_path / pid
        detente(
            "init",
            "--home",
            str(home),
            "--id",
            pid,
            "--name",
            name,
            "--country",
            pid[:2],
            "--lang",
            lang,
            "--port",
            str(free_port()),
        )
        homes[pid] = home
    cards = []
    for pid, home in homes.items():
        card = tmp_path / f"{pid}.card.json"
        card.write_text(detente("card", "--home", str(home), "--json").stdout)
        cards.append(card)
    agreement = tmp_path / "agreement.json"
    detente(
        "agreement",
        "create",
        "--id",
        "us-ru-2013",
        "--title",
        "en=Cyber CBMs",
        "--title",
        "ru=Меры доверия",
        "--member",
        str(cards[0]),
        "--member",
        str(cards[1]),
        "--out",
        str(agreement),
    )
    for home in homes.values():
        detente("agreement", "sign", str(agreement), "--home", str(home))
    for home in homes.values():
        assert detente_json("agreement", "install", str(agreement), "--home", str(home))["new"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "detente", "serve", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for home in homes.values()
    ]
    try:
        for home in homes.values():
            port = json.loads((home / "config.json").read_text())["listen_port"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        yield homes
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_readme_flow_and_an_independent_verifier(two_nodes: dict[str, Path]) -> None:
    us, ru = str(two_nodes["US-CISA"]), str(two_nodes["RU-NCCC"])
    sent = detente_json(
        "send",
        "--home",
        us,
        "--agreement",
        "us-ru-2013",
        "--type",
        "notification",
        "--tlp",
        "AMBER",
        "--body",
        json.dumps(FORM),
    )
    message_id = sent[0]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if detente_json("show", message_id, "--home", us)["delivery"] == "delivered":
            break
        time.sleep(0.2)
    inbox = detente_json("inbox", "--home", ru)
    assert [m["id"] for m in inbox] == [message_id]
    shown = detente_json("show", message_id, "--home", ru)
    assert shown["content"]["body"] == FORM
    assert "ransomware" in detente("show", message_id, "--home", ru).stdout

    # The recipient's proof, checked by the independent verifier above.
    proof = detente_json("log", "prove", message_id, "--home", ru)
    checkpoint = detente_json("log", "checkpoint", "--home", ru)
    origin, size, root = c2sp_check_note(
        proof["checkpoint"], checkpoint["verifier_keys"]["ed25519"]
    )
    assert origin == "detente.log/RU-NCCC"
    assert size == proof["tree_size"]
    leaf = base64.b64decode(proof["leaf_data"])
    rebuilt = rfc9162_root_from_proof(
        leaf, proof["leaf_index"], size, [base64.b64decode(h) for h in proof["inclusion_proof"]]
    )
    assert rebuilt == root
    assert message_id.encode() in leaf

    for home in (us, ru):
        report = detente_json("log", "verify", "--home", home)
        assert report["ok"], report["problems"]
        assert report["size"] >= 2
    peers = detente_json("peers", "--home", us)
    assert [p["id"] for p in peers["peers"]] == ["RU-NCCC"]
    assert peers["alarms"] == []


def test_bad_input_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    missing = detente("card", "--home", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 1
    assert "no node at" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    home = tmp_path / "n"
    detente("init", "--home", str(home), "--id", "US-CISA", "--name", "en=CISA")
    again = detente(
        "init", "--home", str(home), "--id", "US-CISA", "--name", "en=CISA", check=False
    )
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    bad_id = detente(
        "init", "--home", str(tmp_path / "x"), "--id", "cisa", "--name", "en=X", check=False
    )
    assert bad_id.returncode == 1
    assert "CC-AGENCY" in bad_id.stderr
    down = detente("inbox", "--home", str(home), check=False)
    assert down.returncode == 1
    assert "is 'detente serve' running?" in down.stderr
    garbage = tmp_path / "agreement.json"
    garbage.write_text('{"id": 1.5}')
    shown = detente("agreement", "show", str(garbage), check=False)
    assert shown.returncode == 1
    assert "float" in shown.stderr


def test_key_file_is_private(tmp_path: Path) -> None:
    home = tmp_path / "n"
    detente("init", "--home", str(home), "--id", "US-CISA", "--name", "en=CISA")
    assert (home / "keys.json").stat().st_mode & 0o777 == 0o600
    assert (home / "cli-token").stat().st_mode & 0o777 == 0o600
    os.chmod(home / "keys.json", 0o644)
    exposed = detente(
        "agreement", "sign", str(tmp_path / "none.json"), "--home", str(home), check=False
    )
    assert exposed.returncode == 1


def test_show_in_the_readers_language(two_nodes: dict[str, Path]) -> None:
    us, ru = str(two_nodes["US-CISA"]), str(two_nodes["RU-NCCC"])
    sent = detente_json(
        "send", "--home", us, "--agreement", "us-ru-2013", "--type", "notification",
        "--tlp", "AMBER", "--body", json.dumps(FORM),
    )  # fmt: skip
    message_id = sent[0]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if detente_json("show", message_id, "--home", us)["delivery"] == "delivered":
            break
        time.sleep(0.2)

    # The Russian node's first language is Russian: the default.
    out = detente("show", message_id, "--home", ru).stdout
    assert "Программа-вымогатель" in out and "(ransomware)" in out
    assert "Серьёзный" in out
    assert "Входящее" in out
    assert "TLP:AMBER" in out
    assert FORM["activity"]["text"] in out  # type: ignore[index]
    assert "язык оригинала, без перевода: английский [en]" in out

    # Another reader on the same node.
    out = detente("show", message_id, "--home", ru, "--lang", "zh-Hans").stdout
    assert "勒索软件" in out and "英语 [en]" in out
    out = detente("show", message_id, "--home", ru, "--lang", "ar").stdout
    assert "برمجيات الفدية" in out and "TLP:AMBER" in out

    # The sender's node reads its own copy in English; JSON stays codes.
    out = detente("show", message_id, "--home", us).stdout
    assert "Ransomware" in out and "Delivered (receipt received)" in out
    shown = detente_json("show", message_id, "--home", ru, "--lang", "ru")
    assert shown["content"]["body"] == FORM
    assert shown["type"] == "notification"
