#!/usr/bin/env python3
"""Intent model runtimes, one run: PyTorch fp32 and int8 against ONNX Runtime fp32 and int8 (training.onnx_runtime).

    python benchmarks/bench_onnx.py [--data ../shared/data] [--version MODEL_VERSION_DIR]

Without --version it trains BANKING77 (all 10,003 examples, default TrainSettings) first; with it, the given
version is measured (one without ONNX copies gets them exported now, as training would). On the 3,080 test
messages: top-1 accuracy and macro-F1 of each runtime and its agreement with PyTorch fp32; batch-1 latency
p50/p99 over 300 messages (tokenizer included) and batch-32 throughput, on one thread; the tokenizer alone;
the model's size on disk; and, each in its own process, the seconds to load the version and answer one
message (imports included) and that process's peak RSS. Writes benchmarks/results/onnx.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LOAD = """
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
from training.classifier import IntentClassifier
IntentClassifier.load({path!r}, quantize={quantize!r}, threads=1).predict(["where is my parcel"])
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))  # kB; reset by exec
print(round(time.perf_counter() - start, 2), peak // 1024)
"""


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


def throughput(fn, texts: list[str]) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        fn(texts[i : i + 32])
    return round(len(texts) / (time.perf_counter() - start), 1)


def loaded(version: Path, serve: str, quantize: bool, scratch: Path, onnx_files: Path) -> dict:
    """Load seconds and peak RSS in a fresh process, from a copy of the version serving `serve`."""
    from training import onnx_runtime

    copy = scratch / f"load-{serve}-{int(quantize)}"
    shutil.copytree(version, copy)
    for file in onnx_runtime.FILES.values():
        if not (copy / file).is_file():
            shutil.copy2(onnx_files / file, copy / file)
    (copy / onnx_runtime.RUNTIME_FILE).write_text(json.dumps({"serve": serve}))
    out = subprocess.run([sys.executable, "-c", LOAD.format(root=str(ROOT), path=str(copy), quantize=quantize)],
                         capture_output=True, text=True, check=True).stdout.split()
    shutil.rmtree(copy)
    return {"load_s": float(out[0]), "peak_rss_mb": int(out[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--version", type=Path, help="a trained model version folder (default: train one)")
    args = parser.parse_args()

    import torch
    from sklearn.metrics import f1_score

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
    path = Path(path)
    folder = path
    if not (folder / onnx_runtime.FP32_FILE).is_file():
        model = IntentClassifier.load(folder)
        started = time.perf_counter()
        onnx_runtime.export(model.model, model.tokenizer, Path(scratch.name))
        result["export_s"] = round(time.perf_counter() - started, 1)
        folder = Path(scratch.name)
    if (path / onnx_runtime.RUNTIME_FILE).is_file():
        result["chosen_at_training"] = json.loads((path / onnx_runtime.RUNTIME_FILE).read_text())

    torch_mb = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 1e6
    runtimes = {  # name: (how it is served, model size on disk)
        "PyTorch fp32": ("torch", torch_mb),
        "PyTorch int8 (train.quantize)": ("torch-int8", torch_mb),  # quantised when loaded
        "ONNX Runtime fp32": ("onnx-fp32", (folder / onnx_runtime.FP32_FILE).stat().st_size / 1e6),
        "ONNX Runtime int8": ("onnx-int8", (folder / onnx_runtime.INT8_FILE).stat().st_size / 1e6),
    }
    base = IntentClassifier.load(path)  # its tokenizer
    reference = None
    result["runtimes"] = {}
    for name, (serve, size) in runtimes.items():
        clf = IntentClassifier.load(path, quantize=serve == "torch-int8")
        torch.set_num_threads(1)
        clf.runtime = onnx_runtime.OnnxModel(folder / onnx_runtime.FILES[serve], 1) if serve in onnx_runtime.FILES else None
        logits = torch.cat([clf.outputs(texts[i : i + 64])[1] for i in range(0, len(texts), 64)])
        top = [clf.labels[i] for i in logits.argmax(-1).tolist()]
        reference = top if reference is None else reference
        result["runtimes"][name] = {
            "accuracy": sum(t == g for t, g in zip(top, gold)) / len(gold),
            "macro_f1": float(f1_score(gold, top, average="macro")),
            "agreement_with_pytorch_fp32": sum(a == b for a, b in zip(top, reference)) / len(top),
            **latency(clf.outputs, texts), "batch32_per_s": throughput(clf.outputs, texts), "size_mb": round(size, 1),
            **loaded(path, "torch" if serve == "torch-int8" else serve, serve == "torch-int8", Path(scratch.name), folder),
        }
        print(name, result["runtimes"][name], flush=True)
    result["tokenizer"] = latency(lambda batch: base.tokenizer(batch, truncation=True, max_length=64, return_tensors="pt"), texts)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    result.update(machine=f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}",
                  version=path.name, command="python benchmarks/bench_onnx.py" + (" --version DIR" if args.version else ""))
    result["load"].append(os.getloadavg()[0])
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "onnx.json").write_text(json.dumps(result, indent=2))
    print("\n| runtime | accuracy | macro-F1 | agreement with PyTorch fp32 | batch-1 p50 | p99 | batch-32 throughput "
          "| size on disk | load | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|")
    for name, r in result["runtimes"].items():
        print(f"| {name} | {100 * r['accuracy']:.2f} % | {100 * r['macro_f1']:.2f} % | "
              f"{100 * r['agreement_with_pytorch_fp32']:.2f} % | {r['p50_ms']} ms | {r['p99_ms']} ms | "
              f"{r['batch32_per_s']:.0f}/s | {r['size_mb']:.0f} MB | {r['load_s']} s | {r['peak_rss_mb']} MB |")
    print(f"| tokenizer alone | | | | {result['tokenizer']['p50_ms']} ms | {result['tokenizer']['p99_ms']} ms | | | | |")
    scratch.cleanup()


if __name__ == "__main__":
    main()
