"""The upstream provider's own status, from its public Statuspage API (`/api/v2/summary.json`,
the format OpenAI and most providers publish). Unreachable means unknown, not an outage."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.settings import Settings

# Statuspage's overall indicator → our state, and the words it shows.
_INDICATORS = {
    "none": ("operational", "operational"),
    "minor": ("degraded", "degraded performance"),
    "major": ("down", "partial outage"),
    "critical": ("down", "major outage"),
    "maintenance": ("degraded", "under maintenance"),
}


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    state: str  # operational, degraded, down, unknown
    description: str
    incident: str | None

    @property
    def headline(self) -> str:
        text = f"Upstream: {self.name} — {self.description}"
        return f"{text} ({self.incident})" if self.incident else text


def provider_label(settings: Settings) -> str | None:
    """The provider's name on the status page: PROVIDER_NAME, else LLM_BASE_URL's host;
    None for the built-in model, which has no provider to show."""
    if settings.uses_local_model:
        return None
    return settings.provider_name or httpx.URL(settings.llm_base_url or "").host or None


async def fetch_provider_status(
    client: httpx.AsyncClient, *, url: str | None, name: str
) -> ProviderStatus:
    if not url:
        return ProviderStatus(name, "unknown", "status not configured", None)
    try:
        response = await client.get(url, timeout=5.0)
        response.raise_for_status()
        summary = response.json()
        indicator = str(summary["status"]["indicator"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ProviderStatus(name, "unknown", "status unknown (status page unreachable)", None)
    state, description = _INDICATORS.get(indicator, ("unknown", f"status {indicator!r}"))
    unresolved = [
        i
        for i in summary.get("incidents") or []
        if i.get("status") not in ("resolved", "postmortem")
    ]
    incident = str(unresolved[0].get("name")) if unresolved else None
    return ProviderStatus(name, state, description, incident)
