"""The console's only way to the services: the generated gRPC stubs, with deadlines.

`Channels` holds one channel per service for the process; `Api` binds them to one signed-in
user's key (sent as `authorization: Bearer` on each call) and turns gRPC failures into the
errors below, which pages map to messages and status codes. Unary calls have a deadline and are
not retried (a page is reloaded by its user; the result stream reconnects by itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_status import rpc_status

from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
)
from verdict_dashboard.config import DashboardSettings
from verdict_platform.status import field_violations

T = TypeVar("T")


class ServiceError(Exception):
    """A call to a service failed; `violations` maps request fields to what is wrong."""

    def __init__(
        self,
        service: str,
        code: grpc.StatusCode,
        message: str,
        violations: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.code = code
        self.message = message
        self.violations = violations or {}


class Unreachable(ServiceError):
    """The service is down, unreachable or too slow: the page says so (HTTP 503)."""


class NotFound(ServiceError):
    """The experiment, metric or key does not exist (HTTP 404)."""


class Invalid(ServiceError):
    """The request is invalid; `violations` names the fields (shown beside them)."""


class Forbidden(ServiceError):
    """The user's key may not do this (HTTP 403)."""


class SignedOut(ServiceError):
    """The user's key is no longer valid (revoked): the session ends."""


class Unimplemented(ServiceError):
    """The service does not offer this call yet: the page shows "not available"."""


class Refused(ServiceError):
    """The state does not allow it (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED)."""


_BY_CODE: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: Invalid,
    grpc.StatusCode.OUT_OF_RANGE: Invalid,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.UNAUTHENTICATED: SignedOut,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.FAILED_PRECONDITION: Refused,
    grpc.StatusCode.ALREADY_EXISTS: Refused,
    grpc.StatusCode.ABORTED: Refused,
}

SERVICE_NAMES = {
    "experiments": "experiment service",
    "keys": "experiment service",
    "analysis": "analysis service",
}


def translate(service: str, error: grpc.aio.AioRpcError) -> ServiceError:
    """The console's error for a failed call (INTERNAL and the like count as unreachable)."""
    code = error.code()
    violations: dict[str, str] = {}
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        try:
            status = rpc_status.from_call(error)
        except Exception:  # malformed details: keep the message alone
            status = None
        if status is not None:
            violations = field_violations(status)
    kind = _BY_CODE.get(code, Unreachable)
    return kind(SERVICE_NAMES.get(service, service), code, error.details() or "", violations)


class Channels:
    """The process's channels to the assignment process (ExperimentService, ApiKeyService) and
    the analysis process (AnalysisService)."""

    def __init__(self, settings: DashboardSettings) -> None:
        # Short reconnect backoff: after a service comes back, the pages (and the live stream's
        # reconnection) work again within a second or two, not after grpc's default of up to 2 min.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.min_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.max_receive_message_length", 64 << 20),
        ]
        self.timeout_s = settings.rpc_timeout_s
        self._assignment = grpc.aio.insecure_channel(settings.assignment_target, options=options)
        self._analysis = grpc.aio.insecure_channel(settings.analysis_target, options=options)
        self.experiments = experiment_pb2_grpc.ExperimentServiceStub(self._assignment)
        self.keys = keys_pb2_grpc.ApiKeyServiceStub(self._assignment)
        self.analysis = analysis_pb2_grpc.AnalysisServiceStub(self._analysis)

    def api(self, api_key: str) -> Api:
        """Calls made with `api_key`."""
        return Api(self, api_key)

    async def close(self) -> None:
        """Closes both channels (open streams end)."""
        await self._assignment.close()
        await self._analysis.close()


