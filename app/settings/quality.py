"""Quality watched in production: sampled live answers scored by the judge in the
background (see docs/evals.md, "Quality in production")."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class QualitySettings(BaseSettings):
    # --- quality in production (docs/evals.md) ---------------------------------------
    quality_sample_rate: float = Field(
        0.05, ge=0, le=1, description="Share of live answers scored by the judge (0: off)."
    )
    quality_judge_model: str | None = Field(
        None, description="Model that grades sampled answers (default: LLM_MODEL)."
    )
    quality_interval_s: float = Field(
        60.0, gt=0, description="How often each replica looks for sampled answers to score."
    )
    quality_batch: int = Field(20, ge=1, le=1000, description="Answers claimed per round.")
    quality_retry_after_s: float = Field(
        300.0, gt=0, description="A failed or abandoned score is retried after this long."
    )
    quality_judge_timeout_s: float = Field(
        30.0, gt=0, description="Longest one judge call may take."
    )
    llm_max_tokens_judge: int = Field(
        200, ge=16, le=32768, description="Max output tokens of a judge verdict."
    )
    alert_quality_drop: float = Field(
        0.15, gt=0, le=1, description="Alert when the recent score is this far below baseline."
    )
    alert_quality_window_h: float = Field(
        1.0, gt=0, description="Hours of recent scores compared with the baseline."
    )
    alert_quality_baseline_h: float = Field(
        168.0, gt=0, description="Hours before the recent window that form the baseline."
    )
    alert_quality_min_scores: int = Field(
        5, ge=1, description="Scores needed in each window before the rule judges."
    )
