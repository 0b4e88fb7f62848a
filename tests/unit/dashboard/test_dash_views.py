"""View models: the decision badge, per-scale figures with their own p-values, the verdict, the
results sections and the CSV export, from snapshots as the analysis returns them (and from
snapshots of an analysis that does not fill the newer fields yet)."""

from __future__ import annotations

import csv
import io
import json
import math

from google.protobuf import json_format

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_dashboard.export import results_csv
from verdict_dashboard.views.badges import FALLBACK_NOTE, decision_badge, status_badge
from verdict_dashboard.views.decision import decision_panel
from verdict_dashboard.views.effects import scale_effect
from verdict_dashboard.views.health import health_view
from verdict_dashboard.views.results import results_view

EXPERIMENT = json_format.ParseDict(
    {
        "key": "prompt-v7",
        "status": "EXPERIMENT_STATUS_RUNNING",
        "variants": [
            {"key": "control", "weight": 0.5, "isControl": True},
            {"key": "v7", "weight": 0.5},
        ],
        "analysisPlan": {"sequential": True},
    },
    experiment_pb2.Experiment(),
)
METRICS = {
    "conv": experiment_pb2.Metric(
        key="conv", name="Conversion", type=experiment_pb2.METRIC_TYPE_BINOMIAL
    ),
    "latency": experiment_pb2.Metric(
        key="latency", name="Latency", direction=experiment_pb2.DIRECTION_DECREASE
    ),
}


def comparison(**fields: object) -> analysis_pb2.Comparison:
    return json_format.ParseDict(fields, analysis_pb2.Comparison())


def snapshot(**fields: object) -> analysis_pb2.ResultSnapshot:
    base: dict[str, object] = {
        "id": 7,
        "experimentKey": "prompt-v7",
        "sequential": True,
        "alpha": 0.05,
        "units": {"control": 1000, "v7": 1010},
    }
    base.update(fields)
    return json_format.ParseDict(base, analysis_pb2.ResultSnapshot())


def test_each_scale_shows_its_own_interval_and_p_value_anytime_valid_when_sequential() -> None:
    c = comparison(
        variantKey="v7",
        absolute={
            "estimate": 0.0085,
            "interval": {"lower": 0.0001, "upper": 0.017},
            "pValue": 0.048,
            "sequentialInterval": {"lower": -0.004, "upper": 0.021},
            "sequentialPValue": 0.4,
            "test": "z_unpooled",
        },
        relative={
            "estimate": 0.085,
            "interval": {"lower": -0.003, "upper": 0.173},
            "pValue": 0.059,
            "sequentialInterval": {"lower": -0.04, "upper": 0.21},
            "sequentialPValue": 0.45,
            "test": "delta_method",
        },
    )
    absolute = scale_effect(c, relative=False, sequential=True)
    relative = scale_effect(c, relative=True, sequential=True)
    assert (absolute.lower, absolute.upper, absolute.p_value) == (-0.004, 0.021, 0.4)
    assert (relative.lower, relative.upper, relative.p_value) == (-0.04, 0.21, 0.45)
    assert absolute.anytime and relative.anytime
    fixed = scale_effect(c, relative=False, sequential=False)
    assert (fixed.lower, fixed.upper, fixed.p_value) == (0.0001, 0.017, 0.048)
    assert fixed.text == "+0.0085" and fixed.p_text == "0.048"


def test_an_analysis_without_per_scale_estimates_keeps_the_p_value_on_its_scale_only() -> None:
    c = comparison(
        variantKey="v7",
        absoluteEffect=0.01,
        absoluteInterval={"lower": 0.001, "upper": 0.02},
        relativeEffect=0.1,
        relativeInterval={"lower": 0.01, "upper": 0.2},
        pValue=0.03,
    )
    relative = scale_effect(c, relative=True, sequential=False)
    absolute = scale_effect(c, relative=False, sequential=False)
    assert relative.p_value == 0.03 and relative.interval_text == "[+1.0 %, +20.0 %]"
    assert math.isnan(absolute.p_value) and absolute.p_text == "—"


def test_decision_states_become_badges_with_days_left() -> None:
    def state(**decision: object) -> str:
        return decision_badge(snapshot(decision=decision)).label

    assert state(state="DECISION_STATE_SHIP", variantKey="v7") == "Ship v7"
    assert state(state="DECISION_STATE_ROLL_BACK") == "Roll back"
    assert state(state="DECISION_STATE_NO_DETECTABLE_DIFFERENCE") == "No detectable difference"
    assert state(state="DECISION_STATE_KEEP_RUNNING", daysRemaining=3.2) == (
        "Keep running — ~4 days left"
    )
    assert state(state="DECISION_STATE_KEEP_RUNNING", daysRemaining="NaN") == "Keep running"
    unhealthy = decision_badge(
        snapshot(
            decision={
                "state": "DECISION_STATE_UNHEALTHY",
                "healthIssues": [{"check": "HEALTH_CHECK_SRM", "message": "p 1e-6"}],
            }
        )
    )
    assert (unhealthy.kind, unhealthy.label) == ("unhealthy", "Unhealthy: SRM")


