"""DASHBOARD_TOKEN: the pages need it as "Authorization: Bearer <token>" or the session cookie /login sets (401
otherwise). A session is signed with the token and expires; /logout ends it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import SecretStr

COOKIE = "flowbot_dashboard"
SESSION_TTL_S = 12 * 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_tls(request: web.Request) -> bool:
    """The browser reached us over https: directly, or through a proxy that says so (X-Forwarded-Proto)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


class Auth:
    """Checks requests against the token (no token: everything is allowed); the token itself is never logged and
    never in a cookie: a session is `expiry.nonce.signature`, signed with the token."""

    def __init__(self, token: SecretStr | None, *, clock: Callable[[], float] = time.time) -> None:
        self._token = token.get_secret_value().encode() if token is not None else None
        self._clock = clock
        self._ended: dict[str, float] = {}  # sessions logged out before they expired: session -> expiry

    @property
    def required(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def _signature(self, payload: str) -> str:
        assert self._token is not None
        return hmac.new(self._token, b"flowbot-dashboard-session:" + payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        payload = f"{int(self._clock()) + SESSION_TTL_S}.{secrets.token_hex(16)}"
        return f"{payload}.{self._signature(payload)}"

    def session_valid(self, session: str) -> bool:
        payload, _, signature = session.rpartition(".")
        expiry = payload.partition(".")[0]
        return (
            self._token is not None and expiry.isascii() and expiry.isdigit()
            and hmac.compare_digest(signature.encode(), self._signature(payload).encode())
            and int(expiry) > self._clock() and session not in self._ended
        )

    def allowed(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        return self.session_valid(request.cookies.get(COOKIE, ""))

    def log_in(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set a new session cookie: HttpOnly, same-site only, expiring, Secure when the page came over TLS."""
        response.set_cookie(COOKIE, self.new_session(), httponly=True, samesite="Strict", path="/",
                            max_age=SESSION_TTL_S, secure=over_tls(request))

    def log_out(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the request's session here (a copy of the cookie no longer opens the pages) and drop the cookie."""
        now = self._clock()
        self._ended = {s: expiry for s, expiry in self._ended.items() if expiry > now}
        session = request.cookies.get(COOKIE, "")
        if self.session_valid(session):
            self._ended[session] = float(session.partition(".")[0])
        response.del_cookie(COOKIE, path="/")

    def guard(self, handler: Handler, denied: Handler) -> Handler:
        """The handler when the request is allowed, else `denied` (which answers 401)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            return await (handler if self.allowed(request) else denied)(request)

        return guarded
