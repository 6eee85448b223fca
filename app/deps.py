"""Dependency aliases: every injectable declared once, used as `Annotated` types in routes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from app.services import Services

VISITOR_COOKIE = "ragship_visitor"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@dataclass(frozen=True)
class Visitor:
    """Who owns a conversation until sign-in lands: a random id kept in an HttpOnly cookie."""

    id: str
    is_new: bool

    def remember(self, response: Response) -> None:
        if self.is_new:
            response.set_cookie(
                VISITOR_COOKIE, self.id, max_age=365 * 86400, httponly=True, samesite="lax"
            )


def get_visitor(request: Request) -> Visitor:
    existing = request.cookies.get(VISITOR_COOKIE, "")
    if len(existing) == 32 and existing.isalnum():
        return Visitor(existing, False)
    return Visitor(secrets.token_hex(16), True)


ServicesDep = Annotated[Services, Depends(get_services)]
VisitorDep = Annotated[Visitor, Depends(get_visitor)]
