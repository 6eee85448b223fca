"""Browser pages: the chat page and a readable view of an ingested source document."""

from __future__ import annotations

import uuid
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
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


@router.get("/c/{conversation_id}", include_in_schema=False)
async def conversation_page(
    conversation_id: uuid.UUID, user: UserDep, services: ServicesDep
) -> HTMLResponse:
    """The chat page with one conversation open (the page loads it by the URL)."""
    return _branded("index.html", services)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links: the same SVG icon."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


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
            f"<pre class='passage'>{escape(text)}</pre></section>"
        )
    # No server path here: the title names the document. static/source.js renders each
    # passage's Markdown through the sanitizer; without script the text stays readable.
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(document.title)} · ragship</title>"
        "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
        "<link rel='stylesheet' href='/static/style.css'>"
        "<script type='module' src='/static/source.js'></script>"
        "</head><body class='source'><nav><a href='/'>← Back to chat</a></nav>"
        f"<main><h1>{escape(document.title)}</h1>{''.join(blocks)}</main></body></html>"
    )
    return HTMLResponse(page)
