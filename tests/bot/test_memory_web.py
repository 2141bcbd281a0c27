"""The memory of reviewed answers through the chat API: a reviewer's correction answers a paraphrase at once,
with no retrain, on every worker; undo takes it back. The knowledge base and its embedder are real (the packaged
MiniLM); the intent model is the fixed-probability double, so that only the memory can know the answer."""

from __future__ import annotations

import pytest

from bot.web.runtime import RUNTIME
from core.sqlite import connect
from knowledge.base import KnowledgeBase
from knowledge.settings import KnowledgeSettings
from tests.support.bots import ADMIN
from training.store import Example, ExampleStore

pytestmark = pytest.mark.slow
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def real_kb(tmp_path):
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "returns.md").write_text("# Returns\n\nYou can return any item within 30 days for a refund.\n")
    kb = KnowledgeBase.open(tmp_path / "kb.db", tmp_path / "kb-index", KnowledgeSettings())
    kb.sync([articles])
    yield kb
    kb.close()


async def chat(client, message: str) -> dict:
    response = await client.post("/api/chat", json={"message": message})
    assert response.status == 200, await response.text()
    return await response.json()


async def correct(client, message: str, intent: str) -> dict:
    """What a reviewer does with the turn of `message` in the queue: correct it to `intent`."""
    queue = (await (await client.get("/api/review/queue", headers=AS_ADMIN)).json())["items"]
    [group] = [g for g in queue if message in str(g)]
    done = await client.post(f"/api/review/items/{group['id']}/actions", headers=AS_ADMIN,
                             json={"action": "correct", "intent": intent})
    assert done.status == 200, await done.text()
    return await done.json()


REVIEWED = {  # what reviewers settled before: enough for the memory to fit its threshold (30 or more)
    "track_order": ["where is my order", "track my parcel please", "my package has not arrived", "when will my order come",
                    "where's my delivery", "tracking number for my order", "order still not here", "status of my shipment"],
    "cancel_order": ["cancel my order", "I want to cancel the purchase", "please stop my order", "cancel order now",
                     "I changed my mind, cancel it", "how do I cancel an order", "cancel the order I placed",
                     "can you cancel my purchase"],
    "send_receipt": ["send me the receipt", "I need an invoice", "email me my receipt", "can I get a receipt",
                     "receipt for my purchase please", "where is my invoice", "resend the receipt", "I lost my receipt"],
    "out_of_scope": ["what is the weather tomorrow", "tell me a joke", "who won the match", "what time is it in Tokyo",
                     "recommend a movie", "how tall is everest", "what's the capital of Peru", "sing me a song"],
}


def settled_before(tmp_path) -> None:
    store = ExampleStore(connect(tmp_path / "state" / "supportbot.db"))
    store.add([Example(t, intent, "review", provenance=f"turn:{1000 + n}")
               for n, (intent, texts) in enumerate(REVIEWED.items()) for t in texts])


async def explain(client, message: str) -> dict:
    return await (await client.get("/api/review/explain", params={"q": message}, headers=AS_ADMIN)).json()


async def test_a_correction_answers_a_paraphrase_at_once(make_client, real_kb, tmp_path):
    (tmp_path / "state").mkdir(exist_ok=True)
    settled_before(tmp_path)
    client = await make_client(knowledge=real_kb)
    assert (await explain(client, "do you have this sofa in green"))["intent"] != "product_question"
    await chat(client, "do you have this sofa in green")
    await correct(client, "do you have this sofa in green", "product_question")
    paraphrase = await explain(client, "is this sofa available in green?")  # no retrain in between
    assert paraphrase["intent"] == "product_question" and paraphrase["rule"].startswith("matched reviewed turn ")
    memory = client.server.app[RUNTIME].memory
    assert memory.fit.fitted and memory.fit.threshold < 0.97 and len(memory) == 33
    assert (await explain(client, "do you deliver on sundays"))["rule"].startswith("matched") is False


