"""Cost levers, measured in one run: each lever against the same questions without it.

The app and the built-in local model run on loopback background servers; the model
streams a word every 20 ms (its default, `LOCAL_MODEL_TOKEN_DELAY_S`), so a live answer
takes as long to start and to finish as a small hosted model. Each configuration is its
own app over the same database and model:

- response cache hit vs the live answer; nothing retrieved answered locally vs by the model;
- routing: short first-turn questions to ``ragship-local-1-mini`` vs every question to
  ``ragship-local-1`` (the local price table prices the mini a third lower);
- a 20-turn conversation with history summarisation (the defaults) vs the whole history
  verbatim (``HISTORY_MESSAGES=50``, a history share that holds all 20 turns);
- per-task ``max_tokens``: the summary calls at ``LLM_MAX_TOKENS_SUMMARY`` (300) vs at
  the answer's ``LLM_MAX_TOKENS`` (512), one global value.

Costs, reservations and prompt tokens are read from the call ledger. Quality beside each
lever is "same answer": how many of the lever's answers are word for word the answers
without it (the eval suite's deterministic answer check; the local model answers from the
sources, so a lever that changes only price or reservation keeps every answer). Rows are
ranked by the money saved per answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.db import make_sync_engine
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
from bench.levers_ask import Answer, Item, Ledger, ask
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


LONG = (  # more than LLM_ROUTE_SHORT_MAX_TOKENS (12): the main model answers them
    "How do the daily spending caps, the monthly budget and the rate limit work together?",
    "What happens to a streamed answer when the upstream fails halfway, and what is charged?",
    "How does the response cache decide that two differently worded questions are the same?",
    "Which settings should I change first when I fork ragship for my own documents?",
)
CONVERSATION = (
    *IN_SCOPE,
    "How are answers cited?",
    "What does the kill switch do?",
    "How are the spending caps enforced?",
    "What is the context budget?",
    "How does history summarisation work?",
    "What does the admin dashboard show?",
    "How do I deploy to Fly?",
    "Which guardrails are there?",
    "How are documents chunked?",
    "What is the response cache?",
    "How do alerts reach the operator?",
    "What happens when the provider is down?",
)
SHORT_MODEL = "ragship-local-1-mini"
PLAIN: dict[str, Any] = {"response_cache": False, "answer_without_sources_locally": False}
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": PLAIN,
    "levers": {"response_cache": True, "answer_without_sources_locally": True},
    "routed": {**PLAIN, "llm_route_short_model": SHORT_MODEL},
    "whole_history": {  # no summary: 50 messages, and a history share that holds them
        **PLAIN,
        "history_messages": 50,
        "context_summary_threshold": 1.0,
        "context_share_summary": 0.05,
        "context_share_history": 0.45,
        "context_share_passages": 0.35,
    },
    "summarised": PLAIN,  # the defaults: HISTORY_MESSAGES=6, fold at 75 % of the share
    "summary_global": {**PLAIN, "llm_max_tokens_summary": 512},  # = LLM_MAX_TOKENS
}


def run() -> list[Table]:
    embedder = shared_embedder()
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        model = BackgroundServer(create_local_model(token_delay_s=TOKEN_DELAY_S)).start()
        engine = make_sync_engine(url)
        apps: dict[str, BackgroundServer] = {}
        try:
            for name, overrides in CONFIGS.items():
                settings = bench_settings(
                    database_url=url,
                    llm_base_url=f"{model.url}/v1",
                    rate_limit_requests=1000,
                    **overrides,
                )
                apps[name] = BackgroundServer(create_app(settings, embedder=embedder)).start()
            rows = _measure({n: a.url for n, a in apps.items()}, Ledger(engine))
        finally:
            for app in apps.values():
                app.stop()
            model.stop()
            engine.dispose()
    return [_table(rows)]


@dataclass(frozen=True)
class Row:
    """One lever: the same work without and with it, in `unit`s (answers or summary
    calls); `overhead` is what the lever adds beside them (its summary calls)."""

    lever: str
    without: list[Item]
    with_: list[Item]
    same: tuple[int, int]  # (answers word for word the same, answers compared)
    overhead: list[Item] = field(default_factory=list)

    def per(self, items: list[Item], attr: str, *, extra: bool = False) -> Decimal:
        total = sum((Decimal(getattr(i, attr)) for i in items), Decimal(0))
        if extra:
            total += sum((Decimal(getattr(i, attr)) for i in self.overhead), Decimal(0))
        return total / max(len(items), 1)

    @property
    def saved_per_answer(self) -> Decimal:
        return self.per(self.without, "cost") - self.per(self.with_, "cost", extra=True)


def _same(a: list[Answer], b: list[Answer]) -> tuple[int, int]:
    return sum(x.text == y.text for x, y in zip(a, b, strict=True)), len(a)


def _converse(url: str, ledger: Ledger) -> tuple[list[Answer], list[Item]]:
    """The 20-turn conversation in one app: its answers and its summary calls."""
    with signed_in_client(url) as client:
        first = ask(client, CONVERSATION[0])
        answers = [first]
        for question in CONVERSATION[1:]:
            answers.append(ask(client, question, first.conversation_id))
    return answers, ledger.summaries(first.conversation_id)


def _measure(urls: dict[str, str], ledger: Ledger) -> list[Row]:
    with signed_in_client(urls["plain"]) as plain, signed_in_client(urls["levers"]) as levers:
        live = [ask(plain, q) for q in IN_SCOPE]
        for q in IN_SCOPE:  # first asking: a miss that fills the cache
            ask(levers, q)
        hits = [ask(levers, q) for q in IN_SCOPE]
        asked = [ask(plain, q) for q in OUT_OF_SCOPE]
        local = [ask(levers, q) for q in OUT_OF_SCOPE]
        long_main = [ask(plain, q) for q in LONG]
    with signed_in_client(urls["routed"]) as routed_client:
        routed = [ask(routed_client, q) for q in (*IN_SCOPE, *LONG)]
    whole, _ = _converse(urls["whole_history"], ledger)
    summarised, summaries = _converse(urls["summarised"], ledger)
    global_max, global_summaries = _converse(urls["summary_global"], ledger)
    main_only = live + long_main
    return [
        Row(
            "response cache hit vs live answer",
            ledger.items(live),
            ledger.items(hits),
            _same(live, hits),
        ),
        Row(
            "nothing retrieved: local vs model",
            ledger.items(asked),
            ledger.items(local),
            _same(asked, local),
        ),
        Row(
            f"routing: short questions to {SHORT_MODEL} vs main model alone",
            ledger.items(main_only),
            ledger.items(routed),
            _same(main_only, routed),
        ),
        Row(
            "20-turn conversation: summarised vs whole history (per turn, summaries included)",
            ledger.items(whole),
            ledger.items(summarised),
            _same(whole, summarised),
            overhead=summaries,
        ),
        Row(
            "per-task max_tokens: summary calls at 300 vs 512 (per summary call)",
            global_summaries,
            summaries,
            _same(global_max, summarised),
        ),
    ]


def _ms(items: list[Item], attr: str) -> str:
    values = [getattr(i, attr) for i in items if getattr(i, attr) is not None]
    return f"{latency(values).p50 * 1000:.1f}" if values else "-"


def _table(rows: list[Row]) -> Table:
    table = Table(
        "cost levers: the same questions with and without each lever, "
        f"local model at {TOKEN_DELAY_S * 1000:.0f} ms a word",
        [
            "lever",
            "n",
            "$/answer without",
            "$/answer with",
            "saved/answer",
            "reserved/answer without",
            "reserved/answer with",
            "prompt tok without",
            "prompt tok with",
            "TTFT p50 ms without",
            "TTFT p50 ms with",
            "total p50 ms without",
            "total p50 ms with",
            "same answer",
        ],
    )
    for row in sorted(rows, key=lambda r: r.saved_per_answer, reverse=True):
        table.add(
            row.lever,
            f"{len(row.without)}/{len(row.with_)}",
            f"{row.per(row.without, 'cost'):.6f}",
            f"{row.per(row.with_, 'cost', extra=True):.6f}",
            f"{row.saved_per_answer:.6f}",
            f"{row.per(row.without, 'reserved'):.6f}",
            f"{row.per(row.with_, 'reserved', extra=True):.6f}",
            f"{row.per(row.without, 'prompt_tokens'):.0f}",
            f"{row.per(row.with_, 'prompt_tokens', extra=True):.0f}",
            _ms(row.without, "ttft"),
            _ms(row.with_, "ttft"),
            _ms(row.without, "total"),
            _ms(row.with_, "total"),
            f"{row.same[0]}/{row.same[1]}",
        )
    table.notes += [
        "costs at the built-in models' price table (app/llm/pricing.py, LOCAL_PRICES): "
        "ragship-local-1 $0.15/$0.60, ragship-local-1-mini $0.10/$0.40 per million tokens",
        "n: calls without/with the lever; 'same answer': answers word for word the same",
        "the conversation rows count the summary calls' cost, reservation and prompt tokens "
        "in 'with', spread over the 20 turns",
        "reserved: what the cap chain held while the call ran (docs/caps.md)",
    ]
    return table