class Api:
    """Every call the console makes, on behalf of one key."""

    def __init__(self, channels: Channels, api_key: str) -> None:
        self._c = channels
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    async def _unary(self, service: str, rpc: Any, request: Any, _: type[T]) -> T:
        try:
            reply: T = await rpc(request, metadata=self._metadata, timeout=self._c.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise translate(service, error) from None
        return reply

    # ApiKeyService
    async def caller(self) -> keys_pb2.GetCallerResponse:
        return await self._unary(
            "keys", self._c.keys.GetCaller, keys_pb2.GetCallerRequest(), keys_pb2.GetCallerResponse
        )

    async def api_keys(
        self, page_token: str = "", page_size: int = 100
    ) -> keys_pb2.ListApiKeysResponse:
        request = keys_pb2.ListApiKeysRequest(page_size=page_size, page_token=page_token)
        return await self._unary(
            "keys", self._c.keys.ListApiKeys, request, keys_pb2.ListApiKeysResponse
        )

    async def create_api_key(self, name: str, role: int) -> keys_pb2.CreateApiKeyResponse:
        request = keys_pb2.CreateApiKeyRequest(name=name, role=role)  # type: ignore[arg-type]
        return await self._unary(
            "keys", self._c.keys.CreateApiKey, request, keys_pb2.CreateApiKeyResponse
        )

    async def revoke_api_key(self, name: str) -> keys_pb2.RevokeApiKeyResponse:
        return await self._unary(
            "keys",
            self._c.keys.RevokeApiKey,
            keys_pb2.RevokeApiKeyRequest(name=name),
            keys_pb2.RevokeApiKeyResponse,
        )

    # ExperimentService
    async def experiments(
        self, status: int = 0, query: str = "", page_token: str = "", page_size: int = 20
    ) -> experiment_pb2.ListExperimentsResponse:
        request = experiment_pb2.ListExperimentsRequest(
            status=status,  # type: ignore[arg-type]
            query=query,
            page_token=page_token,
            page_size=page_size,
        )
        return await self._unary(
            "experiments",
            self._c.experiments.ListExperiments,
            request,
            experiment_pb2.ListExperimentsResponse,
        )

    async def experiment(self, key: str) -> experiment_pb2.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.GetExperiment,
            experiment_pb2.GetExperimentRequest(key=key),
            experiment_pb2.GetExperimentResponse,
        )
        return reply.experiment

    async def create_experiment(
        self, experiment: experiment_pb2.Experiment
    ) -> experiment_pb2.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.CreateExperiment,
            experiment_pb2.CreateExperimentRequest(experiment=experiment),
            experiment_pb2.CreateExperimentResponse,
        )
        return reply.experiment

    async def start_experiment(self, key: str, reason: str) -> experiment_pb2.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.StartExperiment,
            experiment_pb2.StartExperimentRequest(key=key, reason=reason),
            experiment_pb2.StartExperimentResponse,
        )
        return reply.experiment

    async def stop_experiment(
        self, request: experiment_pb2.StopExperimentRequest
    ) -> experiment_pb2.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.StopExperiment,
            request,
            experiment_pb2.StopExperimentResponse,
        )
        return reply.experiment

    async def audit_events(
        self, experiment_key: str, page_token: str = "", page_size: int = 50
    ) -> experiment_pb2.ListAuditEventsResponse:
        request = experiment_pb2.ListAuditEventsRequest(
            experiment_key=experiment_key, page_size=page_size, page_token=page_token
        )
        return await self._unary(
            "experiments",
            self._c.experiments.ListAuditEvents,
            request,
            experiment_pb2.ListAuditEventsResponse,
        )

    async def metrics(
        self, page_token: str = "", page_size: int = 200
    ) -> experiment_pb2.ListMetricsResponse:
        request = experiment_pb2.ListMetricsRequest(page_size=page_size, page_token=page_token)
        return await self._unary(
            "experiments",
            self._c.experiments.ListMetrics,
            request,
            experiment_pb2.ListMetricsResponse,
        )

    async def all_metrics(self) -> list[experiment_pb2.Metric]:
        """The whole catalog, page by page."""
        found: list[experiment_pb2.Metric] = []
        token = ""
        while True:
            page = await self.metrics(token, 1000)
            found.extend(page.metrics)
            token = page.next_page_token
            if not token:
                return found

    async def metric(self, key: str) -> experiment_pb2.Metric:
        reply = await self._unary(
            "experiments",
            self._c.experiments.GetMetric,
            experiment_pb2.GetMetricRequest(key=key),
            experiment_pb2.GetMetricResponse,
        )
        return reply.metric

    async def create_metric(self, metric: experiment_pb2.Metric) -> experiment_pb2.Metric:
        reply = await self._unary(
            "experiments",
            self._c.experiments.CreateMetric,
            experiment_pb2.CreateMetricRequest(metric=metric),
            experiment_pb2.CreateMetricResponse,
        )
        return reply.metric

    async def update_metric(
        self, metric: experiment_pb2.Metric, paths: list[str]
    ) -> experiment_pb2.Metric:
        request = experiment_pb2.UpdateMetricRequest(
            metric=metric, update_mask=FieldMask(paths=paths)
        )
        reply = await self._unary(
            "experiments",
            self._c.experiments.UpdateMetric,
            request,
            experiment_pb2.UpdateMetricResponse,
        )
        return reply.metric

    # AnalysisService
    async def results(
        self, key: str, dimension: str = "", value: str = ""
    ) -> analysis_pb2.ResultSnapshot:
        request = analysis_pb2.GetResultsRequest(experiment_key=key)
        if dimension:
            request.segment.dimension, request.segment.value = dimension, value
        reply = await self._unary(
            "analysis", self._c.analysis.GetResults, request, analysis_pb2.GetResultsResponse
        )
        return reply.snapshot

    async def snapshots(
        self, key: str, page_size: int = 100, page_token: str = ""
    ) -> analysis_pb2.ListResultSnapshotsResponse:
        request = analysis_pb2.ListResultSnapshotsRequest(
            experiment_key=key, page_size=page_size, page_token=page_token
        )
        return await self._unary(
            "analysis",
            self._c.analysis.ListResultSnapshots,
            request,
            analysis_pb2.ListResultSnapshotsResponse,
        )

    async def segments(self, key: str) -> list[analysis_pb2.Segment]:
        request = analysis_pb2.ListSegmentsRequest(experiment_key=key, page_size=1000)
        reply = await self._unary(
            "analysis", self._c.analysis.ListSegments, request, analysis_pb2.ListSegmentsResponse
        )
        return list(reply.segments)

    async def sample_size(
        self, request: analysis_pb2.CalculateSampleSizeRequest
    ) -> analysis_pb2.CalculateSampleSizeResponse:
        return await self._unary(
            "analysis",
            self._c.analysis.CalculateSampleSize,
            request,
            analysis_pb2.CalculateSampleSizeResponse,
        )

    async def exposure_timeline(self, key: str) -> analysis_pb2.GetExposureTimelineResponse:
        request = analysis_pb2.GetExposureTimelineRequest(experiment_key=key)
        return await self._unary(
            "analysis",
            self._c.analysis.GetExposureTimeline,
            request,
            analysis_pb2.GetExposureTimelineResponse,
        )

    async def alerts(self, key: str, page_size: int = 50) -> analysis_pb2.ListAlertsResponse:
        request = analysis_pb2.ListAlertsRequest(experiment_key=key, page_size=page_size)
        return await self._unary(
            "analysis", self._c.analysis.ListAlerts, request, analysis_pb2.ListAlertsResponse
        )

    async def watch_results(self, key: str) -> AsyncIterator[analysis_pb2.ResultSnapshot]:
        """The latest snapshot at once, then each new one; no deadline (a live stream)."""
        call = self._c.analysis.WatchResults(
            analysis_pb2.WatchResultsRequest(experiment_key=key), metadata=self._metadata
        )
        try:
            async for reply in call:
                yield reply.snapshot
        except grpc.aio.AioRpcError as error:
            raise translate("analysis", error) from None
        finally:
            call.cancel()
