"""Guardrail overhead per request: the input checks, the sources check and the output guard,
against the same request work without them, interleaved round by round in one run.

Input: `pattern_verdicts` on the question and `AttackIndex.nearest` on its embedding (which
retrieval computes anyway, so it is computed once, before timing). Sources: `screen_sources`
on five passages cut from the docs, one of them the eval fixture with a planted instruction,
so every output check runs. Output: the request's `output_guard`, fed a typical 120-word
answer word by word, then `finish`. The baseline forwards the same words with no guard.
Issue 12's target: at most 5 ms added at p95.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.guardrails.attacks import AttackIndex
from app.guardrails.chain import output_guard, screen_sources
from app.guardrails.screen import pattern_verdicts
from app.rag.retrieve import Passage
from app.settings import Settings
from bench.fixtures import DOCS, ROOT, bench_settings, shared_embedder
from bench.table import Latency, Table, latency

ROUNDS = 300
WARMUP = 20
TARGET_MS = 5.0
LANES = ("base", "patterns", "nearest", "sources", "first", "output", "all", "added", "long")
PASSAGE_WORDS = 220  # about 300 tokens, the ingest chunk size
SOURCES = (DOCS / "caps.md", DOCS / "retrieval.md", ROOT / "evals" / "fixtures" / "backups.md")
QUESTION = "How do the daily spending caps and the rate limit work together?"
ANSWER = (
    "Every question passes the cap chain before any tokens are spent [1]. The rate limit "
    "counts requests per user in a sliding window and refuses the question with a 429 when "
    "the window is full [1]. The daily caps work on money instead: before the call starts, "
    "ragship reserves the most the answer could cost against the user's daily cap, the "
    "global daily cap and the monthly cap [2]. When the answer ends, the call is settled "
    "for what it really cost and the unused part of the reservation is given back [2]. So "
    "a user can be stopped by either layer, and a refusal by the rate limit costs nothing "
    "at all, because it happens before the reservation [3]."
)


@dataclass
class _Prepared:
    """What `output_guard` reads of the chat path's prepared request."""

    passages: list[Passage]
    planted: list[str]


def _passages() -> list[Passage]:
    chunks = []
    for path in SOURCES:
        words = path.read_text(encoding="utf-8").split()
        chunks += [
            (path.name, " ".join(words[i : i + PASSAGE_WORDS]))
            for i in range(0, len(words), PASSAGE_WORDS)
        ][:2]
    chosen = chunks[:4] + [c for c in chunks if "SYSTEM OVERRIDE" in c[1]][:1]
    return [
        Passage(n, n, source, source, "", "", text, 0.5, 0.5)
        for n, (source, text) in enumerate(chosen, start=1)
    ]


def _baseline(pieces: list[str]) -> str:
    """The same request work with no guardrail: every piece forwarded as it comes."""
    sent = []
    for piece in pieces:
        sent.append(piece)
    return "".join(sent)


def _guarded(
    settings: Settings,
    index: AttackIndex,
    vector: list[float],
    passages: list[Passage],
    pieces: list[str],
) -> tuple[float, float, float, float]:
    """One request's guardrails; (patterns, nearest, sources, output) in seconds."""
    t0 = time.perf_counter()
    assert not pattern_verdicts(QUESTION)
    t1 = time.perf_counter()
    similarity, _ = index.nearest(vector)
    assert similarity < settings.guardrail_attack_similarity
    t2 = time.perf_counter()
    _, planted, _ = screen_sources(settings, passages)
    t3 = time.perf_counter()
    guard = output_guard(settings, _Prepared(passages, planted))
    assert guard is not None
    sent = []
    for piece in pieces:
        text, verdict = guard.feed(piece)
        assert verdict is None, verdict
        sent.append(text)
    text, verdict = guard.finish()
    assert verdict is None and "".join(sent) + text == "".join(pieces), verdict
    t4 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, t4 - t3


def run() -> list[Table]:
    settings = bench_settings()
    embedder = shared_embedder()
    index = AttackIndex(embedder)
    vector = embedder.embed_one(QUESTION)
    passages = _passages()
    words = ANSWER.split(" ")
    pieces = [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]
    long_question = (QUESTION + " ") * (settings.max_message_chars // (len(QUESTION) + 1))
    assert screen_sources(settings, passages)[1], "a passage with a planted instruction"
    lanes: dict[str, list[float]] = {key: [] for key in LANES}
    for n in range(ROUNDS + WARMUP):
        started = time.perf_counter()
        _baseline(pieces)
        base = time.perf_counter() - started
        started = time.perf_counter()
        parts = _guarded(settings, index, vector, passages, pieces)
        total = time.perf_counter() - started
        started = time.perf_counter()
        pattern_verdicts(long_question)
        long = time.perf_counter() - started
        if n >= WARMUP:
            for key, value in zip(("patterns", "nearest", "sources", "output"), parts, strict=True):
                lanes[key].append(value)
            lanes["first"].append(sum(parts[:3]))
            lanes["base"].append(base)
            lanes["all"].append(total)
            lanes["added"].append(total - base)
            lanes["long"].append(long)
    return [_table(lanes, len(words), len(index.attacks), len(long_question))]


def _table(lanes: dict[str, list[float]], words: int, attacks: int, chars: int) -> Table:
    table = Table(
        f"guardrails overhead per request ({ROUNDS} rounds each, after {WARMUP} warm-up, "
        "interleaved)",
        ["path", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
    )
    rows = (
        ("base", f"baseline: {words} answer words forwarded, no guardrails"),
        ("patterns", "input: pattern_verdicts on the question"),
        ("nearest", f"input: AttackIndex.nearest ({attacks} attacks, precomputed embedding)"),
        ("sources", "sources: screen_sources on 5 passages of ~220 words"),
        ("first", "before the first token: input + sources"),
        ("output", f"output: output_guard + feed x{words} words + finish"),
        ("all", "with guardrails: the checks above, the words forwarded through the guard"),
        ("added", "added per request (with minus baseline, paired)"),
        ("long", f"input: pattern_verdicts on a {chars}-character question"),
    )
    summaries: dict[str, Latency] = {key: latency(lanes[key]) for key, _ in rows}
    for key, label in rows:
        table.add(label, *summaries[key].ms())
    added = summaries["added"].p95 * 1000
    verdict = "within" if added <= TARGET_MS else "OVER"
    per_word = summaries["output"].p50 * 1000 / words
    table.notes += [
        f"guardrails add {added:.2f} ms at p95 per request: {verdict} the {TARGET_MS:g} ms "
        "target (issue 12)",
        f"the output guard costs {per_word:.3f} ms per streamed word at p50, spread over the "
        "stream",
        "moderation (an upstream round trip) and PII redaction are off by default, not measured",
    ]
    return table
