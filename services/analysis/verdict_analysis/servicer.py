"""AnalysisService over gRPC: decode the request, call one use case, encode the answer.

Domain errors (InvalidArgument, NotFound, FailedPrecondition, Aborted, Unavailable) become status
codes in the platform's guard (which wraps every handler at registration).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from typing import Any

from google.protobuf import struct_pb2

from verdict.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2, experiment_pb2
from verdict_analysis import plan_mapping, sizing
from verdict_analysis.alerts import StoredAlert
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.results_reader import ExposureTimeline, Results, require_key
from verdict_analysis.snapshot_proto import DECISIONS
from verdict_analysis.stopping_rules import Decision, RuleName


def _timeline(timeline: ExposureTimeline) -> analysis_pb2.GetExposureTimelineResponse:
    response = analysis_pb2.GetExposureTimelineResponse(
        planned_shares=dict(timeline.planned_shares),
        multiple_exposure_units=timeline.multiple_exposure_units,
    )
    for day, units in timeline.days:
        entry = response.days.add(units=units)
        entry.day.FromDatetime(datetime.combine(day, time(), tzinfo=UTC))
    return response


def _alert(stored: StoredAlert) -> analysis_pb2.Alert:
    a = stored.alert
    rule = RuleName(a.rule) if a.rule in RuleName._value2member_map_ else None
    decision = Decision(a.decision) if a.decision in Decision._value2member_map_ else None
    details = struct_pb2.Struct()
    details.update(dict(a.details))
    alert = analysis_pb2.Alert(
        id=stored.id,
        experiment_key=a.experiment_key,
        rule=plan_mapping.RULES[rule]
        if rule is not None
        else experiment_pb2.STOPPING_RULE_UNSPECIFIED,
        action=a.action,
        decision=DECISIONS[decision] if decision is not None else common_pb2.DECISION_UNSPECIFIED,
        reason=a.reason,
        details=details,
        delivered=stored.delivered_at is not None,
        attempts=stored.attempts,
        last_error=stored.last_error,
        snapshot_id=a.snapshot_id,
    )
    alert.create_time.FromDatetime(stored.created_at)
    if stored.delivered_at is not None:
        alert.delivery_time.FromDatetime(stored.delivered_at)
    return alert


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    """The gRPC face of the analysis use cases."""

    def __init__(self, analyzer: Analyzer, results: Results) -> None:
        self._analyzer = analyzer
        self._results = results

    async def GetResults(
        self, request: analysis_pb2.GetResultsRequest, context: Any
    ) -> analysis_pb2.GetResultsResponse:
        segment = request.segment
        snapshot = await self._results.latest(
            request.experiment_key, segment.dimension, segment.value
        )
        return analysis_pb2.GetResultsResponse(snapshot=snapshot)

    async def ListResultSnapshots(
        self, request: analysis_pb2.ListResultSnapshotsRequest, context: Any
    ) -> analysis_pb2.ListResultSnapshotsResponse:
        snapshots, token = await self._results.page(
            request.experiment_key, request.page_size, request.page_token
        )
        return analysis_pb2.ListResultSnapshotsResponse(snapshots=snapshots, next_page_token=token)

    async def ListSegments(
        self, request: analysis_pb2.ListSegmentsRequest, context: Any
    ) -> analysis_pb2.ListSegmentsResponse:
        segments, token = await self._results.segments(
            request.experiment_key, request.page_size, request.page_token
        )
        return analysis_pb2.ListSegmentsResponse(segments=segments, next_page_token=token)

    async def WatchResults(
        self, request: analysis_pb2.WatchResultsRequest, context: Any
    ) -> AsyncIterator[analysis_pb2.WatchResultsResponse]:
        async for snapshot in self._results.watch(request.experiment_key):
            yield analysis_pb2.WatchResultsResponse(snapshot=snapshot)

    async def RunAnalysis(
        self, request: analysis_pb2.RunAnalysisRequest, context: Any
    ) -> analysis_pb2.RunAnalysisResponse:
        snapshot = await self._analyzer.run(require_key(request.experiment_key))
        assert snapshot is not None  # only a freshness limit skips
        return analysis_pb2.RunAnalysisResponse(snapshot=snapshot)

    async def GetExposureTimeline(
        self, request: analysis_pb2.GetExposureTimelineRequest, context: Any
    ) -> analysis_pb2.GetExposureTimelineResponse:
        return _timeline(await self._results.exposure_timeline(request.experiment_key))

    async def ListAlerts(
        self, request: analysis_pb2.ListAlertsRequest, context: Any
    ) -> analysis_pb2.ListAlertsResponse:
        page, token = await self._results.alerts(
            request.experiment_key, request.page_size, request.page_token
        )
        return analysis_pb2.ListAlertsResponse(
            alerts=[_alert(a) for a in page], next_page_token=token
        )

    async def CalculateSampleSize(
        self, request: analysis_pb2.CalculateSampleSizeRequest, context: Any
    ) -> analysis_pb2.CalculateSampleSizeResponse:
        return sizing.calculate(request)
