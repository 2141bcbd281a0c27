"""Hot reload: the serving Router sits in a slot; a new model version swaps the reference.

Requests in flight keep the Router (and model) they started with; once they finish, nothing refers
to the old one and it is freed. Loading runs in a thread, so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable, Protocol, Sequence

from bot.dialogue.router import CalibratedClassifier, Router
from bot.settings import Settings
from training.classifier import Prediction

log = logging.getLogger("supportbot.models")


class ModelSource(Protocol):
    """Where model versions come from: the registry on disk, or a test double."""

    def current_version(self) -> str | None: ...

    def load(self) -> CalibratedClassifier: ...


class RegistrySource:
    """The bot's model registry (models/CURRENT) and IntentClassifier.load."""

    def __init__(self, settings: Settings):
        from training.registry import ModelRegistry

        self.registry = ModelRegistry(settings.models_path)
        self.quantize, self.threads = settings.train.quantize, settings.server.model_threads

    def current_version(self) -> str | None:
        return self.registry.current_version()

    def load(self) -> CalibratedClassifier:
        from training.classifier import IntentClassifier

        path: Path | None = self.registry.current_path()
        if path is None:
            raise FileNotFoundError(self.registry.pointer_problem() + (
                " (train with `python run_bot.py train --bot <folder>`, or `python run_bot.py demo`)"))
        return IntentClassifier.load(path, quantize=self.quantize, threads=self.threads)


class NoIntents:
    """The classifier of a bot with no intents (no intents.yaml, or none in it): every message goes to the
    knowledge base."""

    version = "knowledge-only"
    threshold = 1.0
    margin = 0.0

    def predict(self, texts: Sequence[str], k: int = 3) -> list[Prediction]:
        return [Prediction(None, 0.0, [], False, False) for _ in texts]


class KnowledgeOnlySource:
    """A bot answered from its knowledge base alone: no model to train or load."""

    def current_version(self) -> str | None:
        return NoIntents.version

    def load(self) -> CalibratedClassifier:
        return NoIntents()


class ModelSlot:
    def __init__(self, source: ModelSource, build: Callable[[CalibratedClassifier], Router]):
        self.source, self.build = source, build
        self.current: Router | None = None
        self.error = "the model is loading"
        self.reloads = 0
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str | None:
        return self.current.version if self.current is not None else None

    async def reload(self, force: bool = False) -> dict[str, str | bool | None]:
        """Load the registry's current version if it is not the one serving (or if `force`)."""
        async with self._lock:
            previous = self.version
            pointer = await asyncio.to_thread(self.source.current_version)
            if previous is not None and pointer == previous and not force:
                return {"previous": previous, "version": previous, "changed": False}
            try:
                router = await asyncio.to_thread(lambda: self.build(self.source.load()))
            except Exception as e:
                self.error = f"loading the model failed: {e}"
                raise
            self.current, self.error = router, ""  # the swap: one reference assignment
            self.reloads += previous is not None
            log.info("serving model version %s (was %s)", router.version, previous)
            return {"previous": previous, "version": router.version, "changed": router.version != previous}

    async def rebuild(self) -> None:
        """A new router for the serving model (its bot folder's intents.yaml read again)."""
        async with self._lock:
            if self.current is not None:
                model = self.current.model
                self.current = await asyncio.to_thread(self.build, model)

    async def watch(self, interval: float, stale: Callable[[], bool] = lambda: False) -> None:
        """Poll the version pointer and reload when it moves, and rebuild the router when `stale()` says what it
        read changed (intents.yaml edited by another worker's review page); errors are logged, serving goes on."""
        while True:
            await asyncio.sleep(interval)
            try:
                changed = (await self.reload())["changed"]
                if not changed and stale():
                    await self.rebuild()
            except Exception as e:
                log.warning("model reload failed, still serving %s: %s", self.version, e)
