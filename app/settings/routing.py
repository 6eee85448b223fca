"""Model routing and the canary (docs/routing.md): which model and prompt answer a request."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings


class RoutingSettings(BaseSettings):
    # --- model routing and canary (docs/routing.md) --------------------------------
    llm_route_short_model: str | None = Field(
        None, description="Model for short first-turn questions (unset: no routing)."
    )
    llm_route_short_max_tokens: int = Field(
        12, ge=1, le=4096, description="A first-turn question up to this many tokens is short."
    )
    llm_route_short_price_input_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_ROUTE_SHORT_MODEL input price, USD per million tokens."
    )
    llm_route_short_price_output_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_ROUTE_SHORT_MODEL output price, USD per million tokens."
    )
    llm_canary_model: str | None = Field(
        None, description="Candidate model answering the canary share of users."
    )
    llm_canary_prompt_version: str | None = Field(
        None, description="Candidate prompt version (app/prompts/<version>.txt) for the canary."
    )
    llm_canary_percent: float = Field(
        0.0, ge=0, le=100, description="Share of users (0-100 %) on the canary side."
    )
    llm_canary_salt: str = Field(
        "ragship-canary", min_length=1, description="Mixed into the user hash; change to reshuffle."
    )
    llm_canary_price_input_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_CANARY_MODEL input price, USD per million tokens."
    )
    llm_canary_price_output_per_mtok: Decimal | None = Field(
        None, ge=0, description="LLM_CANARY_MODEL output price, USD per million tokens."
    )

    @model_validator(mode="after")
    def _canary_has_a_candidate(self) -> RoutingSettings:
        if self.llm_canary_percent > 0 and not (
            self.llm_canary_model or self.llm_canary_prompt_version
        ):
            raise ValueError(
                "LLM_CANARY_PERCENT above 0 needs LLM_CANARY_MODEL or LLM_CANARY_PROMPT_VERSION"
            )
        pairs = (
            (
                "LLM_ROUTE_SHORT_PRICE",
                self.llm_route_short_price_input_per_mtok,
                self.llm_route_short_price_output_per_mtok,
            ),
            (
                "LLM_CANARY_PRICE",
                self.llm_canary_price_input_per_mtok,
                self.llm_canary_price_output_per_mtok,
            ),
        )
        for prefix, inp, out in pairs:
            if (inp is None) != (out is None):
                raise ValueError(
                    f"set both {prefix}_INPUT_PER_MTOK and {prefix}_OUTPUT_PER_MTOK, or neither"
                )
        return self
