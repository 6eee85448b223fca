"""The ONNX backend gives the torch backend's vectors: same weights, same pooling, same order.

The ONNX model is exported from the bundled all-MiniLM-L6-v2 weights, as the image's
export stage does (`onnx_dir`, tests/conftest.py). Parity is checked on the demo corpus (the bundled docs, chunked and
ingested as ragship does it): every chunk's vector, and every chunk's five nearest neighbours.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder, load_embedder
from app.rag.onnx_embedder import OnnxEmbedder
from app.settings import Settings
from ingest.pipeline import IngestReport, ingest_paths
from tests.conftest import DOCS, ROOT

MIN_COSINE = 0.9999
Vectors = dict[tuple[str, int], npt.NDArray[np.float64]]


@pytest.fixture(scope="module")
def onnx_embedder(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, batch_size=16)


@pytest.fixture(scope="module")
def onnx_engine(new_database, onnx_embedder: OnnxEmbedder) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A fresh database with the bundled docs ingested by the ONNX backend."""
    engine = make_sync_engine(new_database())
    report = ingest_paths(
        [DOCS], engine=engine, embedder=onnx_embedder, chunk_tokens=300, chunk_overlap=40
    )
    assert not report.errors, report.errors
    yield engine
    engine.dispose()


def _vectors(engine: Engine) -> Vectors:
    sql = (
        "SELECT d.source, c.ordinal, c.embedding::text FROM chunks c "
        "JOIN documents d ON d.id = c.document_id"
    )
    with engine.connect() as conn:
        return {
            (source, ordinal): np.array([float(x) for x in vector.strip("[]").split(",")])
            for source, ordinal, vector in conn.execute(text(sql))
        }


def _neighbours(vectors: npt.NDArray[np.float64], k: int = 5) -> list[set[int]]:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -2.0)
    return [set(np.argsort(-row)[:k].tolist()) for row in similarity]


def test_every_demo_chunk_gets_the_torch_vector_and_the_same_five_neighbours(
    db_engine: Engine, corpus: IngestReport, onnx_engine: Engine
) -> None:
    torch_vectors, onnx_vectors = _vectors(db_engine), _vectors(onnx_engine)
    assert torch_vectors.keys() == onnx_vectors.keys()
    keys = sorted(torch_vectors)
    assert len(keys) >= 50, "the demo corpus is the bundled docs: dozens of chunks"
    a = np.stack([torch_vectors[key] for key in keys])
    b = np.stack([onnx_vectors[key] for key in keys])
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, (keys[worst], cosines[worst])
    differ = [
        keys[i]
        for i, (x, y) in enumerate(zip(_neighbours(a), _neighbours(b), strict=True))
        if x != y
    ]
    assert not differ, f"top-5 neighbours differ for {differ}"


def test_switching_backend_does_not_re_embed_the_corpus(
    db_engine: Engine, corpus: IngestReport, onnx_embedder: OnnxEmbedder, embedder: Embedder
) -> None:
    assert onnx_embedder.name == embedder.name
    assert onnx_embedder.dimension == embedder.dimension == 384
    report = ingest_paths(
        [DOCS], engine=db_engine, embedder=onnx_embedder, chunk_tokens=300, chunk_overlap=40
    )
    assert report.ingested == 0 and report.skipped == report.files > 0


def test_long_short_and_empty_texts_match_in_any_batch(
    onnx_embedder: OnnxEmbedder, embedder: Embedder
) -> None:
    # Longer than the model's 256 tokens (truncated the same way), one word, and nothing,
    # batched together (padding must not leak into the mean) and one at a time.
    texts = ["ragship streams answers through Caddy. " * 80, "pgvector", "", "How do I deploy?"]
    expected = np.array(embedder.embed(texts))
    together = np.array(onnx_embedder.embed(texts))
    apart = np.array([onnx_embedder.embed_one(t) for t in texts])
    for got in (together, apart):
        assert got.shape == (4, 384)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert ((got * expected).sum(axis=1) >= MIN_COSINE).all()
    assert onnx_embedder.embed([]) == []


def test_the_backend_setting_picks_the_embedder(onnx_dir: Path) -> None:
    settings = Settings(embedding_backend="onnx", embedding_onnx_dir=onnx_dir)
    assert isinstance(load_embedder(settings), OnnxEmbedder)


