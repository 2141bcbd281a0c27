"""Transcript import, measured: template-matching labels, clustering, auto-labelled vs truly labelled
classifiers, and streaming a large export.

    HF_HUB_OFFLINE=1 python benchmarks/bench_labelling.py               # everything (a few minutes on 2 cores)
    HF_HUB_OFFLINE=1 python benchmarks/bench_labelling.py --large-mb 20 # a smaller streaming test
    HF_HUB_OFFLINE=1 python benchmarks/bench_labelling.py --skip-large

1. Template matching. 24 BANKING77 intents get a canned answer each (bench_labelling_answers.yaml);
   agent replies are the canned answer itself, agents' edits of it (greeting with a name, a dropped or
   added sentence, changed numbers) and free paraphrases written by a person. Replies that must match
   nothing: generic ones ("let me check"), the agent turns of the real ABCD and Twitter samples, and
   answers to 16 BANKING77 intents the bot lacks (as written and edited). The threshold is calibrated on
   one half of everything (paraphrase 1, edit seed A, half of the non-canned replies) for 95 % precision
   and tested on the other half. Baseline: whole-text cosine only, calibrated the same way.
2. Auto-labelled vs truly labelled classifier. BANKING77 train messages of those intents become
   conversations whose agent reply is a canned answer (exact, edited or paraphrased: 65 %), the canned
   answer of a wrong intent (agent mistake: 5 %) or a generic reply (30 %); messages of 16 intents the
   bot lacks get the agent's own answer for that intent. They go through the real importer; a
   frozen-MiniLM + logistic-regression classifier trained on the auto labels is compared with ones
   trained on the true labels, on the BANKING77 test messages of the bot's 24 intents.
3. Clustering with hidden labels. A fixed cut is chosen by adjusted Rand index (ARI) on 2,000 BANKING77
   train messages; the default picks the cut per run by silhouette (no labels). Both are reported on the
   3,080 test messages (77 intents), against k-means told the true number of intents (an oracle), and on
   the demo store's leftover requests (long, varied texts about topics no intent covers).
4. Streaming. A generated generic CSV of --large-mb MB is imported in a child process (no labelling, no
   clustering); wall time and peak memory against a plain csv.reader pass and loading all rows in a list.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = ROOT.parent / "shared" / "data"  # --data: the folder holding banking77/ and formats/
BANKING = DATA / "banking77"
DEMO = ROOT / "examples" / "demo_store"
ANSWERS = Path(__file__).with_name("bench_labelling_answers.yaml")
NAMES = ["Anna", "Tom", "Priya", "Luca", "Sam", "Julia", "Martin", "Lena"]
EXTRA = ["I've had a look at your account and can see what happened.", "Thanks for bearing with me while I checked.",
         "I completely understand how frustrating this is.", "I can see your request came in this morning."]


def edit(answer: str, rng: random.Random) -> str:
    """How an agent adapts a canned answer: a greeting with a name, a sentence dropped or added, other numbers."""
    parts = re.split(r"(?<=[.!?])\s+", answer.strip())
    if len(parts) > 2 and rng.random() < 0.5:
        parts.pop(rng.randrange(1, len(parts)))
    if rng.random() < 0.5:
        parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(EXTRA))
    text = " ".join(parts)
    if rng.random() < 0.5:
        text = re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 3)), text, count=1)
    if rng.random() < 0.7:
        text = f"{rng.choice(['Hi', 'Hello', 'Hey'])} {rng.choice(NAMES)}! {text}"
    if rng.random() < 0.4:
        text += " " + rng.choice(["Hope that helps!", "Let me know if that works.", "Have a great day!"])
    return text


def rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


# -- 1. template matching -------------------------------------------------------------------------
def matching(embedder, data, target: float):
    from training.labelling import TemplateMatcher, calibrate_threshold

    canned = {k: v["answer"] for k, v in data["intents"].items()}
    written, real = data["generic"], real_agent_replies()
    half = len(written) // 2
    other = list(data["other"].values())
    rng = random.Random(5)
    bespoke = [[a, edit(a, rng)] for a in other]  # answers to intents the bot lacks, as written and edited
    cal_generic = written[:half] + real[0::2] + [r for pair in bespoke[:8] for r in pair]
    test_generic = written[half:] + real[1::2] + [r for pair in bespoke[8:] for r in pair]

    def items(seed: int, paraphrase: int, generics):
        rng = random.Random(seed)
        out = []
        for intent, spec in data["intents"].items():
            out += [(spec["answer"], intent), (spec["paraphrases"][paraphrase], intent)]
            out += [(edit(spec["answer"], rng), intent) for _ in range(2)]
        return out + [(g, None) for g in generics]

    cal, test = items(1, 0, cal_generic), items(2, 1, test_generic)
    results = {}
    for name, coverage in [("whole-text cosine (baseline)", False), ("whole + sentence coverage (used)", True)]:
        matcher = TemplateMatcher(canned, embedder, 1.0, coverage=coverage)

        def score(batch):
            sims = matcher.similarity([t for t, _ in batch])
            best = sims.max(axis=1)
            nearest = [matcher.owners[j] for j in sims.argmax(axis=1)]
            return best, [n == truth for n, (_, truth) in zip(nearest, batch)]

        cs, cc = score(cal)
        calibration = calibrate_threshold(cs, cc, target_precision=target, min_support=10)
        ts, tc = score(test)
        results[name] = dict(threshold=calibration.threshold, cal_precision=calibration.precision,
                             **evaluate(ts, tc, test, calibration.threshold))
        canned_idx = [i for i, (_, truth) in enumerate(test) if truth is not None]
        results[name]["lowest_canned_test_score"] = float(min(ts[i] for i in canned_idx))
        results[name]["highest_non_canned_test_scores"] = sorted(
            (round(float(ts[i]), 3) for i, (_, truth) in enumerate(test) if truth is None), reverse=True)[:5]
        results[name]["by_kind"] = {
            kind: evaluate(ts[idx], [tc[i] for i in idx], [test[i] for i in idx], calibration.threshold)["coverage"]
            for kind, idx in kinds(test).items()}
    return results, canned


def real_agent_replies() -> list[str]:
    """Agent turns of the real ABCD and Twitter samples: replies that are no canned banking answer."""
    from training.transcripts import Reading, read_dialogs
    from training.transcripts.dialogs import AGENT, clean

    formats = DATA / "formats"
    replies = []
    for path, fmt in [(formats / "abcd_sample" / "abcd_sample.json", "abcd"), (formats / "twcs_sample" / "sample.csv", "twitter")]:
        for dialog in read_dialogs(Reading(path), fmt):
            replies += [clean(t.text, 1000) for t in dialog.turns if t.role == AGENT]
    return [r for r in dict.fromkeys(replies) if len(r.split()) >= 3]


def kinds(test):
    """Indices of each kind of reply in a test list built by `items` (exact, paraphrase, edited x2 per intent)."""
    out = {"exact": [], "paraphrase": [], "edited": []}
    for i, (_, truth) in enumerate(test):
        if truth is None:
            continue
        pos = i % 4
        out[["exact", "paraphrase", "edited", "edited"][pos]].append(i)
    return {k: np.array(v) for k, v in out.items()}


def evaluate(scores, correct, items, threshold):
    scores = np.asarray(scores)
    given = scores >= threshold
    canned = np.array([truth is not None for _, truth in items])
    right = np.asarray(correct) & given
    return dict(precision=float(right.sum() / max(1, given.sum())), coverage=float(right[canned].sum() / max(1, canned.sum())),
                generic_labelled=int((given & ~canned).sum()), labelled=int(given.sum()))


def demo_store(embedder, threshold, coverage=True):
    """The demo bot's own transcripts (written by another person): 27 answered with a canned answer, 14 not."""
    from bot.folder.bot_folder import BotFolder
    from training.labelling import TemplateMatcher
    from training.transcripts import Reading, read_dialogs
    from training.transcripts.dialogs import find_requests
    from training.transcripts.settings import TranscriptSettings

    chats = DEMO / "transcripts" / "chats.csv"
    truth = dict(zip([f"c{i:03d}" for i in range(1, 28)], (
        "track_order order_not_received cancel_order change_order wrong_item damaged_item delivery_times delivery_costs "
        "international_shipping change_address return_policy start_return return_status refund_status refund_timing "
        "payment_methods payment_failed invoice_request discount_code reset_password delete_account update_email "
        "newsletter_unsubscribe talk_to_human delivery_costs track_order refund_timing").split()))
    folder = BotFolder.load(DEMO)
    matcher = TemplateMatcher({n: i.answer for n, i in folder.intents.items() if i.answer}, embedder, threshold,
                              coverage=coverage)
    requests = [(d.id, r) for d in read_dialogs(Reading(chats), "generic")
                for r in find_requests(d, TranscriptSettings())[0] if r.opening]
    matches = matcher.match([r.replies for _, r in requests])
    given = [(cid, m.intent) for (cid, _), m in zip(requests, matches) if m.intent]
    right = sum(truth.get(cid) == intent for cid, intent in given)
    return dict(conversations=len(requests), canned=len(truth), labelled=len(given), correct=right)


