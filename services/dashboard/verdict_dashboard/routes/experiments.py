"""The experiments list: status filter, text search, newest first, the API's pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard.clients import Api, NotFound, Unreachable
from verdict_dashboard.views.experiments import STATUS_FILTERS, experiment_row
from verdict_dashboard.web import api, render, require_session

PAGE_SIZE = 20


async def _latest(
    client: Api, experiment: experiment_pb2.Experiment
) -> analysis_pb2.ResultSnapshot | None:
    if experiment.status == experiment_pb2.EXPERIMENT_STATUS_DRAFT:
        return None
    try:
        return await client.results(experiment.key)
    except NotFound:
        return None


async def list_page(request: Request) -> Response:
    session = require_session(request)
    client = api(request, session)
    status_name = request.query_params.get("status", "")
    status = next((s for name, _, s in STATUS_FILTERS if name == status_name), 0)
    query = request.query_params.get("q", "").strip()[:200]
    token = request.query_params.get("page", "")
    page = await client.experiments(status, query, token, PAGE_SIZE)
    results_error = ""
    try:
        snapshots = await asyncio.gather(*(_latest(client, e) for e in page.experiments))
    except Unreachable:
        snapshots = [None] * len(page.experiments)
        results_error = "The analysis service is unreachable: results and badges are missing."
    now = datetime.now(UTC)
    rows = [experiment_row(e, s, now) for e, s in zip(page.experiments, snapshots, strict=True)]
    return render(
        request,
        "experiments.html",
        {
            "rows": rows,
            "status": status_name,
            "query": query,
            "filters": STATUS_FILTERS,
            "next_page": page.next_page_token,
            "first_page": bool(token),
            "results_error": results_error,
        },
    )


async def home(request: Request) -> Response:
    return RedirectResponse("/experiments", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/experiments", list_page, methods=["GET"]),
]
