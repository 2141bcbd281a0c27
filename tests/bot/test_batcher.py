"""Micro-batching: concurrent messages share model calls; results and errors reach the right callers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.serving.batcher import MicroBatcher


class Recorder:
    def __init__(self, fail_on: str = ""):
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, texts):
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise RuntimeError("model broke")
        return [t.upper() for t in texts]


async def test_concurrent_messages_are_batched_off_the_loop():
    model = Recorder()
    with ThreadPoolExecutor(1, thread_name_prefix="infer") as pool:
        batcher = MicroBatcher(model, pool, max_batch=8, wait_s=0.05)
        texts = [f"m{i}" for i in range(20)]
        results = await asyncio.gather(*(batcher(t) for t in texts))
    assert results == [t.upper() for t in texts]
    assert sorted(t for b in model.batches for t in b) == sorted(texts)
    assert max(len(b) for b in model.batches) == 8 and len(model.batches) < 20
    assert batcher.items == 20 and batcher.calls == len(model.batches)
    assert model.threads and all(name.startswith("infer") for name in model.threads)


async def test_a_failing_batch_fails_only_the_culprit_and_the_batcher_goes_on():
    model = Recorder(fail_on="bad")
    batcher = MicroBatcher(model, None, max_batch=4, wait_s=0.01)
    outcomes = await asyncio.gather(batcher("bad"), batcher("x"), return_exceptions=True)
    assert isinstance(outcomes[0], RuntimeError) and outcomes[1] == "X"
    assert await batcher("fine") == "FINE"


async def test_one_poisoned_message_in_a_batch_of_32_leaves_31_correct_answers():
    """A lone surrogate cannot be encoded by a tokenizer; the model call raises for the whole batch."""

    def tokenizing_model(texts):
        model.batches.append(list(texts))
        return [t.encode("utf-8").decode().upper() for t in texts]  # UnicodeEncodeError on "\ud800"

    model = Recorder()
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(tokenizing_model, pool, max_batch=32, wait_s=0.05)
        texts = [f"m{i}" for i in range(32)]
        texts[17] = "bad \ud800"
        outcomes = await asyncio.gather(*(batcher(t) for t in texts), return_exceptions=True)
    assert isinstance(outcomes[17], UnicodeEncodeError)
    assert [o for i, o in enumerate(outcomes) if i != 17] == [t.upper() for i, t in enumerate(texts) if i != 17]
    assert len(model.batches[0]) == 32  # they did share a batch before the retry


async def test_without_wait_each_idle_message_goes_at_once():
    model = Recorder()
    batcher = MicroBatcher(model, None, max_batch=4, wait_s=0)
    assert await batcher("a") == "A"
    assert await batcher("b") == "B"
    assert model.batches == [["a"], ["b"]]


async def test_wrong_number_of_results_is_an_error():
    batcher = MicroBatcher(lambda texts: [], None, max_batch=4, wait_s=0.01)
    with pytest.raises(RuntimeError, match="0 predictions for 1"):
        await asyncio.gather(batcher("a"), batcher("b"))
