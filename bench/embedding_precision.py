"""The onnx embedder at fp32 (baseline) against int8 (EMBEDDING_ONNX_PRECISION), one run.

The model is exported once into a temporary folder (both files, as the image's export
stage writes them). Measured for each precision:

- `embed_one` of the gateway bench's question on 1 intra-op thread (as the server runs a
  query embedding, EMBED_THREADS=1): p50/p95 over ROUNDS calls, the two precisions
  alternating call by call so that both see the same load;
- batch throughput: every chunk of the bundled docs (chunked as ingest does, 300 tokens,
  40 overlap) embedded in batches of 64 on onnxruntime's default threads (ingest's setting);
- agreement with fp32: cosine of each chunk's and each eval question's vector with its
  fp32 vector; for each eval question (evals/cases.toml), how many of its top 5 chunks by
  cosine are in the fp32 question's top 5 over the fp32 corpus, with the question at this
  precision against the fp32-embedded corpus (a corpus ingested before switching) and
  against a corpus embedded at this precision;
- hit@5: the share of answerable cases with expected sections whose top 5 chunks by cosine
  include one of them (vector search alone: the app's hybrid search and gate are left out).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from app.rag.onnx_embedder import OnnxEmbedder, Precision
from bench.fixtures import CHUNK_OVERLAP, CHUNK_TOKENS, DOCS, onnx_model
from bench.sse_client import QUESTION
from bench.table import Table, latency, ratio
from evals.cases import Case, load_cases
from ingest.boilerplate import repeated_blocks
from ingest.pipeline import IngestReport, discover_sources
from ingest.prepare import chunk_document, read_changed

NAME = "embedding_precision"
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
ROUNDS = 300  # embed_one calls per precision, after WARM_UP
WARM_UP = 20
K = 5
Matrix = npt.NDArray[np.float64]


def docs_chunks() -> tuple[list[str], list[str]]:
    """(section key "docs/file.md#anchor", embedded text) of each chunk of the bundled docs."""
    files = discover_sources([DOCS], IngestReport())
    read = [(source, read_changed(path, source, {})) for path, source in files]
    parsed = [(source, got) for source, got in read if got is not None]
    chrome = repeated_blocks([doc for _, (_, doc) in parsed])
    keys: list[str] = []
    texts: list[str] = []
    for source, (digest, doc) in parsed:
        prepared = chunk_document(
            source, digest, doc, chrome=chrome, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP
        )
        keys += [f"{source}#{draft.anchor}" for draft in prepared.drafts]
        texts += prepared.texts()
    return keys, texts


def _embed_one_latency(embedders: dict[Precision, OnnxEmbedder]) -> dict[Precision, list[float]]:
    for embedder in embedders.values():
        embedder.use_threads(1)
        for _ in range(WARM_UP):
            embedder.embed_one(QUESTION)
    samples: dict[Precision, list[float]] = {p: [] for p in embedders}
    for _ in range(ROUNDS):
        for precision, embedder in embedders.items():
            began = time.perf_counter()
            embedder.embed_one(QUESTION)
            samples[precision].append(time.perf_counter() - began)
    return samples


def _top(queries: Matrix, corpus: Matrix) -> list[set[int]]:
    return [set(row[:K].tolist()) for row in np.argsort(-(queries @ corpus.T), axis=1)]


def _shared(a: list[set[int]], b: list[set[int]]) -> str:
    counts = [len(x & y) for x, y in zip(a, b, strict=True)]
    return f"{np.mean(counts):.2f} / {min(counts)}"


def _hits(cases: list[Case], tops: list[set[int]], keys: list[str]) -> str:
    hit = [any(keys[i] in case.sources for i in top) for case, top in zip(cases, tops, strict=True)]
    return f"{sum(hit)}/{len(hit)} ({100 * sum(hit) / len(hit):.0f}%)"


def run() -> list[Table]:
    keys, chunks = docs_chunks()
    cases = [c for c in load_cases() if c.expect == "answer" and c.sources]
    questions = [c.question for c in load_cases()]
    with onnx_model() as onnx_dir:
        embedders = {p: OnnxEmbedder(onnx_dir, batch_size=64, precision=p) for p in PRECISIONS}
        corpus: dict[Precision, Matrix] = {}
        rate: dict[Precision, float] = {}
        for precision, embedder in embedders.items():
            embedder.embed(chunks[:64])  # warm up
            began = time.perf_counter()
            corpus[precision] = np.array(embedder.embed(chunks), dtype=np.float64)
            rate[precision] = len(chunks) / (time.perf_counter() - began)
        asked = {p: np.array(e.embed(questions), dtype=np.float64) for p, e in embedders.items()}
        expected = {p: np.array(e.embed([c.question for c in cases])) for p, e in embedders.items()}
        timings = _embed_one_latency(embedders)
    table = Table(
        "ONNX query embedding: fp32 (baseline) vs int8 (EMBEDDING_ONNX_PRECISION)",
        ["measure", "fp32", "int8", "int8 vs fp32"],
    )
    lat = {p: latency(timings[p]) for p in PRECISIONS}
    for name in ("p50", "p95"):
        base, new = getattr(lat["fp32"], name), getattr(lat["int8"], name)
        table.add(f"embed_one {name} ms (1 thread)", f"{base * 1000:.2f}", f"{new * 1000:.2f}",
                  ratio(new, base))  # fmt: skip
    table.add("batch embed, docs chunks/s", f"{rate['fp32']:.0f}", f"{rate['int8']:.0f}",
              ratio(rate["int8"], rate["fp32"]))  # fmt: skip
    for label, texts_of in (("chunks", corpus), ("questions", asked)):
        cos = (texts_of["int8"] * texts_of["fp32"]).sum(axis=1)
        table.add(f"cosine with fp32, {label} (min / mean)", "1 / 1",
                  f"{cos.min():.4f} / {cos.mean():.4f}", "")  # fmt: skip
    exact = _top(asked["fp32"], corpus["fp32"])
    table.add("top-5 shared with fp32's, fp32 corpus (mean / min)", f"{K:.2f} / {K}",
              _shared(exact, _top(asked["int8"], corpus["fp32"])), "")  # fmt: skip
    table.add("top-5 shared with fp32's, own corpus (mean / min)", f"{K:.2f} / {K}",
              _shared(exact, _top(asked["int8"], corpus["int8"])), "")  # fmt: skip
    table.add(
        "hit@5 of expected sections, fp32 corpus",
        *(_hits(cases, _top(expected[p], corpus["fp32"]), keys) for p in PRECISIONS),
        "",
    )
    table.add(
        "hit@5 of expected sections, own corpus",
        *(_hits(cases, _top(expected[p], corpus[p]), keys) for p in PRECISIONS),
        "",
    )
    table.notes += [
        f"{len(chunks)} docs chunks, {len(questions)} eval questions ({len(cases)} answerable "
        f"with expected sections for hit@5); embed_one: {ROUNDS} calls each, alternating",
        "own corpus: the chunks embedded at the question's precision; fp32 corpus: a corpus "
        "ingested at fp32 and queried at int8 (switching precision re-embeds nothing)",
        "hit@5 is vector search alone; the app adds full-text search and a relevance gate",
    ]
    return [table]
