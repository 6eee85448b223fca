"""Prometheus metrics, computed from the rollups at scrape time.

Every replica serves the same totals (the rollups live in PostgreSQL), so the numbers do
not depend on which replica is scraped, and a restart resets nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.observability.rollups import LATENCY_BUCKETS_MS

_TOTALS = text(
    "SELECT feature, model, outcome, sum(calls) AS calls, sum(input_tokens) AS inp, "
    "sum(output_tokens) AS out, sum(cost_usd) AS cost FROM call_rollups_hourly "
    "GROUP BY feature, model, outcome"
)
_HISTS = text(
    "SELECT feature, i, sum(l) AS latency, sum(f) AS ttft FROM call_rollups_hourly, "
    "unnest(latency_hist, ttft_hist) WITH ORDINALITY AS u(l, f, i) "
    "WHERE outcome NOT LIKE 'refused:%' GROUP BY feature, i ORDER BY feature, i"
)


_GUARDRAILS = text(
    "SELECT layer, rule, action, count(*) AS n FROM guardrail_triggers GROUP BY layer, rule, action"
)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def render_metrics(session: AsyncSession) -> bytes:
    requests = CounterMetricFamily(
        "ragship_llm_calls",
        "LLM calls and refused attempts",
        labels=["feature", "model", "outcome"],
    )
    tokens = CounterMetricFamily("ragship_llm_tokens", "Tokens", labels=["model", "direction"])
    cost = CounterMetricFamily("ragship_llm_cost_usd", "Spend in US dollars", labels=["model"])
    errors = CounterMetricFamily("ragship_llm_errors", "Upstream errors by type", labels=["kind"])
    refusals = CounterMetricFamily(
        "ragship_cap_refusals", "Refusals by cap layer", labels=["layer"]
    )
    token_sums: dict[tuple[str, str], int] = defaultdict(int)
    cost_sums: dict[str, float] = defaultdict(float)
    error_sums: dict[str, int] = defaultdict(int)
    refusal_sums: dict[str, int] = defaultdict(int)
    for r in await session.execute(_TOTALS):
        requests.add_metric([r.feature, r.model, r.outcome], int(r.calls))
        token_sums[(r.model, "input")] += int(r.inp)
        token_sums[(r.model, "output")] += int(r.out)
        cost_sums[r.model] += float(r.cost)
        if r.outcome.startswith("error:"):
            error_sums[r.outcome.removeprefix("error:")] += int(r.calls)
        if r.outcome.startswith("refused:"):
            refusal_sums[r.outcome.removeprefix("refused:")] += int(r.calls)
    for (model, direction), n in token_sums.items():
        tokens.add_metric([model, direction], n)
    for model, dollars in cost_sums.items():
        cost.add_metric([model], dollars)
    for kind, n in error_sums.items():
        errors.add_metric([kind], n)
    for layer, n in refusal_sums.items():
        refusals.add_metric([layer], n)
    guardrails = CounterMetricFamily(
        "ragship_guardrail_triggers", "Guardrail triggers", labels=["layer", "rule", "action"]
    )
    for r in await session.execute(_GUARDRAILS):
        guardrails.add_metric([r.layer, r.rule, r.action], int(r.n))
    families: list[Metric] = [requests, tokens, cost, errors, refusals, guardrails]
    families += await _histograms(session)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


async def _histograms(session: AsyncSession) -> list[Metric]:
    latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    ttft: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    for r in await session.execute(_HISTS):
        latency[r.feature][r.i - 1] += int(r.latency)
        ttft[r.feature][r.i - 1] += int(r.ttft)
    out: list[Metric] = []
    for name, doc, data in (
        ("ragship_llm_latency_seconds", "Whole-call latency", latency),
        ("ragship_llm_ttft_seconds", "Time to first token", ttft),
    ):
        family = HistogramMetricFamily(name, doc, labels=["feature"])
        for feature, hist in data.items():
            cumulative, buckets = 0, []
            for bound, count in zip([*LATENCY_BUCKETS_MS, float("inf")], hist, strict=True):
                cumulative += count
                buckets.append((str(bound / 1000) if bound != float("inf") else "+Inf", cumulative))
            # Sums are not kept in the rollups; Prometheus tolerates a zero sum.
            family.add_metric([feature], buckets, sum_value=0)
        out.append(family)
    return out
