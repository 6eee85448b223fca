"""Retrieval and ingest."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings


class RetrievalSettings(BaseSettings):
    # --- retrieval and ingest ------------------------------------------------------
    embedding_model_path: Path | None = Field(
        None, description="Local sentence-transformers model dir. Unset: bundled MiniLM."
    )
    docs_dir: Path = Field(Path("docs"), description="Corpus ingested at start in dev.")
    ingest_on_start: bool = Field(True, description="Ingest DOCS_DIR when `python -m app` starts.")
    migrate_on_start: bool = Field(
        True, description="Migrate when `python -m app` starts (off in prod: release step)."
    )
    chunk_tokens: int = Field(300, ge=32, le=2000, description="Tokens per chunk.")
    chunk_overlap: int = Field(40, ge=0, description="Tokens shared by adjacent chunks.")
    embed_batch_size: int = Field(64, ge=1, description="Chunks embedded per batch.")
    retrieval_top_k: int = Field(5, ge=1, le=50, description="Passages given to the model.")
    retrieval_candidates: int = Field(40, ge=1, le=500, description="Candidates per ranker.")
    retrieval_min_similarity: float = Field(
        0.25, ge=-1, le=1, description="Minimum cosine similarity for a passage."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    retrieval_keyword_pool: int = Field(
        500, ge=1, le=1_000_000, description="Full-text matches ts_rank scores per question."
    )
    retrieval_ef_search: int = Field(
        200, ge=1, le=1000, description="pgvector hnsw.ef_search per question (recall vs time)."
    )
