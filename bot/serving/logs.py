"""The server's log: what an operator needs, once. Text, or JSON objects one per line (`server.log_format =
"json"`), for log shippers. Libraries speak only from WARNING up: their INFO chatter (faiss's "could not load
AVX2" lines, ONNX Runtime's graph fusions) and transformers' "Loading weights" bars stay out of a server's log.

A record's message and the fields the request middleware attaches (request id, route, status, latency,
conversation id) are written; nothing else of the request is, so no message text, token or header reaches a log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

OURS = ("supportbot", "training.", "knowledge.", "core.", "aiohttp.access")  # whose INFO lines an operator reads


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str) -> None:
    """The root logger's one handler (stderr), as text or as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: record.levelno >= logging.WARNING or record.name.startswith(OURS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when transformers is imported (workers: later)
    if "transformers" in sys.modules:  # `demo` trained first, with its bars: none while it serves
        sys.modules["transformers"].utils.logging.disable_progress_bar()
