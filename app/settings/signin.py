"""Sign-in (OIDC, dev login, sessions) and the database."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from app.settings.base import GOOGLE_DISCOVERY_URL, EmailList


class SignInSettings(BaseSettings):
    # --- sign-in -------------------------------------------------------------------
    oidc_discovery_url: str = Field(GOOGLE_DISCOVERY_URL, description="OpenID discovery URL.")
    oidc_client_id: str | None = Field(None, description="OAuth client id.")
    oidc_client_secret: SecretStr | None = Field(None, description="OAuth client secret.")
    allowed_emails: EmailList = Field(default_factory=list, description="Emails let in.")
    allowed_domains: EmailList = Field(default_factory=list, description="Domains let in.")
    admin_emails: EmailList = Field(default_factory=list, description="Admins' emails.")
    dev_login: bool | None = Field(
        None, description="Password-less dev sign-in on localhost. Unset: on in dev, off in prod."
    )
    session_idle_minutes: int = Field(480, ge=5, description="Idle time before sign-out.")
    session_max_hours: int = Field(168, ge=1, description="Longest a session lives.")

    # --- database ------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL with pgvector. Unset: an embedded server under DATA_DIR.",
    )
    data_dir: Path = Field(Path(".data"), description="Where embedded data lives.")
    db_pool_size: int = Field(
        20, ge=1, description="Database connections each worker keeps open once used."
    )
