from __future__ import annotations

import pytest

from training.registry import ModelRegistry


def _version(registry: ModelRegistry, tag: str) -> str:
    with registry.new_version(tag * 8) as folder:
        (folder / "weights").write_text(tag)
    return registry.latest()


def test_failed_write_leaves_no_version_and_no_scratch(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(RuntimeError):
        with registry.new_version("abcd1234") as folder:
            (folder / "weights").write_text("half")
            raise RuntimeError("killed mid-write")
    assert registry.versions() == []
    assert list(tmp_path.iterdir()) == []


def test_promote_rollback_and_prune_keep_the_serving_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    a = _version(registry, "a")
    registry.promote(a)
    b = _version(registry, "b")
    registry.promote(b)
    assert registry.current_version() == b
    assert registry.rollback() == a
    assert registry.current_path() == tmp_path / a
    c = _version(registry, "c")
    assert registry.prune(keep=1) == [b]  # a serves, c is newest
    assert registry.versions() == [a, c]
    with pytest.raises(FileNotFoundError):
        registry.promote("nope")
    with pytest.raises(ValueError):
        registry.rollback()


def test_scratch_of_a_killed_run_is_cleaned_at_the_next_run(tmp_path):
    import subprocess
    import sys

    registry = ModelRegistry(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / ".tmp-killed"  # what kill -9 mid-write leaves: half the files, its dead writer's pid
    killed.mkdir()
    (killed / "weights").write_text("half")
    (killed / ".writer-pid").write_text(dead.stdout)
    legacy = tmp_path / ".tmp-legacy"  # left by a run from before writers were recorded
    legacy.mkdir()
    with registry.new_version("abcd1234") as folder:
        assert (folder / ".writer-pid").read_text().strip().isdigit()  # this run's own scratch stays
        assert not killed.exists() and not legacy.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == registry.versions()
    assert not (tmp_path / registry.versions()[0] / ".writer-pid").exists()


def test_a_scratch_folder_still_being_written_is_kept(tmp_path):
    import os

    registry = ModelRegistry(tmp_path)
    busy = tmp_path / ".tmp-busy"
    busy.mkdir()
    (busy / ".writer-pid").write_text(str(os.getpid()))
    assert registry.clean_scratch() == [] and busy.exists()


@pytest.mark.parametrize("pointer, expected", [
    (None, "does not exist"),
    ("", "is empty"),
    ("\n", "is empty"),
    ("20990101T000000-nothere", "names '20990101T000000-nothere', which is no version here"),
])
def test_a_wrong_or_empty_pointer_is_said_with_the_versions_there_are(tmp_path, pointer, expected):
    registry = ModelRegistry(tmp_path)
    a = _version(registry, "a")
    if pointer is not None:
        (tmp_path / "CURRENT").write_text(pointer)
    assert registry.current_version() is None
    problem = registry.pointer_problem()
    assert expected in problem and f"versions here: {a}" in problem
    registry.promote(a)
    assert registry.pointer_problem() is None


def test_a_pointer_to_an_unfinished_folder_says_so(tmp_path):
    registry = ModelRegistry(tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "CURRENT").write_text("half\n")
    assert "unfinished" in registry.pointer_problem() and "no versions yet" in registry.pointer_problem()
