"""Runtime: how the process runs, binds and logs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class RuntimeSettings(BaseSettings):
    # --- runtime -------------------------------------------------------------------
    env: Literal["dev", "prod"] = Field("dev", description="dev (local) or prod.")
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level written."
    )
    log_format: Literal["text", "json"] | None = Field(
        None, description="text or json (one object per line). Unset: text in dev, json in prod."
    )
    session_secret: SecretStr = Field(
        SecretStr("change-me"), description="Secret for signing cookies; required in prod."
    )

    public_url: str | None = Field(
        None, description="The URL users reach ragship at, e.g. https://chat.example.com."
    )
