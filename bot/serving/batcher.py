"""Micro-batching: concurrent chat requests share one model call, run in a worker thread.

The first message of an idle batcher waits up to `wait_s` for companions; while a batch runs, new
messages queue and go together in the next call (up to `max_batch`). One batch runs at a time per
model, so the encoder's own threads are not oversubscribed. When a batch fails, its messages are retried
one by one, so a message the model cannot take fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
log = logging.getLogger("supportbot.batcher")


class MicroBatcher(Generic[T]):
    def __init__(self, predict: Callable[[Sequence[str]], Sequence[T]], executor: Executor | None,
                 max_batch: int = 32, wait_s: float = 0.002):
        self.predict, self.executor = predict, executor
        self.max_batch, self.wait_s = max_batch, wait_s
        self._queue: list[tuple[str, asyncio.Future[T]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self._task: asyncio.Task | None = None  # held so the running batch is not garbage-collected
        self.calls = 0  # model calls made
        self.items = 0  # messages classified

    async def __call__(self, text: str) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((text, future))
        if not self._running:
            if len(self._queue) >= self.max_batch or self.wait_s <= 0:
                self._start(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.wait_s, self._start, loop)
        return await future

    @property
    def pending(self) -> int:
        """Calls waiting for the next batch (a gauge of /metrics)."""
        return len(self._queue)

    @property
    def mean_batch(self) -> float:
        return self.items / self.calls if self.calls else 0.0

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running or not self._queue:
            return
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
        self._running = True
        self._task = loop.create_task(self._run(batch, loop))

    async def _run(self, batch: list[tuple[str, asyncio.Future[T]]], loop: asyncio.AbstractEventLoop) -> None:
        try:
            try:
                results = await self._predict(loop, [text for text, _ in batch])
            except Exception as e:
                if len(batch) == 1:
                    raise
                # One bad message must not fail its companions: retry each alone, so only the culprit fails.
                log.warning("a batch of %d failed (%s); retrying its messages one by one", len(batch),
                            type(e).__name__)
                for text, future in batch:
                    try:
                        result = (await self._predict(loop, [text]))[0]
                    except Exception as one:
                        if not future.done():
                            future.set_exception(one)
                    else:
                        if not future.done():
                            future.set_result(result)
                return
        except Exception as e:  # the waiting request gets the error, the batcher goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
        finally:
            self._running = False
            if self._queue:  # what queued meanwhile goes now, without waiting
                self._start(loop)

    async def _predict(self, loop: asyncio.AbstractEventLoop, texts: list[str]) -> Sequence[T]:
        results = await loop.run_in_executor(self.executor, self.predict, texts)
        if len(results) != len(texts):
            raise RuntimeError(f"model returned {len(results)} predictions for {len(texts)} messages")
        self.calls += 1
        self.items += len(texts)
        return results
