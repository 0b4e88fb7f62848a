"""The gRPC face of ExperimentService: decode, call one use case, encode.

Errors are domain exceptions; the platform's Guard interceptor maps them to status codes (with
google.rpc.BadRequest details for INVALID_ARGUMENT) and authenticates the caller, whose key name
is the audit log's actor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from verdict.v1 import experiment_pb2 as pb
from verdict.v1 import experiment_pb2_grpc
from verdict_assignment.experiments.catalog import Catalog
from verdict_assignment.experiments.manager import ExperimentManager, StopCommand
from verdict_assignment.experiments.ports import AuditEntry, Clock
from verdict_assignment.experiments.publisher import RedisConfigPublisher
from verdict_assignment.experiments.repository import PostgresConfigStore
from verdict_platform import redis_conn
from verdict_platform.guard import current_principal
from verdict_platform.server import Resources


def _actor() -> str:
    return current_principal().name


def audit_event(entry: AuditEntry) -> pb.AuditEvent:
    """An audit entry as the API returns it."""
    event = pb.AuditEvent(
        id=entry.id,
        experiment_key=entry.experiment_key,
        action=entry.action,
        actor=entry.actor,
        reason=entry.reason,
    )
    event.time.FromDatetime(entry.at)
    event.changes.update(entry.changes)
    return event


class ExperimentServicer(experiment_pb2_grpc.ExperimentServiceServicer):
    """Translates ExperimentService RPCs to the experiment and catalog use cases."""

    def __init__(self, experiments: ExperimentManager, catalog: Catalog) -> None:
        self._experiments = experiments
        self._catalog = catalog

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: Any
    ) -> pb.CreateExperimentResponse:
        created = await self._experiments.create(request.experiment, _actor())
        return pb.CreateExperimentResponse(experiment=created)

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, context: Any
    ) -> pb.GetExperimentResponse:
        return pb.GetExperimentResponse(experiment=await self._experiments.get(request.key))

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: Any
    ) -> pb.ListExperimentsResponse:
        page, token = await self._experiments.list_page(
            request.status, request.page_size, request.page_token, request.query
        )
        return pb.ListExperimentsResponse(experiments=page, next_page_token=token)

    async def UpdateExperiment(
        self, request: pb.UpdateExperimentRequest, context: Any
    ) -> pb.UpdateExperimentResponse:
        updated = await self._experiments.update(
            request.experiment, request.update_mask, request.expected_version, _actor()
        )
        return pb.UpdateExperimentResponse(experiment=updated)

    async def StartExperiment(
        self, request: pb.StartExperimentRequest, context: Any
    ) -> pb.StartExperimentResponse:
        started = await self._experiments.start(request.key, _actor())
        return pb.StartExperimentResponse(experiment=started)

    async def StopExperiment(
        self, request: pb.StopExperimentRequest, context: Any
    ) -> pb.StopExperimentResponse:
        details = (
            json_format.MessageToDict(request.details) if request.HasField("details") else None
        )
        command = StopCommand(
            key=request.key,
            reason=request.reason,
            decision=request.decision,
            ship_variant_key=request.ship_variant_key,
            details=details,
        )
        stopped = await self._experiments.stop(command, _actor())
        return pb.StopExperimentResponse(experiment=stopped)

    async def ArchiveExperiment(
        self, request: pb.ArchiveExperimentRequest, context: Any
    ) -> pb.ArchiveExperimentResponse:
        archived = await self._experiments.archive(request.key, _actor())
        return pb.ArchiveExperimentResponse(experiment=archived)

    async def CreateMetric(
        self, request: pb.CreateMetricRequest, context: Any
    ) -> pb.CreateMetricResponse:
        return pb.CreateMetricResponse(
            metric=await self._catalog.create_metric(request.metric, _actor())
        )

    async def GetMetric(self, request: pb.GetMetricRequest, context: Any) -> pb.GetMetricResponse:
        return pb.GetMetricResponse(metric=await self._catalog.metric(request.key))

    async def ListMetrics(
        self, request: pb.ListMetricsRequest, context: Any
    ) -> pb.ListMetricsResponse:
        page, token = await self._catalog.metrics(request.page_size, request.page_token)
        return pb.ListMetricsResponse(metrics=page, next_page_token=token)

    async def UpdateMetric(
        self, request: pb.UpdateMetricRequest, context: Any
    ) -> pb.UpdateMetricResponse:
        metric = await self._catalog.update_metric(request.metric, request.update_mask, _actor())
        return pb.UpdateMetricResponse(metric=metric)

    async def PutSavedGroup(
        self, request: pb.PutSavedGroupRequest, context: Any
    ) -> pb.PutSavedGroupResponse:
        group = await self._catalog.put_saved_group(request.saved_group, _actor())
        return pb.PutSavedGroupResponse(saved_group=group)

    async def ListSavedGroups(
        self, request: pb.ListSavedGroupsRequest, context: Any
    ) -> pb.ListSavedGroupsResponse:
        page, token = await self._catalog.saved_groups(request.page_size, request.page_token)
        return pb.ListSavedGroupsResponse(saved_groups=page, next_page_token=token)

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Any
    ) -> pb.ListAuditEventsResponse:
        page, token = await self._catalog.audit_entries(
            request.experiment_key, request.page_size, request.page_token
        )
        return pb.ListAuditEventsResponse(
            audit_events=[audit_event(entry) for entry in page], next_page_token=token
        )


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def build_experiment_servicer(resources: Resources, clock: Clock = utc_now) -> ExperimentServicer:
    """The ExperimentService servicer on the platform's pool and Redis client.

    Register it with `experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(servicer,
    server)` on a server whose interceptors include the platform's `Guard`.
    """
    store = PostgresConfigStore(resources.pool)
    channel = redis_conn.name(resources.settings, redis_conn.CONFIG_CHANNEL)
    publisher = RedisConfigPublisher(resources.redis, channel)
    return ExperimentServicer(
        ExperimentManager(store, publisher, clock), Catalog(store, publisher, clock)
    )


__all__ = ["ExperimentServicer", "audit_event", "build_experiment_servicer", "utc_now"]
