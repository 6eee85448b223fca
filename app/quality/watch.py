"""The quality watch: every QUALITY_INTERVAL_S each replica claims sampled answers (see
claims.py: no answer is scored twice, whichever replicas run) and scores them (scorer.py).
Off when QUALITY_SAMPLE_RATE is 0. Nothing here is on the request path: answers are
sampled from the call log after they were recorded."""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy import text

from app.caps.refusal import CapRefused
from app.db import session_scope
from app.llm.pricing import ModelPrice, UnpricedModel, lookup
from app.quality.claims import claim
from app.quality.sampled import load_sampled
from app.quality.scorer import score
from app.services import Services
from app.settings import Settings

log = logging.getLogger("ragship.quality")
_SKIP = text("UPDATE quality_scores SET status = 'skipped', detail = :why WHERE call_id = :id")
_RELEASE = text(
    "UPDATE quality_scores SET status = 'retry', attempts = attempts - 1, detail = :why "
    "WHERE call_id = ANY(:ids) AND status = 'claimed'"
)


def judge_model(settings: Settings) -> str:
    return settings.quality_judge_model or settings.llm_model


def judge_price(services: Services) -> ModelPrice:
    """The judge model's price: the price book's (LLM_MODEL, LLM_FALLBACK_MODEL), else the
    price database or the local table. Raises `UnpricedModel` (the service does not start)
    when no source knows it: no call is made at an unknown price."""
    model = judge_model(services.settings)
    if model in services.prices.models:
        return services.prices[model]
    found = lookup(model, base_url=services.settings.llm_base_url)
    if found is None:
        raise UnpricedModel(
            f"QUALITY_JUDGE_MODEL {model} has no known price: use a model the price "
            "database knows, or LLM_MODEL"
        )
    return found


class QualityWatch:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.price = judge_price(services)
        self.me = f"{socket.gethostname()}:{os.getpid()}"  # shown on claims, for operators

    async def run_once(self) -> dict[str, int]:
        """Claim and score one batch; {status: count} of what happened to each claim."""
        settings = self.services.settings
        ids = await claim(
            self.services.sessions,
            me=self.me,
            rate=settings.quality_sample_rate,
            limit=settings.quality_batch,
            retry_after_s=settings.quality_retry_after_s,
        )
        counts: dict[str, int] = {}
        for n, call_id in enumerate(ids):
            async with session_scope(self.services.sessions) as session:
                sampled = await load_sampled(session, call_id)
                if sampled is None:
                    await session.execute(_SKIP, {"id": call_id, "why": "content gone"})
            if sampled is None:
                status = "skipped"
            else:
                try:
                    status = await score(self.services, self.price, sampled)
                except CapRefused as refused:  # the caps hold: give the claims back, stop
                    async with session_scope(self.services.sessions) as session:
                        await session.execute(
                            _RELEASE, {"ids": ids[n:], "why": f"refused: {refused.layer}"}
                        )
                    counts["released"] = len(ids) - n
                    log.warning("quality scoring paused: %s", refused.layer)
                    break
            counts[status] = counts.get(status, 0) + 1
        return counts