# -- 2. auto-labelled vs truly labelled classifier ------------------------------------------------
def classifier(embedder, data, canned, threshold, seed=7):
    from sklearn.linear_model import LogisticRegression

    from core.sqlite import connect
    from training.importer import import_transcripts
    from training.store import ExampleStore
    from training.transcripts.settings import TranscriptSettings

    intents = list(canned)
    train = [(t, c) for t, c in rows(BANKING / "train.csv") if c in canned or c in data["other"]]
    test = [(t, c) for t, c in rows(BANKING / "test.csv") if c in canned]
    rng = random.Random(seed)
    kinds = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conversations.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["conversation_id", "role", "text"])
            for i, (text, intent) in enumerate(train):
                r = rng.random()
                spec = data["intents"].get(intent)
                if spec is None:  # an intent the bot lacks: the agent answers in their own words
                    reply, kind = edit(data["other"][intent], rng), "other intent"
                elif r < 0.20:
                    reply, kind = spec["answer"], "exact"
                elif r < 0.45:
                    reply, kind = edit(spec["answer"], rng), "edited"
                elif r < 0.65:
                    reply, kind = rng.choice(spec["paraphrases"]), "paraphrase"
                elif r < 0.70:
                    reply, kind = canned[rng.choice([x for x in intents if x != intent])], "wrong intent"
                else:
                    reply, kind = rng.choice(data["generic"]), "generic"
                kinds[kind] += 1
                w.writerow([f"r{i}", "customer", text])
                w.writerow([f"r{i}", "agent", reply])
        store = ExampleStore(connect(None))
        started = time.perf_counter()
        import_transcripts(path, "generic", store, answers=canned, embedder=embedder, cluster=False,
                                    settings=TranscriptSettings(match_threshold=threshold))
        seconds = time.perf_counter() - started
    auto = {}
    for e in store.examples(labelled=None):
        i = int(e.provenance.rsplit("#r", 1)[1].split(":")[0])
        auto[i] = (e.text, e.intent)
    ids = sorted(auto)
    labelled = [i for i in ids if auto[i][1]]
    x_all = embedder.encode([auto[i][0] for i in ids])
    index = {i: k for k, i in enumerate(ids)}
    x_test = embedder.encode([t for t, _ in test])
    y_test = [c for _, c in test]

    def fit(idx, labels):
        model = LogisticRegression(max_iter=3000, C=10.0)
        model.fit(x_all[[index[i] for i in idx]], labels)
        return float(np.mean(model.predict(x_test) == np.array(y_test)))

    label_accuracy = float(np.mean([auto[i][1] == train[i][1] for i in labelled]))
    in_bot = [i for i in ids if train[i][1] in canned]
    auto_in_bot = [i for i in labelled if train[i][1] in canned]
    return dict(
        conversations=len(train), replies=dict(kinds), stored=len(ids), auto_labelled=len(labelled),
        auto_label_accuracy=label_accuracy, import_seconds=seconds, test_messages=len(test),
        other_intent_labelled=sum(train[i][1] not in canned for i in labelled),
        other_intent_messages=sum(train[i][1] not in canned for i in ids),
        acc_true_all=fit(in_bot, [train[i][1] for i in in_bot]),
        acc_auto=fit(labelled, [auto[i][1] for i in labelled]),
        acc_true_same=fit(auto_in_bot, [train[i][1] for i in auto_in_bot]),
    )


