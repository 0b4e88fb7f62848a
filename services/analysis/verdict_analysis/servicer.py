"""AnalysisService over gRPC: decode the request, call one use case, encode the answer.

Domain errors (InvalidArgument, NotFound, FailedPrecondition, Aborted, Unavailable) become status
codes in the platform's Guard interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from verdict.v1 import analysis_pb2, analysis_pb2_grpc
from verdict_analysis import sizing
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.results import Results, require_key

_A = analysis_pb2


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
        return _A.GetResultsResponse(snapshot=snapshot)

    async def ListResultSnapshots(
        self, request: analysis_pb2.ListResultSnapshotsRequest, context: Any
    ) -> analysis_pb2.ListResultSnapshotsResponse:
        snapshots, token = await self._results.page(
            request.experiment_key, request.page_size, request.page_token
        )
        return _A.ListResultSnapshotsResponse(snapshots=snapshots, next_page_token=token)

    async def ListSegments(
        self, request: analysis_pb2.ListSegmentsRequest, context: Any
    ) -> analysis_pb2.ListSegmentsResponse:
        segments, token = await self._results.segments(
            request.experiment_key, request.page_size, request.page_token
        )
        return _A.ListSegmentsResponse(segments=segments, next_page_token=token)

    async def WatchResults(
        self, request: analysis_pb2.WatchResultsRequest, context: Any
    ) -> AsyncIterator[analysis_pb2.WatchResultsResponse]:
        async for snapshot in self._results.watch(request.experiment_key):
            yield _A.WatchResultsResponse(snapshot=snapshot)

    async def RunAnalysis(
        self, request: analysis_pb2.RunAnalysisRequest, context: Any
    ) -> analysis_pb2.RunAnalysisResponse:
        snapshot = await self._analyzer.run(require_key(request.experiment_key))
        assert snapshot is not None  # only a freshness limit skips
        return _A.RunAnalysisResponse(snapshot=snapshot)

    async def CalculateSampleSize(
        self, request: analysis_pb2.CalculateSampleSizeRequest, context: Any
    ) -> analysis_pb2.CalculateSampleSizeResponse:
        return sizing.calculate(request)
