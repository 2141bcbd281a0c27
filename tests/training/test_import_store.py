"""import_transcripts: counts on the real samples, idempotency, provenance, redaction, dry run, all-or-nothing."""

from __future__ import annotations

import pytest

from import_doubles import FIXTURES, FORMATS_DIR, WordEmbedder
from core.sqlite import connect
from training.importer import import_transcripts
from training.store import ExampleStore, ProposalStore
from training.transcripts.settings import TranscriptSettings
from training.transcripts.source import TranscriptError

TWCS = FORMATS_DIR / "twcs_sample" / "sample.csv"
ABCD = FORMATS_DIR / "abcd_sample" / "abcd_sample.json"
RASA = FORMATS_DIR / "rasa_financial_demo"
NO_CLUSTERS = dict(cluster=False)


@pytest.fixture
def store():
    return ExampleStore(connect(None))


def test_real_samples_import_with_expected_counts_and_twice_adds_nothing(store):
    twcs = import_transcripts(TWCS, "twitter", store, **NO_CLUSTERS)
    assert (twcs.conversations, twcs.requests, twcs.added, twcs.unlabelled) == (27, 27, 27, 27)
    abcd = import_transcripts(ABCD, "abcd", store, **NO_CLUSTERS)
    assert (abcd.conversations, abcd.requests, abcd.added, dict(abcd.labelled)) == (3, 4, 4, {"explicit": 3})
    rasa = import_transcripts(RASA, "rasa", store, **NO_CLUSTERS)
    assert (rasa.conversations, rasa.added, rasa.skipped["duplicate within the file"]) == (578, 532, 46)
    assert len(store.counts()) == 17 + 3
    total = len(store.examples(labelled=None))
    assert total == 27 + 4 + 532
    again = [import_transcripts(p, f, store, **NO_CLUSTERS) for p, f in [(TWCS, "twitter"), (ABCD, "abcd"), (RASA, "rasa")]]
    assert [r.added for r in again] == [0, 0, 0]
    assert again[0].skipped == {"already imported": 27}
    assert len(store.examples(labelled=None)) == total
    assert [i["format"] for i in store.imports()] == ["twitter", "abcd", "rasa"] * 2


def test_provenance_links_file_conversation_and_turn(store):
    import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, root=FIXTURES, **NO_CLUSTERS)
    by_text = {e.text: e for e in store.examples(labelled=None)}
    cancel = by_text["I want to cancel my order please"]
    assert (cancel.provenance, cancel.intent, cancel.label_method) == ("generic_chats.csv#g2:0", "cancel_order", "explicit")
    assert by_text["where is my order?"].source == "transcript"


def test_pii_is_redacted_before_storage_and_counted(store):
    report = import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, **NO_CLUSTERS)
    assert report.redactions == {"CARD": 1, "EMAIL": 1}
    texts = " ".join(e.text for e in store.examples(labelled=None))
    assert "4111" not in texts and "bob@example.com" not in texts and "[CARD]" in texts and "[EMAIL]" in texts
    report = import_transcripts(FIXTURES / "zendesk_tickets.jsonl", "zendesk", store, **NO_CLUSTERS)
    assert report.redactions == {"PHONE": 1, "EMAIL": 1}


def test_skip_reasons_are_counted(store):
    report = import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, **NO_CLUSTERS)
    assert report.conversations == 5 and report.added == 3
    assert report.skipped == {"only agent turns": 1, "no request after cleaning (greetings or too short)": 1}
    report = import_transcripts(FIXTURES / "zendesk_tickets.jsonl", "zendesk", store, **NO_CLUSTERS)
    assert report.skipped == {"only agent turns": 1, "empty conversation": 1} and report.added == 2


def test_template_matching_labels_requests_by_the_agents_reply(store):
    answers = {"track_order": "You can follow your order live on the tracking page.",
               "refund": "Refunds reach your card within 5 days."}
    report = import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, answers=answers,
                                embedder=WordEmbedder(), intents={"track_order", "refund"}, **NO_CLUSTERS)
    assert dict(report.labelled) == {"explicit": 1, "template-match": 1} and report.unlabelled == 1
    assert report.new_labels == {"cancel_order": 1}  # an explicit label that is no intent of the bot
    labelled = {e.text: (e.intent, e.label_method) for e in store.examples()}
    assert labelled["where is my order?"] == ("track_order", "template-match")


def test_labels_below_the_threshold_are_not_given(store):
    answers = {"track_order": "You can follow your order live on the tracking page, or ask us by phone."}
    strict = TranscriptSettings(match_threshold=0.95)
    report = import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, answers=answers,
                                embedder=WordEmbedder(), settings=strict, **NO_CLUSTERS)
    assert "template-match" not in report.labelled
    lenient = TranscriptSettings(match_threshold=0.6)
    report = import_transcripts(FIXTURES / "generic_chats.csv", "generic", ExampleStore(connect(None)), answers=answers,
                                embedder=WordEmbedder(), settings=lenient, **NO_CLUSTERS)
    assert report.labelled["template-match"] == 1


def test_dry_run_stores_nothing(store):
    report = import_transcripts(TWCS, "twitter", store, dry_run=True, **NO_CLUSTERS)
    assert report.added == 27 and len(report.samples) == 10 and report.dry_run
    assert store.examples(labelled=None) == [] and store.imports() == []
    assert "would add 27 new examples" in report.summary()


def test_a_failed_import_leaves_the_store_as_it_was(store, tmp_path):
    import_transcripts(TWCS, "twitter", store, **NO_CLUSTERS)
    before = store.examples(labelled=None)
    bad = tmp_path / "bad.csv"
    bad.write_text("conversation_id,role,text\nn1,customer,a brand new question about sofas\nn2,customer\n")
    with pytest.raises(TranscriptError, match="bad.csv:3"):
        import_transcripts(bad, "generic", store, **NO_CLUSTERS)
    assert store.examples(labelled=None) == before

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    store.record_import = broken  # fails after the examples were inserted, inside the transaction
    with pytest.raises(RuntimeError):
        import_transcripts(FIXTURES / "generic_chats.csv", "generic", store, **NO_CLUSTERS)
    assert store.examples(labelled=None) == before


def test_unlabelled_requests_are_clustered_into_proposals(store, tmp_path):
    rows = ["conversation_id,role,text"]
    topics = {"gift": "can you gift wrap my present order {}", "bulk": "wholesale discount for bulk mugs order {}"}
    for name, template in topics.items():
        rows += [f"{name}{i},customer,{template.format(i)}" for i in range(4)]
    rows.append("other,customer,do you have a showroom in town")
    path = tmp_path / "chats.csv"
    path.write_text("\n".join(rows) + "\n")
    settings = TranscriptSettings(cluster_distance=0.5, min_cluster_size=3)
    report = import_transcripts(path, "generic", store, settings=settings, embedder=WordEmbedder())
    assert report.clustered == 8 and sorted(size for _, size in report.proposals) == [4, 4]
    proposals = ProposalStore(store.db).proposals()
    ids = {e.text: e.id for e in store.examples(labelled=None)}
    gift = next(p for p in proposals if "gift" in p.name)
    assert set(gift.members) == {ids[f"can you gift wrap my present order {i}"] for i in range(4)}
    again = import_transcripts(path, "generic", store, settings=settings, embedder=WordEmbedder())
    assert again.added == 0 and len(ProposalStore(store.db).proposals()) == 2  # replaced, not doubled
