"""Two (or more) model tiers on the same cases: one quality/cost table, then the paired
comparison of the first two (evals/compare.py), so an upgrade or a downgrade is decided on
the same cases with the noise shown (docs/evals.md, "Deciding an upgrade")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (overall metric, column title, format)
COLUMNS = (
    ("recall_at_k", "recall@k", "{:.3f}"),
    ("fact_coverage", "facts", "{:.3f}"),
    ("citation_precision", "citations", "{:.3f}"),
    ("groundedness", "grounded", "{:.3f}"),
    ("cost_usd_per_case", "$/answer", "{:.6f}"),
    ("ttft_ms_p50", "TTFT p50 ms", "{:.0f}"),
    ("ttft_ms_p95", "TTFT p95 ms", "{:.0f}"),
)


def parse_models(value: str) -> list[str]:
    """ "A,B" -> ["A", "B"]; raises ValueError unless at least two distinct ids are given."""
    models = [m.strip() for m in value.split(",") if m.strip()]
    if len(models) < 2 or len(set(models)) != len(models):
        raise ValueError("--models needs at least two distinct model ids: A,B")
    return models


def tiers_table(results: list[Path]) -> str:
    """The quality/cost table of each run's results.json, one row per model; a metric a run
    did not measure (groundedness without a judge) shows as "-"."""
    runs: list[dict[str, Any]] = [json.loads(p.read_text(encoding="utf-8")) for p in results]
    head = f"{'model':<24}" + "".join(f"{title:>13}" for _, title, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for data in runs:
        overall = data.get("overall", {})
        cells = [
            (fmt.format(overall[key]) if key in overall else "-").rjust(13)
            for key, _, fmt in COLUMNS
        ]
        lines.append(f"{str(data.get('run', {}).get('model')):<24}" + "".join(cells))
    return "\n".join(lines)
