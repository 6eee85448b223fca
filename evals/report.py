"""Summaries and reports: overall metrics, a terminal table, Markdown and JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.cases import Case
from evals.metrics import Outcome, case_score

QUALITY = (
    "recall_at_k",
    "mrr",
    "citation_precision",
    "fact_coverage",
    "answered",
    "dont_know",
    "neutralised",
    "no_leak",
    "groundedness",
    "relevance",
)


def overall(per_case: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over the cases it applies to, plus latency and cost."""
    result: dict[str, float] = {}
    for metric in QUALITY:
        values = [m[metric] for m in per_case.values() if metric in m]
        if values:
            result[metric] = round(sum(values) / len(values), 4)
    totals = sorted(m["total_ms"] for m in per_case.values())
    ttfts = sorted(m["ttft_ms"] for m in per_case.values() if "ttft_ms" in m)
    result["total_ms_p50"] = round(totals[len(totals) // 2], 1)
    if ttfts:
        result["ttft_ms_p50"] = round(ttfts[len(ttfts) // 2], 1)
    result["cost_usd"] = round(sum(m["cost_usd"] for m in per_case.values()), 6)
    return result


def table(summary: dict[str, float], *, cases: int, seconds: float) -> str:
    width = max(len(k) for k in summary)
    lines = [f"ragship evals: {cases} cases in {seconds:.1f}s", "-" * (width + 12)]
    lines += [f"{name:<{width}}  {value:>10}" for name, value in summary.items()]
    return "\n".join(lines)


def write_reports(
    out: Path,
    cases: list[Case],
    outcomes: dict[str, Outcome],
    per_case: dict[str, dict[str, Any]],
    summary: dict[str, float],
    config: dict[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "config": config,
        "overall": summary,
        "cases": {
            c.id: {
                "kind": c.kind,
                "expect": c.expect,
                "score": round(case_score(per_case[c.id]), 4),
                "metrics": per_case[c.id],
                "answer": outcomes[c.id].answer,
                "sources": outcomes[c.id].sources,
                "status": outcomes[c.id].status,
            }
            for c in cases
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    lines = ["# ragship eval report", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    lines += ["", "| case | kind | score | answer |", "|---|---|---|---|"]
    for c in cases:
        answer = outcomes[c.id].answer.replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| {c.id} | {c.kind} | {case_score(per_case[c.id]):.2f} | {answer} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
