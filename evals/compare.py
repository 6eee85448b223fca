"""Compare two runs (two prompt versions, two models, two settings) on the same cases, paired
per case: which cases changed, and whether the difference is more than noise."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

EPSILON = 1e-9


@dataclass
class Comparison:
    shared: list[str]
    deltas: dict[str, float]  # case id: B - A
    better: list[str]
    worse: list[str]
    p_value: float
    interval: tuple[float, float]  # bootstrap 95% interval of the mean paired difference

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def sign_test_p(better: int, worse: int) -> float:
    """Two-sided exact sign test: how likely a split this uneven is by chance (ties dropped)."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_interval(
    deltas: list[float], *, resamples: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of the paired differences."""
    if not deltas:
        return (0.0, 0.0)
    rng = random.Random(seed)  # seeded: the same files always give the same interval
    n = len(deltas)
    means = sorted(sum(rng.choices(deltas, k=n)) / n for _ in range(resamples))
    return (means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1])


def case_value(case: dict[str, Any], metric: str) -> float | None:
    if metric == "score":
        return float(case["score"])
    value = case.get("metrics", {}).get(metric)
    return None if value is None else float(value)


def paired(a: dict[str, Any], b: dict[str, Any], *, metric: str = "score") -> Comparison:
    values = {
        case_id: (case_value(a[case_id], metric), case_value(b[case_id], metric))
        for case_id in sorted(set(a) & set(b))
    }
    deltas = {c: vb - va for c, (va, vb) in values.items() if va is not None and vb is not None}
    better = [c for c, d in deltas.items() if d > EPSILON]
    worse = [c for c, d in deltas.items() if d < -EPSILON]
    return Comparison(
        shared=sorted(deltas),
        deltas=deltas,
        better=better,
        worse=worse,
        p_value=sign_test_p(len(better), len(worse)),
        interval=bootstrap_interval(list(deltas.values())),
    )


def compare(a_path: Path, b_path: Path, *, metric: str = "score") -> str:
    a_data = json.loads(a_path.read_text(encoding="utf-8"))
    b_data = json.loads(b_path.read_text(encoding="utf-8"))
    a, b = a_data["cases"], b_data["cases"]
    result = paired(a, b, metric=metric)
    n = max(len(result.shared), 1)
    mean_a = sum(case_value(a[c], metric) or 0.0 for c in result.shared) / n
    mean_b = sum(case_value(b[c], metric) or 0.0 for c in result.shared) / n
    low, high = result.interval
    verdict = "more than noise" if result.significant else "within noise"
    lines = [
        f"A: {a_path} ({_describe(a_data)})",
        f"B: {b_path} ({_describe(b_data)})",
        "",
        f"{'metric':<20} {'A':>10} {'B':>10} {'B - A':>10}",
    ]
    for name, va in a_data.get("overall", {}).items():
        vb = b_data.get("overall", {}).get(name)
        if vb is not None:
            lines.append(f"{name:<20} {va:>10.4g} {vb:>10.4g} {vb - va:>+10.4g}")
    lines += [
        "",
        f"{len(result.shared)} paired cases, per-case {metric}: mean {mean_a:.3f} -> {mean_b:.3f}",
        f"better in B: {len(result.better)}",
        *[f"  {c}: {_pair(a[c], b[c], metric)}" for c in result.better],
        f"worse in B: {len(result.worse)}",
        *[f"  {c}: {_pair(a[c], b[c], metric)}" for c in result.worse],
        f"unchanged: {len(result.shared) - len(result.better) - len(result.worse)}",
    ]
    only = sorted(set(a) ^ set(b))
    if only:
        lines.append(f"not in both (left out): {', '.join(only)}")
    mean_delta = sum(result.deltas.values()) / n
    lines += [
        f"sign test p = {result.p_value:.4f}; mean difference {mean_delta:+.4f}, "
        f"95% bootstrap interval [{low:+.4f}, {high:+.4f}]",
        f"verdict: {verdict}",
    ]
    return "\n".join(lines)


def _describe(data: dict[str, Any]) -> str:
    run = data.get("run", {})
    return f"model {run.get('model')}, prompt {run.get('prompt_version')}"


def _pair(a: dict[str, Any], b: dict[str, Any], metric: str) -> str:
    return f"{case_value(a, metric):.2f} -> {case_value(b, metric):.2f}"
