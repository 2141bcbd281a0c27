"""Tell people that a conversation needs them: an optional webhook, fire-and-forget.

The chat answer never waits for the webhook; a slow or failing receiver is logged and forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger("supportbot.handoff")


class HandoffNotifier:
    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self.sent = 0
        self.failed = 0

    def notify(self, payload: dict[str, Any]) -> None:
        """POST `payload` to the webhook in the background (no-op without one)."""
        if not self.url:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        task = asyncio.get_running_loop().create_task(self._post(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        try:
            async with self._session.post(self.url, json=payload) as response:
                if response.status >= 400:
                    raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
            self.sent += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.failed += 1
            # The URL may carry a secret (a chat-service hook): log its host only.
            log.warning("handoff webhook to %s failed for conversation %s: %s",
                        URL(self.url).host, payload.get("conversation_id"), type(e).__name__)

    async def close(self) -> None:
        """Give webhooks in flight their timeout, then close the client session."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout)
        if self._session is not None:
            await self._session.close()
