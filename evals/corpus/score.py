"""Scores of the corpus questions: per question (`Result`), then per split and kind."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evals.corpus.questions import KINDS, SPLITS, Question


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Result:
    id: str
    kind: str
    split: str
    rank: int  # 1-based rank of the first passage from an answering page; 0 when none
    key_found: bool  # the key string is in a retrieved passage
    retrieved: int  # passages above the cut-off (none when the relevance gate refused)
    max_similarity: float  # best cosine similarity of any candidate, cut-off or not
    sources: list[str]
    seconds: float

    @classmethod
    def of(cls, q: Question, kept: list[Any], raw: list[Any], seconds: float) -> Result:
        """`kept`: passages above the cut-off; `raw`: the same search without it."""
        rank = next(
            (n for n, p in enumerate(kept, 1) if any(_is_page(p.source, g) for g in q.pages)), 0
        )
        key = _squash(q.key)
        return cls(
            id=q.id,
            kind=q.kind,
            split=q.split,
            rank=rank,
            key_found=bool(key) and any(key in _squash(p.text) for p in kept),
            retrieved=len(kept),
            max_similarity=max((p.similarity for p in raw), default=0.0),
            sources=[f"{p.source}#{p.anchor}" for p in kept],
            seconds=seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_page(source: str, page: str) -> bool:
    return source == page or source.endswith("/" + page)


def _row(label: str, rs: list[Result]) -> str:
    inside = [r for r in rs if r.kind != "out-of-scope"]
    outside = [r for r in rs if r.kind == "out-of-scope"]
    n = len(inside)

    def share(hits: int, of: int) -> str:
        return f"{hits / of:.2f}" if of else "-"

    cells = [
        label,
        str(n),
        share(sum(0 < r.rank <= 1 for r in inside), n),
        share(sum(0 < r.rank <= 3 for r in inside), n),
        share(sum(0 < r.rank <= 5 for r in inside), n),
        f"{sum(1 / r.rank for r in inside if r.rank) / n:.2f}" if n else "-",
        share(sum(r.key_found for r in inside), n),
        f"{sum(r.retrieved == 0 for r in outside)}/{len(outside)}" if outside else "-",
        f"{min(r.max_similarity for r in inside):.3f}" if inside else "-",
        f"{max(r.max_similarity for r in outside):.3f}" if outside else "-",
    ]
    return "| " + " | ".join(cells) + " |"


def summarize(
    results: list[Result],
    *,
    min_similarity: float,
    top_k: int,
    gate: tuple[float, float] | None = None,
) -> str:
    """A Markdown table: one row per split, per split and kind, and overall. `gate`: the
    relevance gate's (similarity, keyword share), for the heading line."""
    head = (
        "| set | in-scope | hit@1 | hit@3 | hit@5 | MRR | key string | out-of-scope refused "
        "| min top sim (in) | max top sim (out) |\n|" + "---|" * 10
    )
    gated = f", relevance gate {gate[0]} or keyword share {gate[1]}" if gate else ""
    lines = [f"cut-off {min_similarity}{gated}, top_k {top_k}", head]
    for split in SPLITS:
        rs = [r for r in results if r.split == split]
        if not rs:
            continue
        lines.append(_row(f"**{split}**", rs))
        for kind in KINDS:
            ks = [r for r in rs if r.kind == kind]
            if ks:
                lines.append(_row(f"{split} · {kind}", ks))
    lines.append(_row("**all**", results))
    misses = [r for r in results if r.kind != "out-of-scope" and r.rank != 1]
    answered = [r for r in results if r.kind == "out-of-scope" and r.retrieved]
    lines += [f"not at rank 1: {r.split} {r.id} rank {r.rank or '-'}" for r in misses]
    lines += [f"out-of-scope not refused: {r.id} ({r.max_similarity:.3f})" for r in answered]
    return "\n".join(lines)
