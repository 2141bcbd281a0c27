"""The website widget's routes: `/widget.js` (cacheable, versioned by its content hash) and `/demo`.

Sites embed the widget with one line, `<script src="https://BOT-HOST/widget.js" async></script>`:
that URL is cached briefly (a new widget reaches every site within minutes) and revalidated by ETag;
`/widget.js?v=<version>` is cached for a year, since its content can never change.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from aiohttp import web

from bot.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "static"
PLAIN_MAX_AGE = 300  # seconds the unversioned /widget.js may be cached before it is revalidated
IMMUTABLE = "public, max-age=31536000, immutable"
# The demo page is a strict customer site: the widget must work without inline scripts or eval.
DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class WidgetScript:
    """widget.js as served: its bytes, the same gzip-compressed, and its version (a content hash)."""

    body: bytes
    gzipped: bytes
    version: str

    @classmethod
    def load(cls, path: Path = STATIC / "widget.js") -> "WidgetScript":
        body = path.read_bytes()
        return cls(body, gzip.compress(body, 9, mtime=0), hashlib.sha256(body).hexdigest()[:16])

    @property
    def url(self) -> str:
        """Path of the versioned, long-cached script."""
        return f"/widget.js?v={self.version}"


WIDGET_SCRIPT = web.AppKey("widget_script", WidgetScript)


def snippet(src: str, title: str) -> str:
    """The one line a site adds to its pages to embed the widget."""
    return f'<script src="{html.escape(src)}" data-title="{html.escape(title)}" async></script>'


def widget_title(settings: Settings) -> str:
    return f"{settings.shown_name} support" if settings.shown_name else "Support"


def add_routes(app: web.Application, settings: Settings, suggestions: Sequence[str] = ()) -> None:
    """Serve `/widget.js` and the `/demo` host page (the bot's own name, and `suggestions` to try: one example of
    each of a few intents); `app[WIDGET_SCRIPT]` tells others the version."""
    script = WidgetScript.load()
    app[WIDGET_SCRIPT] = script
    demo = (STATIC / "demo.html").read_text(encoding="utf-8")
    title = widget_title(settings)

    async def widget_js(request: web.Request) -> web.StreamResponse:
        return serve_script(request, script)

    async def demo_page(request: web.Request) -> web.Response:
        public = f"{request.scheme}://{request.host}/widget.js"
        page = (demo.replace("{{SNIPPET}}", snippet(script.url, title))
                .replace("{{SNIPPET_TEXT}}", html.escape(snippet(public, title)))
                .replace("{{TITLE}}", html.escape(title))
                .replace("{{NAME}}", html.escape(settings.shown_name))
                .replace("{{TRY}}", "\n".join(f"    <li>{html.escape(text)}</li>" for text in suggestions)))
        return web.Response(text=page, content_type="text/html", headers={
            "Content-Security-Policy": DEMO_CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
        })

    icon = (STATIC / "favicon.svg").read_bytes()

    async def favicon(request: web.Request) -> web.Response:
        # An SVG under the name browsers ask for unprompted; the demo page links it with its type.
        return web.Response(body=icon, content_type="image/svg+xml", headers={
            "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})

    app.router.add_get("/widget.js", widget_js)
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/favicon.ico", favicon)


def serve_script(request: web.Request, script: WidgetScript) -> web.StreamResponse:
    """The script (gzip when accepted) with ETag, Cache-Control and X-Widget-Version; 304 when unchanged."""
    gz = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    etag = script.version + ("-gz" if gz else "")
    versioned = request.query.get("v") == script.version
    headers = {
        "Cache-Control": IMMUTABLE if versioned else f"public, max-age={PLAIN_MAX_AGE}",
        "X-Widget-Version": script.version,
        "Vary": "Accept-Encoding",
        # Sites that isolate themselves (COEP) may still load it; browsers must not sniff it as anything else.
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    wanted = request.if_none_match or ()
    if any(tag.value in (etag, "*") for tag in wanted):
        response = web.Response(status=304, headers=headers)
    else:
        response = web.Response(body=script.gzipped if gz else script.body, headers=headers,
                                content_type="text/javascript", charset="utf-8")
        if gz:
            response.headers["Content-Encoding"] = "gzip"
    response.etag = etag
    return response
