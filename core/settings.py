"""The settings helpers every package uses: a field with its help text, and validation that names every bad field."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text shown by the CLI and the docs."""
    return field(default=default, metadata={"help": help})


def refuse_invalid(settings: Any, section: str, checks: dict[str, bool]) -> None:
    """Raise ValueError naming every field whose check failed, with its value."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"invalid {section} settings: " + ", ".join(f"{n}={getattr(settings, n)!r}" for n in bad))
