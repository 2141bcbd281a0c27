"""Clustering unlabelled requests into proposed intents, their names, and the proposal store."""

from __future__ import annotations

from import_doubles import WordEmbedder
from core.sqlite import connect
from training.clusters import cluster_texts, propose, suggest_names
from training.store import Example, ExampleStore, ProposalStore
from training.transcripts.settings import TranscriptSettings

GIFT = ["can you gift wrap my order", "gift wrap for a present please", "is gift wrapping possible for the throw"]
BULK = ["wholesale discount for 80 mugs", "do you do wholesale for cafes", "trade discount wholesale account"]


def test_names_come_from_distinctive_words():
    names = suggest_names([GIFT, BULK], background=["where is my order", "my order never came"])
    assert names[0].startswith("gift") and names[1].startswith("wholesale")
    assert suggest_names([["the a"], ["the a"]]) == ["new_intent", "new_intent_2"]


def test_similar_texts_form_clusters_and_small_groups_are_left_alone():
    texts = GIFT + BULK + ["showroom opening hours on saturday"]
    clusters, used = cluster_texts(texts, WordEmbedder().encode(texts), distance=0.9, min_size=3)
    assert sorted(sorted(c.members) for c in clusters) == [[0, 1, 2], [3, 4, 5]] and used == 0.9
    for c in clusters:
        assert c.examples[0] == texts[c.members[0]] and 0 < c.cohesion <= 1
    assert cluster_texts(texts[:2], WordEmbedder().encode(texts[:2]), 0.9, 3) == ([], 0.9)


def test_the_cut_is_chosen_by_silhouette_when_no_distance_is_set():
    texts = GIFT + BULK + ["showroom opening hours on saturday", "", "gift"]
    clusters, used = cluster_texts(texts, WordEmbedder().encode(texts), distance=0, min_size=3)
    assert sorted(sorted(c.members)[:3] for c in clusters) == [[0, 1, 2], [3, 4, 5]] and 0.3 <= used <= 0.75


def test_propose_replaces_open_proposals_and_skips_dropped_examples():
    db = connect(None)
    store, proposals = ExampleStore(db), ProposalStore(db)
    store.add([Example(t, None, source="transcript") for t in GIFT + BULK] + [Example("where is my order", "track")])
    settings = TranscriptSettings(cluster_distance=0.9, min_cluster_size=3)
    first = propose(store, WordEmbedder(), settings)
    assert len(first) == 2 and len(proposals.proposals()) == 2
    gift = next(p for p in proposals.proposals() if "gift" in p.name)
    with db.transaction():
        proposals.update(gift.id, status="dropped")
    again = propose(store, WordEmbedder(), settings)
    assert len(again) == 1 and "wholesale" in proposals.get(again[0]).name
    assert {p.status for p in proposals.proposals(status=None)} == {"dropped", "open"}


def test_accepting_labels_only_the_still_unlabelled_members():
    db = connect(None)
    store, proposals = ExampleStore(db), ProposalStore(db)
    store.add([Example(t, None, source="transcript") for t in GIFT])
    ids = [e.id for e in store.examples(labelled=None)]
    store.label(ids[:1], "other", "review")
    with db.transaction():
        (pid,) = proposals.replace_open([("gift_wrap", ids, GIFT[:2])])
        labelled = proposals.label_members(proposals.get(pid), "gift_wrap")
    assert labelled == ids[1:]
    assert store.counts() == {"gift_wrap": 2, "other": 1}
