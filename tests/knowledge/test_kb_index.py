"""The FAISS wrapper: stable ids, exact vs approximate, filtered search, atomic save and load."""

from __future__ import annotations

import numpy as np

from knowledge.index import FILE_NAME, VectorIndex, exact_search, recall_at


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    x = centres[rng.integers(0, 20, n)] + 0.4 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_index_keeps_ids_through_add_and_remove():
    x = clustered(100)
    ids = np.arange(1000, 1100)
    index = VectorIndex.build(ids, x, 32)
    assert index.kind == "flat"
    _, found = index.search(x[:3], 1)
    assert found[:, 0].tolist() == [1000, 1001, 1002]
    index.remove([1001])
    index.add(np.array([5000]), x[1:2])
    _, found = index.search(x[1:2], 1)
    assert found[0, 0] == 5000 and len(index) == 100


def test_exact_search_matches_brute_force():
    x, q = clustered(500), clustered(10, seed=1)
    ids = np.arange(500) * 3
    top = exact_search(x, ids, q, 5, block=64)
    brute = ids[np.argsort(-(q @ x.T), axis=1)[:, :5]]
    assert np.array_equal(top, brute)


def test_approximate_index_is_tuned_to_the_recall_target_and_filters():
    both = clustered(4050)
    x, q = both[:4000], both[4000:]  # held-out queries from the same clusters
    ids = np.arange(4000) + 7
    index = VectorIndex.build(ids, x, 32, exact_max=1000, target_recall=0.95)
    assert index.kind == "ivf" and index.recall >= 0.95 and 1 <= index.nprobe <= index.index.nlist
    _, found = index.search(q, 10)
    assert recall_at(found, exact_search(x, ids, q, 10)) >= 0.9
    allowed = np.array([10, 2000, 3999])
    _, found = index.search(q[:1], 3, allowed)
    assert sorted(found[0].tolist()) == allowed.tolist()  # every allowed id found, whatever its cluster


def test_save_is_one_renamed_file_and_load_round_trips(tmp_path):
    index = VectorIndex.build(np.arange(10), clustered(10), 32)
    index.save(tmp_path, generation=7)
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary left behind
    loaded = VectorIndex.load(tmp_path)
    assert loaded.generation == 7 and np.array_equal(loaded.ids, np.arange(10))
    assert VectorIndex.load(tmp_path / "missing") is None
