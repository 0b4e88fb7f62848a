"""The experiment page: header, actions (start, stop, restart with a reason) and tabs."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict.v1 import common_pb2, experiment_pb2
from verdict_dashboard.clients import Invalid, NotFound, Refused, Unreachable
from verdict_dashboard.tabs import TAB_NAMES, TABS, TabRequest, tab_context
from verdict_dashboard.views.experiments import header
from verdict_dashboard.web import api, render, require_session, state_change

DECISIONS = {
    "inconclusive": common_pb2.DECISION_INCONCLUSIVE,
    "ship": common_pb2.DECISION_SHIP,
    "rollback": common_pb2.DECISION_ROLLBACK,
}


def _choice(request: Request, tab: str | None = None) -> TabRequest:
    params = request.query_params
    name = tab or params.get("tab", "results")
    return TabRequest(
        name if name in TAB_NAMES else "results",
        params.get("segment", ""),
        params.get("metric", ""),
    )


async def page(request: Request) -> Response:
    session = require_session(request)
    client = api(request, session)
    experiment = await client.experiment(request.path_params["key"])
    choice = _choice(request)
    latest = None
    if experiment.status != experiment_pb2.EXPERIMENT_STATUS_DRAFT:
        try:
            latest = await client.results(experiment.key)
        except NotFound:
            latest = None
        except Unreachable:
            latest = None
    context = await tab_context(
        client, experiment, choice, latest if choice.segment_pair == ("", "") else None
    )
    context.update(
        {
            "header": header(experiment, latest, session.admin, datetime.now(UTC)),
            "tabs": TABS,
            "after_id": latest.id if latest is not None else 0,
            "action_error": request.query_params.get("error", ""),
        }
    )
    return render(request, "experiment.html", context)


def _back(key: str, error: str = "") -> Response:
    url = f"/experiments/{key}"
    if error:
        url += f"?error={quote(error)}"
    return RedirectResponse(url, status_code=303)


async def start(request: Request) -> Response:
    session, form = await state_change(request)
    key = request.path_params["key"]
    reason = str(form.get("reason", "")).strip()
    try:
        await api(request, session).start_experiment(key, reason)
    except (Invalid, Refused) as error:
        detail = "; ".join(error.violations.values()) or error.message
        return _back(key, f"Could not start: {detail}")
    return _back(key)


async def stop(request: Request) -> Response:
    session, form = await state_change(request)
    key = request.path_params["key"]
    reason = str(form.get("reason", "")).strip()
    if not reason:
        return _back(key, "Could not stop: give a reason (it is recorded in the audit log).")
    decision = DECISIONS.get(
        str(form.get("decision", "inconclusive")), common_pb2.DECISION_INCONCLUSIVE
    )
    request_ = experiment_pb2.StopExperimentRequest(key=key, reason=reason, decision=decision)
    if decision == common_pb2.DECISION_SHIP:
        request_.ship_variant_key = str(form.get("ship_variant_key", ""))
    try:
        await api(request, session).stop_experiment(request_)
    except (Invalid, Refused) as error:
        detail = "; ".join(error.violations.values()) or error.message
        return _back(key, f"Could not stop: {detail}")
    return _back(key)


routes = [
    Route("/experiments/{key}", page, methods=["GET"]),
    Route("/experiments/{key}/start", start, methods=["POST"]),
    Route("/experiments/{key}/stop", stop, methods=["POST"]),
]
