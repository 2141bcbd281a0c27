"""Headless Chromium for the browser tests, and the customer websites (host pages) they open.

The browser is the system's Debian `chromium` (`apt-get install -y chromium`), driven by the Playwright
Python package; no browser is ever downloaded. A missing chromium fails the tests loudly: CI installs it.
"""

from __future__ import annotations

import html
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM_ENV = "SUPPORTBOT_CHROMIUM"  # another chromium binary, e.g. on a developer's laptop
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_path() -> str:
    """The chromium binary, or a test failure that says how to install it."""
    candidates = [os.environ.get(CHROMIUM_ENV), "/usr/bin/chromium", shutil.which("chromium")]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "chromium not found at /usr/bin/chromium (nor $SUPPORTBOT_CHROMIUM, nor on PATH): the browser tests need "
        "Debian's chromium, `apt-get install -y chromium`, and the Playwright Python package (pip install playwright; "
        "no `playwright install` needed)", pytrace=False,
    )


def launch(playwright):
    """A fresh headless chromium (Playwright gives it a new temporary user-data dir, removed on close)."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  /* Hostile host styles: none of them may reach the widget. */
  * {{ color: rgb(255, 0, 0) !important; font-family: monospace !important; }}
  button {{ background: yellow; padding: 30px; }}
  li, div {{ border: 3px solid lime; margin: 20px; }}
</style>
<script>window.__globalsBefore = Object.getOwnPropertyNames(window);</script>
</head>
<body>
<h1>{title}</h1>
<p><a href="/">Home</a> · <a href="/page2">Another page</a> · <button type="button">A host button</button></p>
<p>A customer's website on another origin than the bot.</p>
{snippet}
</body>
</html>
"""


class HostSite:
    """A customer's website on its own origin: `/` and `/page2` both embed the widget with the one-line snippet."""

    def __init__(self, port: int, bot_url: str, attrs: str = 'data-title="Acme support"'):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        snippet = f'<script src="{html.escape(bot_url)}/widget.js" {attrs} async></script>'
        pages = {"/": "Acme home", "/page2": "Acme products"}
        self.pages = {path: PAGE.format(title=title, snippet=snippet).encode() for path, title in pages.items()}
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"host-site-{port}", daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> "HostSite":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
