#!/usr/bin/env python3
"""Intent model runtimes, one run: PyTorch fp32 and int8 against ONNX Runtime fp32 and int8 (training.onnx_runtime).

    python benchmarks/bench_onnx.py [--data ../shared/data] [--version MODEL_VERSION_DIR]

Without --version it trains BANKING77 (all 10,003 examples, default TrainSettings) first; with it, the given
version is measured (one without ONNX copies gets them exported now, as training would). On the 3,080 test
messages: top-1 accuracy of each runtime and its agreement with PyTorch fp32; batch-1 latency p50/p99 over
300 messages (tokenizer included) on one thread; the tokenizer alone. Writes benchmarks/results/onnx.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def latency(fn, texts: list[str]) -> dict:
    for t in texts[:20]:
        fn([t])
    times = []
    for t in texts[:300]:
        start = time.perf_counter()
        fn([t])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 2), "p99_ms": round(times[int(len(times) * 0.99)], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--version", type=Path, help="a trained model version folder (default: train one)")
    args = parser.parse_args()

    import torch

    from training import onnx_runtime
    from training.classifier import IntentClassifier
    from training.dataset import read_examples

    test = read_examples(args.data / "banking77" / "test.csv").examples
    texts, gold = [e.text for e in test], [e.intent for e in test]
    scratch = tempfile.TemporaryDirectory()
    result: dict = {"load": [os.getloadavg()[0]]}
    path = args.version
    if path is None:
        from training.pipeline import train
        from training.registry import ModelRegistry
        from training.settings import TrainSettings

        started = time.perf_counter()
        path = train(read_examples(args.data / "banking77" / "train.csv").examples, TrainSettings(),
                     ModelRegistry(Path(scratch.name) / "models"), progress=False).path
        result["train_s"] = round(time.perf_counter() - started, 1)
    folder = Path(path)
    if not (folder / onnx_runtime.FP32_FILE).is_file():
        model = IntentClassifier.load(folder)
        onnx_runtime.export(model.model, model.tokenizer, Path(scratch.name))
        folder = Path(scratch.name)
    if (Path(path) / onnx_runtime.RUNTIME_FILE).is_file():
        result["chosen_at_training"] = json.loads((Path(path) / onnx_runtime.RUNTIME_FILE).read_text())

    torch.set_num_threads(1)
    base = IntentClassifier.load(path)
    runtimes = {"PyTorch fp32": None, "PyTorch int8 (train.quantize)": "torch-int8",
                "ONNX Runtime fp32": folder / onnx_runtime.FP32_FILE, "ONNX Runtime int8": folder / onnx_runtime.INT8_FILE}
    reference = None
    result["runtimes"] = {}
    for name, how in runtimes.items():
        clf = IntentClassifier.load(path, quantize=how == "torch-int8")
        torch.set_num_threads(1)
        clf.runtime = onnx_runtime.OnnxModel(how, threads=1) if isinstance(how, Path) else None
        logits = torch.cat([clf.outputs(texts[i : i + 64])[1] for i in range(0, len(texts), 64)])
        top = [clf.labels[i] for i in logits.argmax(-1).tolist()]
        reference = top if reference is None else reference
        result["runtimes"][name] = {
            "accuracy": sum(t == g for t, g in zip(top, gold)) / len(gold),
            "agreement_with_pytorch_fp32": sum(a == b for a, b in zip(top, reference)) / len(top),
            **latency(clf.outputs, texts),
        }
        print(name, result["runtimes"][name], flush=True)
    result["tokenizer"] = latency(lambda batch: base.tokenizer(batch, truncation=True, max_length=64, return_tensors="pt"), texts)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    result.update(machine=f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}",
                  version=Path(path).name, command="python benchmarks/bench_onnx.py" + (" --version DIR" if args.version else ""))
    result["load"].append(os.getloadavg()[0])
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "onnx.json").write_text(json.dumps(result, indent=2))
    print("\n| runtime | accuracy | agreement with PyTorch fp32 | batch-1 p50 | p99 |\n|---|---|---|---|---|")
    for name, r in result["runtimes"].items():
        print(f"| {name} | {100 * r['accuracy']:.2f} % | {100 * r['agreement_with_pytorch_fp32']:.2f} % | {r['p50_ms']} ms | {r['p99_ms']} ms |")
    print(f"| tokenizer alone | | | {result['tokenizer']['p50_ms']} ms | {result['tokenizer']['p99_ms']} ms |")
    scratch.cleanup()


if __name__ == "__main__":
    main()
