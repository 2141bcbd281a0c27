"""The server's keys: the admin token (`Authorization: Bearer <token>` for /admin/, /metrics and the review API's
admin access; from `server.admin_token`, else the environment, and the demo makes one of its own) and the review
sessions' cookie key. What the server makes itself it keeps in the state folder, readable by this user only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from bot.settings import Settings

TOKEN_ENV = "SUPPORTBOT_ADMIN_TOKEN"


def admin_token(settings: Settings) -> str:
    """The configured token; empty: admin access is disabled."""
    return settings.server.admin_token or os.environ.get(TOKEN_ENV, "")


def demo_admin_token(state: Path) -> str:
    """The demo's admin token: made once, never printed."""
    return _kept(state / "admin_token", lambda: secrets.token_urlsafe(24))


def session_key(state: Path) -> bytes:
    """The Fernet key of review sessions: made once per state folder."""
    from cryptography.fernet import Fernet

    return _kept(state / "review_session.key", lambda: Fernet.generate_key().decode()).encode()


def _kept(file: Path, make: Callable[[], str]) -> str:
    """The secret in `file`, made by `make` and written (mode 0600) the first time; a process that loses the race
    to create it reads the winner's."""
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
        except FileExistsError:
            pass
    return file.read_text().strip()
