"""The OpenID Connect client (authlib): discovery, state, nonce and PKCE (S256).

Google is the documented default; any provider with a discovery document works.
"""

from __future__ import annotations

from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App

from app.settings import Settings

PROVIDER = "oidc"


def build_oidc_client(settings: Settings) -> StarletteOAuth2App | None:
    if not settings.oidc_enabled or settings.oidc_client_secret is None:
        return None
    oauth = OAuth()
    client: StarletteOAuth2App = oauth.register(
        PROVIDER,
        server_metadata_url=settings.oidc_discovery_url,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    return client
