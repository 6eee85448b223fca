"""The built-in model's stand-in for a moderation endpoint (`POST /v1/moderations`), so the
moderation guardrail is tested offline. It is a word list, not a classifier."""

from __future__ import annotations

import re
from typing import Any

# OpenAI's category names; a text containing one of the words is flagged under it.
MODERATED = {
    "violence": re.compile(r"\b(kill|murder|massacre|behead)\w*\b", re.IGNORECASE),
    "self-harm": re.compile(r"\b(suicide|self-harm)\b", re.IGNORECASE),
    "illicit": re.compile(r"\b(build a bomb|make meth|synthesi[sz]e nerve agent)\b", re.IGNORECASE),
}
CATEGORIES = ("harassment", "hate", "illicit", "self-harm", "sexual", "violence")


def moderate(text: str) -> dict[str, Any]:
    """One result in the shape of OpenAI's moderation API."""
    hits = {name for name, pattern in MODERATED.items() if pattern.search(text)}
    return {
        "flagged": bool(hits),
        "categories": {c: c in hits for c in CATEGORIES},
        "category_scores": {c: (0.99 if c in hits else 0.001) for c in CATEGORIES},
    }
