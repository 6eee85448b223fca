"""EMBEDDING_ONNX_PRECISION=int8: the quantised model's vectors stay near the fp32 model's.

The model is exported as the image's export stage does it (model.onnx and
model.int8.onnx), once for the session (`onnx_dir`, tests/conftest.py). The demo corpus is
the bundled docs, chunked as ingest chunks them (300 tokens, 40 overlap: 331 chunks when
written); the queries are the eval questions (evals/cases.toml, 88 when written).

Floors, from the measurement on the shared test machine (onnxruntime 1.32, MatMul weights
int8 per channel (the Gather tables since, measured the same: min 0.9828 over the questions), an x86-64 CPU with AVX-512 VNNI, whose int8 kernels cannot saturate): cosine(int8, fp32) was 0.9858 at worst over the chunks and 0.9818 over
the questions, mean 0.994 for both, so every vector must reach MIN_COSINE = 0.98; per-tensor
int8 on all ops measured mean 0.93 and fails it. With int8 questions against the fp32
chunks, every question's top-5 shared at least 3 chunks with its fp32 top-5 (4.55 on
average), so: at least 3 each and 4.3 on average (of the questions the docs answer, since
2026-12-01: 67, at least 3 each and 4.67 on average, embedded alone). Measured again by
`python -m bench embedding_precision`.

Chunks are embedded in batches, as ingest embeds them; questions one at a time, as the
server does (`_embed_each` says why it matters). Batched with the chunks, one question fell
to 0.9798 when the docs' chunks changed (2026-12-01); embedded alone, the worst question
was 0.9850 the same day.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import pytest

from app.rag.embedder import load_embedder
from app.rag.onnx_embedder import MODELS, OnnxEmbedder
from app.settings import Settings
from evals.cases import load_cases
from ingest.boilerplate import repeated_blocks
from ingest.pipeline import IngestReport, discover_sources
from ingest.prepare import chunk_document, read_changed
from tests.conftest import DOCS

MIN_COSINE = 0.98
MIN_SHARED, MIN_MEAN_SHARED = 3, 4.3  # of each question's top 5
K = 5
Matrix = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def fp32(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, batch_size=32)


@pytest.fixture(scope="module")
def int8(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, batch_size=32, precision="int8")


@pytest.fixture(scope="module")
def chunks() -> list[str]:
    """The bundled docs' chunk texts, as ingest embeds them."""
    files = discover_sources([DOCS], IngestReport())
    parsed = [(source, read_changed(path, source, {})) for path, source in files]
    read = [(source, got) for source, got in parsed if got is not None]
    chrome = repeated_blocks([doc for _, (_, doc) in read])
    texts: list[str] = []
    for source, (digest, doc) in read:
        texts += chunk_document(
            source, digest, doc, chrome=chrome, max_tokens=300, overlap=40
        ).texts()
    return texts


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [case.question for case in load_cases()]


@pytest.fixture(scope="module")
def vectors(
    fp32: OnnxEmbedder, int8: OnnxEmbedder, chunks: list[str], questions: list[str]
) -> dict[str, Matrix]:
    """Each model's vectors of the chunks (batched) and of the questions (one at a time),
    embedded once for the module's tests."""
    return {
        "fp32 chunks": _embed(fp32, chunks),
        "int8 chunks": _embed(int8, chunks),
        "fp32 questions": _embed_each(fp32, questions),
        "int8 questions": _embed_each(int8, questions),
    }


def _embed(embedder: OnnxEmbedder, texts: list[str]) -> Matrix:
    """Texts in batches, as ingest embeds chunks."""
    return np.array(embedder.embed(texts), dtype=np.float64)


def _embed_each(embedder: OnnxEmbedder, texts: list[str]) -> Matrix:
    """Texts one at a time, as the server embeds a question (`embed_one`). The int8 model
    quantises its activations with one scale per batch (DynamicQuantizeLinear), so a text's
    int8 vector depends on the texts batched with it: a question batched with chunks is
    not the question the server embeds."""
    return np.array([embedder.embed_one(text) for text in texts], dtype=np.float64)


