"""Browser pages: the chat page and a readable view of an ingested source document."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from app.branding import Branding, brand_page
from app.db import session_scope
from app.deps import ServicesDep, UserDep
from app.models import Chunk, Document

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"

router = APIRouter(tags=["pages"])


@router.get("/", include_in_schema=False)
async def index(user: UserDep, services: ServicesDep) -> HTMLResponse:
    """The chat page, with the bot's name and welcome filled in (app/branding.py)."""
    return _branded("index.html", services)


@router.get("/about", include_in_schema=False)
async def about(services: ServicesDep) -> HTMLResponse:
    """Public: what is logged, retention, contact. The operator edits static/about.html
    (or sets CONTACT_TEXT and PRIVACY_TEXT)."""
    return _branded("about.html", services)


@router.get("/api/branding", tags=["pages"])
async def branding(services: ServicesDep) -> dict[str, Any]:
    """Public: the bot's name, welcome, example questions, contact and privacy text."""
    return Branding.of(services.settings).as_json()


def _branded(name: str, services: ServicesDep) -> HTMLResponse:
    # Read on each request: a forker edits the page and reloads.
    html = (STATIC_DIR / name).read_text(encoding="utf-8")
    page = brand_page(html, Branding.of(services.settings))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/sources/{document_id}", include_in_schema=False)
async def source_document(document_id: int, user: UserDep, services: ServicesDep) -> HTMLResponse:
    """The document as ingested, one block per chunk, anchored by section for citations."""
    async with session_scope(services.sessions) as session:
        document = await session.get(Document, document_id)
        if document is None:
            raise HTTPException(404, "No such document.")
        chunks = (
            await session.execute(
                select(Chunk.heading_path, Chunk.anchor, Chunk.text)
                .where(Chunk.document_id == document_id)
                .order_by(Chunk.ordinal)
            )
        ).all()
    seen: set[str] = set()
    blocks = []
    for heading_path, anchor, text in chunks:
        anchor_attr = "" if anchor in seen else f' id="{escape(anchor)}"'
        seen.add(anchor)
        blocks.append(
            f"<section{anchor_attr}><h2>{escape(heading_path or document.title)}</h2>"
            f"<pre>{escape(text)}</pre></section>"
        )
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(document.title)}</title><link rel='stylesheet' href='/static/style.css'>"
        f"</head><body class='source'><p><a href='/'>← Back to chat</a></p>"
        f"<h1>{escape(document.title)}</h1><p class='muted'>{escape(document.source)}</p>"
        f"{''.join(blocks)}</body></html>"
    )
    return HTMLResponse(page)
