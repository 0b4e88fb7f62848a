"""New experiment: the step-by-step form, its sample-size calculator, the review and the save.

Everything goes through the API: the calculator through CalculateSampleSize, the save through
CreateExperiment (a draft), whose field violations are shown beside the fields they name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verdict.v1 import experiment_pb2
from verdict_dashboard import forms
from verdict_dashboard.clients import Api, Invalid, Refused
from verdict_dashboard.views.review import review
from verdict_dashboard.web import (
    AdminOnly,
    api,
    form_values,
    render,
    require_session,
    state_change,
)

DEFAULTS = {
    "variants[0].key": "control",
    "variants[0].name": "Control",
    "variants[0].weight": "0.5",
    "variants[0].payload": '{\n  "model": "gpt-4o",\n  "prompt_version": "v6"\n}',
    "variants[1].key": "treatment",
    "variants[1].name": "Treatment",
    "variants[1].weight": "0.5",
    "variants[1].payload": '{\n  "model": "gpt-4o-mini",\n  "prompt_version": "v6"\n}',
    "control": "0",
    "coverage": "1",
    "hash_attribute": "id",
    "analysis_plan.alpha": "0.05",
    "analysis_plan.power": "0.8",
    "analysis_plan.minimum_detectable_effect": "0.05",
    "analysis_plan.sides": "two",
    "analysis_plan.sequential": "on",
    "analysis_plan.correction": "holm",
    "analysis_plan.proportion_test": "unpooled",
    "stopping_rules.srm_action": "alert",
    "stopping_rules.min_units_per_variant": "1000",
    "stopping_rules.guardrail_harm": "on",
    "calc.metric_type": "proportion",
    "calc.baseline": "0.1",
    "calc.minimum_detectable_effect": "0.05",
    "calc.mde_scale": "relative",
    "calc.daily_units": "2000",
}
STEPS = (
    ("overview", "Overview"),
    ("variants", "Variants"),
    ("traffic", "Targeting & traffic"),
    ("metrics", "Metrics"),
    ("plan", "Analysis plan & stopping rules"),
    ("review", "Review"),
)
# The step where each field lives (by prefix), to open the form at the first error.
STEP_OF = (
    ("variants", "variants"),
    ("control", "variants"),
    ("coverage", "traffic"),
    ("targeting", "traffic"),
    ("hash_attribute", "traffic"),
    ("layer", "traffic"),
    ("metric", "metrics"),
    ("analysis_plan", "plan"),
    ("stopping_rules", "plan"),
    ("calc", "plan"),
)


def first_step(errors: dict[str, str]) -> str:
    """The step holding the first field in error (overview when none matches)."""
    for step, _ in STEPS:
        for name in errors:
            found = next((s for prefix, s in STEP_OF if name.startswith(prefix)), "overview")
            if found == step:
                return step
    return "overview"


def known_fields(values: dict[str, str], catalog: list[experiment_pb2.Metric]) -> set[str]:
    """Every field name the form has, for placing the API's violations."""
    names = (
        set(DEFAULTS)
        | set(values)
        | {
            "key",
            "name",
            "description",
            "hypothesis",
            "targeting",
            "metrics",
            "variants",
            "analysis_plan.segments",
            "stopping_rules.target_sample_size",
            "stopping_rules.max_duration_days",
            "stopping_rules.efficacy",
            "stopping_rules.srm_p_value_threshold",
        }
    )
    for i in range(forms.variant_count(values)):
        names |= {f"variants[{i}].{f}" for f in ("key", "name", "weight", "payload", "description")}
    names |= {f"metric_role.{m.key}" for m in catalog}
    return names


def _metric_field_errors(
    violations: dict[str, str], experiment: experiment_pb2.Experiment
) -> dict[str, str]:
    """`experiment.metrics[i]...` named by the metric's own select, where it has one."""
    renamed = {}
    for path, message in violations.items():
        prefix = "experiment.metrics["
        if path.startswith(prefix):
            index = path[len(prefix) :].split("]", 1)[0]
            if index.isdigit() and int(index) < len(experiment.metrics):
                renamed[f"metric_role.{experiment.metrics[int(index)].metric_key}"] = message
                continue
        renamed[path] = message
    return renamed


async def _form(
    request: Request,
    client: Api,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    step: str = "overview",
) -> Response:
    catalog = await client.all_metrics()
    context: dict[str, Any] = {
        "v": values,
        "errors": errors,
        "catalog": catalog,
        "steps": STEPS,
        "step": step,
        "variant_count": forms.variant_count(values),
        "general": errors.get(forms.GENERAL, ""),
    }
    return render(request, "new_experiment.html", context, status)


async def new_page(request: Request) -> Response:
    session = require_session(request)
    if not session.admin:
        raise AdminOnly()
    return await _form(request, api(request, session), dict(DEFAULTS), {})


async def create(request: Request) -> Response:
    session, form = await state_change(request)
    client = api(request, session)
    values = form_values(form)
    parsed = forms.parse_experiment(values)
    if parsed.errors:
        return await _form(request, client, values, parsed.errors, 400, first_step(parsed.errors))
    try:
        created = await client.create_experiment(parsed.message)
    except Invalid as error:
        catalog = await client.all_metrics()
        errors = forms.field_errors(
            _metric_field_errors(error.violations, parsed.message),
            known_fields(values, catalog),
            prefix="experiment.",
        )
        if not errors:
            errors = {forms.GENERAL: error.message}
        return await _form(request, client, values, errors, 400, first_step(errors))
    except Refused as error:
        errors = (
            {"key": error.message} if "exists" in error.message else {forms.GENERAL: error.message}
        )
        return await _form(request, client, values, errors, 409, first_step(errors))
    return RedirectResponse(f"/experiments/{created.key}", status_code=303)


async def review_fragment(request: Request) -> Response:
    """The Review step: what will run, read back from the form as the API will receive it."""
    session, form = await state_change(request, admin=False)
    client = api(request, session)
    values = form_values(form)
    parsed = forms.parse_experiment(values)
    catalog = {m.key: m for m in await client.all_metrics()}
    return render(
        request,
        "partials/review.html",
        {
            "review": review(parsed.message, catalog),
            "errors": parsed.errors,
        },
    )


async def sample_size_fragment(request: Request) -> Response:
    """The calculator's answer for the form's current inputs (CalculateSampleSize)."""
    session, form = await state_change(request, admin=False)
    values = form_values(form)
    parsed = forms.sample_size_request(values)
    context: dict[str, Any] = {"errors": parsed.errors, "answer": None}
    if not parsed.errors:
        try:
            context["answer"] = await api(request, session).sample_size(parsed.message)
            context["calc_request"] = parsed.message
        except Invalid as error:
            context["errors"] = forms.field_errors(
                error.violations, set(forms.CALC_FIELDS.values()), renames=forms.CALC_FIELDS
            )
    return render(request, "partials/sample_size.html", context)


routes = [
    Route("/experiments/new", new_page, methods=["GET"]),
    Route("/experiments/new", create, methods=["POST"]),
    Route("/experiments/new/review", review_fragment, methods=["POST"]),
    Route("/experiments/new/sample-size", sample_size_fragment, methods=["POST"]),
]
