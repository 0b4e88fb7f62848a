"""API keys (admin): list, create (the secret shown once), revoke, through ApiKeyService."""

from __future__ import annotations

import contextlib
from datetime import UTC

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict.v1 import keys_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.clients import Api, Invalid, NotFound, Refused
from verdict_dashboard.routes.auth import ROLE_NAMES
from verdict_dashboard.web import AdminOnly, api, console, render, require_session, state_change

ROLES = {name: value for value, name in ROLE_NAMES.items()}


async def _rows(client: Api) -> list[dict[str, str | bool]]:
    keys: list[keys_pb2.ApiKey] = []
    token = ""
    while True:
        page = await client.api_keys(token, 1000)
        keys.extend(page.api_keys)
        token = page.next_page_token
        if not token:
            break
    return [
        {
            "name": k.name,
            "role": ROLE_NAMES.get(k.role, "?"),
            "created": f.when(k.create_time.ToDatetime(tzinfo=UTC)),
            "revoked": f.when(k.revoke_time.ToDatetime(tzinfo=UTC))
            if k.HasField("revoke_time")
            else "",
            "active": not k.HasField("revoke_time"),
        }
        for k in keys
    ]


async def _page(request: Request, client: Api, status: int = 200, **extra: object) -> Response:
    context = {"keys": await _rows(client), "roles": list(ROLES), "errors": {}, "v": {}}
    context.update(extra)
    response = render(request, "keys.html", context, status)
    return response


async def list_keys(request: Request) -> Response:
    session = require_session(request)
    if not session.admin:
        raise AdminOnly()
    return await _page(request, api(request, session))


async def create(request: Request) -> Response:
    session, form = await state_change(request)
    client = api(request, session)
    name = str(form.get("name", "")).strip()
    role = str(form.get("role", ""))
    values = {"name": name, "role": role}
    try:
        created = await client.create_api_key(name, ROLES.get(role, 0))
    except Invalid as error:
        return await _page(request, client, 400, errors=error.violations, v=values)
    except Refused as error:
        return await _page(request, client, 409, errors={"name": error.message}, v=values)
    # The one time the new secret is shown; the response is not cached.
    return await _page(
        request, client, created_key=created.secret, created_name=created.api_key.name
    )


async def revoke(request: Request) -> Response:
    session, _ = await state_change(request)
    name = request.path_params["name"]
    with contextlib.suppress(NotFound):  # already revoked: the list shows it
        await api(request, session).revoke_api_key(name)
    # Sessions signed in with the revoked key end now, not at their next call.
    console(request).sessions.end_for_name(name)
    if name == session.name:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse("/keys", status_code=303)


routes = [
    Route("/keys", list_keys, methods=["GET"]),
    Route("/keys", create, methods=["POST"]),
    Route("/keys/{name}/revoke", revoke, methods=["POST"]),
]
