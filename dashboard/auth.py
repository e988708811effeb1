"""DASHBOARD_TOKEN: the pages need it as "Authorization: Bearer <token>" or the cookie /login sets (401 otherwise)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import SecretStr

COOKIE = "flowbot_dashboard"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Auth:
    """Checks requests against the token (no token: everything is allowed); the token itself is never logged."""

    def __init__(self, token: SecretStr | None) -> None:
        self._token = token.get_secret_value().encode() if token is not None else None
        # The cookie holds a digest of the token, not the token: a leaked cookie does not reveal it.
        self._session = hmac.new(self._token, b"flowbot-dashboard-session", hashlib.sha256).hexdigest() \
            if self._token is not None else ""

    @property
    def required(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def allowed(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._session.encode())

    def log_in(self, response: web.StreamResponse) -> None:
        """Set the session cookie (HttpOnly, same-site only) on a response."""
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict", path="/")

    def guard(self, handler: Handler, denied: Handler) -> Handler:
        """The handler when the request is allowed, else `denied` (which answers 401)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            return await (handler if self.allowed(request) else denied)(request)

        return guarded
