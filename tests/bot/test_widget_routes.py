"""The widget routes: /widget.js caching (ETag, versions, gzip) and the /demo host page; the script's budget."""

from __future__ import annotations

import gzip
import hashlib
import re

from aiohttp import web

from bot.settings import load_settings
from bot.web.widget import STATIC, WIDGET_SCRIPT, WidgetScript, add_routes, snippet, widget_title

SCRIPT = STATIC / "widget.js"


async def client_of(aiohttp_client, name: str = "acme_store"):
    app = web.Application()
    add_routes(app, load_settings(None, [f'name="{name}"']))
    return app, await aiohttp_client(app)


async def test_widget_js_is_versioned_by_content_and_revalidated_by_etag(aiohttp_client):
    app, client = await client_of(aiohttp_client)
    body = SCRIPT.read_bytes()
    version = hashlib.sha256(body).hexdigest()[:16]
    assert app[WIDGET_SCRIPT].version == version

    r = await client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert r.status == 200
    assert await r.read() == body
    assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert r.headers["X-Widget-Version"] == version
    assert r.headers["Cache-Control"] == "public, max-age=300"
    etag = r.headers["ETag"]
    assert etag == f'"{version}"'

    again = await client.get("/widget.js", headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    changed = await client.get("/widget.js", headers={"Accept-Encoding": "identity", "If-None-Match": '"old"'})
    assert changed.status == 200


async def test_versioned_url_is_immutable_and_a_stale_version_is_not(aiohttp_client):
    app, client = await client_of(aiohttp_client)
    r = await client.get(app[WIDGET_SCRIPT].url)
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = await client.get("/widget.js?v=0123456789abcdef")
    assert stale.headers["Cache-Control"] == "public, max-age=300"  # it is not what that version was


async def test_gzip_when_accepted(aiohttp_client):
    app, client = await client_of(aiohttp_client)
    r = await client.get("/widget.js", headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Vary"] == "Accept-Encoding"
    assert r.headers["ETag"] == f'"{app[WIDGET_SCRIPT].version}-gz"'
    raw = await r.read()
    assert len(raw) < SCRIPT.stat().st_size / 2
    assert gzip.decompress(raw) == SCRIPT.read_bytes()


async def test_demo_page_embeds_the_versioned_script_with_the_one_line_snippet(aiohttp_client):
    app, client = await client_of(aiohttp_client)
    r = await client.get("/demo")
    assert r.status == 200
    page = await r.text()
    assert f'<script src="{app[WIDGET_SCRIPT].url}" data-title="Acme Store support" async></script>' in page
    host = f"127.0.0.1:{client.port}"
    shown = f'&lt;script src=&quot;http://{host}/widget.js&quot; data-title=&quot;Acme Store support&quot; async&gt;'
    assert shown in page  # the copyable snippet, as text
    assert "{{" not in page
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp


def test_snippet_and_title_escape_what_they_are_given():
    assert snippet("/widget.js", 'A "quoted" <b>') == (
        '<script src="/widget.js" data-title="A &quot;quoted&quot; &lt;b&gt;" async></script>')
    assert widget_title(load_settings(None, ['name="demo_store"'])) == "Demo Store support"


def test_widget_stays_small_and_never_builds_markup_from_strings():
    source = SCRIPT.read_text(encoding="utf-8")
    assert len(source.encode()) <= 30 * 1024, "the widget's budget is 30 KB uncompressed"
    # Text goes in with textContent/append only: none of these sinks may appear in the widget.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    assert re.search(r"^\s*\(\(\) => \{\s*\"use strict\";", source, re.M), "one strict IIFE, no globals but SupportBot"
    assert WidgetScript.load().version == hashlib.sha256(source.encode()).hexdigest()[:16]


async def test_cors_keeps_vary_accept_encoding_for_an_allowed_origin(aiohttp_client):
    from bot.web.security import cors

    settings = load_settings(None, ['name="acme"', 'server.allowed_origins=["https://shop.example"]'])
    app = web.Application(middlewares=[cors(settings)])
    add_routes(app, settings)
    client = await aiohttp_client(app)
    r = await client.get("/widget.js", headers={"Accept-Encoding": "gzip", "Origin": "https://shop.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert {v.strip() for v in r.headers["Vary"].split(",")} == {"Accept-Encoding", "Origin"}


async def test_display_name_titles_the_widget(aiohttp_client):
    app = web.Application()
    add_routes(app, load_settings(None, ['name="acme_store"', 'display_name="Acme & Sons"']))
    client = await aiohttp_client(app)
    page = await (await client.get("/demo")).text()
    assert 'data-title="Acme &amp; Sons support"' in page and "Acme Store" not in page


async def test_favicon_is_served(aiohttp_client):
    app, client = await client_of(aiohttp_client)
    r = await client.get("/favicon.ico")
    assert r.status == 200 and r.content_type == "image/svg+xml"
    assert (await r.read()).startswith(b"<svg")


async def test_the_demo_page_is_the_bots_own_not_the_demo_stores(aiohttp_client):
    """Any bot's /demo names that bot and suggests its own intents' examples (escaped), never the demo store."""
    app = web.Application()
    add_routes(app, load_settings(None, ['name="acme_store"', 'display_name="Acme <Sons>"']),
               ["where is my parcel", "refund <b>now</b>"])
    page = await (await (await aiohttp_client(app)).get("/demo")).text()
    assert "<strong>Acme &lt;Sons&gt;</strong>" in page and "<h1>Acme &lt;Sons&gt;</h1>" in page
    assert "<li>where is my parcel</li>" in page and "<li>refund &lt;b&gt;now&lt;/b&gt;</li>" in page
    assert "Northwind" not in page and "oak table lamp" not in page and "{{" not in page


async def test_a_refused_origin_is_named_in_the_log_once_with_the_setting(aiohttp_client, caplog):
    """The site's customers only see the widget fail; the operator's log says which origin and what to set, once per
    origin per interval, however many requests it sends."""
    from bot.web.security import cors

    settings = load_settings(None, ['name="acme"', 'server.allowed_origins=["https://shop.example"]'])
    async def chat(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application(middlewares=[cors(settings)])
    app.router.add_post("/api/chat", chat)
    client = await aiohttp_client(app)
    preflight = {"Origin": "https://new-site.example", "Access-Control-Request-Method": "POST"}
    for _ in range(3):  # answered, so that the widget there can read the refusal of its chat POST
        assert (await client.options("/api/chat", headers=preflight)).status == 204
    assert (await client.post("/api/chat", json={}, headers={"Origin": "https://other.example"})).status == 403
    allowed = await client.options("/api/chat", headers={**preflight, "Origin": "https://shop.example"})
    assert allowed.status == 204
    named = [r.getMessage() for r in caplog.records if "refused a browser request" in r.getMessage()]
    assert named == [
        "refused a browser request from origin 'https://new-site.example': if the widget is on that site, add it "
        "to server.allowed_origins",
        "refused a browser request from origin 'https://other.example': if the widget is on that site, add it "
        "to server.allowed_origins"]
