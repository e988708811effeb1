"""The Host header checked against the names the dashboard is served as (DASHBOARD_ALLOWED_HOSTS): a page on another
site whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name, and is refused."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from dashboard.auth import Handler

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(configured: Iterable[str], health_host: str) -> frozenset[str]:
    """The configured names, or by default the loopback names and HEALTH_HOST; `*` allows any."""
    names = [name.strip().lower().strip("[]").rstrip(".") for name in configured if name.strip()]
    return frozenset(names or (*LOOPBACK_NAMES, health_host.lower().strip("[]")))


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8080` -> `::1`, `Example.COM.:80` -> `example.com`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, colon, port = header.rpartition(":")
    return (name if colon and port.isdigit() else header).rstrip(".")


def checking_host(allowed: frozenset[str], handler: Handler) -> Handler:
    """The handler for requests whose Host is allowed; 421 for the others."""

    async def checked(request: web.Request) -> web.StreamResponse:
        if "*" not in allowed and host_name(request.host) not in allowed:
            return web.Response(status=421, text="421: this dashboard does not answer to that host name "
                                                 "(DASHBOARD_ALLOWED_HOSTS lists those it answers to)")
        return await handler(request)

    return checked