async def test_a_small_memory_answers_a_repeat_and_undo_takes_it_back(make_client, real_kb):
    client = await make_client(knowledge=real_kb)
    first = await chat(client, "has my parcel left your warehouse yet")
    assert first["route"] in ("fallback", "knowledge")  # the model double knows nothing like it
    outcome = await correct(client, "has my parcel left your warehouse yet", "track_order")
    # a repeat of it, asked before any retrain: the memory answers with the reviewer's intent
    again = await chat(client, "Has my parcel left your warehouse yet?")
    assert again["route"] == "template" and "What is your order number?" in again["answer"]
    assert (await explain(client, "Has my parcel left your warehouse yet?"))["rule"].startswith("matched reviewed turn ")
    memory = client.server.app[RUNTIME].memory
    assert len(memory) == 1 and memory.fit.threshold >= 0.97  # one reviewed message: near-exact repeats only
    assert (await chat(client, "has my parcel left the warehouse yet?"))["route"] != "template"  # not near enough
    undone = await client.post(f"/api/review/actions/{outcome['action_ids'][0]}/undo", headers=AS_ADMIN)
    assert undone.status == 200
    assert (await chat(client, "Has my parcel left your warehouse yet?"))["route"] != "template"


async def test_a_second_worker_sees_a_new_entry(make_client, real_kb):
    first = await make_client(knowledge=real_kb, worker=1)
    second = await make_client(knowledge=real_kb, worker=2)
    await chat(first, "is my parcel still in your warehouse")
    await correct(first, "is my parcel still in your warehouse", "track_order")
    assert (await chat(second, "is my parcel still in your warehouse?"))["route"] == "template"


def test_memory_stats_says_what_the_server_would_fit(tmp_path, capsys):
    import run_bot
    from runtime_doubles import write_bot

    bot = write_bot(tmp_path / "bot", f'state_dir = "{tmp_path / "state"}"\n')
    (tmp_path / "state").mkdir()
    assert run_bot.main(["memory", "stats", "--bot", str(bot)]) == 0
    assert "reviewed messages 0" in capsys.readouterr().out
    settled_before(tmp_path)
    assert run_bot.main(["memory", "stats", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "reviewed messages 32 (4 outcomes)" in out and "track_order: 8" in out
    assert "fitted to precision 0.95: leave-one-out answered" in out
    from bot.folder.bot_folder import BotFolder
    from bot.training_run import memory_expectation

    line = memory_expectation(BotFolder.load(bot))  # what `run_bot.py evaluate` prints under its summary
    assert line.startswith("memory of reviewed answers: 32 messages, similarity threshold")


async def test_a_memory_that_fails_leaves_the_decision_to_the_model(make_client, tmp_path, caplog):
    """The memory is one signal: when it cannot embed, the turn is answered as without it and the log says so
    (without the message)."""
    from runtime_doubles import ScriptedKnowledge

    class Failing(ScriptedKnowledge):
        def correct(self, text):
            return text

        def embed_queries(self, texts):
            raise RuntimeError("embedder crashed")

    (tmp_path / "state").mkdir(exist_ok=True)
    settled_before(tmp_path)
    client = await make_client(knowledge=Failing())
    reply = await chat(client, "Where is my order AB12345?")
    assert reply["route"] == "template" and "AB12345" in reply["answer"]
    assert "memory of reviewed answers unavailable: RuntimeError" in caplog.text and "AB12345" not in caplog.text


async def test_entries_the_serving_model_answers_by_itself_are_marked_learned(make_client, real_kb, tmp_path):
    """Marked in the background once the memory is built; a learned entry still answers, and says so."""
    (tmp_path / "state").mkdir(exist_ok=True)
    settled_before(tmp_path)
    client = await make_client(knowledge=real_kb)
    await chat(client, "do you sell gift cards")  # the turn that builds the memory and starts the marking
    rt = client.server.app[RUNTIME]
    await rt._learning
    by_text = {e.text: e.id for e in rt.memory.examples}
    assert rt.memory.learned_version == rt.models.version
    assert by_text["cancel my order"] in rt.memory.learned  # the model double answers cancel_order itself
    assert by_text["what is the weather tomorrow"] in rt.memory.learned  # out of scope, and the model refuses it
    assert by_text["where is my invoice"] not in rt.memory.learned  # the model says track_order: the memory knows
    assert "(learned by model" in (await explain(client, "cancel my order please"))["rule"]
    assert "(learned by model" not in (await explain(client, "where is my invoice?"))["rule"]
