"""The relevance gate: when a question retrieves anything at all (docs/retrieval.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class RelevanceSettings(BaseSettings):
    # --- relevance gate -------------------------------------------------------------
    relevance_similarity: float = Field(
        0.32,
        ge=-1,
        le=1,
        description="A question retrieves passages only if one is this similar (cosine)...",
    )
    relevance_keyword_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="...or clears the minimum and holds this share of the question's words.",
    )
