"""Drive the real sign-in flow over HTTP, like a browser: follow redirects, keep cookies.

Production cookies are Secure, and httpx (rightly) never sends Secure cookies over plain
HTTP, so this client keeps its own jar: the tests' servers are on loopback HTTP.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import httpx


class Browserish:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(timeout=30)
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if url.startswith("/"):
            url = self.base_url + url
        headers = dict(kwargs.pop("headers", {}))
        if urlsplit(url).netloc == urlsplit(self.base_url).netloc and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(method, url, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """A same-site POST with the CSRF token, as the chat page sends it."""
        headers = {"Origin": self.base_url, "X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.request("POST", url, headers=headers, **kwargs)

    def start_sign_in(self) -> str:
        """Start the flow; returns the callback URL the provider sends the browser back to."""
        start = self.get("/auth/start")
        assert start.status_code in (302, 303, 307), start.text
        authorize = self.get(start.headers["location"])
        assert authorize.status_code == 302, authorize.text
        return authorize.headers["location"]

    def finish_sign_in(self, callback_url: str) -> httpx.Response:
        response = self.get(callback_url)
        if response.status_code == 303 and "ragship_session" in self.cookies:
            me = self.get("/api/me")
            self.csrf = me.json()["csrf_token"] if me.status_code == 200 else ""
        return response

    def sign_in(self) -> httpx.Response:
        return self.finish_sign_in(self.start_sign_in())
