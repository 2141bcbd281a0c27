"""Guards for a clone from a public host: it has no ../shared and none of the build machine's paths."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Absolute paths that only exist on a build or developer machine, plus this checkout's own location.
_HERE = re.escape(str(ROOT.parent)) if ROOT.parent != ROOT.parent.parent else "/work"
MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/(?:work|farm|root|home/[\w.-]+|Users/[\w.-]+|mnt/[\w.-]+)|" + _HERE + ")/")
SKIPPED_SUFFIXES = {".png", ".jpg", ".ico", ".gz", ".zip", ".pdf"}


def tracked_files() -> list[Path]:
    """Files git tracks; in a tree without git (an unpacked archive), every file outside build output."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "venv", "__pycache__", "build", "test-artifacts", ".pytest_cache"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_no_tracked_file_names_a_path_of_the_build_machine():
    offenders = []
    for path in tracked_files():
        if path.suffix in SKIPPED_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, "machine paths in tracked files:\n" + "\n".join(offenders)


def test_the_guard_catches_what_it_is_for():
    slash = "/"  # written apart so that this file does not name the paths itself
    assert MACHINE_PATH.search(f'FORMATS = Path("{slash}work{slash}shared{slash}data{slash}formats")')
    assert MACHINE_PATH.search(f"see {slash}root{slash}.cache/thing")
    assert MACHINE_PATH.search(str(ROOT.parent) + "/shared/x")
    assert not MACHINE_PATH.search("https://example.com/work/item and ./work/ and ~/work/")


def test_no_test_reads_the_shared_data_folder():
    tests = [p for p in tracked_files() if p.suffix == ".py" and p.is_relative_to(ROOT / "tests")]
    assert tests
    readers = [str(p.relative_to(ROOT)) for p in tests
               if p.name != Path(__file__).name and re.search(r"shared[/\"', ]+data", p.read_text())]
    assert not readers, f"tests that read the shared data sets beside the repository (copy a trimmed sample to tests/fixtures/): {readers}"


def test_the_layers_keep_their_import_contract():
    """core <- knowledge <- training <- bot; bot.web and bot.cli never import each other (pyproject.toml)."""
    run = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert "BROKEN" not in run.stdout and run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_the_import_contract_catches_an_upward_import(tmp_path):
    """The contract is live: a knowledge module importing bot breaks it (checked on a copy of the packages)."""
    for package in ("core", "knowledge", "training", "bot"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "knowledge" / "upward.py").write_text("import bot.settings\n")
    run = subprocess.run(["lint-imports", "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode != 0 and "knowledge.upward -> bot.settings" in run.stdout, run.stdout[-3000:]