def test_the_export_writes_an_int8_model_with_quantised_matmuls_and_tables(onnx_dir: Path) -> None:
    fp32_path, int8_path = onnx_dir / MODELS["fp32"], onnx_dir / MODELS["int8"]
    # The tables int8 too: about a quarter of the fp32 file (23 of 87 MB), not 0.68 of it.
    assert int8_path.stat().st_size < 0.3 * fp32_path.stat().st_size
    ops = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger", "DequantizeLinear"} <= ops
    assert "MatMulInteger" not in {node.op_type for node in onnx.load(str(fp32_path)).graph.node}


def test_int8_vectors_stay_within_the_floor_of_fp32_on_every_chunk_and_question(
    vectors: dict[str, Matrix], chunks: list[str], questions: list[str]
) -> None:
    texts = chunks + questions
    assert len(chunks) >= 200 and len(questions) >= 50
    a = np.vstack([vectors["fp32 chunks"], vectors["fp32 questions"]])
    b = np.vstack([vectors["int8 chunks"], vectors["int8 questions"]])
    assert b.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cosines = (a * b).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, (texts[worst][:80], cosines[worst])
    # ...and it is the quantised model: fp32 loaded twice would agree to 1e-6.
    assert cosines.mean() < 0.999


def test_int8_questions_retrieve_nearly_the_fp32_top_five_from_an_fp32_corpus(
    vectors: dict[str, Matrix], questions: list[str]
) -> None:
    # The questions the docs answer: an out-of-scope question's top five are the least bad
    # of unrelated chunks, in an order that means nothing, and the relevance gate keeps them
    # from the model (embedded alone, "Write a sonnet about the ocean at night." shared 2).
    answered = [case.expect == "answer" for case in load_cases()]
    assert len(answered) == len(questions) and sum(answered) >= 50
    corpus = vectors["fp32 chunks"]
    exact = np.argsort(-(vectors["fp32 questions"][answered] @ corpus.T), axis=1)[:, :K]
    quantised = np.argsort(-(vectors["int8 questions"][answered] @ corpus.T), axis=1)[:, :K]
    shared = [len(set(x) & set(y)) for x, y in zip(exact.tolist(), quantised.tolist(), strict=True)]
    worst = int(np.argmin(shared))
    asked = [q for q, kept in zip(questions, answered, strict=True) if kept]
    assert shared[worst] >= MIN_SHARED, (asked[worst], shared[worst])
    assert np.mean(shared) >= MIN_MEAN_SHARED, np.mean(shared)


def test_the_precision_setting_picks_the_model_file(onnx_dir: Path) -> None:
    for precision in ("fp32", "int8"):
        settings = Settings(
            embedding_backend="onnx",
            embedding_onnx_dir=onnx_dir,
            embedding_onnx_precision=precision,
        )
        embedder = load_embedder(settings)
        assert isinstance(embedder, OnnxEmbedder)
        assert embedder.model_path == onnx_dir / MODELS[precision]
    assert Settings().embedding_onnx_precision == "fp32"


def test_a_missing_int8_model_names_the_export(onnx_dir: Path, tmp_path: Path) -> None:
    older = tmp_path / "fp32-only"  # an export from before int8 existed
    shutil.copytree(onnx_dir, older, ignore=shutil.ignore_patterns(MODELS["int8"]))
    OnnxEmbedder(older)  # fp32 still loads
    with pytest.raises(
        FileNotFoundError, match=r"model\.int8\.onnx.*python -m app\.rag\.onnx_export"
    ):
        OnnxEmbedder(older, precision="int8")


def test_use_threads_keeps_the_int8_model(onnx_dir: Path, int8: OnnxEmbedder) -> None:
    embedder = OnnxEmbedder(onnx_dir, precision="int8")
    texts = ["How do I ingest PDF files?", "a"]
    before = embedder.embed(texts)
    embedder.use_threads(1)
    assert embedder.session.get_session_options().intra_op_num_threads == 1
    assert embedder.model_path.name == MODELS["int8"]
    assert np.allclose(before, embedder.embed(texts), atol=1e-5)
    assert np.allclose(int8.embed(texts), embedder.embed(texts), atol=1e-5)
