"""All settings of a bot: one frozen dataclass per section, loaded from `bot.toml`, overridable on the CLI.

`bot.toml` has one table per section (`[train]`, `[knowledge]`, `[server]`, `[privacy]`); the CLI
overrides any field with `--set section.field=value`.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from knowledge.settings import KnowledgeSettings, setting
from training.redact import RedactSettings
from training.settings import TrainSettings


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server, its security limits and the conversation log."""

    host: str = setting("127.0.0.1", "Address the server listens on.")
    port: int = setting(8080, "Port the server listens on.")
    admin_token: str = setting("", "Bearer token for admin and review endpoints; empty = read SUPPORTBOT_ADMIN_TOKEN.")
    allowed_origins: tuple[str, ...] = setting((), "Website origins allowed to call the chat API (CORS allow-list).")

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"server.port must be 1..65535, not {self.port}")


@dataclass(frozen=True)
class Settings:
    """Every section; `state_dir` holds what the program generates (database, models, index)."""

    name: str = setting("", "Bot name, shown in logs and the widget; empty = the bot folder's name.")
    state_dir: str = setting("", "Folder for generated state (database, model versions, index); empty = ~/.local/share/supportbot/<name>.")
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"help": "Intent-model training."})
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings, metadata={"help": "Knowledge base."})
    server: ServerSettings = field(default_factory=ServerSettings, metadata={"help": "HTTP server."})
    privacy: RedactSettings = field(default_factory=RedactSettings, metadata={"help": "PII redaction."})

    @property
    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        return Path.home() / ".local" / "share" / "supportbot" / (self.name or "bot")

    @property
    def db_path(self) -> Path:
        return self.state_path / "supportbot.db"

    @property
    def models_path(self) -> Path:
        return self.state_path / "models"

    @property
    def index_path(self) -> Path:
        return self.state_path / "index"


SECTIONS = ("train", "knowledge", "server", "privacy")


def load_settings(path: Path | None = None, overrides: Iterable[str] = ()) -> Settings:
    """Settings from a TOML file (if given and present) with `section.field=value` overrides applied."""
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None and Path(path).is_file():
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from e
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected section.field=value")
        *sections, name = key.strip().split(".")
        target = data
        for s in sections:
            target = target.setdefault(s, {})
        target[name] = _parse_cli_value(value.strip())
    return _build(Settings, data, source, prefix="")


def _parse_cli_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown setting {', '.join(prefix + u for u in unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{source}: [{prefix}{name}] must be a table")
            kwargs[name] = _build(hint, value, source, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{source}: {prefix}{name}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if typing.get_origin(hint) is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ValueError(f"{where} must be a list of strings, not {value!r}")
        return tuple(items)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {hint.__name__}, not {value!r}")
    return value


def describe(cls: type = Settings, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) for every setting: the CLI's `settings` command and the docs."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe(hints[f.name], prefix=f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, f.default, f.metadata.get("help", "")))
    return rows
