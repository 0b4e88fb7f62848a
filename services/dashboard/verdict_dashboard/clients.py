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

from verdict.v1 import analysis_pb2 as apb
from verdict.v1 import analysis_pb2_grpc, experiment_pb2_grpc, keys_pb2_grpc
from verdict.v1 import experiment_pb2 as epb
from verdict.v1 import keys_pb2 as kpb
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
    async def caller(self) -> kpb.GetCallerResponse:
        return await self._unary(
            "keys", self._c.keys.GetCaller, kpb.GetCallerRequest(), kpb.GetCallerResponse
        )

    async def api_keys(self, page_token: str = "", page_size: int = 100) -> kpb.ListApiKeysResponse:
        request = kpb.ListApiKeysRequest(page_size=page_size, page_token=page_token)
        return await self._unary("keys", self._c.keys.ListApiKeys, request, kpb.ListApiKeysResponse)

    async def create_api_key(self, name: str, role: int) -> kpb.CreateApiKeyResponse:
        request = kpb.CreateApiKeyRequest(name=name, role=role)  # type: ignore[arg-type]
        return await self._unary(
            "keys", self._c.keys.CreateApiKey, request, kpb.CreateApiKeyResponse
        )

    async def revoke_api_key(self, name: str) -> kpb.RevokeApiKeyResponse:
        return await self._unary(
            "keys",
            self._c.keys.RevokeApiKey,
            kpb.RevokeApiKeyRequest(name=name),
            kpb.RevokeApiKeyResponse,
        )

    # ExperimentService
    async def experiments(
        self, status: int = 0, query: str = "", page_token: str = "", page_size: int = 20
    ) -> epb.ListExperimentsResponse:
        request = epb.ListExperimentsRequest(
            status=status,  # type: ignore[arg-type]
            query=query,
            page_token=page_token,
            page_size=page_size,
        )
        return await self._unary(
            "experiments", self._c.experiments.ListExperiments, request, epb.ListExperimentsResponse
        )

    async def experiment(self, key: str) -> epb.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.GetExperiment,
            epb.GetExperimentRequest(key=key),
            epb.GetExperimentResponse,
        )
        return reply.experiment

    async def create_experiment(self, experiment: epb.Experiment) -> epb.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.CreateExperiment,
            epb.CreateExperimentRequest(experiment=experiment),
            epb.CreateExperimentResponse,
        )
        return reply.experiment

    async def start_experiment(self, key: str, reason: str) -> epb.Experiment:
        reply = await self._unary(
            "experiments",
            self._c.experiments.StartExperiment,
            epb.StartExperimentRequest(key=key, reason=reason),
            epb.StartExperimentResponse,
        )
        return reply.experiment

    async def stop_experiment(self, request: epb.StopExperimentRequest) -> epb.Experiment:
        reply = await self._unary(
            "experiments", self._c.experiments.StopExperiment, request, epb.StopExperimentResponse
        )
        return reply.experiment

    async def audit_events(
        self, experiment_key: str, page_token: str = "", page_size: int = 50
    ) -> epb.ListAuditEventsResponse:
        request = epb.ListAuditEventsRequest(
            experiment_key=experiment_key, page_size=page_size, page_token=page_token
        )
        return await self._unary(
            "experiments", self._c.experiments.ListAuditEvents, request, epb.ListAuditEventsResponse
        )

    async def metrics(self, page_token: str = "", page_size: int = 200) -> epb.ListMetricsResponse:
        request = epb.ListMetricsRequest(page_size=page_size, page_token=page_token)
        return await self._unary(
            "experiments", self._c.experiments.ListMetrics, request, epb.ListMetricsResponse
        )

    async def all_metrics(self) -> list[epb.Metric]:
        """The whole catalog, page by page."""
        found: list[epb.Metric] = []
        token = ""
        while True:
            page = await self.metrics(token, 1000)
            found.extend(page.metrics)
            token = page.next_page_token
            if not token:
                return found

    async def metric(self, key: str) -> epb.Metric:
        reply = await self._unary(
            "experiments",
            self._c.experiments.GetMetric,
            epb.GetMetricRequest(key=key),
            epb.GetMetricResponse,
        )
        return reply.metric

    async def create_metric(self, metric: epb.Metric) -> epb.Metric:
        reply = await self._unary(
            "experiments",
            self._c.experiments.CreateMetric,
            epb.CreateMetricRequest(metric=metric),
            epb.CreateMetricResponse,
        )
        return reply.metric

    async def update_metric(self, metric: epb.Metric, paths: list[str]) -> epb.Metric:
        request = epb.UpdateMetricRequest(metric=metric, update_mask=FieldMask(paths=paths))
        reply = await self._unary(
            "experiments", self._c.experiments.UpdateMetric, request, epb.UpdateMetricResponse
        )
        return reply.metric

    # AnalysisService
    async def results(self, key: str, dimension: str = "", value: str = "") -> apb.ResultSnapshot:
        request = apb.GetResultsRequest(experiment_key=key)
        if dimension:
            request.segment.dimension, request.segment.value = dimension, value
        reply = await self._unary(
            "analysis", self._c.analysis.GetResults, request, apb.GetResultsResponse
        )
        return reply.snapshot

    async def snapshots(
        self, key: str, page_size: int = 100, page_token: str = ""
    ) -> apb.ListResultSnapshotsResponse:
        request = apb.ListResultSnapshotsRequest(
            experiment_key=key, page_size=page_size, page_token=page_token
        )
        return await self._unary(
            "analysis",
            self._c.analysis.ListResultSnapshots,
            request,
            apb.ListResultSnapshotsResponse,
        )

    async def segments(self, key: str) -> list[apb.Segment]:
        request = apb.ListSegmentsRequest(experiment_key=key, page_size=1000)
        reply = await self._unary(
            "analysis", self._c.analysis.ListSegments, request, apb.ListSegmentsResponse
        )
        return list(reply.segments)

    async def sample_size(
        self, request: apb.CalculateSampleSizeRequest
    ) -> apb.CalculateSampleSizeResponse:
        return await self._unary(
            "analysis",
            self._c.analysis.CalculateSampleSize,
            request,
            apb.CalculateSampleSizeResponse,
        )

    async def exposure_timeline(self, key: str) -> apb.GetExposureTimelineResponse:
        request = apb.GetExposureTimelineRequest(experiment_key=key)
        return await self._unary(
            "analysis",
            self._c.analysis.GetExposureTimeline,
            request,
            apb.GetExposureTimelineResponse,
        )

    async def alerts(self, key: str, page_size: int = 50) -> apb.ListAlertsResponse:
        request = apb.ListAlertsRequest(experiment_key=key, page_size=page_size)
        return await self._unary(
            "analysis", self._c.analysis.ListAlerts, request, apb.ListAlertsResponse
        )

    async def watch_results(self, key: str) -> AsyncIterator[apb.ResultSnapshot]:
        """The latest snapshot at once, then each new one; no deadline (a live stream)."""
        call = self._c.analysis.WatchResults(
            apb.WatchResultsRequest(experiment_key=key), metadata=self._metadata
        )
        try:
            async for reply in call:
                yield reply.snapshot
        except grpc.aio.AioRpcError as error:
            raise translate("analysis", error) from None
        finally:
            call.cancel()
