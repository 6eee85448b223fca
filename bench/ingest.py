"""Ingest throughput: `ingest_paths` over docs/ plus a synthetic corpus, cold and incremental.

Baseline, measured in the same run: `Embedder.embed` alone on the very chunk texts the
pipeline embedded, so the table shows what reading, chunking and writing add to embedding.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from bench.fixtures import DOCS, ingest_into, shared_embedder, temp_database, write_synthetic_corpus
from bench.table import DASH, Table, ratio
from ingest.pipeline import IngestReport

NAME = "ingest"
SYNTHETIC_FILES = 40
SYNTHETIC_SECTIONS = 6


def run() -> list[Table]:
    embedder = shared_embedder()
    with temp_database() as url, tempfile.TemporaryDirectory(prefix="ragship-bench-") as tmp:
        synthetic = write_synthetic_corpus(
            Path(tmp) / "synthetic", files=SYNTHETIC_FILES, sections=SYNTHETIC_SECTIONS
        )
        engine = make_sync_engine(url)
        try:
            cold = ingest_into(engine, embedder, [DOCS, synthetic])
            incremental = ingest_into(engine, embedder, [DOCS, synthetic])
            texts = _embedded_texts(engine)
        finally:
            engine.dispose()
    baseline_s = _time_embedding(embedder, texts)
    return [_table(cold, incremental, len(texts), baseline_s)]


def _embedded_texts(engine: Engine) -> list[str]:
    """Exactly what the pipeline embeds for each chunk: its heading path, a newline, its text."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT heading_path, text FROM chunks ORDER BY document_id, ordinal")
        )
        return [f"{r.heading_path}\n{r.text}" for r in rows]


def _time_embedding(embedder: Embedder, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.embed(texts)
    return time.perf_counter() - started


def _rate(chunks: int, seconds: float) -> str:
    return f"{chunks / seconds:.1f}" if chunks and seconds > 0 else DASH


def _table(cold: IngestReport, incremental: IngestReport, chunks: int, baseline_s: float) -> Table:
    table = Table(
        f"ingest throughput: docs/ + {SYNTHETIC_FILES} synthetic Markdown files "
        f"x {SYNTHETIC_SECTIONS} sections",
        ["run", "files", "chunks embedded", "seconds", "chunks/s", "vs baseline"],
    )
    table.add(
        "baseline: Embedder.embed, same chunk texts",
        DASH,
        chunks,
        f"{baseline_s:.2f}",
        _rate(chunks, baseline_s),
        "x1.00",
    )
    table.add(
        "cold ingest_paths (empty database)",
        cold.files,
        cold.chunks,
        f"{cold.seconds:.2f}",
        _rate(cold.chunks, cold.seconds),
        ratio(cold.seconds, baseline_s),
    )
    table.add(
        "incremental re-run (nothing changed)",
        incremental.files,
        incremental.chunks,
        f"{incremental.seconds:.2f}",
        DASH,
        ratio(incremental.seconds, baseline_s),
    )
    overhead = cold.seconds - baseline_s
    table.notes += [
        f"pipeline overhead over pure embedding: {overhead:+.2f}s "
        f"({overhead / cold.seconds:.0%} of the cold run) for reading, chunking, "
        "per-file batches and inserts",
        f"incremental re-run: {incremental.skipped} of {incremental.files} files unchanged, "
        f"{incremental.chunks} chunks embedded "
        f"({'OK' if incremental.chunks == 0 else 'UNEXPECTED: should be 0'})",
    ]
    if cold.chunks != chunks:
        table.notes.append(f"UNEXPECTED: {cold.chunks} chunks ingested but {chunks} in the table")
    return table
