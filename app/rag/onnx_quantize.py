"""Dynamic int8 quantisation of the exported ONNX model, for a faster query embedding.

    quantize(model_dir) -> model_dir / "model.int8.onnx"

The MatMul weights are quantised to int8 with one scale per output channel, and so are the
embedding tables read by Gather (a lookup: each row is dequantised as it is read); the
MatMuls' activations are quantised per call (dynamic) and everything else (LayerNorm,
Softmax, GELU) stays float32. That recipe keeps the vectors close to the float32 model's
(cosine ≥ 0.98 on every chunk of the bundled docs, tests/test_onnx_int8.py), and about
halves `embed_one` on one thread (`python -m bench embedding_precision`). Plain per-tensor
int8 on every op was measured much worse (mean cosine 0.93) and is not offered. Quantising
the Gather tables too made the file 23 MB instead of 59 MB (the token embedding table is
45 MB at float32) for the same agreement and speed: over the eval questions, cosine with
fp32 min 0.9828 / mean 0.9932 against 0.9818 / 0.9935 for MatMul alone, and `embed_one`
p50 1.66 against 1.75 ms on one thread (both recipes on one export, one run on the test
machine; `python -m bench embedding_precision` measures the shipped file).

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

    About 3 s; 23 MB for MiniLM against 87 MB. Raises FileNotFoundError when `model.onnx`
    is missing."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = model_dir / "model.onnx"
    if not source.is_file():
        raise FileNotFoundError(f"no {source} to quantise: export it first")
    target = model_dir / INT8_MODEL
    # The quantiser logs a suggestion to run its shape-inference pre-processing first; it
    # changes nothing for this model's MatMuls and Gathers.
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gather"],
        )
    finally:
        logging.getLogger().setLevel(quiet)
    return target
