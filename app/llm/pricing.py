"""Prices and context windows of every model ragship may call, resolved once at start.

Sources, first match wins, per model:

1. settings: ``LLM_PRICE_INPUT_PER_MTOK`` / ``LLM_PRICE_OUTPUT_PER_MTOK`` for ``LLM_MODEL``,
   ``LLM_FALLBACK_PRICE_*`` for ``LLM_FALLBACK_MODEL``, ``LLM_ROUTE_SHORT_PRICE_*`` and
   ``LLM_CANARY_PRICE_*`` for the routed and canary models (0 for a self-hosted model);
2. `genai-prices <https://github.com/pydantic/genai-prices>`_, a maintained price database,
   from the snapshot bundled with the installed package (never fetched at run time): the
   provider is matched from ``LLM_BASE_URL``, else from the model id alone;
3. ``LOCAL_PRICES`` below, only for ids the database lacks (the built-in local model).

A model found in none of them stops the service at start (`UnpricedModel`), so no call is
ever made at an unknown price. Each call records which source priced it (``price_source``).
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Any

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from app.settings import Settings

LOCAL_PRICES_VERSION = "2026-11-01"  # bump whenever LOCAL_PRICES changes
GENAI_PRICES_VERSION = importlib.metadata.version("genai-prices")
_MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")
# Reserved on top of the counted prompt: other providers' tokenizers count differently.
INPUT_MARGIN = Decimal("1.05")
INPUT_OVERHEAD_TOKENS = 16


@dataclass(frozen=True)
class Rates:
    """US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal


# (rates, context window in tokens). The built-in local model is free to run, but priced
# like a small hosted model so that cost accounting and caps are exercised end to end.
LOCAL_PRICES: dict[str, tuple[Rates, int]] = {
    "ragship-local-1": (Rates(Decimal("0.15"), Decimal("0.60"), Decimal("0.075")), 16_384),
    "ragship-local-1-mini": (Rates(Decimal("0.10"), Decimal("0.40"), Decimal("0.05")), 16_384),
}


class UnpricedModel(ValueError):
    """Raised at start when a model the service may call has no known price."""


CostFn = Callable[[int, int, int], Decimal]  # (input incl. cached, cached input, output)


