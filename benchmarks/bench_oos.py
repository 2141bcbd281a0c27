#!/usr/bin/env python3
"""Out-of-scope scores, one run: today's calibrated top probability against distance-aware candidates.

    python benchmarks/bench_oos.py [--data ../shared/data] [--scenarios leave10,oos,shot10,full] [--epochs N]

Each scenario fine-tunes one model with supportbot's pipeline (default `TrainSettings`, `--epochs` aside)
and no out-of-scope training data; then every candidate score gets its threshold fitted the way training
fits it (simulated held-out intents, `train.target_precision` at `train.oos_share`, from the validation
outputs saved with the version) and is measured on the same test outputs:

- `oos`: BANKING77-OOS (`banking77_oos/`): train on `train/`; in-domain OOS = `test/` + `id-oos/test`,
  out-of-domain OOS = `test/` + `ood-oos/valid`.
- `leave10`: BANKING77, 10 per intent (seed 0), 10 intents left out of training, their test messages out of scope.
- `shot10`: BANKING77, 10 per intent (seed 0), no out of scope: accuracy and clarification figures.
- `full`: BANKING77, all 10,003 training examples, as `shot10`.
- `shot10_typos`, `full_typos`: as `shot10` and `full`, trained with `train.typo_augment` = 1.

`shot10` and `full` (and their `_typos` twins) are also measured on a typo-noised copy of the test set
(`training.noise`, 5 % of letters, seed 0).

Scenarios run in their own processes; each writes benchmarks/results/oos-<scenario>.json, and the
Markdown tables for BENCHMARKS.md are printed from all the result files there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CANDIDATES = ("max_prob", "energy", "mahalanobis", "knn", "mahalanobis+max_prob", "knn+max_prob",
              "mahalanobis+knn", "mahalanobis+energy")
DEFAULT = "mahalanobis+max_prob"  # train.oos_score's default, chosen from this benchmark
SCENARIOS = ("leave10", "oos", "shot10", "full", "shot10_typos", "full_typos")
RESULTS = ROOT / "benchmarks" / "results"
NOISE_RATE = 0.05  # typos per letter in the noised test copy
TYPO_AUGMENT = 1.0  # train.typo_augment of the *_typos scenarios


def banking77(data: Path, shots: int | None, seed: int, holdout: int):
    from bench_intents import load  # the same draws as bench_intents.py's rows

    train, test = load(data / "banking77", shots, seed, holdout)
    tests = {"test": test}
    if not holdout:  # a typo-noised copy (training.noise, fixed seed) beside the clean one
        from training.noise import noised

        tests[f"test, typos (rate {NOISE_RATE}, seed 0)"] = [
            replace(e, text=t) for e, t in zip(test, noised([e.text for e in test], 0, NOISE_RATE))]
    return train, tests


def banking77_oos(data: Path):
    from training.store import Example

    def read(folder: str, oos: bool = False):
        base = data / "banking77_oos" / folder
        texts = (base / "seq.in").read_text(encoding="utf-8").splitlines()
        labels = (base / "label").read_text(encoding="utf-8").splitlines()
        return [Example(t.strip(), "out_of_scope" if oos else l.strip()) for t, l in zip(texts, labels) if t.strip()]

    test = read("test")
    return read("train"), {"in-domain OOS (id-oos/test)": test + read("id-oos/test", True),
                           "out-of-domain OOS (ood-oos/valid)": test + read("ood-oos/valid", True)}


def run_scenario(name: str, data: Path, epochs: int | None, base_model: str = "", keep: str = "") -> dict:
    from training.classifier import IntentClassifier
    from training.oos import FeatureStats
    from training.pipeline import recalibrate, train as train_model
    from training.registry import ModelRegistry
    from training.settings import TrainSettings

    if name == "oos":
        train, tests = banking77_oos(data)
    elif name == "leave10":
        train, tests = banking77(data, 10, 0, 10)
    elif name.startswith("shot10"):
        train, tests = banking77(data, 10, 0, 0)
    else:
        train, tests = banking77(data, None, 0, 0)
    settings = TrainSettings(base_model=base_model, typo_augment=TYPO_AUGMENT if name.endswith("_typos") else 0.0)
    settings = settings if epochs is None else replace(settings, epochs=epochs)
    out: dict = {"train_examples": len(train), "intents": len({e.intent for e in train}), "settings": {
        "epochs": settings.epochs, "oos_share": settings.oos_share, "target_precision": settings.target_precision,
        "max_clarify_share": settings.max_clarify_share, "typo_augment": settings.typo_augment}}
    with tempfile.TemporaryDirectory() as tmp:
        # --keep: the trained version and its test outputs stay, and a rerun measures them without training
        folder = Path(keep) / name if keep else Path(tmp)
        registry = ModelRegistry(folder)
        cached = folder / "outputs.pt"
        import torch

        saved = torch.load(cached) if registry.current_path() is not None and cached.is_file() else None
        if saved is None:
            started = time.perf_counter()
            path = train_model(train, settings, registry, progress=False).path
            saved = {"train_s": time.perf_counter() - started, "outputs": {}}
        path = registry.current_path()
        base = IntentClassifier.load(path)
        out["train_s"], outputs = saved["train_s"], saved["outputs"]
        missing = [t for t in tests if t not in outputs]
        for test_name in missing:
            texts = [e.text for e in tests[test_name]]
            parts = [base.outputs(texts[i : i + 64]) for i in range(0, len(texts), 64)]
            outputs[test_name] = (torch.cat([f for f, _ in parts]), torch.cat([lg for _, lg in parts]))
        if missing:
            torch.save(saved, cached)
        out["scores"] = {}
        for candidate in CANDIDATES:
            calibration, tensors = recalibrate(path, replace(settings, oos_score=candidate))
            clf = IntentClassifier(base.model, base.tokenizer, base.labels, calibration.to_dict(), "bench",
                                   settings.max_length, FeatureStats.from_tensors(tensors))
            out["scores"][candidate] = {
                "threshold": calibration.score_threshold, "margin": calibration.margin,
                "expected": {"precision": calibration.expected_precision, "coverage": calibration.expected_coverage,
                             "clarify": calibration.clarify},
                "added_us": added_latency(clf, *next(iter(outputs.values()))),
                "tests": {t: measure(clf, tests[t], *outputs[t]) for t in tests},
            }
    return out


def measure(clf, test, features, logits) -> dict:
    from training.evaluate import report

    predictions = clf.decide(logits, features=features)
    r = report([e.intent for e in test], predictions, clf.score_threshold, "out_of_scope", margin=clf.margin,
               pair_floor=clf.threshold)
    keep = ("accuracy", "coverage", "answered_precision", "decision", "clarification", "mcc", "auroc", "oos_recall",
            "answered_precision_with_oos", "decision_accuracy", "in_scope", "out_of_scope", "oos_decision")
    out = {k: r[k] for k in keep if k in r}
    oos = [p for e, p in zip(test, predictions) if e.intent == "out_of_scope"]
    if oos:  # the rule before issue 33 asked whenever the top two were close, refused or not (same model, margin)
        out["oos_asked_before"] = sum(p.ambiguous and len(p.top) > 1 and p.top[0][1] + p.top[1][1] >= clf.threshold
                                      for p in oos) / len(oos)
    return out


def added_latency(clf, features, logits, n: int = 300) -> float:
    """Microseconds per message (batch 1) the score adds to the forward pass, median of `n`, on one thread
    (two threads on a shared machine measure the other jobs: a waiting thread costs milliseconds)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for i in range(20):  # warm-up
        clf.scores(logits[i : i + 1], features[i : i + 1])
    times = []
    for i in range(min(n, len(logits))):
        start = time.perf_counter()
        clf.scores(logits[i : i + 1], features[i : i + 1])
        times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    torch.set_num_threads(threads)
    return times[len(times) // 2]


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    import torch

    return f"{cpu}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}, torch {torch.__version__}"


def tables() -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    lines = []
    for name in SCENARIOS:
        file = RESULTS / f"oos-{name}.json"
        if not file.is_file():
            continue
        r = json.loads(file.read_text())
        lines += ["", f"### {name}: {r['train_examples']} training examples, {r['intents']} intents, "
                      f"epochs {r['settings']['epochs']}, {r['train_s']:.0f} s training "
                      f"(load average {r['load'][0]:.1f} -> {r['load'][1]:.1f})", ""]
        first = next(iter(r["scores"].values()))["tests"]
        for test in first:
            has_oos = "auroc" in first[test]
            lines += [f"**{test}**", ""]
            if has_oos:
                lines += ["| score | AUROC | OOS refused | OOS offered intents (rule before issue 33) | in-scope answered right / wrong / refused / asked | precision of answered incl. OOS | MCC | asked: right among choices | added latency |",
                          "|---|---|---|---|---|---|---|---|---|"]
            else:
                lines += ["| score | top-1 accuracy | in-scope answered right / wrong / refused / asked | precision of answered | MCC | asked: right among choices | direct accuracy | added latency |",
                          "|---|---|---|---|---|---|---|---|"]
            for score, s in r["scores"].items():
                t = s["tests"][test]
                d, c = t["decision"], t["clarification"]
                split = f"{pct(d['answered_right'])} / {pct(d['answered_wrong'])} / {pct(d['refused'])} / {pct(d['clarified'])}"
                mark = {"max_prob": " (previous default)", DEFAULT: " (default)"}.get(score, "")
                if has_oos:
                    asked = (f"{pct(t['oos_decision']['clarified'])} ({pct(t['oos_asked_before'])})"
                             if "oos_decision" in t else "-")
                    lines.append(f"| {score}{mark} | {t['auroc']:.3f} | {pct(t['oos_recall'])} | {asked} | {split} | "
                                 f"{pct(t['answered_precision_with_oos'])} | {t['mcc']:.3f} | {pct(c['right_among_choices'])} | {s['added_us']:.0f} µs |")
                else:
                    lines.append(f"| {score}{mark} | {pct(t['accuracy'])} | {split} | {pct(t['answered_precision'])} | "
                                 f"{t['mcc']:.3f} | {pct(c['right_among_choices'])} | {pct(c['direct_accuracy'])} | {s['added_us']:.0f} µs |")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding banking77/ and banking77_oos/")
    parser.add_argument("--scenarios", default="leave10,oos,shot10,full")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs (default: TrainSettings' own)")
    parser.add_argument("--base-model", default="", help="train.base_model (default: the packaged MiniLM)")
    parser.add_argument("--keep", default="", help="folder that keeps each scenario's trained version and test "
                        "outputs; a rerun with it measures them again without training")
    parser.add_argument("--one", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--tables", action="store_true", help="only print the tables from the result files")
    args = parser.parse_args()
    if args.one:
        load = os.getloadavg()[0]
        result = run_scenario(args.one, args.data, args.epochs, args.base_model, args.keep)
        result.update(load=[load, os.getloadavg()[0]], machine=machine(),
                      command=f"python benchmarks/bench_oos.py --scenarios {args.one}"
                      + (f" --epochs {args.epochs}" if args.epochs else ""))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"oos-{args.one}.json").write_text(json.dumps(result, indent=2))
        return
    if not args.tables:
        for name in args.scenarios.split(","):
            cmd = [sys.executable, __file__, "--one", name, "--data", str(args.data)]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            if args.keep:
                cmd += ["--keep", args.keep]
            if args.base_model:
                cmd += ["--base-model", args.base_model]
            print("running", name, file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True)
    print(tables())


if __name__ == "__main__":
    main()