# -- 3. clustering --------------------------------------------------------------------------------
def clustering(embedder, min_size: int, seed=3):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from training.clusters import GRID, cluster_texts

    rng = random.Random(seed)
    tune = rng.sample(rows(BANKING / "train.csv"), 2000)
    test = rows(BANKING / "test.csv")
    tune_texts, test_texts = [t for t, _ in tune], [t for t, _ in test]
    tune_vec, test_vec = embedder.encode(tune_texts), embedder.encode(test_texts)

    def measure(texts, vectors, truth, distance):
        clusters, used = cluster_texts(texts, vectors, distance, min_size)
        pred = np.arange(len(texts)) + 10_000  # unclustered texts are singletons
        for k, c in enumerate(clusters):
            pred[list(c.members)] = k
        clustered = [i for c in clusters for i in c.members]
        purity = sum(Counter(truth[i] for i in c.members).most_common(1)[0][1] for c in clusters) / max(1, len(clustered))
        return dict(distance=used, ari=float(adjusted_rand_score(truth, pred)), purity=purity,
                    clustered=len(clustered) / len(texts), clusters=len(clusters)), clusters

    tune_truth, truth = [c for _, c in tune], [c for _, c in test]
    grid = [measure(tune_texts, tune_vec, tune_truth, d)[0] for d in GRID]
    best = max(grid, key=lambda r: r["ari"])["distance"]
    auto_tune = measure(tune_texts, tune_vec, tune_truth, 0)[0]
    fixed, _ = measure(test_texts, test_vec, truth, best)
    auto, clusters = measure(test_texts, test_vec, truth, 0)
    oracle = KMeans(n_clusters=77, n_init=4, random_state=0).fit_predict(test_vec)
    named = [(c.name, Counter(truth[i] for i in c.members).most_common(1)[0][0], len(c.members)) for c in clusters[:8]]
    return dict(tuning_grid=grid, best_fixed_on_tuning=best, silhouette_on_tuning=auto_tune, test_fixed=fixed,
                test_silhouette=auto, kmeans_oracle_ari=float(adjusted_rand_score(truth, oracle)), names=named,
                demo_leftovers=demo_leftovers(embedder, min_size, best))


