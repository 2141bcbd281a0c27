"""ONNX Runtime for serving the intent model: an fp32 export, an int8 copy, and a measured choice.

`prepare` exports a trained model (encoder, mean pooling, normalisation and head, as one graph), fuses it,
quantises it dynamically to int8 with per-channel weights (knowledge.onnx_graph, shared with the knowledge
base's embedder), and measures both copies against the PyTorch model: on the validation examples (accuracy,
agreement of the top intent, the simulated out-of-scope refusal at the threshold, the outputs calibration is
fitted on) and on the training examples too (up to EVIDENCE_MAX in all: both copies share the weights, so where
they disagree on the same message is evidence about quantisation whether or not the model saw it). int8 serves
unless it is measurably worse (`decide_int8`): it gets more of those messages wrong, or refuses fewer simulated
out-of-scope ones, than fp32 by more than `train.max_quantization_drop` points *and* a one-sided sign test over
the messages where the two disagree puts chance below WORSE_ALPHA. Otherwise fp32 ONNX; PyTorch when the export
or ONNX Runtime fails (the reason is kept in runtime.json, with the evidence).
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
EVIDENCE_MAX = 5000  # labelled messages int8 and fp32 are compared on (validation first, then training ones)
WORSE_ALPHA = 0.05  # int8 is measurably worse when a sign test over the disagreements puts chance below this


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
    right = probs.argmax(-1) == targets
    refused = leave_intent_out_confidence(probs, targets) < threshold
    return {
        "features": features, "logits": logits, "top": probs.argmax(-1), "right": right, "refused": refused,
        "accuracy": float(right.float().mean()), "oos_refused": float(refused.float().mean()),
    }


def decide_int8(fp32_right, int8_right, fp32_refused, int8_refused, max_drop: float) -> tuple[bool, str, dict]:
    """(serve int8?, reason, evidence) from per-message outcomes of the two copies on the same labelled messages:
    right (top intent) and refused as out of scope when the message's own intent is left out (simulated). int8
    is refused only where it is worse by more than `max_drop` points and a one-sided sign test over the messages
    where the two differ says chance is unlikely (p < WORSE_ALPHA)."""
    from training.gate import sign_test

    n = len(fp32_right)
    evidence, worse = {"messages": n}, []
    for name, fp32, int8, what in (("accuracy", fp32_right, int8_right, "right"),
                                   ("oos_refused", fp32_refused, int8_refused, "refused")):
        lost = int((fp32 & ~int8).sum())  # fp32 right (or refusing) where int8 is not
        won = int((int8 & ~fp32).sum())
        drop = 100 * (lost - won) / max(n, 1)
        p = sign_test(lost, won)
        evidence[name] = {"fp32": round(float(fp32.float().mean()), 4), "int8": round(float(int8.float().mean()), 4),
                          "only_fp32": lost, "only_int8": won, "drop_points": round(drop, 2), "p": round(p, 4)}
        if drop > max_drop and p < WORSE_ALPHA:
            worse.append(f"{what} on {lost} of {n} messages fp32 got and {won} the other way (drop {drop:.2f} points, "
                         f"p {p:.3f} of chance)")
    if worse:
        return False, "int8 is measurably worse: " + "; ".join(worse) + f" (at most {max_drop} points allowed)", evidence
    a, r = evidence["accuracy"], evidence["oos_refused"]
    return True, (f"int8 not measurably worse on {n} labelled messages: {a['only_fp32']} right only with fp32 and "
                  f"{a['only_int8']} only with int8 (p {a['p']:.2f}); simulated out-of-scope refused "
                  f"{r['only_fp32']} only by fp32, {r['only_int8']} only by int8 (p {r['p']:.2f})"), evidence


def prepare(model, tokenizer, texts: list[str], targets: torch.Tensor, max_length: int, max_drop: float,
            threshold: float, temperature: float, scratch: Path, more: tuple[list[str], torch.Tensor] = ([], None)
            ) -> dict:
    """Export to `scratch`, measure on the validation `texts` (and `more` labelled messages: training ones, up to
    EVIDENCE_MAX in all), choose -> the runtime record (runtime.json), with the chosen runtime's validation
    outputs under "features"/"logits" (for calibrating on what will serve)."""
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
    runtimes = {name: OnnxModel(scratch / file) for name, file in FILES.items()}
    measured = {name: _measure(runtime.outputs, *args) for name, runtime in runtimes.items()}
    extra_texts, extra_targets = more
    room = max(0, EVIDENCE_MAX - len(texts))
    extra = {name: _measure(runtime.outputs, list(extra_texts[:room]), tokenizer, max_length, extra_targets[:room],
                            threshold, temperature) for name, runtime in runtimes.items()} if extra_texts and room else {}

    def flags(name: str, key: str) -> torch.Tensor:  # validation first, then the training messages
        return torch.cat([measured[name][key], *([extra[name][key]] if extra else [])])

    good, reason, evidence = decide_int8(flags("onnx-fp32", "right"), flags("onnx-int8", "right"),
                                         flags("onnx-fp32", "refused"), flags("onnx-int8", "refused"), max_drop)
    serve = "onnx-int8" if good else "onnx-fp32"
    record = {
        "serve": serve,
        "reason": reason,
        "evidence": {**evidence, "validation_messages": len(texts), "training_messages": evidence["messages"] - len(texts)},
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
