"""The product code of a git revision, for benchmarks that measure it beside this tree's in the same run.

`code_of(ref)` extracts the revision's packages into a temporary folder (put it on PYTHONPATH); `OLD_NAMES` is a
prelude for the scripts those processes run, so one script imports the modules by today's names on code from
before the restructuring of issue 31 too (it maps each new name to the old module where the new one is missing;
the editable install's import hook, which would find the missing module in this tree, is removed first).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "knowledge", "training", "bot")

# new name -> the module it was before issue 31 moved it
MOVED = {
    "core.engine": "knowledge.engine", "core.sqlite": "knowledge.database", "core.settings": "knowledge.settings",
    "bot.dialogue.conversations": "bot.conversations", "bot.dialogue.router": "bot.router",
    "bot.review.store": "bot.reviews", "bot.analytics.figures": "bot.analytics",
}

# The editable install's finder would fill a module missing from the revision with this tree's: drop it first.
OLD_NAMES = ("import importlib as _il, sys as _sys\n"
             "_sys.meta_path[:] = [f for f in _sys.meta_path if 'editable' not in getattr(f, '__module__', '')]\n") + "".join(
    f"try:\n    _il.import_module({new!r})\nexcept ModuleNotFoundError:\n    _sys.modules[{new!r}] = _il.import_module({old!r})\n"
    for new, old in MOVED.items())


def code_of(ref: str) -> Path:
    """A temporary folder holding the product packages of git revision `ref`, as they were there."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", ref], check=True, capture_output=True,
                            text=True).stdout.split()
    root = Path(tempfile.mkdtemp(prefix="bench-ref-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *[p for p in PACKAGES if p in listed]],
                             check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root
