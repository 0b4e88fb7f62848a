"""The metric catalog: list, create, edit (CreateMetric, UpdateMetric)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict_dashboard import forms
from verdict_dashboard.clients import Invalid, Refused
from verdict_dashboard.views.metrics import metric_row, metric_values
from verdict_dashboard.web import AdminOnly, api, form_values, render, require_session, state_change

FIELDS = {
    "key",
    "name",
    "description",
    "type",
    "source.event_name",
    "source.measure",
    "denominator.event_name",
    "denominator.measure",
    "quantile",
    "direction",
    "non_inferiority_margin",
    "capping",
    "capping_value",
    "window_days",
    "source",
    "denominator",
}


async def catalog(request: Request) -> Response:
    session = require_session(request)
    metrics = await api(request, session).all_metrics()
    return render(request, "metrics.html", {"rows": [metric_row(m) for m in metrics]})


def _form(
    request: Request,
    values: dict[str, str],
    errors: dict[str, str],
    editing: bool,
    status: int = 200,
) -> Response:
    return render(
        request,
        "metric_form.html",
        {
            "v": values,
            "errors": errors,
            "editing": editing,
            "general": errors.get(forms.GENERAL, ""),
        },
        status,
    )


async def new_form(request: Request) -> Response:
    session = require_session(request)
    if not session.admin:
        raise AdminOnly()
    return _form(
        request, {"type": "binomial", "direction": "increase", "capping": "none"}, {}, editing=False
    )


async def create(request: Request) -> Response:
    session, form = await state_change(request)
    values = form_values(form)
    parsed = forms.parse_metric(values)
    if parsed.errors:
        return _form(request, values, parsed.errors, editing=False, status=400)
    try:
        await api(request, session).create_metric(parsed.message)
    except Invalid as error:
        return _form(
            request,
            values,
            forms.field_errors(error.violations, FIELDS, "metric."),
            editing=False,
            status=400,
        )
    except Refused as error:
        return _form(request, values, {"key": error.message}, editing=False, status=409)
    return RedirectResponse("/metrics", status_code=303)


async def edit_form(request: Request) -> Response:
    session = require_session(request)
    if not session.admin:
        raise AdminOnly()
    metric = await api(request, session).metric(request.path_params["key"])
    return _form(request, metric_values(metric), {}, editing=True)


async def update(request: Request) -> Response:
    session, form = await state_change(request)
    values = form_values(form)
    values["key"] = request.path_params["key"]
    parsed = forms.parse_metric(values)
    if parsed.errors:
        return _form(request, values, parsed.errors, editing=True, status=400)
    try:
        await api(request, session).update_metric(parsed.message, list(forms.METRIC_MASK))
    except Invalid as error:
        return _form(
            request,
            values,
            forms.field_errors(error.violations, FIELDS, "metric."),
            editing=True,
            status=400,
        )
    return RedirectResponse("/metrics", status_code=303)


routes = [
    Route("/metrics", catalog, methods=["GET"]),
    Route("/metrics/new", new_form, methods=["GET"]),
    Route("/metrics/new", create, methods=["POST"]),
    Route("/metrics/{key}/edit", edit_form, methods=["GET"]),
    Route("/metrics/{key}/edit", update, methods=["POST"]),
]
