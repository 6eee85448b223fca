"""Prices per pinned model id, in US dollars per million tokens. One versioned table.

Update PRICES_VERSION whenever a price changes, so recorded costs can be traced to it.
A model missing from this table has no known price (later: refused by the cap chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

PRICES_VERSION = "2026-11-01"


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal
    cached_input: Decimal


def _p(inp: str, out: str, cached: str) -> Price:
    return Price(Decimal(inp), Decimal(out), Decimal(cached))


PRICES: dict[str, Price] = {
    # The built-in local model is free to run, but priced like a small hosted model so
    # that cost accounting and caps can be exercised end to end.
    "ragship-local-1": _p("0.15", "0.60", "0.075"),
    "ragship-local-1-mini": _p("0.10", "0.40", "0.05"),
    "gpt-4o-mini-2024-07-18": _p("0.15", "0.60", "0.075"),
    "gpt-4o-2024-08-06": _p("2.50", "10.00", "1.25"),
    "gpt-4.1-2025-04-14": _p("2.00", "8.00", "0.50"),
    "gpt-4.1-mini-2025-04-14": _p("0.40", "1.60", "0.10"),
    "gpt-4.1-nano-2025-04-14": _p("0.10", "0.40", "0.025"),
}

_MILLION = Decimal(1_000_000)


def price_for(model: str) -> Price | None:
    return PRICES.get(model)


def cost_usd(
    model: str, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> Decimal:
    """Cost of one call; raises KeyError for a model without a known price."""
    price = PRICES[model]
    uncached = max(input_tokens - cached_input_tokens, 0)
    total = (
        uncached * price.input
        + cached_input_tokens * price.cached_input
        + output_tokens * price.output
    )
    return total / _MILLION


# Reserved on top of the counted prompt: other providers' tokenizers count differently.
INPUT_MARGIN = Decimal("1.05")
INPUT_OVERHEAD_TOKENS = 16


def max_cost_usd(model: str, *, input_tokens: int, max_output_tokens: int) -> Decimal | None:
    """The most a call can cost (what the cap chain reserves); None for an unpriced model."""
    price = PRICES.get(model)
    if price is None:
        return None
    prompt = (Decimal(input_tokens) * INPUT_MARGIN + INPUT_OVERHEAD_TOKENS) * price.input
    total = (prompt + max_output_tokens * price.output) / _MILLION
    return total.quantize(Decimal("0.000001"), rounding=ROUND_UP)
