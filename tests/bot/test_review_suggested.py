"""The review queue's suggested order (its default) over HTTP: near-identical messages side by side, every group
once across pages, a cursor of another sort refused with a reason. The embedder is a bag-of-words double (speed);
the order itself is bot.review.selection's, tested on hand-made vectors in test_selection.py."""

from __future__ import annotations

import re

import numpy as np

from runtime_doubles import ScriptedKnowledge

ADMIN = {"Authorization": "Bearer test-admin-token"}
MESSAGES = ["zzz oak table refund wanted", "zzz parcel never came", "zzz crypto price today",
            "zzz lamp switch broken", "zzz oak table refund wanted please"]  # the first and the last: near-identical


class BagOfWords(ScriptedKnowledge):
    def correct(self, text):
        return text

    def embed_queries(self, texts):
        words = sorted({w for t in MESSAGES + list(texts) for w in re.findall(r"\w+", t.lower())})
        vectors = np.array([[float(w in re.findall(r"\w+", t.lower())) for w in words] for t in texts], np.float32)
        vectors = np.pad(vectors, ((0, 0), (0, 64 - len(words))))  # one width, whatever the texts
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


async def chat(client, message):
    response = await client.post("/api/chat", json={"message": message})
    assert response.status == 200


async def queue(client, **params):
    response = await client.get("/api/review/queue", headers=ADMIN, params=params)
    return response.status, await response.json()


async def test_the_default_order_puts_near_identical_messages_together_and_pages_through_every_group(make_client):
    client = await make_client("review.page_size=2", knowledge=BagOfWords())
    for message in MESSAGES:
        await chat(client, message)
    texts, ids, cursor = [], [], None
    for _ in range(5):
        status, body = await queue(client, **({"cursor": cursor} if cursor else {}))
        assert status == 200
        texts += [item["text"] for item in body["items"]]
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(texts) == sorted(MESSAGES)  # every group once
    first, last = texts.index(MESSAGES[0]), texts.index(MESSAGES[-1])
    assert abs(first - last) == 1  # newest first would put them at the two ends
    _, newest = await queue(client, sort="newest")
    assert [i["text"] for i in newest["items"]] == [MESSAGES[-1], MESSAGES[-2]]
    item = await client.get(f"/review/items/{ids[0]}", headers=ADMIN)
    assert f'href="/review/items/{ids[1]}?' in await item.text()  # "next" follows the same order


async def test_a_cursor_of_another_sort_or_garbage_gets_a_400_with_the_reason(make_client):
    client = await make_client("review.page_size=1", knowledge=BagOfWords())
    for message in MESSAGES[:3]:
        await chat(client, message)
    _, newest = await queue(client, sort="newest")
    for cursor in (newest["next_cursor"], "drop table", "-1"):
        status, body = await queue(client, cursor=cursor)
        assert status == 400 and "next_cursor of this sort" in body["error"], (cursor, body)
    status, body = await queue(client, sort="newest", cursor="12")
    assert status == 400 and "next_cursor of this sort" in body["error"]


async def test_without_an_embedder_the_suggested_order_is_the_newest_first(make_client):
    client = await make_client("review.page_size=10")  # ScriptedKnowledge: no embed_queries
    for message in MESSAGES:
        await chat(client, message)
    _, body = await queue(client)
    assert [i["text"] for i in body["items"]] == MESSAGES[::-1]


async def test_a_tight_cluster_far_from_every_intent_comes_first_marked_new_intent(make_client, tmp_path):
    from core.sqlite import connect
    from training.store import Example, ExampleStore

    (tmp_path / "state").mkdir(exist_ok=True)
    ExampleStore(connect(tmp_path / "state" / "supportbot.db")).add(
        Example(t, intent, "seed") for intent, texts in
        {"refund": ["refund my order", "money back refund please", "refund order money"],
         "transfer": ["bank transfer money", "transfer to my bank", "money transfer late order"]}.items()
        for t in texts)
    client = await make_client("review.page_size=10", knowledge=BagOfWords())
    asked = ["crypto wallet price", "refund money order please", "crypto wallet price today",
             "bank money transfer late", "crypto wallet value price"]
    for message in asked:
        await chat(client, message)
    _, body = await queue(client)
    first = body["items"][0]
    assert first["text"].startswith("crypto wallet") and first["new_intent_candidate"] is True
    assert [i["text"] for i in body["items"] if i["new_intent_candidate"]] == [first["text"]]  # one per cluster
    page = await (await client.get("/review", headers=ADMIN)).text()
    assert page.count(">new intent?</span>") == 1
