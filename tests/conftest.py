"""Session fixtures: a tiny random BERT (seconds to build), offline hub, in-memory databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
