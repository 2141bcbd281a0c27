"""Session fixtures: a tiny random BERT (seconds to build), offline hub, in-memory databases, a PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("SUPPORTBOT_DATABASE_URL", None)  # a developer's server must not become the tests' database

WORDS = (
    "where is my order parcel package delivery track tracking cancel refund return money back card "
    "payment pay failed declined password reset login account email address change hello hi thanks "
    "bye the a an i you we it to of for on in and my your please help can how what when why not "
    "did does do is are was be been have has want need new old late lost broken damaged item "
    "shipping ship fee cost price discount code coupon invoice receipt person human agent talk "
    "weather football pizza recipe song movie joke"
).split()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with a word-level vocabulary, saved as a model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *"abcdefghijklmnopqrstuvwxyz0123456789"]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    assert tokenizer("where is my parcel")["input_ids"].count(tokenizer.unk_token_id) == 0
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def pytest_collection_modifyitems(items):
    """A test that uses the PostgreSQL server is an integration test (it starts the server): marked here by the
    fixture it uses, so none is left out. Fixtures that put a store on either engine by parameter mark their
    PostgreSQL case themselves (tests.support.postgres.ENGINES)."""
    for item in items:
        if "postgres_server_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_server_url():
    """A real PostgreSQL server for the session (Debian's initdb/pg_ctl in a temporary folder). Skipped, with
    the reason, when the binaries are missing, unless SUPPORTBOT_REQUIRE_POSTGRES=1 (CI), where it fails."""
    from tests.support.postgres import find_binaries, postgres_server

    if find_binaries() is None:
        reason = "PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)"
        if os.environ.get("SUPPORTBOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}, and SUPPORTBOT_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url) -> str:
    """A new empty database on the session's server, for one test."""
    from tests.support.postgres import new_database

    return new_database(postgres_server_url, f"test_{uuid.uuid4().hex[:12]}")
