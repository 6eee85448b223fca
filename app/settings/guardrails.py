"""Guardrails (see docs/guardrails.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from app.settings.base import GuardrailModes


class GuardrailsSettings(BaseSettings):
    # --- guardrails (see docs/guardrails.md) ----------------------------------------
    guardrail_modes: GuardrailModes = Field(
        default_factory=dict, description="rule=on|flag|off, comma-separated (default: on)."
    )
    guardrail_attack_similarity: float = Field(
        0.75, gt=0, le=1.01, description="Cosine similarity to a known attack that blocks."
    )
    guardrail_moderation: bool = Field(False, description="Screen questions with /v1/moderations.")
    guardrail_moderation_model: str = Field(
        "omni-moderation-latest", description="Moderation model at the LLM upstream."
    )
    guardrail_pii_redaction: bool = Field(
        False, description="Mask emails, phone and card numbers before text goes upstream."
    )
