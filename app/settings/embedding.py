"""Embedding backend: sentence-transformers on torch, or the same weights on onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class EmbeddingSettings(BaseSettings):
    # --- embedding backend ---------------------------------------------------------
    embedding_backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="torch (sentence-transformers) or onnx (onnxruntime; the image's default).",
    )
    embedding_onnx_dir: Path = Field(
        Path(".data/onnx/all-MiniLM-L6-v2"),
        description="Folder of model.onnx and tokenizer.json (python -m app.rag.onnx_export).",
    )
    embedding_onnx_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="fp32 (model.onnx) or int8 (model.int8.onnx, int8 weights): about "
        "twice as fast per query, vectors within cosine 0.98 of fp32's; onnx backend only.",
    )
