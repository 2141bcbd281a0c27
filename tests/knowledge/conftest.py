"""Knowledge-base fixtures: the real packaged MiniLM (loaded once), a deterministic embedder double,
and a hand-made five-document help centre."""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_doubles import HashEmbedder, write_articles

from knowledge.base import KnowledgeBase
from knowledge.settings import KnowledgeSettings


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    from knowledge.embedder import SentenceEmbedder

    return SentenceEmbedder()


@pytest.fixture(scope="session")
def five_doc_base(tmp_path_factory, minilm):
    """The five hand-made articles, ingested once with the real embedder (tests must not modify it)."""
    root = tmp_path_factory.mktemp("five-docs")
    kb = KnowledgeBase.open(root / "kb.db", root / "index", KnowledgeSettings(), minilm)
    kb.sync([write_articles(root / "articles")])
    yield kb
    kb.close()


@pytest.fixture
def articles(tmp_path) -> Path:
    return write_articles(tmp_path / "articles")


@pytest.fixture
def open_kb(tmp_path):
    """Opens bases on tmp_path with the hash double unless told otherwise; closes them at the end."""
    opened = []

    def _open(embedder=None, **settings) -> KnowledgeBase:
        kb = KnowledgeBase.open(tmp_path / "kb.db", tmp_path / "index", KnowledgeSettings(**settings),
                                embedder or HashEmbedder())
        opened.append(kb)
        return kb

    yield _open
    for kb in opened:
        kb.close()
