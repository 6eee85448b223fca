"""Compare two result files (two prompt versions, two models) on the same cases, paired."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path


def sign_test_p(better: int, worse: int) -> float:
    """Two-sided exact sign test: how likely a split this uneven is by chance."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(a_path: Path, b_path: Path, *, epsilon: float = 1e-9) -> str:
    a = json.loads(a_path.read_text())["cases"]
    b = json.loads(b_path.read_text())["cases"]
    shared = sorted(set(a) & set(b))
    better = [c for c in shared if b[c]["score"] > a[c]["score"] + epsilon]
    worse = [c for c in shared if b[c]["score"] < a[c]["score"] - epsilon]
    p = sign_test_p(len(better), len(worse))
    mean_a = sum(a[c]["score"] for c in shared) / max(len(shared), 1)
    mean_b = sum(b[c]["score"] for c in shared) / max(len(shared), 1)
    verdict = "more than noise" if p < 0.05 else "within noise"
    lines = [
        f"{len(shared)} paired cases: mean score {mean_a:.3f} -> {mean_b:.3f}",
        f"better in B: {len(better)} ({', '.join(better) or '-'})",
        f"worse in B:  {len(worse)} ({', '.join(worse) or '-'})",
        f"sign test p = {p:.4f}: {verdict}",
    ]
    return "\n".join(lines)
