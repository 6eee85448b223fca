"""A stand-in for a provider's public Statuspage API (`/api/v2/summary.json`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


def create_statuspage(state: dict[str, Any]) -> FastAPI:
    """`state` is mutable: {"indicator": "minor", "incident": "Elevated errors", "broken": False}."""
    app = FastAPI()

    @app.get("/api/v2/summary.json")
    async def summary() -> JSONResponse:
        if state.get("broken"):
            return JSONResponse({"error": "unavailable"}, status_code=502)
        indicator = state.get("indicator", "none")
        incidents = (
            [{"name": state["incident"], "status": "investigating", "impact": indicator}]
            if state.get("incident")
            else []
        )
        return JSONResponse(
            {
                "page": {"id": "x", "name": "Provider", "url": "https://status.example"},
                "status": {"indicator": indicator, "description": DESCRIPTIONS.get(indicator, "")},
                "components": [],
                "incidents": incidents,
            }
        )

    return app
