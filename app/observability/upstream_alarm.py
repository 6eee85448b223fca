"""The operator hears first: an upstream failure only the operator can fix (a rejected API
key, a spent quota) is logged at ERROR with its cause and the setting to check, and sent at
once through the configured alert channels (webhook, email), once per cooldown.

The cooldown lives in the ``alerts`` table, so replicas agree on it: one incident is one
message whichever replica saw it first.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Alert, utcnow
from app.observability.notify import deliver
from app.settings import Settings

log = logging.getLogger("ragship.alerts")
ALARM_LOCK = 72_410_003  # advisory lock id: "one replica decides whether to send"
_LOCK = text("SELECT pg_advisory_xact_lock(:id)")
# kind -> (what happened, what the operator should check)
CAUSES = {
    "auth": (
        "the provider rejected the API key (HTTP 401/403)",
        "check LLM_API_KEY (and that LLM_BASE_URL is the provider it belongs to)",
    ),
    "insufficient_quota": (
        "the provider's spending limit or quota is used up (HTTP 429 insufficient_quota)",
        "check the billing and usage limits in the provider's console for LLM_API_KEY",
    ),
}
NO_CHANNEL = (
    "no alert channel is configured (set ALERT_WEBHOOK_URL, or SMTP_HOST and "
    "ALERT_EMAIL_TO): nobody was told"
)


def alert_channels(settings: Settings) -> list[str]:
    """The channels an alert would go to: a subset of ["webhook", "email"]."""
    channels = ["webhook"] if settings.alert_webhook_url else []
    if settings.smtp_host and settings.alert_email_to:
        channels.append("email")
    return channels


class UpstreamAlarm:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._http = httpx.AsyncClient()

    async def sound(self, kind: str, *, model: str) -> bool:
        """Log ``kind`` (a key of CAUSES) at ERROR and alert the operator unless this kind
        was already alerted within ALERT_COOLDOWN_S. Returns whether the operator has been
        told: an alert delivered now or earlier in the cooldown. Never raises."""
        cause, fix = CAUSES[kind]
        rule = f"upstream_{kind}"
        channels = alert_channels(self.settings)
        if not channels:
            log.error("upstream %s on model %s: %s; %s. %s", kind, model, cause, fix, NO_CHANNEL)
            return False
        what = f"upstream {kind} on model {model}: {cause}; {fix}"
        message = f"LLM upstream failing: model {model}: {cause}; {fix}."
        try:
            alert = await self._claim(rule, message)
        except SQLAlchemyError:
            log.exception("%s (alert not sent: database error)", what)
            return False
        if isinstance(alert, str):  # already alerted within the cooldown
            log.error("%s (already alerted to %s)", what, alert or "nowhere")
            return alert != ""
        subject, _, body = message.partition(": ")
        delivered = await deliver(self.settings, self._http, subject=subject, text=body)
        log.error("%s (alert sent to %s)", what, ", ".join(delivered) or "nowhere: all failed")
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    text("UPDATE alerts SET delivered = :d WHERE id = :id"),
                    {"d": ",".join(delivered), "id": alert.id},
                )
        except SQLAlchemyError:
            log.exception("could not record the delivery of alert %s", alert.id)
        return bool(delivered)

    async def _claim(self, rule: str, message: str) -> Alert | str:
        """The new alert row to send, or (within the cooldown) where the last one went."""
        since = utcnow() - timedelta(seconds=self.settings.alert_cooldown_s)
        async with self.sessions() as session, session.begin():
            await session.execute(_LOCK, {"id": ALARM_LOCK})
            recent = await session.scalar(
                select(Alert.delivered)
                .where(Alert.rule == rule, Alert.fired_at >= since)
                .order_by(Alert.id.desc())
                .limit(1)
            )
            if recent is not None:
                return recent
            alert = Alert(rule=rule, message=message, fired_at=utcnow(), delivered="")
            session.add(alert)
        return alert

    async def close(self) -> None:
        await self._http.aclose()
