"""ONNX Runtime for serving the intent model: an fp32 export, an int8 copy, and a measured choice.

`prepare` exports a trained model (encoder, mean pooling, normalisation and head, as one graph), fuses it,
quantises it dynamically to int8 with per-channel weights (knowledge.onnx_graph, shared with the knowledge
base's embedder), and measures both copies on the validation examples against the PyTorch model: top-1
accuracy, agreement of the top intent, and the simulated out-of-scope refusal at the threshold. int8 serves when its accuracy is within
`train.max_quantization_drop` points of fp32's and it refuses no fewer simulated out-of-scope messages;
otherwise fp32 ONNX; PyTorch when the export or ONNX Runtime fails (the reason is kept in runtime.json).
PyTorch stays the training runtime.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from knowledge import onnx_graph

log = logging.getLogger("supportbot.onnx")
FP32_FILE, INT8_FILE, RUNTIME_FILE = "model.onnx", "model.int8.onnx", "runtime.json"
FILES = {"onnx-fp32": FP32_FILE, "onnx-int8": INT8_FILE}


class _Outputs(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        features = self.model.embed(input_ids, attention_mask)
        return features, self.model.head(features)


def export(model, tokenizer, folder: Path) -> None:
    """model.onnx (fp32, fused, dynamic batch and length) and model.int8.onnx (dynamic int8, per-channel) in `folder`."""
    sample = tokenizer(["where is my parcel", "i want my money back please"], padding=True, return_tensors="pt")
    onnx_graph.export(_Outputs(model), model.encoder, (sample["input_ids"], sample["attention_mask"]),
                      folder / FP32_FILE, folder / INT8_FILE, ["features", "logits"])


class OnnxModel:
    """The exported graph in an ONNX Runtime session: (features, logits) like IntentModel's embed + head."""

    def __init__(self, path: Path, threads: int = 1):
        self.session = onnx_graph.session(path, threads)
        self.path = Path(path)

    def outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        return torch.from_numpy(features), torch.from_numpy(logits)


def _measure(outputs, texts, tokenizer, max_length: int, targets: torch.Tensor, threshold: float, temperature: float):
    from training.calibrate import leave_intent_out_confidence

    features, logits = [], []
    for i in range(0, len(texts), 64):
        batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        f, lg = outputs(batch["input_ids"], batch["attention_mask"])
        features.append(f.float()), logits.append(lg.float())
    features, logits = torch.cat(features), torch.cat(logits)
    probs = (logits / temperature).softmax(-1)
    return {
        "features": features, "logits": logits, "top": probs.argmax(-1),
        "accuracy": float((probs.argmax(-1) == targets).float().mean()),
        "oos_refused": float((leave_intent_out_confidence(probs, targets) < threshold).float().mean()),
    }


def prepare(model, tokenizer, texts: list[str], targets: torch.Tensor, max_length: int, max_drop: float,
            threshold: float, temperature: float, scratch: Path) -> dict:
    """Export to `scratch`, measure on the validation `texts`, choose -> the runtime record (runtime.json), with
    the chosen runtime's validation outputs under "features"/"logits" (for calibrating on what will serve)."""
    try:
        export(model, tokenizer, scratch)
    except Exception as e:  # an architecture the exporter cannot take: serve with PyTorch, say why
        log.warning("ONNX export failed, serving with PyTorch: %s: %s", type(e).__name__, e)
        return {"serve": "torch", "reason": f"ONNX export failed: {type(e).__name__}: {e}"[:500]}
    if not texts:
        return {"serve": "onnx-fp32", "reason": "no validation examples to measure int8 on"}

    def torch_outputs(ids, mask):
        with torch.inference_mode():
            features = model.embed(ids, mask)
            return features, model.head(features)

    args = (texts, tokenizer, max_length, targets, threshold, temperature)
    reference = _measure(torch_outputs, *args)
    measured = {name: _measure(OnnxModel(scratch / file).outputs, *args) for name, file in FILES.items()}
    fp32, int8 = measured["onnx-fp32"], measured["onnx-int8"]
    drop = 100 * (fp32["accuracy"] - int8["accuracy"])
    good = drop <= max_drop and int8["oos_refused"] >= fp32["oos_refused"]
    serve = "onnx-int8" if good else "onnx-fp32"
    record = {
        "serve": serve,
        "reason": (f"int8 accuracy {100 * int8['accuracy']:.2f} % vs fp32 {100 * fp32['accuracy']:.2f} % (drop "
                   f"{drop:.2f} points, at most {max_drop}); simulated out-of-scope refused {100 * int8['oos_refused']:.1f} "
                   f"% vs {100 * fp32['oos_refused']:.1f} %"),
        "validation": {name: {"accuracy": m["accuracy"], "oos_refused": m["oos_refused"],
                              "agreement_with_torch": float((m["top"] == reference["top"]).float().mean())}
                       for name, m in {"torch": reference, **measured}.items()},
    }
    return {**record, "features": measured[serve]["features"], "logits": measured[serve]["logits"]}


def save(record: dict, scratch: Path, folder: Path) -> None:
    """The ONNX files and runtime.json into a version folder being written."""
    for file in FILES.values():
        if (scratch / file).is_file():
            shutil.copy2(scratch / file, folder / file)
    kept = {k: v for k, v in record.items() if k not in ("features", "logits")}
    (folder / RUNTIME_FILE).write_text(json.dumps(kept, indent=2), encoding="utf-8")


def load(folder: Path, threads: int = 1) -> OnnxModel | None:
    """The runtime a version chose, or None for PyTorch (no record, torch chosen, or ONNX Runtime failing)."""
    record_file = Path(folder) / RUNTIME_FILE
    if not record_file.is_file():
        return None
    serve = json.loads(record_file.read_text()).get("serve", "torch")
    if serve not in FILES:
        return None
    try:
        return OnnxModel(Path(folder) / FILES[serve], threads)
    except Exception as e:
        log.warning("model version %s: ONNX Runtime could not load %s, serving with PyTorch: %s", Path(folder).name,
                    FILES[serve], e)
        return None
