"""The response cache (docs/context.md#response-cache)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class CacheSettings(BaseSettings):
    # --- response cache ------------------------------------------------------------
    response_cache: bool = Field(True, description="Serve repeated first-turn questions at $0.")
    response_cache_similarity: float = Field(
        0.95, gt=0, le=1, description="Cosine similarity at which a question counts as the same."
    )
    response_cache_ttl_s: int = Field(86_400, ge=1, description="Lifetime of a cached answer.")
