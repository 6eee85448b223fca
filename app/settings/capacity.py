"""Capacity: how much work one replica takes on at once, and how it says no under overload."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings


class CapacitySettings(BaseSettings):
    # --- capacity (see docs/caps.md, "Overload") ------------------------------------
    max_inflight_admissions: int = Field(
        128,
        ge=1,
        description="Chat requests one worker admits at once (before their first token).",
    )
    idle_overlap: bool = Field(
        True, description="On an idle worker, rate-limit during the sign-in lookup (docs/caps.md)."
    )
    overload_retry_after_s: int = Field(
        1, ge=1, le=3600, description="Retry-After sent with an overload 503, seconds."
    )
    db_pool_timeout_s: float = Field(
        30, gt=0, le=60, description="Longest wait for a database connection before a 503."
    )
    db_max_overflow: int = Field(
        0, ge=0, description="Connections a worker may open past DB_POOL_SIZE at peaks."
    )
    db_ping_after_idle_s: float = Field(
        1,
        ge=0,
        le=3600,
        description="Check a pooled connection before use only after this long idle; 0: always.",
    )
    embed_threads: int = Field(
        1, ge=1, le=64, description="Threads per query embedding in the server (torch or onnx)."
    )
    embed_idle_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Threads for a query embedding with no other in flight (onnx); 1: off.",
    )
    gc_freeze: bool = Field(
        True, description="Freeze the start-up heap out of full garbage collections (app/heap.py)."
    )
    gil_switch_interval_ms: float = Field(
        1.0,
        ge=0.1,
        le=100,
        description="How long a thread may hold the GIL while another waits for it, ms "
        "(app/switch_interval.py; Python's default 5).",
    )
    web_concurrency: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker processes. Unset: CPU count in prod with DATABASE_URL, else 1.",
    )

    def worker_count(self, env: str, *, shared_database: bool) -> int:
        """WEB_CONCURRENCY, else one worker per CPU in prod on a shared PostgreSQL, else 1
        (dev, or the embedded database, which one process owns)."""
        if self.web_concurrency is not None:
            return self.web_concurrency
        return max(1, os.cpu_count() or 1) if env == "prod" and shared_database else 1
