"""Dynamic int8 quantisation of the exported ONNX model, for a faster query embedding.

    quantize(model_dir) -> model_dir / "model.int8.onnx"

Only the MatMul weights are quantised, to int8 with one scale per output channel; the
activations are quantised per call (dynamic) and everything else (embeddings, LayerNorm,
Softmax, GELU) stays float32. That recipe keeps the vectors close to the float32 model's
(cosine ≥ 0.98 on every chunk of the bundled docs, tests/test_onnx_int8.py), and about
halves `embed_one` on one thread (`python -m bench embedding_precision`). Plain per-tensor
int8 on every op was measured much worse (mean cosine 0.93) and is not offered.

Needs the `onnx` package (onnxruntime.quantization imports it), which is installed where
the export runs (the `torch` extra, the image's `export` stage); the running app only
loads the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

INT8_MODEL = "model.int8.onnx"


def quantize(model_dir: Path) -> Path:
    """Write `model_dir/model.int8.onnx` from `model_dir/model.onnx`; return its path.

    About 3 s; 56 MB for MiniLM against 86 MB (the token embedding table, 45 MB, stays
    float32: it is a lookup, not a MatMul). Raises FileNotFoundError
    when `model.onnx` is missing."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = model_dir / "model.onnx"
    if not source.is_file():
        raise FileNotFoundError(f"no {source} to quantise: export it first")
    target = model_dir / INT8_MODEL
    # The quantiser logs a suggestion to run its shape-inference pre-processing first; it
    # changes nothing for this model's MatMuls.
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.getLogger().setLevel(quiet)
    return target
