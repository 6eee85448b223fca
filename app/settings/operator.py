"""The operator's side: start-up probing, API tokens, branding, pre-launch checks."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class OperatorSettings(BaseSettings):
    # --- the operator's side ----------------------------------------------------------
    status_probe_on_start: bool = Field(
        True, description="Probe every component once at start, before serving."
    )
    ingest_keep_others: bool = Field(
        False,
        description="Keep documents outside DOCS_DIR when ingesting at start (default: "
        "DOCS_DIR is the whole corpus).",
    )
