"""create_app() and its lifespan: the expensive clients are built once here and shared."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from app.auth.oidc import build_oidc_client
from app.background import repeat
from app.caps.overload import AdmissionGate
from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import open_store
from app.caps.refusal import CapRefused
from app.caps.sweeper import sweep_expired
from app.db import service_engine
from app.deps import NotSignedIn
from app.guardrails.attacks import AttackIndex
from app.heap import frozen_heap
from app.http.body_limit import BodyLimitMiddleware, body_limits
from app.http.error_pages import http_error
from app.http.errors import HANDLERS as ERROR_HANDLERS
from app.http.input_guard import InputGuardMiddleware
from app.http.overload import HANDLERS as OVERLOAD_HANDLERS
from app.http.security_headers import SecurityHeadersMiddleware
from app.llm.client import LLMClient
from app.llm.pricing import build_price_book
from app.llm.routing import check_routing
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.observability.alerts import Alerter
from app.observability.retention import enforce_retention
from app.observability.tracing import build_tracing
from app.observability.upstream_alarm import UpstreamAlarm
from app.observability.upstream_watch import UpstreamWatch
from app.quality.watch import QualityWatch
from app.rag.embedder import TextEmbedder, load_embedder
from app.routes import (
    admin,
    auth,
    chat,
    conversations,
    dashboard,
    health,
    metrics,
    pages,
    status,
    tokens,
)
from app.routes.pages import STATIC_DIR
from app.services import Services
from app.settings import Settings, get_settings
from app.status.live import LiveStatus
from app.status.llm_health import LLMHealthCheck
from app.status.prober import Prober
from app.switch_interval import switch_interval

log = logging.getLogger("ragship")


def create_app(
    settings: Settings | None = None, *, embedder: TextEmbedder | None = None
) -> FastAPI:
    settings = settings or get_settings()
    # Every model the service may call must have a price before anything starts.
    prices = build_price_book(settings)  # raises UnpricedModel
    check_routing(settings)  # raises RoutingError: a canary prompt file that is missing

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        engine = service_engine(settings)
        local_model = None
        base_url = settings.llm_base_url
        if base_url is None:
            local_model = BackgroundServer(
                create_local_model(token_delay_s=settings.local_model_token_delay_s)
            ).start()
            base_url = f"{local_model.url}/v1"
            log.info("using the built-in local model at %s", base_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        alarm = UpstreamAlarm(settings, sessions)
        llm = LLMClient(
            base_url=base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            settings=settings,
            watcher=UpstreamWatch(alarm, LiveStatus(sessions, main_model=settings.llm_model)),
        )
        store = open_store(settings)
        tracer, tracer_provider = build_tracing(settings)
        embedder_ = embedder or load_embedder(settings)
        embedder_.use_threads(settings.embed_threads, idle=settings.embed_idle_threads)
        app.state.services = Services(
            settings=settings,
            sessions=sessions,
            embedder=embedder_,
            llm=llm,
            prices=prices,
            oidc=build_oidc_client(settings),
            limiter=RateLimiter(store, settings),
            tracer=tracer,
            gate=AdmissionGate(
                settings.max_inflight_admissions, retry_after_s=settings.overload_retry_after_s
            ),
            attacks=(
                None
                if settings.guardrail_modes.get("attack_similarity", "on") == "off"
                else await asyncio.to_thread(AttackIndex, embedder_)
            ),
        )
        app.state.llm_health = LLMHealthCheck(app.state.services)
        app.state.prober = Prober(app.state.services, app.state.llm_health)
        app.state.alerter = Alerter(app.state.services)
        app.state.quality = QualityWatch(app.state.services)  # raises UnpricedModel
        log.info("start-up: services in %.2fs", time.perf_counter() - started)
        if settings.status_probe_on_start:
            started = time.perf_counter()
            await app.state.prober.probe_at_start()
            log.info("start-up: status probe in %.2fs", time.perf_counter() - started)
        sessions = app.state.services.sessions
        jobs = [  # (job, every_s, what, first run at once); the start-up probe ran above
            (
                partial(sweep_expired, sessions, model=settings.llm_model),
                60,
                "reservation sweep",
                True,
            ),
            (app.state.prober.run_once, settings.status_probe_interval_s, "status probe", False),
            (app.state.alerter.run_once, settings.alert_interval_s, "alert evaluation", False),
            (
                partial(enforce_retention, sessions, days=settings.retention_days),
                3600,
                "retention",
                True,
            ),
        ]
        if settings.quality_sample_rate > 0:
            jobs.append(
                (app.state.quality.run_once, settings.quality_interval_s, "quality scoring", False)
            )
        background = [
            asyncio.create_task(repeat(job, every_s=every_s, what=what, first_now=now))
            for job, every_s, what, now in jobs
        ]
        try:
            with (
                frozen_heap() if settings.gc_freeze else nullcontext(),
                switch_interval(settings.gil_switch_interval_ms / 1000),
            ):
                yield
        finally:
            for task in background:
                task.cancel()
            # A judge call in flight settles its reservation as it is cancelled (shielded).
            await asyncio.wait(background, timeout=5)
            await app.state.prober.close()
            await app.state.alerter.close()
            await alarm.close()
            await asyncio.to_thread(tracer_provider.shutdown)  # flushes queued spans
            await store.close()
            await llm.close()
            await engine.dispose()
            if local_model is not None:
                local_model.stop()

    dev = settings.env == "dev"
    app = FastAPI(
        title="ragship",
        version="0.1.0",
        lifespan=lifespan,
        # No Swagger UI or ReDoc: both load from a public CDN (blank offline, and they tell
        # the CDN who visits). The schema stays in dev for tools (docs/chat-api.md).
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json" if dev else None,
    )
    # Holds only the sign-in flow's state (OIDC state, nonce, PKCE verifier, invite) for
    # ten minutes; the session itself is server-side (app/auth/sessions.py).
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="ragship_signin",
        max_age=600,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    # Path, query, cookies and the headers we read are clean text, or 400 (inside the two
    # below, so the 400 is bounded and gets the security headers too).
    app.add_middleware(InputGuardMiddleware)
    # Added last, so outermost: bodies are bounded before anything reads them, and every
    # response (the 413 included) gets the security headers.
    app.add_middleware(BodyLimitMiddleware, limits=body_limits(settings))
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.env == "prod")
    for exc_type, handler in {**ERROR_HANDLERS, **OVERLOAD_HANDLERS}.items():
        app.add_exception_handler(exc_type, handler)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    app.add_exception_handler(CapRefused, _cap_refused)
    app.include_router(pages.router)
    app.include_router(auth.router)
    app.include_router(chat.router)
    app.include_router(conversations.router)
    app.include_router(admin.router)
    app.include_router(tokens.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(status.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "Sign in first."}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/auth/login?{urlencode({'next': target})}", status_code=303)


async def _cap_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CapRefused)
    body = {"detail": exc.message, "layer": exc.layer, "retry_after_s": exc.retry_after_s}
    return JSONResponse(body, status_code=exc.status, headers=exc.response_headers())
