#!/usr/bin/env python3
"""Data-parallel fine-tuning (`train --gpus N`, `train.processes`) against one process, one run.

    python benchmarks/bench_parallel.py [--device cpu|cuda] [--processes 2] [--bot examples/demo_store] [--epochs 2]

Fine-tunes a bot's intents.yaml examples (the demo store's by default) with the packaged all-MiniLM-L6-v2, its
dropout off so that a fit depends on its batches alone, once in one process and once in N with the same
settings, and prints each fit's seconds, both validation accuracies and the largest difference between the two
models' weights (the N-process model is meant to be the one-process model, up to rounding; bf16 autocast on
CUDA rounds more than fp32 on CPU). With --device cuda this is the check of the NCCL path: run it on a machine
with N GPUs. Writes benchmarks/results/parallel-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--bot", type=Path, default=ROOT / "examples" / "demo_store")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import torch

    from bot.folder.bot_folder import BotFolder
    from knowledge.embedder import default_model_path
    from training.dataset import stratified_split
    from training.finetune import finetune
    from training.settings import TrainSettings

    base = Path(tempfile.mkdtemp(prefix="still-minilm-"))
    shutil.copytree(default_model_path(), base, dirs_exist_ok=True)
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # the head's dropout follows
    (base / "config.json").write_text(json.dumps(config))

    examples = [e for e in BotFolder.load(args.bot, []).seed_examples() if e.intent]
    rows = {}
    for processes in (1, args.processes):
        settings = TrainSettings(base_model=str(base), epochs=args.epochs, min_steps=0, refit_below=0,
                                 device=args.device, processes=processes)
        train, val = stratified_split(examples, settings.val_fraction, settings.seed)
        fit = finetune(train, val, base, settings, progress=False)
        accuracy = (fit.val_logits.argmax(-1) == fit.val_targets).float().mean().item()
        rows[processes] = {"seconds": round(fit.seconds, 1), "steps": fit.history[-1]["step"],
                           "val_accuracy": round(accuracy, 4), "state": fit.model.state_dict()}
        print(f"{processes} process(es) on {args.device}: {fit.seconds:.1f} s, {rows[processes]['steps']} steps, "
              f"validation accuracy {100 * accuracy:.1f} %", flush=True)
    one, many = rows[1].pop("state"), rows[args.processes].pop("state")
    difference = max((one[k] - many[k]).abs().max().item() for k in one)
    print(f"largest weight difference, 1 against {args.processes} processes: {difference:.2e}; "
          f"speed-up {rows[1]['seconds'] / rows[args.processes]['seconds']:.2f}x")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                         f"torch {torch.__version__}", "device": args.device, "bot": args.bot.name,
              "train_examples": len(train), "validation_examples": len(val), "epochs": args.epochs,
              "runs": rows, "largest_weight_difference": difference,
              "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    out = ROOT / "benchmarks" / "results" / f"parallel-{args.device}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    shutil.rmtree(base)


if __name__ == "__main__":
    main()
