"""The admin token: `Authorization: Bearer <token>` for /admin/, /metrics and the review API's admin access.
From `server.admin_token`, else the environment; the demo makes one of its own."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot.settings import Settings

TOKEN_ENV = "SUPPORTBOT_ADMIN_TOKEN"


def admin_token(settings: Settings) -> str:
    """The configured token; empty: admin access is disabled."""
    return settings.server.admin_token or os.environ.get(TOKEN_ENV, "")


def demo_admin_token(state: Path) -> str:
    """The demo's admin token: made once, kept in a file only this user can read, never printed."""
    file = state / "admin_token"
    if not file.is_file():
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return file.read_text().strip()
