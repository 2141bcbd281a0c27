"""What every handler shares: settings, the bot folder, the model slot, the knowledge base, the database
thread with the stores on its connection, and the rate limiter, built once per app in `bot.web.app`'s cleanup
context."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from bot.serving.batcher import MicroBatcher
from bot.serving.cache import CachedCall
from bot.dialogue.conversations import ConversationLog
from bot.folder.bot_folder import BotFolder, load_intents
from bot.review.desk import ReviewDesk
from bot.dialogue.handoff import HandoffNotifier
from bot.serving.limits import FailedLogins
from bot.serving.model_slot import ModelSlot
from bot.dialogue.router import CalibratedClassifier, Knowledge, Router
from bot.settings import Settings
from bot.retraining import Retraining
from bot.web.security import RateLimiter
from core.sqlite import StorageError, is_storage_fault

if TYPE_CHECKING:
    from bot.analytics.figures import Analytics
    from bot.review.accounts import AccountStore

log = logging.getLogger("supportbot.app")


@dataclass
class Runtime:
    """Everything the handlers share; built in the cleanup context."""

    settings: Settings
    folder: BotFolder
    model_thread: ThreadPoolExecutor  # intent-model batches
    pool: ThreadPoolExecutor  # knowledge-base batches
    writer: ThreadPoolExecutor  # the database thread
    limiter: RateLimiter  # requests per client (verified conversation, else address)
    notifier: HandoffNotifier
    logins: FailedLogins  # failed review logins per account and address, counted across workers
    new_conversations: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))  # per address
    handoffs: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))  # per address
    models: ModelSlot | None = None
    retraining: Retraining | None = None  # starts retrain processes (schedule, drift, admin, review page)
    # The stores on the bot's database, opened (and migrated) on the database thread at start: on SQLite that thread
    # owns the connection, so every call on them goes through `db` (or `chat_db`), never from the event loop.
    log: ConversationLog | None = None
    accounts: AccountStore | None = None
    desk: ReviewDesk | None = None
    analytics: Analytics | None = None
    knowledge: Knowledge | None = None
    knowledge_error: str = "the knowledge base is loading"
    storage_error: str = ""  # the last database fault, until a database call succeeds again
    warnings: list[str] = field(default_factory=list)  # what will answer nothing (bot.serving.readiness), in /readyz
    started: float = field(default_factory=time.time)
    _locks: weakref.WeakValueDictionary = field(default_factory=weakref.WeakValueDictionary)
    _search_batcher: MicroBatcher | None = None
    metrics: Any = None  # bot.web.metrics.Metrics: batch calls are timed into it
    drift: Any = None  # bot.analytics.drift.DriftStatus: the server's last drift check
    worker: int | None = None  # this process's number among `serve --workers N`; None: the only process
    loaded: asyncio.Event = field(default_factory=asyncio.Event)  # set once model and knowledge base loaded (or failed)
    turn_threads: ThreadPoolExecutor | None = None  # PostgreSQL: the chat's database calls, several at once
    catching_up: bool = False  # the first worker's start-up jobs are running (bot.analytics.jobs.keep_growing)
    folded: asyncio.Event = field(default_factory=asyncio.Event)  # the start's analytics fold ended
    intents_read: int | None = None  # intents.yaml's mtime (ns) when the serving router read it
    memory: Any = None  # bot.review.memory.Memory of the reviewed examples as `_memory_state` last saw them
    _memory_state: tuple | None = None
    _memory_checked: float = 0.0  # when the reviewed examples were last asked whether they changed (monotonic)
    _memory_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _memory_vectors: dict = field(default_factory=dict)  # example id -> (text, vector), kept between builds
    _learned: tuple = field(default_factory=lambda: (None, {}))  # (model version, {(example id, text, outcome): right})
    _learning: asyncio.Task | None = None

    async def db(self, fn: Callable, *args: Any) -> Any:
        """Run `fn` on the database thread. A storage fault becomes `StorageError` (503 with a reason), is logged
        once with what failed, and shows in /readyz until a database call succeeds again."""
        return await self._call(self.writer, fn, args)

    async def chat_db(self, fn: Callable, *args: Any) -> Any:
        """`db` for a chat request's calls on the conversation log. On PostgreSQL they run on several threads, so
        that one turn's round trips do not wait for another's; turns of one conversation still come one at a time
        (`lock` in this process, the turn count's compare-and-set across processes). SQLite keeps its one writer."""
        return await self._call(self.turn_threads or self.writer, fn, args)

    async def _call(self, executor: ThreadPoolExecutor, fn: Callable, args: tuple) -> Any:
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))
        except Exception as e:
            if not is_storage_fault(e):
                raise
            operation = getattr(fn, "__name__", "database call")
            if not self.storage_error:
                log.error("database %s failed: %s (requests get 503 until it works again)", operation, e)
            self.storage_error = StorageError(operation, e).reason
            raise StorageError(operation, e) from e
        if self.storage_error:
            log.warning("database works again (%s succeeded)", getattr(fn, "__name__", "a database call"))
            self.storage_error = ""
        return result

    async def sync_review(self) -> ReviewDesk:
        """The review queue brought up to date one batch per database-thread task, so chat turns are written in
        between (the first sync of a large log files every flagged turn: tens of seconds)."""
        d = self.desk
        while (await self.db(d.sync, 1))["more"]:
            pass
        return d

    def lock(self, conversation_id: str) -> asyncio.Lock:
        """One turn at a time per conversation (its state is read, updated and written back)."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    @property
    def ready(self) -> bool:
        return self.models is not None and self.models.current is not None and not self.knowledge_error

    async def search(self, text: str) -> Any:
        if self.knowledge is None:
            return None
        if self._search_batcher is None:  # concurrent questions share one query-embedding call
            s = self.settings.server
            search = self.knowledge.answer_many
            if self.metrics is not None:
                search = self.metrics.timed(search, self.metrics.search_seconds)
            self._search_batcher = MicroBatcher(search, self.pool, s.batch_size, s.batch_wait_ms / 1000)
        return await self._search_batcher(text)

    async def remember(self, text: str) -> Any:
        """The reviewed message closest to `text`, when close enough (bot.review.memory.Match), else None. The
        memory follows the reviewed examples within a second, on every worker (they share the database)."""
        kb = self.knowledge
        if not self.settings.review.memory or kb is None or self.desk is None or not hasattr(kb, "embed_queries"):
            return None
        try:
            memory = await self._current_memory(kb)
            if memory is None or not len(memory):
                return None
            loop = asyncio.get_running_loop()
            vector = await loop.run_in_executor(self.pool, lambda: kb.embed_queries([kb.correct(text)])[0])
        except StorageError:
            raise  # the turn cannot be logged either: 503 with the reason
        except Exception as e:  # the memory is one signal: without it the model decides
            log.warning("memory of reviewed answers unavailable: %s", type(e).__name__)
            return None
        return memory.match(vector)

    async def suggested_order(self, filters: Any) -> Any:
        """The review queue's suggested order of this selection (bot.review.selection.Suggestion), embedded by the
        knowledge base; None while it cannot be made (no knowledge base yet): the queue shows the newest first."""
        from bot.review.selection import KNOWN_PER_INTENT, SUGGEST_FROM, suggest

        kb = self.knowledge
        if kb is None or self.desk is None or not hasattr(kb, "embed_queries"):
            return None
        candidates = await self.db(self.desk.reviews.candidates, filters, SUGGEST_FROM)
        known = await self.db(self.desk.examples.sample_per_intent, KNOWN_PER_INTENT)

        def embed(texts: list[str]) -> Any:
            return kb.embed_queries([kb.correct(t) for t in texts])

        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, suggest, candidates, embed, known)
        except Exception as e:  # an order is a convenience: without it the queue is the newest first
            log.warning("suggested review order unavailable: %s", type(e).__name__)
            return None

    def memory_changed(self) -> None:
        """A review decision was made here: the next turn builds the memory again from the reviewed examples."""
        self._memory_checked, self._memory_state = 0.0, None

    async def _current_memory(self, kb: Any) -> Any:
        from bot.review.memory import embed_and_build, settled, settled_state

        if time.monotonic() - self._memory_checked < MEMORY_CHECK_S:
            return self._marking(self.memory)
        async with self._memory_lock:
            if time.monotonic() - self._memory_checked < MEMORY_CHECK_S:
                return self._marking(self.memory)
            examples = self.desk.examples
            state = await self.db(settled_state, examples)
            if state != self._memory_state:
                reviewed = await self.db(settled, examples)
                target = self.settings.review.memory_precision
                self.memory = await asyncio.get_running_loop().run_in_executor(
                    self.pool, embed_and_build, kb, reviewed, target, self.settings.train.oos_label,
                    self._memory_vectors)
                self._memory_state = state
            self._memory_checked = time.monotonic()
        return self._marking(self.memory)

    def _marking(self, memory: Any) -> Any:
        """`memory`, its learned entries marked for the serving model in the background when they are not yet."""
        version = self.models.version if self.models is not None else None
        if (memory is not None and version and memory.learned_version != version
                and (self._learning is None or self._learning.done())):
            self._learning = asyncio.create_task(self._mark_learned(memory, version))
        return memory

    async def _mark_learned(self, memory: Any, version: str) -> None:
        """Mark the entries the serving model answers right by itself (in the background: a model swap must not
        hold up turns); the answers of a version are kept, so a new entry costs one prediction."""
        from bot.review.memory import learned_by

        router = self.models.current if self.models is not None else None
        if router is None or router.version != version:
            return
        if self._learned[0] != version:
            self._learned = (version, {})
        known = self._learned[1]
        key = lambda e: (e.id, e.text, e.intent)  # noqa: E731
        new = [e for e in memory.examples if key(e) not in known]
        try:
            right = await asyncio.get_running_loop().run_in_executor(
                self.model_thread, learned_by, new, router.model.predict, self.settings.train.oos_label)
        except Exception as e:  # a mark is information only: not tried again for this version
            log.warning("marking learned memory entries failed: %s", type(e).__name__)
            memory.mark_learned(version, set())
            return
        known.update((key(e), e.id in right) for e in new)
        memory.mark_learned(version, {e.id for e in memory.examples if known.get(key(e))})

    def intents_changed(self) -> bool:
        """Whether intents.yaml changed since the serving router read it (another worker's review page edited it)."""
        return self._intents_mtime() != self.intents_read

    def _intents_mtime(self) -> int | None:
        try:
            return (self.folder.path / "intents.yaml").stat().st_mtime_ns
        except OSError:
            return None

    def build_router(self, model: CalibratedClassifier) -> Router:
        """A router for a newly loaded model, with intents.yaml read again: a new version may know new
        intents, and edited answers apply without a restart."""
        s = self.settings.server
        limit_model_threads(s.model_threads)  # loading a model may have changed it
        self.intents_read = self._intents_mtime()
        intents, entities = load_intents(self.folder.path / "intents.yaml")
        predict = model.predict
        if self.metrics is not None:
            predict = self.metrics.timed(predict, self.metrics.inference_seconds, self.metrics.batch_size)
        batcher = MicroBatcher(predict, self.model_thread, s.batch_size, s.batch_wait_ms / 1000)
        uncased = bool(getattr(getattr(model, "tokenizer", None), "do_lower_case", False))
        from bot.dialogue.language import detector

        return Router(intents, entities, model, CachedCall(batcher, s.cache_size, lowercase=uncased), self.search,
                      self.settings, detector(s.languages), remember=self.remember)


MEMORY_CHECK_S = 1.0  # a reviewer's decision reaches every worker's memory within this


RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", Settings)


def limit_model_threads(n: int) -> None:
    """Concurrent model calls each using every core oversubscribe the CPU (many times slower when busy)."""
    torch = sys.modules.get("torch")  # only when a real model is loaded
    if torch is not None and n > 0:
        torch.set_num_threads(n)
