"""Waiting for something to happen: poll an observable condition until a deadline, never a bare sleep.

A test that needs another process or thread to reach a point (a server ready, a file written, a row stored, a
webhook received) polls for that point with `wait_until` (`eventually` on a test's event loop); a sleep of a
guessed length standing in for it makes the test slow when it is generous and flaky when it is not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, *, interval_s: float = 0.1,
               details: Callable[[], str] = lambda: "") -> T:
    """Calls `condition` every `interval_s` until it returns something true, and returns that. After `timeout_s`
    fails the test with an AssertionError naming `what` was waited for, followed by `details()` (e.g. the tail of
    a server's log)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            more = details()
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}" + (f"\n{more}" if more else ""))
        time.sleep(interval_s)


async def eventually(condition: Callable[[], Awaitable[T]], timeout_s: float, what: str, *,
                     interval_s: float = 0.01) -> T:
    """`wait_until` for a test on the event loop (an aiohttp test client's app runs on it): awaits `condition()`
    every `interval_s`, giving the loop to the app in between, until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)
