"""GET /experiments/{key}/events: the open tab, re-rendered on every new snapshot (SSE)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from verdict.v1 import analysis_pb2
from verdict_dashboard.routes.experiment import _choice
from verdict_dashboard.sse import snapshot_events
from verdict_dashboard.tabs import tab_context
from verdict_dashboard.views.experiments import header
from verdict_dashboard.web import api, require_session, templates


async def events(request: Request) -> Response:
    session = require_session(request)
    client = api(request, session)
    key = request.path_params["key"]
    choice = _choice(request)
    try:
        after_id = max(0, int(request.query_params.get("after", "0")))
    except ValueError:
        after_id = 0
    partial = templates.get_template(f"partials/tab_{choice.tab.replace('-', '_')}.html")
    badge = templates.get_template("partials/header_status.html")

    async def render(snapshot: analysis_pb2.ResultSnapshot) -> str:
        experiment = await client.experiment(key)
        whole = snapshot if choice.segment_pair == ("", "") else None
        context = await tab_context(client, experiment, choice, whole)
        context.update({"session": session, "csrf_token": session.csrf_token})
        head = header(experiment, snapshot, session.admin, datetime.now(UTC))
        return (
            f'<div data-swap-into="tab-panel">{partial.render(context)}</div>'
            f'<div data-swap-into="header-status">{badge.render({"header": head})}</div>'
        )

    return StreamingResponse(
        snapshot_events(client, key, after_id, render, lambda: client.snapshots(key, 1)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


routes = [Route("/experiments/{key}/events", events, methods=["GET"])]