def test_without_a_decision_state_the_badge_reads_the_recommendation_and_says_so() -> None:
    ship = decision_badge(
        snapshot(recommendation={"decision": "DECISION_SHIP", "variantKey": "v7"})
    )
    assert (ship.label, ship.detail) == ("Ship v7", FALLBACK_NOTE)
    srm = decision_badge(snapshot(srm={"mismatch": True}))
    assert srm.label == "Unhealthy: SRM"


def test_a_stopped_experiment_shows_its_recorded_decision() -> None:
    stopped = experiment_pb2.Experiment()
    stopped.CopyFrom(EXPERIMENT)
    stopped.status = experiment_pb2.EXPERIMENT_STATUS_STOPPED
    stopped.decision.decision = common_pb2.DECISION_SHIP
    stopped.decision.ship_variant_key = "v7"
    assert status_badge(stopped, None).label == "Shipped v7"
    draft = experiment_pb2.Experiment(status=experiment_pb2.EXPERIMENT_STATUS_DRAFT)
    assert status_badge(draft, None).label == "Draft — not started"
    assert status_badge(EXPERIMENT, None).label == "Waiting for the first analysis"


def test_results_are_split_into_decision_metrics_and_guardrails_with_verdicts() -> None:
    s = snapshot(
        correction="MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG",
        metrics=[
            {
                "metricKey": "latency",
                "role": "METRIC_ROLE_GUARDRAIL",
                "variants": [
                    {"variantKey": "control", "units": 1000, "mean": 900},
                    {"variantKey": "v7", "units": 1010, "mean": 700},
                ],
                "comparisons": [
                    {
                        "variantKey": "v7",
                        "relativeEffect": -0.22,
                        "relativeInterval": {"lower": -0.25, "upper": -0.19},
                        "significant": True,
                    }
                ],
            },
            {
                "metricKey": "conv",
                "role": "METRIC_ROLE_PRIMARY",
                "type": "METRIC_TYPE_BINOMIAL",
                "variants": [
                    {"variantKey": "control", "units": 1000, "mean": 0.1},
                    {"variantKey": "v7", "units": 1010, "mean": 0.12},
                ],
                "comparisons": [
                    {
                        "variantKey": "v7",
                        "verdict": "METRIC_VERDICT_INCONCLUSIVE",
                        "relative": {
                            "estimate": 0.2,
                            "interval": {"lower": -0.01, "upper": 0.41},
                            "pValue": 0.06,
                        },
                        "decisionBasis": {
                            "scale": "EFFECT_SCALE_RELATIVE",
                            "sequential": True,
                            "adjusted": True,
                            "interval": {"lower": -0.02, "upper": 0.43},
                            "pValue": 0.07,
                            "alpha": 0.05,
                        },
                        "missingReasons": {
                            "effect_size": "ratio metric",
                            "absolute.sequential_p_value": "NOT_SEQUENTIAL",
                            "adjusted_relative_interval": "NOT_DECISION_SCALE",
                        },
                        "warnings": ["SMALL_SAMPLE"],
                    }
                ],
            },
        ],
    )
    view = results_view(s, EXPERIMENT, METRICS)
    decision, guardrails = view.sections
    assert decision.title.startswith("Primary") and guardrails.title == "Guardrails"
    (conv,) = decision.rows
    assert conv.metric_name == "Conversion" and conv.control_mean == "10.0 %"
    assert conv.variant_units == "1,010" and conv.verdict == "inconclusive"
    assert conv.basis.text == (
        "relative · anytime-valid · adjusted [−2.0 %, +43.0 %] · p 0.070 vs α 0.05"
    )
    # Expected absences are not news; a warning is.
    assert conv.notes == (
        "effect size: ratio metric",
        "small sample: read the interval as indicative",
    )
    (latency,) = guardrails.rows
    assert latency.verdict == "win"  # lower latency is better
    assert view.correction == "Benjamini-Hochberg" and view.sequential
    chart = json.loads(decision.chart_json)
    assert chart["rows"][0]["relative"] == [-0.01, 0.2, 0.41]
    assert view.units == (("control", "1,000"), ("v7", "1,010"))


