"""The console's ASGI application: routes, static files, security headers, error pages.

Errors are mapped here once: no session → sign-in (401 for htmx and streams); a forged or
token-less change → 403; a read key changing something → 403; an unknown experiment → 404 page;
a service that cannot be reached → a clear message and 503; anything else → a plain 500 page
(logged, never a stack trace in the browser).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verdict_dashboard.clients import (
    Channels,
    Forbidden,
    NotFound,
    ServiceError,
    SignedOut,
    Unreachable,
)
from verdict_dashboard.config import DashboardSettings
from verdict_dashboard.routes import (
    auth,
    experiment,
    experiments,
    export,
    keys,
    live,
    metrics,
    new_experiment,
)
from verdict_dashboard.sessions import SessionStore
from verdict_dashboard.web import (
    COOKIE,
    HERE,
    AdminOnly,
    Console,
    CsrfRefused,
    SignInRequired,
    console,
    is_htmx,
    render,
    sign_in_url,
)

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the headers every response carries (CSP: nothing loads from elsewhere)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _error(request: Request, status: int, title: str, message: str) -> Response:
    if is_htmx(request) or request.url.path.endswith("/events"):
        return render(
            request, "partials/error_fragment.html", {"title": title, "message": message}, status
        )
    return render(request, "error.html", {"title": title, "message": message}, status)


async def _sign_in(request: Request, exc: Exception) -> Response:
    if is_htmx(request) or request.url.path.endswith("/events"):
        return PlainTextResponse(
            "sign in first", status_code=401, headers={"HX-Redirect": sign_in_url(request)}
        )
    return RedirectResponse(sign_in_url(request), status_code=303)


async def _csrf(request: Request, exc: Exception) -> Response:
    return _error(
        request,
        403,
        "Refused",
        "This request did not carry the page's security token. Reload the page and try again.",
    )


async def _admin_only(request: Request, exc: Exception) -> Response:
    return _error(
        request,
        403,
        "Not allowed",
        "Your key has the read role: you can look at everything and change nothing.",
    )


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, Unreachable):
        return _error(
            request,
            503,
            "Service unreachable",
            f"The {exc.service} cannot be reached right now. This page will work again "
            "as soon as it is back.",
        )
    if isinstance(exc, NotFound):
        return _error(request, 404, "Not found", exc.message or "This does not exist.")
    if isinstance(exc, Forbidden):
        return _error(request, 403, "Not allowed", exc.message)
    if isinstance(exc, SignedOut):
        console(request).sessions.end(request.cookies.get(COOKIE))
        return await _sign_in(request, exc)
    log.warning("service call failed: %s %s", exc.code, exc.message)
    return _error(request, 502, "Something went wrong", exc.message or "The service refused.")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(request, 404, "Not found", "There is no page here.")
    return _error(request, exc.status_code, "Refused", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return _error(
        request, 500, "Something went wrong", "The console hit an unexpected error; it is logged."
    )


async def healthz(request: Request) -> Response:
    """Liveness for `verdict up` and load balancers (no session, no service call)."""
    return PlainTextResponse("ok")


def build_app(settings: DashboardSettings, channels: Channels | None = None) -> Starlette:
    """The application; `channels` default to the services named by the settings."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        made = channels or Channels(settings)
        app.state.console = Console(
            settings, SessionStore(settings.session_idle_s, settings.session_max_s), made
        )
        try:
            yield
        finally:
            await made.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        *auth.routes,
        *experiments.routes,
        *new_experiment.routes,  # before /experiments/{key}
        *live.routes,
        *export.routes,
        *experiment.routes,
        *metrics.routes,
        *keys.routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            SignInRequired: _sign_in,
            CsrfRefused: _csrf,
            AdminOnly: _admin_only,
            ServiceError: _service_error,
            HTTPException: _http,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
