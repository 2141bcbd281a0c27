"""A worker target for tests/bot/test_workers.py that dies at once (imported by a spawned process)."""

import sys


def die(index: int) -> None:
    sys.exit(3)
