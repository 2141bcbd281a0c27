"""The prediction cache: repeated messages skip the model, per model version, bounded, counted in /admin/stats."""

from __future__ import annotations

import pytest

from bot.serving.cache import CACHEABLE_CHARS, CachedCall
from runtime_doubles import FakeSource

AUTH = {"Authorization": "Bearer test-admin-token"}


class Counter:
    def __init__(self):
        self.seen: list[str] = []

    async def __call__(self, text: str) -> str:
        self.seen.append(text)
        return f"prediction of {text}"


async def test_the_same_message_is_classified_once_and_folding_follows_the_tokenizer():
    call = Counter()
    cached = CachedCall(call, size=10, lowercase=True)
    assert await cached("Where is my order") == "prediction of Where is my order"
    assert await cached("where  is my   ORDER") == "prediction of Where is my order"
    assert call.seen == ["Where is my order"]
    cased = CachedCall(Counter(), size=10, lowercase=False)
    await cased("Hi"), await cased("hi"), await cased(" hi ")
    assert cased.call.seen == ["Hi", "hi"]  # a cased model may see "Hi" and "hi" differently
    assert cased.stats() == {"size": 10, "entries": 2, "hits": 1, "misses": 2, "hit_rate": pytest.approx(1 / 3, abs=1e-4)}


async def test_the_least_recently_used_goes_first_and_long_messages_or_size_0_are_never_kept():
    call = Counter()
    cached = CachedCall(call, size=2)
    for text in ("a", "b", "a", "c", "a", "b"):  # c pushes out b (a was used more recently)
        await cached(text)
    assert call.seen == ["a", "b", "c", "b"]
    long = "x" * (CACHEABLE_CHARS + 1)
    await cached(long), await cached(long)
    assert call.seen[-2:] == [long, long] and cached.stats()["entries"] == 2
    off = CachedCall(Counter(), size=0)
    await off("a"), await off("a")
    assert off.call.seen == ["a", "a"] and off.stats()["hit_rate"] is None


async def test_server_answers_a_repeated_message_without_a_model_call_until_a_new_version(make_client):
    source = FakeSource("v1")
    client = await make_client(source=source)
    for message in ("where is it", "where is it", "where is my order", "where is it"):
        assert (await client.post("/api/chat", json={"message": message})).status == 200
    model = source.loaded[-1]
    assert [t for batch in model.calls for t in batch] == ["where is it", "where is my order"]
    stats = await (await client.get("/admin/stats", headers=AUTH)).json()
    assert stats["prediction_cache"] == {"size": 10000, "entries": 2, "hits": 2, "misses": 2, "hit_rate": 0.5}

    source.version = "v2"
    assert (await (await client.post("/admin/reload", headers=AUTH)).json())["changed"]
    await client.post("/api/chat", json={"message": "where is it"})
    assert source.loaded[-1].calls == [["where is it"]]  # the new version classifies it again
