"""/metrics in the Prometheus text format (guarded), request ids on every response, JSON-lines logs that carry
ids and timings but never what the customer wrote."""

from __future__ import annotations

import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from bot.serving.logs import JsonLines
from runtime_doubles import FakeSource

ADMIN = {"Authorization": "Bearer test-admin-token"}
SECRET_TEXT = "my card number is 4111 1111 1111 1111 where is my order"


async def scrape(client, headers=ADMIN) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def chat(client, message, **extra):
    response = await client.post("/api/chat", json={"message": message, **extra})
    assert response.status == 200
    return await response.json()


async def test_metrics_needs_the_admin_token_or_an_allowed_address(make_client):
    client = await make_client()
    response = await client.get("/metrics")
    assert response.status == 401 and "metrics_allow" in (await response.json())["error"]
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    allowed = await make_client('server.metrics_allow=["127.0.0.0/8"]')
    assert (await allowed.get("/metrics")).status == 200


async def test_counters_move_after_a_few_chats(make_client):
    source = FakeSource("v7")
    client = await make_client(source=source)
    before = await scrape(client)
    convo = await chat(client, "where is my order AB12345")
    await chat(client, "hello")
    await chat(client, "something odd")  # a fallback, flagged
    assert (await client.post("/api/feedback", json={"conversation_id": convo["conversation_id"], "token": convo["token"],
                                                   "turn_id": convo["turn_id"], "rating": "down"})).status == 200
    after = await scrape(client)
    assert value(after, "supportbot_chat_turns_total", route="template") - value(before, "supportbot_chat_turns_total", route="template") == 1
    assert value(after, "supportbot_chat_turns_total", route="smalltalk") == 1
    assert value(after, "supportbot_chat_turns_total", route="fallback") == 1
    assert value(after, "supportbot_flags_total", kind="fallback") == 1
    assert value(after, "supportbot_flags_total", kind="negative_feedback") == 1
    assert value(after, "supportbot_http_requests_total", route="/api/chat", method="POST", status="200") == 3
    assert value(after, "supportbot_http_request_duration_seconds_count", route="/api/chat") == 3
    assert value(after, "supportbot_model_inference_seconds_count") >= 2
    assert value(after, "supportbot_model_batch_size_sum") >= 2
    assert value(after, "supportbot_knowledge_search_seconds_count") >= 1
    assert value(after, "supportbot_model_info", version="v7") == 1
    assert value(after, "supportbot_ready") == 1
    assert value(after, "supportbot_open_handoffs") == 0
    await chat(client, "human please")
    source.version = "v8"
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 200
    later = await scrape(client)
    assert value(later, "supportbot_open_handoffs") == 1
    assert value(later, "supportbot_model_reloads_total") == 1
    assert value(later, "supportbot_model_info", version="v8") == 1 and value(later, "supportbot_model_info", version="v7") == 0


async def test_route_labels_are_templates_not_paths(make_client):
    client = await make_client()
    await client.get("/api/conversations/someone-typed-this?x=1")
    await client.get("/no/such/page")
    samples = await scrape(client)
    routes = {dict(labels).get("route") for name, labels in samples if name == "supportbot_http_requests_total"}
    assert "/api/conversations/{conversation_id}" in routes and "unmatched" in routes
    assert not any("someone-typed-this" in (r or "") for r in routes)


async def test_every_response_names_its_request_id(make_client):
    client = await make_client()
    ok = await client.post("/api/chat", json={"message": "hello"})
    bad = await client.post("/api/chat", json={"message": ""})
    missing = await client.get("/nope")
    ids = [r.headers.get("X-Request-Id") for r in (ok, bad, missing)]
    assert all(ids) and len(set(ids)) == 3 and bad.status == 400
    kept = await client.get("/healthz", headers={"X-Request-Id": "proxy-abc-12345"})
    assert kept.headers["X-Request-Id"] == "proxy-abc-12345"
    odd = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert odd.headers["X-Request-Id"] != "bad id\twith spaces" and len(odd.headers["X-Request-Id"]) == 32
    redirect = await client.get("/review", allow_redirects=False)
    assert redirect.status == 303 and redirect.headers.get("X-Request-Id")


