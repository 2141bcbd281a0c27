"""Encoders through ONNX Runtime: export a PyTorch encoder graph, fuse it, quantise it to int8, run it.

Used by the knowledge base's sentence embedder (`knowledge.embedder.OnnxEmbedder`) and by training's intent
model (`training.onnx_runtime`). The export uses PyTorch's TorchScript exporter with eager attention: it is
deprecated in PyTorch, but its graph is the one ONNX Runtime's BERT optimiser fuses (Attention,
EmbedLayerNormalization, SkipLayerNormalization: about a third faster at batch 1 than torch.export's graph)
and it exports in seconds rather than half a minute; torch.export's exporter is the fallback. int8 is
dynamic quantisation with per-channel weights.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

log = logging.getLogger("supportbot.onnx")
INPUTS = ["input_ids", "attention_mask"]


def export(module, encoder, sample: tuple, fp32: Path, int8: Path | None, outputs: list[str]) -> None:
    """`module(input_ids, attention_mask)` -> `outputs` as an fp32 ONNX graph (dynamic batch and length) at
    `fp32`, fused, and its int8 copy at `int8`. `encoder` is the Hugging Face model inside `module`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    module.eval()
    # the exporters' and quantiser's advice (tracer notes, "consider pre-processing") is not the user's to act on
    with warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        try:
            _torchscript_export(module, encoder, sample, fp32, outputs)
        except Exception as e:
            log.info("TorchScript ONNX export failed, trying torch.export: %s: %s", type(e).__name__, e)
            _dynamo_export(module, sample, fp32, outputs)
        _fuse(fp32, encoder.config)
        if int8 is not None:
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops carry no type


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization warns through the root logger itself: drop what is logged there meanwhile
    (a logger's filter sees only its own records, so supportbot's loggers are not touched)."""
    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _torchscript_export(module, encoder, sample: tuple, path: Path, outputs: list[str]) -> None:
    import torch

    kept = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")  # the attention pattern ONNX Runtime fuses
    try:
        axes = {**{name: {0: "batch", 1: "length"} for name in INPUTS}, **{name: {0: "batch"} for name in outputs}}
        torch.onnx.export(module, sample, str(path), input_names=INPUTS, output_names=outputs, dynamo=False,
                          opset_version=17, dynamic_axes=axes)
    finally:
        encoder.set_attn_implementation(kept)


def _dynamo_export(module, sample: tuple, path: Path, outputs: list[str]) -> None:
    import torch

    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=512)
    torch.onnx.export(module, sample, str(path), input_names=INPUTS, output_names=outputs, dynamo=True,
                      dynamic_shapes={name: {0: batch, 1: length} for name in INPUTS}, external_data=False)


def _fuse(path: Path, config) -> None:
    """ONNX Runtime's transformer fusions, in place; a graph they do not recognise is left as it is."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimize_model(str(path), model_type="bert", num_heads=getattr(config, "num_attention_heads", 0),
                       hidden_size=getattr(config, "hidden_size", 0)).save_model_to_file(str(path))
    except Exception as e:
        log.info("ONNX graph left unfused: %s: %s", type(e).__name__, e)


def session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session with all graph optimisations, `threads` intra-op threads (0: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
