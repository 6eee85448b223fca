"""The gate: fail when a metric is below its threshold or regresses past the tolerance from
the accepted baseline, naming the cases that got worse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).resolve().parent / "baseline.json"


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def check(
    summary: dict[str, float], case_scores: dict[str, float], baseline: dict[str, Any]
) -> list[str]:
    failures = []
    tolerance = float(baseline.get("tolerance", 0.05))
    for metric, threshold in baseline.get("thresholds", {}).items():
        value = summary.get(metric)
        if value is not None and value < threshold:
            failures.append(f"{metric} = {value:.3f} is below its threshold {threshold:.3f}")
    for metric, accepted in baseline.get("overall", {}).items():
        value = summary.get(metric)
        if metric in baseline.get("thresholds", {}) and value is not None:
            if value < accepted - tolerance:
                failures.append(
                    f"{metric} = {value:.3f} regressed from the baseline {accepted:.3f}"
                )
    worse = sorted(
        case_id
        for case_id, accepted in baseline.get("cases", {}).items()
        if case_id in case_scores and case_scores[case_id] < accepted - tolerance
    )
    if failures and worse:
        failures.append("cases that got worse: " + ", ".join(worse))
    elif worse:
        failures.append("cases that got worse: " + ", ".join(worse))
    return failures


def new_baseline(
    summary: dict[str, float], case_scores: dict[str, float], previous: dict[str, Any]
) -> dict[str, Any]:
    return {
        "thresholds": previous.get("thresholds", {}),
        "tolerance": previous.get("tolerance", 0.05),
        "overall": summary,
        "cases": {k: round(v, 4) for k, v in sorted(case_scores.items())},
    }
