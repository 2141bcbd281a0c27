"""A bounded cache of predictions: support traffic repeats itself ("hi", "thanks", "where is my order").

The router classifies through `CachedCall`: the same message (white space folded, and case when the model's
tokenizer lowercases anyway) under the same model version gets the stored prediction without a model call.
A router is built per model version, and so is its cache. Only short messages are kept: repeats are short,
and long ones are the likeliest to carry personal details (the cache is memory only, never written).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")
CACHEABLE_CHARS = 100  # longer messages are classified every time


class CachedCall(Generic[T]):
    """`await cached(text)`: `call(text)` once per distinct key, the `size` latest keys kept (LRU)."""

    def __init__(self, call: Callable[[str], Awaitable[T]], size: int, lowercase: bool = False):
        self.call, self.size, self.lowercase = call, size, lowercase
        self._entries: OrderedDict[str, T] = OrderedDict()
        self.hits = self.misses = 0

    def key(self, text: str) -> str | None:
        if self.size <= 0 or len(text) > CACHEABLE_CHARS:
            return None
        key = " ".join(text.split())
        return key.lower() if self.lowercase else key

    async def __call__(self, text: str) -> T:
        key = self.key(text)
        if key is None:
            return await self.call(text)
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        value = await self.call(text)
        self._entries[key] = value
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    # the wrapped MicroBatcher's gauges, for /admin/stats and /metrics
    calls = property(lambda self: getattr(self.call, "calls", 0))
    mean_batch = property(lambda self: getattr(self.call, "mean_batch", 0.0))
    pending = property(lambda self: getattr(self.call, "pending", 0))

    def stats(self) -> dict:
        looked_up = self.hits + self.misses
        return {"size": self.size, "entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / looked_up, 4) if looked_up else None}
