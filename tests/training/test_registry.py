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
