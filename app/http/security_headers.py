"""Security headers on every response, set in one place.

The Content-Security-Policy allows only our own scripts, styles, images and connections:
no inline script, no CDN, no framing. `Cache-Control: no-store` goes on every response
that is not a static file, since those may carry the CSRF token (/api/me) or a user's
data; it is added to a route's own directives (the chat stream's `no-cache,
no-transform` stays). HSTS only in prod, where ragship is served over HTTPS.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Not no-referrer: with it, browsers send `Origin: null` on our own POSTs, which the
# CSRF check refuses. same-origin keeps our Origin and sends other sites nothing.
REFERRER_POLICY = "same-origin"
HSTS = "max-age=31536000; includeSubDomains"
STATIC_PREFIX = "/static/"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.common = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": REFERRER_POLICY,
        }
        if hsts:
            self.common["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        private = not path.startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.common.items():
                    headers[name] = value
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                if private:
                    headers["Cache-Control"] = _no_store(headers.get("Cache-Control"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _no_store(directives: str | None) -> str:
    if not directives:
        return "no-store"
    if "no-store" in directives.lower():
        return directives
    return f"no-store, {directives}"
