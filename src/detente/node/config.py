"""A node's home directory: configuration, keys, card, and the CLI's token.

```
HOME/
  config.json   party id, names, role, listen address, endpoint, database URL
  keys.json     private keys (mode 0600; never leaves the machine)
  card.json     the public party card, to hand to other agencies
  cli-token     the API token the local CLI uses (mode 0600)
  node.db       the SQLite database, unless config names another URL
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detente.core.canonical import parse
from detente.core.keys import PartyKeys
from detente.core.party import ROLES, PartyCard, check_party_id
from detente.errors import ConfigError, EncodingError

__all__ = ["NodeConfig", "NodeHome"]

_CONFIG_FIELDS = {
    "party_id",
    "names",
    "country",
    "role",
    "languages",
    "availability",
    "listen_host",
    "listen_port",
    "endpoint",
    "db_url",
}


@dataclass(frozen=True)
class NodeConfig:
    party_id: str
    names: dict[str, str]
    country: str | None
    role: str
    languages: list[str]
    availability: str
    listen_host: str
    listen_port: int
    endpoint: str
    db_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "names": self.names,
            "country": self.country,
            "role": self.role,
            "languages": self.languages,
            "availability": self.availability,
            "listen_host": self.listen_host,
            "listen_port": self.listen_port,
            "endpoint": self.endpoint,
            "db_url": self.db_url,
        }


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class NodeHome:
    """The files of one node."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        return self.config_path.exists()

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        party_id: str,
        names: dict[str, str],
        country: str | None,
        role: str = "technical",
        languages: list[str] | None = None,
        availability: str = "24/7",
        listen_host: str = "127.0.0.1",
        listen_port: int = 8750,
        endpoint: str | None = None,
        db_url: str | None = None,
    ) -> NodeHome:
        """Create keys, configuration and card; refuse to overwrite a node."""
        check_party_id(party_id)
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(sorted(ROLES))}")
        home = cls(path)
        if home.exists() or (path / "keys.json").exists():
            raise ConfigError(f"{path} already holds a node; refusing to overwrite its keys")
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        keys = PartyKeys.generate()
        config = NodeConfig(
            party_id=party_id,
            names=names,
            country=country,
            role=role,
            languages=languages or ["en"],
            availability=availability,
            listen_host=listen_host,
            listen_port=listen_port,
            endpoint=endpoint or f"http://{listen_host}:{listen_port}",
            db_url=db_url or f"sqlite:///{(path / 'node.db').resolve()}",
        )
        card = home._card(config, keys)  # validates the whole card before writing
        _write_private(path / "keys.json", json.dumps(keys.to_json()).encode())
        home.config_path.write_text(json.dumps(config.to_json(), indent=2, ensure_ascii=False))
        (path / "card.json").write_text(json.dumps(card.to_json(), indent=2, ensure_ascii=False))
        return home

    def config(self) -> NodeConfig:
        try:
            obj = parse(self.config_path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"no node at {self.path} (run 'detente init' first)") from None
        except EncodingError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from exc
        if not isinstance(obj, dict) or not set(obj) >= _CONFIG_FIELDS:
            missing = _CONFIG_FIELDS - set(obj) if isinstance(obj, dict) else _CONFIG_FIELDS
            raise ConfigError(f"{self.config_path} lacks {', '.join(sorted(missing))}")
        return NodeConfig(**{k: obj[k] for k in _CONFIG_FIELDS})

    def keys(self) -> PartyKeys:
        path = self.path / "keys.json"
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
            return PartyKeys.from_json(parse(path.read_bytes()))
        except FileNotFoundError:
            raise ConfigError(f"no key file at {path}") from None
        except EncodingError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    @staticmethod
    def _card(config: NodeConfig, keys: PartyKeys) -> PartyCard:
        try:
            return PartyCard.create(
                id=config.party_id,
                names=config.names,
                country=config.country,
                role=config.role,
                keys=keys.public,
                endpoint=config.endpoint,
                languages=config.languages,
                availability=config.availability,
            )
        except EncodingError as exc:
            raise ConfigError(f"invalid party card: {exc}") from exc

    def card(self) -> PartyCard:
        return self._card(self.config(), self.keys())

    def save_cli_token(self, token: str) -> None:
        _write_private(self.path / "cli-token", token.encode())

    def cli_token(self) -> str:
        try:
            return (self.path / "cli-token").read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"no CLI token in {self.path} (run 'detente init')") from None
