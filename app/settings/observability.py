"""Observability and alerts (see docs/observability.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from app.settings.base import EmailList


class ObservabilitySettings(BaseSettings):
    # --- observability ---------------------------------------------------------------
    content_logging: Literal["full", "redacted", "none"] = Field(
        "redacted", description="Question/answer text in the call log: full, redacted or none."
    )
    retention_days: int = Field(
        30, ge=0, description="Days conversations and call-log content are kept (0: forever)."
    )
    metrics_token: SecretStr | None = Field(None, description="Bearer token for GET /metrics.")
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector base URL, e.g. http://localhost:4318."
    )
    otel_service_name: str = Field("ragship", description="service.name on exported spans.")

    # --- alerts (see docs/observability.md) ---------------------------------------
    alert_webhook_url: str | None = Field(None, description="Slack-compatible webhook URL.")
    alert_email_to: EmailList = Field(default_factory=list, description="Alert recipients.")
    smtp_host: str | None = Field(None, description="SMTP server for alert emails.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user, if it needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field("ragship@localhost", description="Sender of alert emails.")
    alert_interval_s: float = Field(60.0, ge=1, description="How often alert rules run.")
    alert_cooldown_s: float = Field(3600.0, ge=0, description="One message per rule per this.")
    alert_spend_hour_factor: float = Field(3.0, gt=0, description="Hour spend vs trailing avg.")
    alert_spend_hour_usd: Decimal | None = Field(None, description="Absolute hourly spend alert.")
    alert_error_rate: float = Field(0.2, gt=0, le=1, description="Error rate over 5 minutes.")
    alert_refusal_rate: float = Field(0.5, gt=0, le=1, description="Refusal rate, 5 minutes.")
    alert_latency_factor: float = Field(3.0, gt=0, description="p95 over 5 min vs 24 h p95.")
    alert_min_calls: int = Field(10, ge=1, description="Calls needed before rates count.")
    alert_guardrail_triggers: int = Field(
        20, ge=1, description="Guardrail triggers in 5 minutes that raise an alert."
    )