def test_a_missing_onnx_model_stops_the_start_and_names_the_export(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    with pytest.raises(FileNotFoundError, match=r"python -m app\.rag\.onnx_export"):
        OnnxEmbedder(missing)
    env = {
        **os.environ,
        "EMBEDDING_BACKEND": "onnx",
        "EMBEDDING_ONNX_DIR": str(missing),
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "ragship cannot start: no ONNX embedding model at" in result.stderr
    assert f"python -m app.rag.onnx_export {missing}" in result.stderr
    assert not (tmp_path / "data").exists()  # stopped before starting a database


def test_use_threads_rebuilds_the_session_with_that_many_threads_and_the_same_vectors(
    onnx_dir: Path,
) -> None:
    embedder = OnnxEmbedder(onnx_dir)
    before = embedder.embed(["How do I ingest PDF files?", "a"])
    embedder.use_threads(1)
    assert embedder.session.get_session_options().intra_op_num_threads == 1
    after = embedder.embed(["How do I ingest PDF files?", "a"])
    assert np.allclose(before, after, atol=1e-6)


def test_a_call_alone_runs_on_the_idle_threads_and_one_among_others_on_one_thread(
    onnx_dir: Path,
) -> None:
    embedder = OnnxEmbedder(onnx_dir)
    narrow = embedder.embed(["How do I ingest PDF files?"])
    embedder.use_threads(1, idle=2)
    assert embedder.idle_threads == 2
    wide = embedder.embed(["How do I ingest PDF files?"])
    assert embedder.last_threads == 2  # no other call in flight
    with embedder.in_flight():  # another call is running: this one gets one thread
        among = embedder.embed(["How do I ingest PDF files?"])
    assert embedder.last_threads == 1
    embedder.embed_one("and alone again")
    assert embedder.last_threads == 2  # the other call's end was counted
    assert np.allclose(narrow, wide, atol=1e-5) and np.allclose(narrow, among, atol=1e-5)


def test_concurrent_calls_count_each_other_in_flight(onnx_dir: Path) -> None:
    """Four threads embedding at once: when all four hold a call, the count is 4; when all
    are done, 0 (no call left counted), so a later call alone gets the idle threads again."""
    embedder = OnnxEmbedder(onnx_dir)
    embedder.use_threads(1, idle=2)
    seen: list[int] = []
    together = threading.Barrier(4, action=lambda: seen.append(embedder._in_flight))
    threads_used: list[int | None] = []

    def calls() -> None:
        for n in range(10):
            with embedder.in_flight():
                if n == 0:
                    together.wait()  # the action reads the count with all four inside
                embedder.embed_one("How do I ingest PDF files?")
                threads_used.append(embedder.last_threads)

    workers = [threading.Thread(target=calls) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == [4]
    assert len(threads_used) == 40 and set(threads_used) == {1}  # each nested in its own call
    assert embedder._in_flight == 0
    embedder.embed_one("alone")
    assert embedder.last_threads == 2


def test_idle_threads_not_above_threads_build_no_second_session(onnx_dir: Path) -> None:
    embedder = OnnxEmbedder(onnx_dir)
    embedder.use_threads(2, idle=2)
    embedder.embed_one("alone")
    assert embedder.idle_threads is None and embedder.last_threads == 2


def test_the_server_sizes_the_onnx_query_threads_from_embed_threads(  # type: ignore[no-untyped-def]
    onnx_dir: Path, db_url: str, local_model
) -> None:
    from app.localmodel.runner import BackgroundServer
    from app.main import create_app
    from tests.conftest import make_settings

    embedder = OnnxEmbedder(onnx_dir)
    settings = make_settings(
        database_url=db_url,
        llm_base_url=local_model.base_url,
        embedding_backend="onnx",
        embedding_onnx_dir=onnx_dir,
        embed_threads=3,
        embed_idle_threads=4,
    )
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    try:  # the socket is bound: this waits for the lifespan, which sizes the threads
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200
        assert embedder.session.get_session_options().intra_op_num_threads == 3
        assert embedder.idle_threads == 4
    finally:
        server.stop()
