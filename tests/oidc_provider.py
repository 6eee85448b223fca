"""A small, real OpenID Connect provider for tests: discovery, authorize, token, JWKS, RS256.

The "person" who signs in, and any tampering with the id_token, is set per test with
`provider.next_login(...)`. Authorization codes are single-use and PKCE (S256) is enforced.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "ragship-test-client"
CLIENT_SECRET = "ragship-test-secret"


@dataclass
class Login:
    email: str = "ada@example.com"
    name: str = "Ada Lovelace"
    email_verified: bool = True
    nonce: str | None = None  # override the nonce the client sent
    audience: str | None = None  # override the audience (client id)
    expires_in: int = 300  # negative: already expired


@dataclass
class Provider:
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    login: Login = field(default_factory=Login)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)

    def next_login(self, **values: Any) -> None:
        self.login = Login(**values)


def _s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def create_provider_app(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": provider.issuer,
            "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token",
            "jwks_uri": f"{provider.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
        }

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return {"keys": [provider.key.as_dict(private=False)]}

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256":
            return RedirectResponse(f"{q.get('redirect_uri')}?error=invalid_request", 302)
        code = secrets.token_urlsafe(16)
        provider.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce"),
            "challenge": q.get("code_challenge"),
            "login": provider.login,
        }
        params = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{q['redirect_uri']}?{params}", 302)

    @app.post("/token")
    async def token(
        request: Request,
        code: str = Form(...),
        redirect_uri: str = Form(...),
        code_verifier: str = Form(""),
        client_id: str = Form(""),
        client_secret: str = Form(""),
    ) -> JSONResponse:
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = provider.codes.get(code)
        if grant is None or code in provider.used_codes:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "code used or unknown"}, 400
            )
        provider.used_codes.add(code)
        if grant["redirect_uri"] != redirect_uri or _s256(code_verifier) != grant["challenge"]:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "PKCE or redirect"}, 400
            )
        login: Login = grant["login"]
        now = int(time.time())
        claims = {
            "iss": provider.issuer,
            "sub": hashlib.sha256(login.email.encode()).hexdigest()[:20],
            "aud": login.audience or CLIENT_ID,
            "iat": now if login.expires_in > 0 else now - 3600,
            "exp": now + login.expires_in,
            "nonce": login.nonce if login.nonce is not None else grant["nonce"],
            "email": login.email,
            "email_verified": login.email_verified,
            "name": login.name,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, provider.key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": id_token,
            }
        )

    return app
