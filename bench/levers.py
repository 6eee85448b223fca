"""Cost levers, measured in one run: each lever against the same questions without it.

The app and the built-in local model run on loopback background servers; the model
streams a word every 20 ms (its default, `LOCAL_MODEL_TOKEN_DELAY_S`), so a live answer
takes as long to start and to finish as a small hosted model. Quality beside each lever is
whether the lever's answer is the very answer the model gives live ("same answer"): a
cache hit replays the live answer; "I don't know" is what the model answers with no
sources. Rows are ranked by the money saved per answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx

from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from bench.fixtures import (
    DOCS,
    bench_settings,
    ingest_corpus,
    shared_embedder,
    signed_in_client,
    temp_database,
)
from bench.table import Table, latency

NAME = "levers"
TOKEN_DELAY_S = 0.02
IN_SCOPE = (
    "How do I ingest PDF files?",
    "How does hybrid retrieval work?",
    "What does the built-in local model do?",
    "How do I use a real OpenAI model?",
    "Which database does ragship use?",
    "What is stored for every answer?",
    "How do I run the test suite?",
    "What does DOCS_DIR configure?",
)
OUT_OF_SCOPE = (
    "What was the score of the 1998 World Cup final?",
    "Who painted the Mona Lisa?",
    "What is the boiling point of ethanol?",
    "How tall is Mount Kilimanjaro?",
    "Which planet has the most moons?",
    "What year did the Berlin Wall fall?",
)


@dataclass(frozen=True)
class Answer:
    ttft: float
    total: float
    cost: Decimal
    text: str


def _ask(client: httpx.Client, question: str) -> Answer:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    name, done = "", None
    with client.stream("POST", "/api/chat", json={"message": question}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name == "token":
                first = first or time.perf_counter()
                parts.append(json.loads(line[5:])["text"])
            elif line.startswith("data:") and name == "done":
                done = json.loads(line[5:])
    if done is None:
        raise RuntimeError(f"{question!r} did not end with 'done'")
    finished = time.perf_counter()
    return Answer(
        (first or finished) - started, finished - started, Decimal(done["cost_usd"]), "".join(parts)
    )


def run() -> list[Table]:
    embedder = shared_embedder()
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        model = BackgroundServer(create_local_model(token_delay_s=TOKEN_DELAY_S)).start()
        apps: dict[str, BackgroundServer] = {}
        try:
            for name, overrides in {
                "plain": {"response_cache": False, "answer_without_sources_locally": False},
                "levers": {"response_cache": True, "answer_without_sources_locally": True},
            }.items():
                settings = bench_settings(
                    database_url=url,
                    llm_base_url=f"{model.url}/v1",
                    rate_limit_requests=1000,
                    **overrides,
                )
                apps[name] = BackgroundServer(create_app(settings, embedder=embedder)).start()
            rows = _measure(apps["plain"].url, apps["levers"].url)
        finally:
            for app in apps.values():
                app.stop()
            model.stop()
    return [_table(rows)]


@dataclass(frozen=True)
class Row:
    lever: str
    without: list[Answer]
    with_: list[Answer]

    @property
    def saved_per_answer(self) -> Decimal:
        n = len(self.without)
        return (sum(a.cost for a in self.without) - sum(a.cost for a in self.with_)) / n


def _measure(plain_url: str, levers_url: str) -> list[Row]:
    with signed_in_client(plain_url) as plain, signed_in_client(levers_url) as levers:
        live = [_ask(plain, q) for q in IN_SCOPE]
        for q in IN_SCOPE:  # first asking: a miss that fills the cache
            _ask(levers, q)
        hits = [_ask(levers, q) for q in IN_SCOPE]
        asked = [_ask(plain, q) for q in OUT_OF_SCOPE]
        local = [_ask(levers, q) for q in OUT_OF_SCOPE]
    return [
        Row("response cache hit vs live answer", live, hits),
        Row("nothing retrieved: local vs model", asked, local),
    ]


def _table(rows: list[Row]) -> Table:
    table = Table(
        "cost levers: the same first-turn questions with and without each lever, "
        f"local model at {TOKEN_DELAY_S * 1000:.0f} ms a word",
        [
            "lever",
            "n",
            "$/answer without",
            "$/answer with",
            "saved/answer",
            "TTFT p50 ms without",
            "TTFT p50 ms with",
            "total p50 ms without",
            "total p50 ms with",
            "same answer",
        ],
    )
    for row in sorted(rows, key=lambda r: r.saved_per_answer, reverse=True):
        n = len(row.without)
        same = sum(a.text == b.text for a, b in zip(row.without, row.with_, strict=True))
        table.add(
            row.lever,
            n,
            f"{sum(a.cost for a in row.without) / n:.6f}",
            f"{sum(a.cost for a in row.with_) / n:.6f}",
            f"{row.saved_per_answer:.6f}",
            f"{latency([a.ttft for a in row.without]).p50 * 1000:.1f}",
            f"{latency([a.ttft for a in row.with_]).p50 * 1000:.1f}",
            f"{latency([a.total for a in row.without]).p50 * 1000:.1f}",
            f"{latency([a.total for a in row.with_]).p50 * 1000:.1f}",
            f"{same}/{n}",
        )
    table.notes += [
        "costs at the built-in model's price table (app/llm/pricing.py, LOCAL_PRICES)",
        "'same answer': the lever's answer is word for word the model's live answer",
    ]
    return table