def demo_leftovers(embedder, min_size, fixed):
    """The demo store's requests that no template labels (bulk orders, gift wrap, warranty...): long, varied texts."""
    from bot.folder.bot_folder import BotFolder
    from core.sqlite import connect
    from training.clusters import cluster_texts
    from training.importer import import_transcripts
    from training.store import ExampleStore

    if not (DEMO / "transcripts" / "chats.csv").exists():
        return None
    folder = BotFolder.load(DEMO)
    store = ExampleStore(connect(None))
    import_transcripts(DEMO / "transcripts" / "chats.csv", "generic", store, embedder=embedder, cluster=False,
                       answers={n: i.answer for n, i in folder.intents.items() if i.answer})
    texts = [e.text for e in store.examples(labelled=False)]
    vectors = embedder.encode(texts)
    out = {}
    for name, distance in [(f"fixed {fixed}", fixed), ("silhouette", 0)]:
        clusters, used = cluster_texts(texts, vectors, distance, min_size)
        out[name] = dict(distance=used, unlabelled=len(texts),
                         proposals=[(c.name, [t[:40] for t in c.examples]) for c in clusters])
    return out


# -- 4. streaming a large export ------------------------------------------------------------------
CHILD = r"""
import json, sys, time, csv
sys.path.insert(0, sys.argv[1])
mode, path = sys.argv[2], sys.argv[3]
t = time.perf_counter()
if mode == "import":
    from core.sqlite import connect
    from training.importer import import_transcripts
    from training.store import ExampleStore
    store = ExampleStore(connect(sys.argv[4]))
    r = import_transcripts(path, "generic", store, cluster=False)
    extra = dict(conversations=r.conversations, added=r.added, skipped=dict(r.skipped))
elif mode == "csv-pass":
    n = sum(1 for _ in csv.reader(open(path, newline="", encoding="utf-8")))
    extra = dict(rows=n)
else:
    data = list(csv.reader(open(path, newline="", encoding="utf-8")))
    extra = dict(rows=len(data))
# VmHWM is this process's own peak (ru_maxrss would carry the parent's peak across exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(dict(seconds=time.perf_counter() - t, peak_mb=hwm / 1024, **extra)))
"""

