"""Nearest-neighbour screening: a question very close in meaning to a known attack prompt
is blocked even when no pattern matches (paraphrases, other word orders).

The known attacks (`attacks.txt`, one per line) are embedded once at start with the
embedding model retrieval already loaded; a check is one matrix-vector product on the
question's embedding, which retrieval computes anyway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.rag.embedder import TextEmbedder

ATTACKS_FILE = Path(__file__).resolve().parent / "attacks.txt"


def load_attacks(path: Path = ATTACKS_FILE) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class AttackIndex:
    """Unit vectors of the known attacks; `nearest` gives (cosine similarity, prompt)."""

    def __init__(self, embedder: TextEmbedder, attacks: list[str] | None = None) -> None:
        self.attacks = attacks if attacks is not None else load_attacks()
        vectors = embedder.embed(self.attacks) if self.attacks else []
        self._matrix = np.asarray(vectors, dtype=np.float32).reshape(len(self.attacks), -1)

    def nearest(self, embedding: list[float]) -> tuple[float, str]:
        if not self.attacks:
            return 0.0, ""
        scores = self._matrix @ np.asarray(embedding, dtype=np.float32)
        best = int(np.argmax(scores))
        return float(scores[best]), self.attacks[best]