def test_the_csv_export_has_one_unrounded_row_per_metric_and_variant() -> None:
    s = snapshot(
        metrics=[
            {
                "metricKey": "conv",
                "role": "METRIC_ROLE_PRIMARY",
                "variants": [
                    {"variantKey": "control", "units": 1000, "mean": 0.1},
                    {"variantKey": "v7", "units": 1010, "mean": 0.123456},
                ],
                "comparisons": [
                    {
                        "variantKey": "v7",
                        "significant": True,
                        "relative": {
                            "estimate": 0.23456,
                            "interval": {"lower": 0.01, "upper": 0.5},
                            "pValue": 0.01,
                            "test": "delta_method",
                        },
                        "decisionBasis": {
                            "scale": "EFFECT_SCALE_RELATIVE",
                            "adjusted": True,
                            "interval": {"lower": 0.005, "upper": 0.6},
                            "pValue": 0.02,
                        },
                    }
                ],
            },
        ]
    )
    rows = list(csv.DictReader(io.StringIO(results_csv(s, sequential=False))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["metric"], row["variant"], row["variant_mean"]) == ("conv", "v7", "0.123456")
    assert (row["relative_effect"], row["relative_p_value"]) == ("0.23456", "0.01")
    assert row["role"] == "METRIC_ROLE_PRIMARY" and row["significant"] == "True"
    assert row["relative_test"] == "delta_method"
    assert (row["decision_scale"], row["decision_adjusted"]) == ("EFFECT_SCALE_RELATIVE", "True")
    assert (row["decision_lower"], row["decision_p_value"]) == ("0.005", "0.02")


def test_the_decision_panel_shows_the_headline_time_left_health_and_reasons() -> None:
    running = decision_panel(
        snapshot(
            decision={
                "state": "DECISION_STATE_KEEP_RUNNING",
                "headline": "Keep running: about 16 days left",
                "reasons": ["conv (primary): v7 inconclusive: +2.00% [...]"],
                "daysRemaining": 15.2,
                "plannedUnits": 100000,
                "exposedUnits": 20000,
                "dailyUnits": 5000.4,
            }
        )
    )
    # The badge says "Keep running" already: the headline beside it goes on from there.
    assert running.available and running.headline == "About 16 days left"
    assert running.facts == (
        ("Time left", "about 16 days"),
        ("Units", "20,000 of 100,000 planned"),
        ("Per day", "5,000"),
    )
    assert running.reasons == ("conv (primary): v7 inconclusive: +2.00% [...]",)
    unhealthy = decision_panel(
        snapshot(
            decision={
                "state": "DECISION_STATE_UNHEALTHY",
                "healthIssues": [
                    {"check": "HEALTH_CHECK_MULTIPLE_EXPOSURES", "message": "300 of 20300"}
                ],
                "daysRemaining": "NaN",
                "dailyUnits": "NaN",
            }
        )
    )
    assert [(h.name, h.message) for h in unhealthy.health] == [
        ("Units in several variants", "300 of 20300")
    ]
    assert ("Per day", "—") in unhealthy.facts
    old = decision_panel(snapshot(recommendation={"reasons": ["conv: +2 %"]}))
    assert not old.available and old.reasons == ("conv: +2 %",)
    assert old.badge.detail == FALLBACK_NOTE


def test_each_figure_names_its_test_and_the_fixed_horizon_chance_is_labelled() -> None:
    s = snapshot(
        metrics=[
            {
                "metricKey": "conv",
                "role": "METRIC_ROLE_PRIMARY",
                "comparisons": [
                    {
                        "variantKey": "v7",
                        "chanceToBeatControl": 0.97,
                        "chanceToBeatControlFixedHorizon": True,
                        "absolute": {"estimate": 0.01, "test": "z_pooled"},
                        "relative": {
                            "estimate": 0.1,
                            "test": "delta_method",
                            "sequentialInterval": {"lower": 0.01, "upper": 0.2},
                        },
                        "decisionBasis": {"scale": "EFFECT_SCALE_RELATIVE", "sequential": True},
                    }
                ],
            }
        ]
    )
    (row,) = results_view(s, EXPERIMENT, METRICS).sections[0].rows
    assert row.relative.test_text == "delta method · anytime-valid"
    assert row.absolute.test_text == "score z (pooled) · fixed-horizon"
    assert row.chance == "97 %" and row.chance_fixed_horizon


def test_a_snapshot_that_states_its_plan_is_read_as_analysed() -> None:
    fixed = snapshot(sequential=False, alpha=0.01, correction="MULTIPLE_TESTING_CORRECTION_NONE")
    view = results_view(fixed, EXPERIMENT, METRICS)  # the experiment's plan is sequential
    assert (view.sequential, view.alpha, view.correction) == (False, 0.01, "no correction")
    older = results_view(snapshot(sequential=False, alpha=0), EXPERIMENT, METRICS)
    assert older.sequential and older.alpha == 0.05


def test_the_health_tab_lists_what_the_analysis_left_out_per_metric() -> None:
    s = snapshot(
        diagnostics={
            "metrics": [
                {
                    "metricKey": "conv",
                    "eventsBeforeExposure": 2,
                    "eventsFromUnexposedUnits": 1234,
                    "cappedUnits": 0,
                }
            ],
            "multipleExposureUnits": 5,
        },
        decision={
            "state": "DECISION_STATE_UNHEALTHY",
            "healthIssues": [{"check": "HEALTH_CHECK_SRM", "message": "observed 0.52"}],
        },
    )
    view = health_view(s, EXPERIMENT, None)
    assert view.diagnostics_available
    assert [(d.metric, d.before_exposure, d.unexposed, d.capped) for d in view.diagnostics] == [
        ("conv", "2", "1,234", "0")
    ]
    assert view.excluded_units == "5" and view.issues == ("observed 0.52",)
    assert not health_view(snapshot(), EXPERIMENT, None).diagnostics_available
