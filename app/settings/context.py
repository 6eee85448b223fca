"""Context budget, per-task output limits, and the nothing-retrieved short-circuit."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings


class ContextSettings(BaseSettings):
    # --- context budget (docs/context.md) ------------------------------------------
    answer_without_sources_locally: bool = Field(
        True,
        description='Nothing retrieved: answer "I don\'t know" without calling the model ($0).',
    )
    context_share_system: float = Field(
        0.05, gt=0, le=1, description="Share of the input budget for the system prompt."
    )
    context_share_summary: float = Field(
        0.10, ge=0, le=1, description="Share of the input budget for the history summary."
    )
    context_share_history: float = Field(
        0.25, ge=0, le=1, description="Share of the input budget for prior turns."
    )
    context_share_passages: float = Field(
        0.50, gt=0, le=1, description="Share of the input budget for retrieved passages."
    )
    context_share_question: float = Field(
        0.10, gt=0, le=1, description="Share of the input budget for the question."
    )
    context_summary_threshold: float = Field(
        0.75,
        gt=0,
        le=1,
        description="Fold older turns into the summary past this share of the history budget.",
    )
    alert_prompt_size_share: float = Field(
        0.9, gt=0, le=1, description="Alert when the hour's p95 prompt reaches this share."
    )
    llm_max_tokens_summary: int = Field(
        300, ge=16, le=32768, description="Max output tokens of a history summary."
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> ContextSettings:
        total = (
            self.context_share_system
            + self.context_share_summary
            + self.context_share_history
            + self.context_share_passages
            + self.context_share_question
        )
        if total > 1 + 1e-9:
            raise ValueError(f"the CONTEXT_SHARE_* settings add up to {total:.2f}: at most 1")
        return self