WORDS = ("order parcel refund card payment delivery address password account invoice discount code lamp sofa mug "
         "chair rug cushion return exchange size colour broken late missing charged twice cancel change update").split()


def generate(path: Path, megabytes: int, seed=11) -> int:
    rng = random.Random(seed)
    target, n = megabytes * 1_000_000, 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["conversation_id", "role", "text", "time"])
        while f.tell() < target:
            n += 1
            for turn in range(rng.randint(2, 8)):
                role = "customer" if turn % 2 == 0 else "agent"
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
                w.writerow([f"conv{n}", role, f"{words} NW-{rng.randint(100000, 999999)}", f"2024-01-01T00:{turn:02d}:00Z"])
    return n


def streaming(megabytes: int):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.csv"
        started = time.perf_counter()
        conversations = generate(path, megabytes)
        size = path.stat().st_size
        out = dict(file_mb=size / 1e6, conversations=conversations, generate_seconds=time.perf_counter() - started)
        for mode in ("csv-pass", "list-all", "import"):
            args = [sys.executable, "-c", CHILD, str(ROOT), mode, str(path), str(Path(tmp) / "store.db")]
            out[mode] = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder with banking77/ (train.csv, test.csv) and formats/ (default: ../shared/data)")
    parser.add_argument("--target", type=float, default=0.95, help="labelling precision the threshold must reach")
    parser.add_argument("--large-mb", type=int, default=200, help="size of the generated export for the streaming test")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--sections", default="matching,classifier,clustering",
                        help="comma-separated quality sections to run (matching is needed by classifier)")
    args = parser.parse_args()
    global DATA, BANKING
    DATA, BANKING = args.data, args.data / "banking77"

    from knowledge.embedder import SentenceEmbedder
    from training.transcripts.settings import TranscriptSettings

    embedder = SentenceEmbedder()
    data = yaml.safe_load(ANSWERS.read_text(encoding="utf-8"))
    results = dict(machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                   default_threshold=TranscriptSettings().match_threshold)
    t = time.perf_counter()
    sections = args.sections.split(",")
    if "matching" in sections:
        results["matching"], canned = matching(embedder, data, args.target)
        used = results["matching"]["whole + sentence coverage (used)"]["threshold"]
        if (DEMO / "transcripts" / "chats.csv").exists():
            whole = results["matching"]["whole-text cosine (baseline)"]["threshold"]
            results["demo_store"] = {"whole + sentence coverage (used)": demo_store(embedder, used),
                                     "whole-text cosine (baseline)": demo_store(embedder, whole, coverage=False)}
        if "classifier" in sections:
            results["classifier"] = classifier(embedder, data, canned, used)
    if "clustering" in sections:
        results["clustering"] = clustering(embedder, TranscriptSettings().min_cluster_size)
    results["quality_seconds"] = time.perf_counter() - t
    if not args.skip_large:
        results["streaming"] = streaming(args.large_mb)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
