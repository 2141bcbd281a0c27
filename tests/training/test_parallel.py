"""Data-parallel fine-tuning (`train.processes`, `train --gpus N`): on CPU with gloo, the code path of CUDA/NCCL."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from training.finetune import _Run, finetune
from training.model import load_tokenizer
from training.settings import TrainSettings
from training.store import Example

TEXTS = {
    "track": ["where is my parcel", "track my package", "where is my delivery", "parcel late", "lost package",
              "tracking my order"],
    "refund": ["i want my money back", "refund please", "money back for my order", "how do i get a refund",
               "refund my card"],
    "login": ["reset my password", "cannot login", "password not working", "login to my account", "login failed"],
}
# 13 training examples in batches of 4: the last batch has one example, so the second rank has none in it;
# unequal intents, so the class weights make the shards' shares of the loss unequal
TRAIN = [Example(t, intent) for intent, texts in TEXTS.items() for t in texts[:-1]]
VAL = [Example(texts[-1], intent) for intent, texts in TEXTS.items()]


@pytest.fixture(scope="module")
def still_bert(tiny_bert, tmp_path_factory):
    """The tiny BERT with dropout off (the head's follows the encoder's), so a fit is a function of its batches."""
    folder = tmp_path_factory.mktemp("still-bert")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def settings(base, **changes) -> TrainSettings:
    values = dict(base_model=str(base), onnx=False, batch_size=4, epochs=12, min_steps=0, encoder_lr=1e-3,
                  head_lr=5e-2, patience=1, seed=1, refit_below=0, device="cpu")
    return TrainSettings(**{**values, **changes})


def largest_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    b_state = b.state_dict()
    return max((value - b_state[name]).abs().max().item() for name, value in a.state_dict().items())


@pytest.mark.integration
def test_two_processes_train_the_weights_one_process_trains(still_bert):
    # patience 1: validation loss rises after the second epoch and rank 0 stops there (a helper that missed it
    # would wait in the next gradient sum, and the fit would not return)
    one = finetune(TRAIN, VAL, still_bert, settings(still_bert), progress=False)
    two = finetune(TRAIN, VAL, still_bert, settings(still_bert, processes=2), progress=False)
    smaller_batches = finetune(TRAIN, VAL, still_bert, settings(still_bert, batch_size=2), progress=False)

    # 2 processes with 2 examples each of every batch of 4 = 1 process with batches of 4 (float rounding apart)
    assert largest_difference(one.model, two.model) < 1e-4
    assert [h["step"] for h in two.history] == [h["step"] for h in one.history] == [4, 8, 12]  # of 12 epochs
    assert two.val_logits == pytest.approx(one.val_logits, abs=1e-4)
    # what the tolerance is measured against: training on one process's half of each batch alone
    assert largest_difference(one.model, smaller_batches.model) > 1e-2


def test_each_rank_trains_a_disjoint_share_of_every_batch(tiny_bert):
    import random

    tokenizer = load_tokenizer(tiny_bert)
    labels = sorted(TEXTS)
    y = [labels.index(e.intent) for e in TRAIN]

    def run(world, rank=0):
        return _Run(TRAIN, VAL, labels, tiny_bert, tokenizer, settings(tiny_bert, processes=world), torch.device("cpu"),
                    False, rank)

    ids = tokenizer([e.text for e in TRAIN])["input_ids"]
    batches = run(1)._batch_indices(ids, random.Random(1), shuffle=True)
    ranks = [run(3, rank) for rank in range(3)]
    assert all(r._batch_indices(ids, random.Random(1), shuffle=True) == batches for r in ranks)  # the same batches
    for batch in batches:
        shards = [r._shard(batch, y) for r in ranks]
        taken = [shard for shard, share in shards if share > 0]
        assert sorted(i for shard in taken for i in shard) == sorted(batch)  # disjoint, and together the batch
        assert sum(share for _, share in shards) == pytest.approx(1.0)
    assert len(batches[-1]) == 1 and [share for _, share in (r._shard(batches[-1], y) for r in ranks)] == [1, 0, 0]


@pytest.mark.integration
def test_a_helper_that_dies_before_the_rendezvous_fails_the_fit_at_once(tiny_bert, monkeypatch):
    start = torch.multiprocessing.start_processes

    def start_and_kill(*args, **kwargs):  # as the kernel's OOM killer might, before the helper joins the group
        helpers = start(*args, **kwargs)
        for process in helpers.processes:
            process.kill()
        return helpers

    monkeypatch.setattr(torch.multiprocessing, "start_processes", start_and_kill)
    with pytest.raises(Exception, match="SIGKILL"):
        finetune(TRAIN, VAL, tiny_bert, settings(tiny_bert, processes=2), progress=False)