async def test_json_log_lines_carry_ids_and_timings_never_the_message(make_client, caplog):
    client = await make_client('server.log_format="json"')
    with caplog.at_level(logging.INFO, logger="supportbot.access"):
        response = await client.post("/api/chat", json={"message": SECRET_TEXT})
        reply = await response.json()
    lines = [JsonLines().format(r) for r in caplog.records if r.name == "supportbot.access"]
    entries = [json.loads(line) for line in lines]
    chat_line = next(e for e in entries if e.get("route") == "/api/chat")
    assert chat_line["request_id"] == response.headers["X-Request-Id"]
    assert chat_line["conversation_id"] == reply["conversation_id"] and chat_line["bot_route"] == reply["route"]
    assert chat_line["status"] == 200 and chat_line["latency_ms"] >= 0 and chat_line["method"] == "POST"
    everything = "\n".join(lines)
    assert "4111" not in everything and "where is my order" not in everything and reply["token"] not in everything


async def test_text_mode_writes_no_json_access_lines(make_client, caplog):
    """The same turn, captured the same way, gives one JSON access line in JSON mode and none in text mode,
    where the access line is aiohttp's text one (`serve` sends it to supportbot.access)."""
    json_mode, text_mode = await make_client('server.log_format="json"'), await make_client()
    for client, expected in ((json_mode, 1), (text_mode, 0)):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            await chat(client, "hello")
        json_lines = [r for r in caplog.records if r.name == "supportbot.access" and getattr(r, "fields", None)]
        assert [r.fields["route"] for r in json_lines] == ["/api/chat"] * expected


async def test_bad_log_format_and_scraper_networks_are_refused(tmp_path):
    import pytest

    from bot.settings import load_settings

    with pytest.raises(ValueError, match="log_format"):
        load_settings(None, ['server.log_format="xml"'])
    with pytest.raises(ValueError, match="metrics_allow"):
        load_settings(None, ['server.metrics_allow=["not-an-address"]'])


async def test_a_client_that_leaves_mid_body_is_no_server_error(make_client, caplog):
    """Part of a body, then the connection closed: counted as 499 (client closed request) and logged as one line,
    never a 500 with a traceback (anyone could inflate the error log and the 5xx alerts)."""
    import asyncio

    from tests.support.waiting import eventually

    caplog.set_level("INFO")
    client = await make_client()
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"message\": \"hel")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def counted() -> dict | None:
        samples = await scrape(client)
        return samples if value(samples, "supportbot_http_requests_total", route="/api/chat", method="POST",
                                status="499") == 3 else None

    samples = await eventually(counted, 10, "three abandoned requests counted as 499")
    assert value(samples, "supportbot_http_requests_total", route="/api/chat", method="POST", status="500") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("client went away during POST /api/chat" in r.getMessage() for r in caplog.records) == 3


def test_a_servers_log_keeps_libraries_info_lines_out(capsys, monkeypatch):
    """faiss's "Could not load library with AVX2 support" and ONNX Runtime's fusion lines are INFO from library
    loggers (some, like ONNX Runtime's `fusion_attention`, named outside their package): only warnings of theirs
    reach a server's log, every line of ours does, and transformers' progress bars are off."""
    import os

    from bot.serving.logs import configure

    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)  # restored afterwards
    root = logging.getLogger()
    kept_handlers, kept_level, bars = root.handlers[:], root.level, hf_logging.is_progress_bar_enabled()
    try:
        configure("text")
        assert not hf_logging.is_progress_bar_enabled()
        logging.getLogger("faiss.loader").info("Could not load library with AVX2 support due to: ModuleNotFoundError")
        logging.getLogger("fusion_attention").info("Fused Attention: 6")
        logging.getLogger("psycopg.pool").warning("discarding closed connection")
        logging.getLogger("supportbot.app").info("serving on http://127.0.0.1:8080")
        logging.getLogger("training.pipeline").info("trained model version v2")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = kept_handlers, kept_level
        if bars:
            hf_logging.enable_progress_bar()
    assert "AVX2" not in err and "Fused Attention" not in err
    assert "discarding closed connection" in err and "serving on" in err and "trained model version v2" in err
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
