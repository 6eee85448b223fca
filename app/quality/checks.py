"""The cheap checks (no model call) the eval suite and the production scorer share:
which sources an answer cites, whether those exist, and whether it says "I don't know"."""

from __future__ import annotations

import re

CITATION = re.compile(r"\[(\d+)\]")
DONT_KNOW = re.compile(r"\bI don'?t know\b", re.IGNORECASE)


def says_dont_know(answer: str) -> bool:
    return bool(DONT_KNOW.search(answer))


def citation_validity(answer: str, *, sources: int) -> float | None:
    """Share (0..1) of the distinct [n] markers in `answer` that name one of the `sources`
    passages it was given (1..sources); 0 for an answer that cites nothing, since every
    claim should be cited; None for an "I don't know" answer, which has nothing to cite."""
    if says_dont_know(answer):
        return None
    cited = {int(n) for n in CITATION.findall(answer)}
    if not cited:
        return 0.0
    return sum(0 < n <= sources for n in cited) / len(cited)
