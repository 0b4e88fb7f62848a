"""The gRPC face of ExperimentService: decode, call one use case, encode.

Errors are domain exceptions; the platform's guard (which wraps every handler at registration)
maps them to status codes (with google.rpc.BadRequest details for INVALID_ARGUMENT) and
authenticates the caller, whose key name is the audit log's actor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_assignment.experiments.catalog import Catalog
from verdict_assignment.experiments.importer import GrowthBookImporter, ImportCommand
from verdict_assignment.experiments.manager import ExperimentManager, StartCommand, StopCommand
from verdict_assignment.experiments.ports import AuditEntry, Clock
from verdict_assignment.experiments.publisher import RedisConfigPublisher
from verdict_assignment.experiments.repository import PostgresConfigStore
from verdict_platform import redis_conn
from verdict_platform.guard import current_principal
from verdict_platform.server import Resources


def _actor() -> str:
    return current_principal().name


def audit_event(entry: AuditEntry) -> experiment_pb2.AuditEvent:
    """An audit entry as the API returns it."""
    event = experiment_pb2.AuditEvent(
        id=entry.id,
        experiment_key=entry.experiment_key,
        action=entry.action,
        actor=entry.actor,
        reason=entry.reason,
        rule=experiment_pb2.StoppingRule.Value(entry.rule)
        if entry.rule
        else experiment_pb2.STOPPING_RULE_UNSPECIFIED,
    )
    event.time.FromDatetime(entry.at)
    event.changes.update(entry.changes)
    return event


class ExperimentServicer(experiment_pb2_grpc.ExperimentServiceServicer):
    """Translates ExperimentService RPCs to the experiment and catalog use cases."""

    def __init__(
        self,
        experiments: ExperimentManager,
        catalog: Catalog,
        importer: GrowthBookImporter,
    ) -> None:
        self._experiments = experiments
        self._catalog = catalog
        self._importer = importer

    async def CreateExperiment(
        self, request: experiment_pb2.CreateExperimentRequest, context: Any
    ) -> experiment_pb2.CreateExperimentResponse:
        done = await self._experiments.create(request.experiment, _actor())
        return experiment_pb2.CreateExperimentResponse(
            experiment=done.experiment, config_version=done.config_version
        )

    async def GetExperiment(
        self, request: experiment_pb2.GetExperimentRequest, context: Any
    ) -> experiment_pb2.GetExperimentResponse:
        return experiment_pb2.GetExperimentResponse(
            experiment=await self._experiments.get(request.key)
        )

    async def ListExperiments(
        self, request: experiment_pb2.ListExperimentsRequest, context: Any
    ) -> experiment_pb2.ListExperimentsResponse:
        page, token = await self._experiments.list_page(
            request.status, request.page_size, request.page_token, request.query
        )
        return experiment_pb2.ListExperimentsResponse(experiments=page, next_page_token=token)

    async def UpdateExperiment(
        self, request: experiment_pb2.UpdateExperimentRequest, context: Any
    ) -> experiment_pb2.UpdateExperimentResponse:
        done = await self._experiments.update(
            request.experiment, request.update_mask, request.expected_version, _actor()
        )
        return experiment_pb2.UpdateExperimentResponse(
            experiment=done.experiment, config_version=done.config_version
        )

    async def StartExperiment(
        self, request: experiment_pb2.StartExperimentRequest, context: Any
    ) -> experiment_pb2.StartExperimentResponse:
        command = StartCommand(request.key, request.reason, list(request.rule_overrides))
        done = await self._experiments.start(command, _actor())
        return experiment_pb2.StartExperimentResponse(
            experiment=done.experiment, config_version=done.config_version
        )

    async def StopExperiment(
        self, request: experiment_pb2.StopExperimentRequest, context: Any
    ) -> experiment_pb2.StopExperimentResponse:
        details = (
            json_format.MessageToDict(request.details) if request.HasField("details") else None
        )
        command = StopCommand(
            key=request.key,
            reason=request.reason,
            decision=request.decision,
            ship_variant_key=request.ship_variant_key,
            details=details,
            rule=request.rule,
        )
        done = await self._experiments.stop(command, _actor())
        return experiment_pb2.StopExperimentResponse(
            experiment=done.experiment, config_version=done.config_version
        )

    async def ArchiveExperiment(
        self, request: experiment_pb2.ArchiveExperimentRequest, context: Any
    ) -> experiment_pb2.ArchiveExperimentResponse:
        done = await self._experiments.archive(request.key, _actor())
        return experiment_pb2.ArchiveExperimentResponse(
            experiment=done.experiment, config_version=done.config_version
        )

    async def CreateMetric(
        self, request: experiment_pb2.CreateMetricRequest, context: Any
    ) -> experiment_pb2.CreateMetricResponse:
        return experiment_pb2.CreateMetricResponse(
            metric=await self._catalog.create_metric(request.metric, _actor())
        )

    async def GetMetric(
        self, request: experiment_pb2.GetMetricRequest, context: Any
    ) -> experiment_pb2.GetMetricResponse:
        return experiment_pb2.GetMetricResponse(metric=await self._catalog.metric(request.key))

    async def ListMetrics(
        self, request: experiment_pb2.ListMetricsRequest, context: Any
    ) -> experiment_pb2.ListMetricsResponse:
        page, token = await self._catalog.metrics(request.page_size, request.page_token)
        return experiment_pb2.ListMetricsResponse(metrics=page, next_page_token=token)

    async def UpdateMetric(
        self, request: experiment_pb2.UpdateMetricRequest, context: Any
    ) -> experiment_pb2.UpdateMetricResponse:
        metric = await self._catalog.update_metric(request.metric, request.update_mask, _actor())
        return experiment_pb2.UpdateMetricResponse(metric=metric)

    async def PutSavedGroup(
        self, request: experiment_pb2.PutSavedGroupRequest, context: Any
    ) -> experiment_pb2.PutSavedGroupResponse:
        group, version = await self._catalog.put_saved_group(request.saved_group, _actor())
        return experiment_pb2.PutSavedGroupResponse(saved_group=group, config_version=version)

    async def ListSavedGroups(
        self, request: experiment_pb2.ListSavedGroupsRequest, context: Any
    ) -> experiment_pb2.ListSavedGroupsResponse:
        page, token = await self._catalog.saved_groups(request.page_size, request.page_token)
        return experiment_pb2.ListSavedGroupsResponse(saved_groups=page, next_page_token=token)

    async def ListAuditEvents(
        self, request: experiment_pb2.ListAuditEventsRequest, context: Any
    ) -> experiment_pb2.ListAuditEventsResponse:
        page, token = await self._catalog.audit_entries(
            request.experiment_key, request.page_size, request.page_token
        )
        return experiment_pb2.ListAuditEventsResponse(
            audit_events=[audit_event(entry) for entry in page], next_page_token=token
        )

    async def ImportGrowthBook(
        self, request: experiment_pb2.ImportGrowthBookRequest, context: Any
    ) -> experiment_pb2.ImportGrowthBookResponse:
        command = ImportCommand(request.payload_json, request.dry_run, request.start)
        outcome = await self._importer.run(command, _actor())
        return experiment_pb2.ImportGrowthBookResponse(
            experiments=outcome.experiments,
            saved_groups=outcome.saved_groups,
            skipped=outcome.skipped,
            config_version=outcome.config_version,
        )


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def build_experiment_servicer(resources: Resources, clock: Clock = utc_now) -> ExperimentServicer:
    """The ExperimentService servicer on the platform's pool and Redis client.

    Register it with `experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(servicer,
    server)` on a server made by the platform's `guarded_server`.
    """
    store = PostgresConfigStore(resources.pool)
    channel = redis_conn.name(resources.settings, redis_conn.CONFIG_CHANNEL)
    publisher = RedisConfigPublisher(resources.redis, channel)
    budget = resources.settings.max_snapshot_bytes
    return ExperimentServicer(
        ExperimentManager(store, publisher, clock, budget),
        Catalog(store, publisher, clock, budget),
        GrowthBookImporter(store, publisher, clock, budget),
    )


__all__ = ["ExperimentServicer", "audit_event", "build_experiment_servicer", "utc_now"]
