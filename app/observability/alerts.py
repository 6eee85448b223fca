"""Alert rules, evaluated every ALERT_INTERVAL_S by one replica at a time.

Each rule that fires is sent (webhook and/or email) unless the same rule fired within
ALERT_COOLDOWN_S, so one incident is one message. Every alert is kept for the admin page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.budget import GLOBAL, periods
from app.models import Alert, utcnow
from app.observability.notify import deliver
from app.observability.prompt_size import prompt_size_alert
from app.quality.alert import quality_drop_alert
from app.rag.context_budget import window_of
from app.services import Services
from app.settings import Settings

log = logging.getLogger("ragship.alerts")
ALERT_LOCK = 72_410_002
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:id)")
_WINDOW = text(
    "SELECT count(*) AS calls, "
    "count(*) FILTER (WHERE status LIKE 'error:%') AS errors, "
    "count(*) FILTER (WHERE admission <> 'allowed') AS refusals, "
    "coalesce(sum(cost_usd), 0) AS cost, "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) "
    "FILTER (WHERE admission = 'allowed' AND feature = 'chat') AS p95 "
    "FROM llm_calls WHERE created_at >= :since"
)
_HOURLY_SPEND = text(
    "SELECT coalesce(sum(cost_usd), 0) / 24 FROM call_rollups_hourly "
    "WHERE hour >= :since AND hour < date_trunc('hour', now())"
)
_SPENT = text("SELECT spent_usd FROM ragship_counter(:s, :p)")  # summed over its shards
_TRIGGERS = text("SELECT count(*) FROM guardrail_triggers WHERE created_at >= :since")


@dataclass(frozen=True)
class Firing:
    rule: str
    subject: str
    text: str


async def evaluate(session: AsyncSession, settings: Settings) -> list[Firing]:
    now = utcnow()
    firing: list[Firing] = []
    recent = (await session.execute(_WINDOW, {"since": now - timedelta(minutes=5)})).one()
    if recent.calls >= settings.alert_min_calls:
        error_rate = recent.errors / recent.calls
        if error_rate > settings.alert_error_rate:
            firing.append(
                Firing(
                    "error_rate",
                    "LLM error rate high",
                    f"{error_rate:.0%} of {recent.calls} calls failed in the last 5 minutes "
                    f"(threshold {settings.alert_error_rate:.0%}).",
                )
            )
        refusal_rate = recent.refusals / recent.calls
        if refusal_rate > settings.alert_refusal_rate:
            firing.append(
                Firing(
                    "refusal_rate",
                    "Cap refusals spiking",
                    f"{refusal_rate:.0%} of {recent.calls} requests were refused by a cap "
                    "or guardrail in the last 5 minutes.",
                )
            )
        baseline = (await session.execute(_WINDOW, {"since": now - timedelta(hours=24)})).one()
        if (
            recent.p95
            and baseline.p95
            and recent.p95 > settings.alert_latency_factor * baseline.p95
        ):
            firing.append(
                Firing(
                    "latency",
                    "Latency high",
                    f"p95 latency {recent.p95:.0f} ms over the last 5 minutes, "
                    f"{recent.p95 / baseline.p95:.1f}x the 24-hour p95 ({baseline.p95:.0f} ms).",
                )
            )
    hour = (await session.execute(_WINDOW, {"since": now - timedelta(hours=1)})).one()
    trailing = Decimal(
        await session.scalar(_HOURLY_SPEND, {"since": now - timedelta(hours=24)}) or 0
    )
    spent_hour = Decimal(hour.cost)
    if trailing > 0 and spent_hour > Decimal(str(settings.alert_spend_hour_factor)) * trailing:
        firing.append(
            Firing(
                "spend_spike",
                "Spend spike",
                f"${spent_hour:.4f} spent in the last hour, {spent_hour / trailing:.1f}x "
                f"the trailing hourly average (${trailing:.4f}).",
            )
        )
    if settings.alert_spend_hour_usd is not None and spent_hour > settings.alert_spend_hour_usd:
        firing.append(
            Firing(
                "spend_hour",
                "Hourly spend over limit",
                f"${spent_hour:.4f} spent in the last hour "
                f"(alert at ${settings.alert_spend_hour_usd}).",
            )
        )
    triggers = await session.scalar(_TRIGGERS, {"since": now - timedelta(minutes=5)}) or 0
    if triggers >= settings.alert_guardrail_triggers:
        firing.append(
            Firing(
                "guardrail_spike",
                "Guardrail triggers spiking",
                f"{triggers} guardrail triggers in the last 5 minutes (alert at "
                f"{settings.alert_guardrail_triggers}): an attack, or a misconfigured filter. "
                "See the guardrails section of the admin dashboard.",
            )
        )
    day, _ = periods()
    spent_today = Decimal(await session.scalar(_SPENT, {"s": GLOBAL, "p": day}) or 0)
    cap = settings.global_daily_cap_usd
    if cap and spent_today >= cap:
        firing.append(
            Firing(
                "global_cap_100",
                "Global daily cap reached",
                f"${spent_today} of ${cap} spent today: the assistant is paused until 00:00 UTC.",
            )
        )
    elif cap and spent_today >= cap * Decimal("0.8"):
        firing.append(
            Firing(
                "global_cap_80", "Global daily cap at 80%", f"${spent_today} of ${cap} spent today."
            )
        )
    return firing


class Alerter:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._http = httpx.AsyncClient()

    async def run_once(self) -> list[Alert]:
        """Evaluate, then send and record each firing rule outside its cooldown."""
        settings = self.services.settings
        sent: list[Alert] = []
        async with self.services.sessions() as session, session.begin():
            if not await session.scalar(_TRY_LOCK, {"id": ALERT_LOCK}):
                return []
            firings = await evaluate(session, settings)
            window = window_of(self.services.prices, self.services.llm.models)
            prompt_size = await prompt_size_alert(session, settings, window=window)
            firings += [Firing(*prompt_size)] if prompt_size else []
            quality = await quality_drop_alert(session, settings)
            firings += [Firing(*quality)] if quality else []
            for firing in firings:
                since = utcnow() - timedelta(seconds=settings.alert_cooldown_s)
                recent = await session.scalar(
                    select(Alert.id)
                    .where(Alert.rule == firing.rule, Alert.fired_at >= since)
                    .limit(1)
                )
                if recent is not None:
                    continue
                alert = Alert(
                    rule=firing.rule, message=f"{firing.subject}: {firing.text}", fired_at=utcnow()
                )
                session.add(alert)
                sent.append(alert)
        for alert in sent:  # deliver after the commit: a slow webhook holds no lock
            subject, _, body = alert.message.partition(": ")
            delivered = await deliver(settings, self._http, subject=subject, text=body)
            log.error(
                "ALERT %s: %s (sent to %s)",
                alert.rule,
                alert.message,
                ", ".join(delivered) or "nowhere",
            )
            async with self.services.sessions() as session, session.begin():
                await session.execute(
                    text("UPDATE alerts SET delivered = :d WHERE id = :id"),
                    {"d": ",".join(delivered), "id": alert.id},
                )
        return sent

    async def close(self) -> None:
        await self._http.aclose()