@dataclass(frozen=True)
class ModelPrice:
    model: str
    source: str  # e.g. "settings", "genai-prices 0.2.3 openai/gpt-4o-mini", "ragship 2026-11-01"
    context_window: int | None  # tokens; None when no source knows it
    _cost: CostFn

    def cost(
        self, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> Decimal:
        """US dollars for one call, to the micro-dollar. `input_tokens` includes cached ones."""
        cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
        total = self._cost(max(input_tokens, 0), cached, max(output_tokens, 0))
        return Decimal(total).quantize(MICRO, rounding=ROUND_UP)

    def max_cost(self, *, input_tokens: int, max_output_tokens: int) -> Decimal:
        """The most a call can cost: the counted prompt plus a margin for tokenizers that
        count differently (+5 % and 16 tokens), none of it cached, and every output token."""
        prompt = math.ceil(input_tokens * INPUT_MARGIN + INPUT_OVERHEAD_TOKENS)
        return self.cost(input_tokens=prompt, output_tokens=max_output_tokens)


def _flat(rates: Rates) -> CostFn:
    def cost(inp: int, cached: int, out: int) -> Decimal:
        uncached = inp - cached
        return (uncached * rates.input + cached * rates.cached_input + out * rates.output) / (
            _MILLION
        )

    return cost


class PriceBook:
    """The price of every model this replica may call. Lookups of other models raise."""

    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        self._prices = {p.model: p for p in prices}

    def __getitem__(self, model: str) -> ModelPrice:
        try:
            return self._prices[model]
        except KeyError:
            raise UnpricedModel(f"{model} is not one of the configured models") from None

    @property
    def models(self) -> list[str]:
        return list(self._prices)

    def max_cost(
        self, models: Iterable[str], *, input_tokens: int, max_output_tokens: int
    ) -> Decimal:
        """What to reserve for a call that any of `models` may answer: the dearest of them."""
        return max(
            self[m].max_cost(input_tokens=input_tokens, max_output_tokens=max_output_tokens)
            for m in models
        )


def _from_settings(inp: Decimal | None, out: Decimal | None) -> Rates | None:
    if inp is None or out is None:
        return None
    return Rates(inp, out, inp)  # cached input priced as input: never under-reserved


def _from_database(model: str, base_url: str | None) -> ModelPrice | None:
    snapshot = get_snapshot()
    attempts = [base_url, None] if base_url else [None]
    for url in attempts:
        try:
            provider, info = snapshot.find_provider_model(model, None, None, url)
        except LookupError:
            continue

        def cost(inp: int, cached: int, out: int, _p: Any = provider, _m: Any = info) -> Decimal:
            usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
            return Decimal(_m.calc_price(usage, _p).total_price)

        source = f"genai-prices {GENAI_PRICES_VERSION} {provider.id}/{info.id}"
        return ModelPrice(model, source, info.context_window, cost)
    return None


def _resolve(
    model: str, rates: Rates | None, window: int | None, base_url: str | None
) -> ModelPrice | None:
    """Settings first, then the database, then the local table; `window` overrides."""
    known = _from_database(model, base_url) or _local(model)
    if rates is not None:
        source, cost = "settings", _flat(rates)
    elif known is not None:
        source, cost = known.source, known._cost
    else:
        return None
    return ModelPrice(model, source, window or (known.context_window if known else None), cost)


def _local(model: str) -> ModelPrice | None:
    if model not in LOCAL_PRICES:
        return None
    rates, window = LOCAL_PRICES[model]
    return ModelPrice(model, f"ragship {LOCAL_PRICES_VERSION}", window, _flat(rates))


def lookup(model: str, *, base_url: str | None = None) -> ModelPrice | None:
    """The price of `model` from the database or the local table (no settings); None when
    neither knows it. For tools and benchmarks; the service uses `build_price_book`."""
    return _resolve(model, None, None, base_url)


def build_price_book(settings: Settings) -> PriceBook:
    """Price every model the service may call (main, fallback, the short route's and the
    canary's when they are on; the health probe uses the main one). Raises `UnpricedModel`
    naming each unpriced model and how to price it."""
    base_url = settings.llm_base_url
    wanted = [
        (
            "LLM_MODEL",
            settings.llm_model,
            _from_settings(settings.llm_price_input_per_mtok, settings.llm_price_output_per_mtok),
            settings.llm_context_window,
            "LLM_PRICE",
        )
    ]
    if settings.llm_fallback_model:
        wanted.append(
            (
                "LLM_FALLBACK_MODEL",
                settings.llm_fallback_model,
                _from_settings(
                    settings.llm_fallback_price_input_per_mtok,
                    settings.llm_fallback_price_output_per_mtok,
                ),
                None,
                "LLM_FALLBACK_PRICE",
            )
        )
    routed = (
        (
            "LLM_ROUTE_SHORT_MODEL",
            settings.llm_route_short_model,
            settings.llm_route_short_price_input_per_mtok,
            settings.llm_route_short_price_output_per_mtok,
            "LLM_ROUTE_SHORT_PRICE",
        ),
        (
            "LLM_CANARY_MODEL",
            settings.llm_canary_model if settings.llm_canary_percent > 0 else None,
            settings.llm_canary_price_input_per_mtok,
            settings.llm_canary_price_output_per_mtok,
            "LLM_CANARY_PRICE",
        ),
    )
    for setting, routed_model, inp, out, prefix in routed:
        if routed_model:
            wanted.append((setting, routed_model, _from_settings(inp, out), None, prefix))
    prices: list[ModelPrice] = []
    missing = []
    for setting, model, rates, window, prefix in wanted:
        if rates is None and any(p.model == model for p in prices):
            continue  # the same model under two settings: priced once, by the first
        price = _resolve(model, rates, window, base_url)
        if price is None:
            missing.append(
                f"{setting}={model} has no known price: set {prefix}_INPUT_PER_MTOK and "
                f"{prefix}_OUTPUT_PER_MTOK (US dollars per million tokens; 0 for a "
                "self-hosted model)"
            )
        else:
            prices.append(price)
    if missing:
        raise UnpricedModel("; ".join(missing))
    return PriceBook(prices)
