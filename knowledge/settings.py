"""Settings of the knowledge base, and the `setting()` field helper every package uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def setting(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text shown by the CLI and the docs."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class KnowledgeSettings:
    """How help articles are chunked, embedded and searched."""

    embedder_model: str = setting(
        "", "Sentence-transformers model folder for KB embeddings; empty = the packaged all-MiniLM-L6-v2."
    )

    def __post_init__(self) -> None:
        pass
