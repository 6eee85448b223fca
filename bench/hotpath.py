"""CPU on the hot path, per request: the built-in model's token counting and the query
embedding's torch threads.

1. Cutting an answer at `max_tokens` (app/localmodel/truncate.py): the one-pass cut
   against the former piece-by-piece count (re-encodes the whole text for every piece),
   on answers of growing length cut at half their tokens. Linear time shows as a flat
   µs-per-word column; quadratic as one that doubles with the length.
2. Two concurrent `embed_one` calls (as two requests do, each in its own thread) with
   torch's default threads (one per core) against `EMBED_THREADS=1`.
3. A prompt's last message (the sources and the question), as the context check before
   every answer counts it: whole, against `user_tokens`'s segments with each source's
   text counted once per process; the same count (asserted).
4. The query vector's text for PostgreSQL (`vector_text`, once per search): one format
   string of float32 values against pgvector's `Vector.to_text` (each value's shortest
   double repr), on the eval questions' embeddings; both read back as the same float32s.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from pgvector import Vector

from app.localmodel.truncate import truncate
from app.rag.embedder import Embedder
from app.rag.prompt import build_messages, new_boundary, source_segments
from app.rag.prompt_tokens import _text_tokens, user_tokens
from app.rag.retrieve import Passage, vector_text
from app.tokens import count_tokens
from bench.fixtures import DOCS, shared_embedder
from bench.sse_client import QUESTION
from bench.table import Table, latency, ratio

NAME = "hotpath"
LENGTHS = (250, 500, 1000, 2000)
EMBED_ROUNDS = 40
PROMPT_ROUNDS = 600
PROMPT_SIDES = ("whole (before)", "in segments, sources counted before", "in segments, sources new")
_PIECES = re.compile(r"\S+\s*")


def _piece_by_piece(pieces: list[str], max_tokens: int) -> list[str]:
    """The former cut, kept here as the baseline: one full count per piece."""
    kept: list[str] = []
    for piece in pieces:
        if count_tokens("".join([*kept, piece])) > max_tokens:
            break
        kept.append(piece)
    return kept


def _timed(fn: object, *args: object) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def token_table() -> Table:
    words = _PIECES.findall(" ".join(p.read_text() for p in sorted(DOCS.glob("*.md"))))
    table = Table(
        "Cutting an answer at max_tokens (half its tokens), best of 3",
        ["answer words", "piece by piece ms", "one pass ms", "one pass µs/word", "speed-up"],
    )
    for n in LENGTHS:
        pieces = words[:n]
        half = count_tokens("".join(pieces)) // 2
        assert truncate(pieces, half) == _piece_by_piece(pieces, half)
        old, new = _timed(_piece_by_piece, pieces, half), _timed(truncate, pieces, half)
        table.add(
            n, f"{old * 1000:.2f}", f"{new * 1000:.2f}", f"{new / n * 1e6:.2f}", ratio(old, new)
        )
    table.notes.append("same kept pieces in every row (asserted); µs/word flat = linear")
    return table


def _concurrent_embeds(embedder: Embedder, threads: int) -> list[float]:
    import torch

    torch.set_num_threads(threads)
    samples: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for i in range(EMBED_ROUNDS // 2):
            started = time.perf_counter()
            embedder.embed_one(f"How do I configure the rate limit store? ({offset}-{i})")
            with lock:
                samples.append(time.perf_counter() - started)

    pair = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join()
    return samples


def embed_table() -> Table:
    import torch

    embedder = shared_embedder()
    default = torch.get_num_threads()
    embedder.embed_one("warm up")
    table = Table(
        "Two concurrent query embeddings (embed_one), by torch threads",
        ["torch threads", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
    )
    try:
        for threads in sorted({default, 1}, reverse=True):
            samples = _concurrent_embeds(embedder, threads)
            table.add(
                f"{threads}{' (default)' if threads == default else ''}", *latency(samples).ms()
            )
    finally:
        torch.set_num_threads(default)
    table.notes.append(
        f"{EMBED_ROUNDS} embeddings, two threads at once; the server uses EMBED_THREADS"
    )
    return table


def prompt_count_table() -> Table:
    """Each prompt: five of the docs' sections (as passages) in a new combination, with a
    new marker code, as `prepare_chat` builds one. In segments, twice: with the sources'
    counts kept from the prompts before (the sections come back, as popular chunks do),
    and, in a pass of its own, with none kept (every source new to the process)."""
    texts = [page.read_text() for page in sorted(DOCS.glob("*.md"))]
    sections = [s.strip()[:1200] for t in texts for s in t.split("\n## ") if len(s) > 800]
    at = len(sections)
    prompts = []
    for n in range(PROMPT_ROUNDS):
        passages = [
            Passage(i, 1, "docs", "Guide", "A › B", "a", sections[(n * 7 + i) % at], 0.1, 0.5)
            for i in range(5)
        ]
        boundary = new_boundary()
        user = build_messages(question=QUESTION, passages=passages, history=[], boundary=boundary)[
            -1
        ]["content"]
        prompts.append((user, source_segments(passages, boundary=boundary)))
    took: dict[str, list[float]] = {side: [] for side in PROMPT_SIDES}
    for kept in (True, False):
        for user, segments in prompts:
            if not kept:
                _text_tokens.cache_clear()
            sides: dict[str, Callable[[], int]]
            sides = {PROMPT_SIDES[0]: partial(count_tokens, user)} if kept else {}
            sides[PROMPT_SIDES[1 if kept else 2]] = partial(user_tokens, segments, QUESTION)
            counts = []
            for label, count in sides.items():
                started = time.perf_counter()
                counts.append(count())
                took[label].append(time.perf_counter() - started)
            assert counts[-1] == count_tokens(user)
    sizes = [count_tokens(user) for user, _ in prompts]
    table = Table(
        f"A prompt's last message ({min(sizes)}-{max(sizes)} tokens; {at} sections, five a prompt)",
        ["counted", "n", "p50 µs", "p95 µs"],
    )
    for label, samples in took.items():
        lat = latency(samples[PROMPT_ROUNDS // 2 :])  # every section has come back by then
        table.add(label, lat.n, f"{lat.p50 * 1e6:.0f}", f"{lat.p95 * 1e6:.0f}")
    table.notes.append("the same count on every side (asserted, every prompt)")
    return table


def _read_back(text: str) -> np.ndarray:
    """The float32 values PostgreSQL's pgvector reads from `text` (it uses strtof)."""
    return np.array(text[1:-1].split(","), dtype=np.float32)


def vector_table() -> Table:
    from evals.cases import load_cases

    embedder = shared_embedder()
    vectors = [embedder.embed_one(case.question) for case in load_cases()]
    table = Table(
        f"A query vector's text for PostgreSQL ({len(vectors)} eval questions' embeddings)",
        ["made by", "n", "p50 µs", "p95 µs"],
    )
    sides = {"Vector.to_text (before)": lambda v: Vector(v).to_text(), "vector_text": vector_text}
    took: dict[str, list[float]] = {label: [] for label in sides}
    for _ in range(5):
        for vector in vectors:
            texts = []
            for label, make in sides.items():
                started = time.perf_counter()
                texts.append(make(vector))
                took[label].append(time.perf_counter() - started)
            assert np.array_equal(_read_back(texts[0]), _read_back(texts[1]))
    for label, samples in took.items():
        lat = latency(samples)
        table.add(label, lat.n, f"{lat.p50 * 1e6:.0f}", f"{lat.p95 * 1e6:.0f}")
    table.notes.append("both texts read back as the same float32 values (asserted, each vector)")
    return table


def run() -> list[Table]:
    return [token_table(), embed_table(), prompt_count_table(), vector_table()]
