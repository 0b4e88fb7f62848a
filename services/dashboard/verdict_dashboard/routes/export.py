"""The current results as downloadable CSV and JSON."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from verdict_dashboard.export import results_csv, results_json
from verdict_dashboard.web import api, require_session


async def download(request: Request) -> Response:
    session = require_session(request)
    client = api(request, session)
    key = request.path_params["key"]
    kind = request.path_params["kind"]
    if kind not in ("csv", "json"):
        raise HTTPException(404)
    experiment = await client.experiment(key)
    snapshot = await client.results(key)
    if kind == "csv":
        body, media = results_csv(snapshot, experiment.analysis_plan.sequential), "text/csv"
    else:
        body, media = results_json(snapshot), "application/json"
    filename = f"{key}-results-{snapshot.id}.{kind}"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


routes = [Route("/experiments/{key}/export.{kind:str}", download, methods=["GET"])]
