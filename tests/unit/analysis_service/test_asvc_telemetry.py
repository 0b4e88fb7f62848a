"""An analysis run is one span, and the stop it causes happens inside it (the stopper's call
carries that trace, or the decision not to sample it); its duration and the rules that fired are
counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from asvc_fakes import FakeStopper
from opentelemetry import trace
from test_asvc_analyzer import _analyzer, _experiment

from support.tracing import named, recorded_spans
from verdict.trace_context import with_trace
from verdict_platform.telemetry import sampling
from verdict_platform.telemetry.catalog import ANALYSIS_DURATION, STOPPING_RULE_FIRINGS
from verdict_platform.telemetry.sampling import new_trace

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TracingStopper(FakeStopper):
    """Remembers the trace context a real stopper would send with StopExperiment."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []

    async def stop(self, experiment_key: str, *args: Any, **kwargs: Any) -> None:
        self.sent.append(dict(with_trace(())))
        await super().stop(experiment_key, *args, **kwargs)


def _count(views: list[Any], labels: tuple[str, ...]) -> int:
    return next((v.count for v in views if v.labels == labels), 0)


def _firings() -> Mapping[tuple[str, ...], float]:
    return dict(STOPPING_RULE_FIRINGS.values())


async def test_a_scheduled_run_and_the_stop_it_causes_are_one_trace() -> None:
    spans = recorded_spans()
    spans.clear()
    analyzer, _, _, stopper, _, _ = _analyzer(
        _experiment(efficacy=True, min_units_per_variant=1_000), (10_000, 1_300)
    )
    tracing_stopper = TracingStopper()
    analyzer._stopper = tracing_stopper
    ran_before = _count(ANALYSIS_DURATION.views(), ("exp", "ok"))
    fired_before = _firings().get(("efficacy", "stop"), 0)
    sampling.set_ratio(1.0)
    try:
        with new_trace():
            await analyzer.run("exp")
    finally:
        sampling.set_ratio(0.0)
    [run] = named(spans.get_finished_spans(), "analysis.run")
    assert run.parent is None and run.attributes is not None
    assert run.attributes["verdict.experiment_key"] == "exp"
    [sent] = tracing_stopper.sent
    assert sent["traceparent"].split("-")[1] == format(run.context.trace_id, "032x")
    assert _count(ANALYSIS_DURATION.views(), ("exp", "ok")) == ran_before + 1
    assert _firings()[("efficacy", "stop")] == fired_before + 1
    assert stopper.calls == []  # the tracing stopper replaced it


async def test_an_unsampled_run_records_no_span_and_passes_its_decision_on() -> None:
    spans = recorded_spans()
    spans.clear()
    analyzer, *_ = _analyzer(
        _experiment(efficacy=True, min_units_per_variant=1_000), (10_000, 1_300)
    )
    tracing_stopper = TracingStopper()
    analyzer._stopper = tracing_stopper
    with new_trace():  # ratio 0
        await analyzer.run("exp")
    assert spans.get_finished_spans() == ()
    # W3C parent-based sampling: the stop is sent with "not sampled", so assignment does not
    # start a trace of its own for it.
    [sent] = tracing_stopper.sent
    assert int(sent["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0
    assert not trace.get_current_span().get_span_context().is_valid
