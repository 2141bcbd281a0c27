"""Verified customer identity: the host site's HMAC-SHA256 of a customer id is checked, only a keyed hash of the
id is stored, and a customer's conversations share one rate limit."""

from __future__ import annotations

from bot.serving.identity import customer_key, signature
from bot.web.runtime import RUNTIME

SECRET = "s3cret-shared-with-the-host-site"
CUSTOMER = "customer-4711@shop.example"


def signed(customer_id: str = CUSTOMER, secret: str = SECRET) -> dict[str, str]:
    return {"customer_id": customer_id, "customer_hash": signature(secret, customer_id)}


async def conversation_rows(client) -> list[tuple]:
    rt = client.server.app[RUNTIME]
    return await rt.db(lambda: rt.log.db.execute("select id, customer_hash from conversations order by created").fetchall())


async def test_a_verified_customer_is_stored_as_a_keyed_hash_never_the_id(make_client):
    client = await make_client(f'server.identity_secret="{SECRET}"')
    first = await client.post("/api/chat", json={"message": "hello", **signed()})
    assert first.status == 200, await first.text()
    # the signature's hex may come in capitals; a later request of the conversation needs no identity
    second = await client.post("/api/chat", json={"message": "hello", "customer_id": CUSTOMER,
                                                  "customer_hash": signature(SECRET, CUSTOMER).upper()})
    assert second.status == 200
    convo = await first.json()
    again = await client.post("/api/chat", json={"message": "hi", "conversation_id": convo["conversation_id"],
                                                 "token": convo["token"]})
    assert again.status == 200
    rows = await conversation_rows(client)
    assert [h for _, h in rows] == [customer_key(SECRET, CUSTOMER)] * 2
    assert customer_key(SECRET, CUSTOMER) != signature(SECRET, CUSTOMER)
    # the raw id is in no file of the database (the WAL included), nor the signature
    db_path = client.server.app[RUNTIME].settings.db_path
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    data = b"".join(p.read_bytes() for p in files)
    assert customer_key(SECRET, CUSTOMER).encode() in data  # the files are read: the hash is found
    assert CUSTOMER.encode() not in data and b"customer-4711" not in data
    assert signature(SECRET, CUSTOMER).encode() not in data


async def test_a_wrong_signature_is_refused_and_nothing_is_written(make_client):
    client = await make_client(f'server.identity_secret="{SECRET}"')
    cases = [
        ({"customer_id": CUSTOMER, "customer_hash": signature("another secret", CUSTOMER)}, 403, "does not match"),
        ({"customer_id": "someone-else", "customer_hash": signature(SECRET, CUSTOMER)}, 403, "does not match"),
        ({"customer_id": CUSTOMER}, 400, "go together"),
        ({"customer_id": "", "customer_hash": signature(SECRET, "")}, 400, "customer_id must be"),
        ({"customer_id": CUSTOMER, "customer_hash": 5}, 400, "customer_hash must be a string"),
    ]
    for identity, status, reason in cases:
        response = await client.post("/api/chat", json={"message": "hello", **identity})
        body = await response.json()
        assert response.status == status and reason in body["error"], (identity, body)
    assert await conversation_rows(client) == []


async def test_an_identity_sent_to_a_server_without_a_secret_is_refused(make_client):
    client = await make_client()
    response = await client.post("/api/chat", json={"message": "hello", **signed()})
    assert response.status == 400 and "identity_secret" in (await response.json())["error"]
    assert (await client.post("/api/chat", json={"message": "hello"})).status == 200  # anonymous still works


async def test_the_conversations_of_one_customer_share_one_rate_limit(make_client):
    client = await make_client(f'server.identity_secret="{SECRET}"', "server.rate_limit=0.01", "server.rate_burst=3")
    a = await (await client.post("/api/chat", json={"message": "hello", **signed()})).json()  # 1 of the customer's 3
    b = await (await client.post("/api/chat", json={"message": "hello", **signed()})).json()  # 2
    assert a["conversation_id"] != b["conversation_id"]
    in_a = {"message": "more", "conversation_id": a["conversation_id"], "token": a["token"]}
    in_b = {"message": "more", "conversation_id": b["conversation_id"], "token": b["token"]}
    assert (await client.post("/api/chat", json=in_a)).status == 200  # 3
    limited = await client.post("/api/chat", json=in_b)  # the other conversation: the same customer's budget
    assert limited.status == 429 and "slow down" in (await limited.json())["error"]
    assert (await client.post("/api/chat", json={"message": "hello", **signed()})).status == 429
    # another customer, and an anonymous visitor from the same address, have budgets of their own
    assert (await client.post("/api/chat", json={"message": "hello", **signed("customer-2")})).status == 200
    assert (await client.post("/api/chat", json={"message": "hello"})).status == 200


def test_a_log_from_before_identity_gets_the_column_and_keeps_its_conversations(tmp_path):
    from bot.dialogue.conversations import ConversationLog
    from core.sqlite import connect
    from training.redact import RedactSettings, Redactor

    db = connect(tmp_path / "old.db")
    db.execute("create table conversations (id text primary key, token_hash text not null, created real not null,"
               " updated real not null, handoff integer not null default 0, failures integer not null default 0,"
               " pending text, slots text not null default '{}', turns integer not null default 0)")
    db.execute("insert into conversations (id, token_hash, created, updated) values ('old', 'x', 1, 1)")
    ConversationLog(db, Redactor(RedactSettings()))
    assert db.execute("select id, customer_hash from conversations").fetchall() == [("old", None)]
