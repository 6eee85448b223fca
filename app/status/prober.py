"""The status prober: every STATUS_PROBE_INTERVAL_S it checks each component, records one
result per component, and opens or closes incidents. One replica probes per interval (a
PostgreSQL advisory lock decides); the others find a fresh probe and skip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.ratelimit import STORE_ERRORS
from app.models import Incident, StatusProbe, utcnow
from app.services import Services
from app.status.llm_health import LLMHealthCheck
from app.status.provider import fetch_provider_status, provider_label

log = logging.getLogger("ragship.status")
PROBE_LOCK = 72_410_001  # advisory lock id: "one prober at a time"
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:id)")
TITLES = {
    "database": "Database unreachable",
    "rate_limit_store": "Rate-limit store unreachable",
    "llm_upstream": "LLM upstream failing",
    "embeddings": "Embedding model failing",
}


@dataclass(frozen=True)
class Probe:
    component: str
    state: str
    latency_ms: float | None
    detail: str


async def _timed(name: str, check: Callable[[], Awaitable[object]]) -> Probe:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=10)
    except (TimeoutError, SQLAlchemyError, *STORE_ERRORS, RuntimeError, ValueError) as err:
        return Probe(name, "down", (time.perf_counter() - started) * 1000, type(err).__name__)
    return Probe(name, "operational", (time.perf_counter() - started) * 1000, "ok")


class Prober:
    def __init__(self, services: Services, llm_health: LLMHealthCheck) -> None:
        self.services = services
        self.llm_health = llm_health
        self._http = httpx.AsyncClient()

    async def probe_all(self) -> list[Probe]:
        services = self.services

        async def database() -> None:
            async with services.sessions() as session:
                await session.execute(text("SELECT 1"))

        async def embeddings() -> None:
            await asyncio.to_thread(services.embedder.embed_one, "status probe")

        probes = [
            Probe("app", "operational", 0.0, "ok"),
            await _timed("database", database),
            await _timed("rate_limit_store", services.limiter.store.ping),
            await _timed("embeddings", embeddings),
        ]
        health, _ = await self.llm_health.check(force=True)
        llm_state = "operational" if health.ok else "down"
        probes.append(Probe("llm_upstream", llm_state, health.latency_ms, health.detail))
        settings = services.settings
        name = provider_label(settings)
        if name is not None:  # the built-in model has no provider to show
            provider = await fetch_provider_status(
                self._http, url=settings.provider_status_url, name=name
            )
            probes.append(Probe("provider", provider.state, None, provider.headline))
        return probes

    async def run_once(self, *, force: bool = False) -> list[Probe]:
        """Probe, record and update incidents, unless another replica probed just now.

        The probes run outside any transaction (they may take seconds); only the short
        write that follows holds the advisory lock.
        """
        if not force and await self._probed_recently():
            return []
        probes = await self.probe_all()
        async with self.services.sessions() as session, session.begin():
            if not await session.scalar(_TRY_LOCK, {"id": PROBE_LOCK}):
                return []  # another replica is writing its probe right now
            if not force and await self._probed_recently(session):
                return []
            now = utcnow()
            for p in probes:
                session.add(
                    StatusProbe(
                        component=p.component,
                        state=p.state,
                        latency_ms=p.latency_ms,
                        detail=p.detail[:500],
                        checked_at=now,
                    )
                )
            await update_incidents(session, probes)
        return probes

    async def _probed_recently(self, session: AsyncSession | None = None) -> bool:
        interval = self.services.settings.status_probe_interval_s
        query = select(StatusProbe.checked_at).order_by(StatusProbe.id.desc()).limit(1)
        if session is None:
            async with self.services.sessions() as own:
                last = await own.scalar(query)
        else:
            last = await session.scalar(query)
        return last is not None and (utcnow() - last).total_seconds() < interval * 0.9

    async def probe_at_start(self) -> None:
        """One forced probe before the app serves, so /status never shows the previous
        run's state; a failure is logged, never fatal (the app may serve a degraded state)."""
        try:
            probes = await self.run_once(force=True)
        except Exception:  # logged; the interval probes retry
            log.exception("start-up status probe failed")
            return
        down = [f"{p.component} ({p.detail})" for p in probes if p.state == "down"]
        if down:
            log.error("start-up probe: down: %s", "; ".join(down))

    async def close(self) -> None:
        await self._http.aclose()


async def update_incidents(session: AsyncSession, probes: list[Probe]) -> None:
    open_rows = (
        await session.execute(select(Incident).where(Incident.closed_at.is_(None)))
    ).scalars()
    open_by_component = {i.component: i for i in open_rows}
    for probe in probes:
        if probe.component not in TITLES:
            continue  # the app itself, and the provider's own status, are not our incidents
        incident = open_by_component.get(probe.component)
        if probe.state == "down" and incident is None:
            session.add(
                Incident(
                    component=probe.component,
                    title=f"{TITLES[probe.component]}: {probe.detail}"[:300],
                    opened_at=utcnow(),
                )
            )
            log.error("incident opened: %s (%s)", probe.component, probe.detail)
        elif probe.state == "operational" and incident is not None:
            await session.execute(
                update(Incident).where(Incident.id == incident.id).values(closed_at=utcnow())
            )
            log.warning("incident closed: %s", probe.component)
