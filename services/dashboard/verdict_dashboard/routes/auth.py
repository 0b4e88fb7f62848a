"""Sign in with an API key (checked with ApiKeyService.GetCaller), sign out."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict.v1 import keys_pb2
from verdict_dashboard import csrf
from verdict_dashboard.clients import SignedOut, Unreachable
from verdict_dashboard.web import COOKIE, console, render, session_of

log = logging.getLogger(__name__)

ROLE_NAMES = {
    keys_pb2.API_KEY_ROLE_ASSIGN: "assign",
    keys_pb2.API_KEY_ROLE_INGEST: "ingest",
    keys_pb2.API_KEY_ROLE_READ: "read",
    keys_pb2.API_KEY_ROLE_ADMIN: "admin",
    keys_pb2.API_KEY_ROLE_QA: "qa",
}


def _next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/experiments"


async def sign_in_page(request: Request) -> Response:
    if session_of(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return render(request, "signin.html", {"next": _next(request.query_params.get("next"))})


async def sign_in(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("api_key", "")).strip()
    target = _next(str(form.get("next", "")))
    if not key:
        return render(request, "signin.html", {"next": target, "error": "Enter your API key."}, 400)
    app = console(request)
    try:
        caller = await app.channels.api(key).caller()
    except SignedOut:
        log.info("sign-in refused: unknown or revoked key")
        return render(
            request,
            "signin.html",
            {"next": target, "error": "This key is unknown or revoked."},
            401,
        )
    except Unreachable:
        return render(
            request,
            "signin.html",
            {
                "next": target,
                "error": "The experiment service is unreachable: try again in a moment.",
            },
            503,
        )
    role = ROLE_NAMES.get(caller.role, "read")
    session = app.sessions.create(key, caller.name, role, admin=role == "admin")
    log.info("signed in", extra={"key_name": caller.name, "role": role})
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=app.settings.secure_cookies,
        path="/",
    )
    return response


async def sign_out(request: Request) -> Response:
    session = session_of(request)
    form = await request.form()
    # Without a valid token a forged sign-out is refused like any other change.
    if session is not None:
        if not csrf.token_matches(session.csrf_token, csrf.submitted_token(request.headers, form)):
            return render(
                request,
                "error.html",
                {
                    "title": "Refused",
                    "message": "This request did not carry the page's security token.",
                },
                403,
            )
        console(request).sessions.end(session.id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes = [
    Route("/signin", sign_in_page, methods=["GET"]),
    Route("/signin", sign_in, methods=["POST"]),
    Route("/signout", sign_out, methods=["POST"]),
]
