"""The assignment process: ExperimentService (configuration), ApiKeyService and AssignmentService
(hot path).

Background work: the config watcher (Redis pub/sub plus a database poll) and the exposure
flusher. On a graceful stop the server has already refused new RPCs and finished in-flight ones;
then the watcher stops and the exposure buffer is flushed to ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc

from verdict.v1 import assignment_pb2, experiment_pb2, experiment_pb2_grpc, keys_pb2, keys_pb2_grpc
from verdict_assignment import api_keys
from verdict_assignment.assign import servicer as assign_servicer
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.exposures import ExposureSink
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.ingest_client import IngestExposureSender
from verdict_assignment.assign.snapshot_source import SnapshotSource
from verdict_assignment.assign.sticky import CachedExposureStore
from verdict_assignment.assign.watcher import ConfigWatcher
from verdict_assignment.experiments.servicer import build_experiment_servicer
from verdict_assignment.settings import AssignmentSettings
from verdict_platform import redis_conn
from verdict_platform.server import Resources, ServiceDefinition, grpc_service_name
from verdict_platform.telemetry.catalog import ASSIGN_DECISIONS, EXPOSURE_BUFFER_DEPTH

log = logging.getLogger(__name__)


class AssignmentProcess:
    """What `run_service` serves in the assignment process."""

    def __init__(self, resources: Resources, own: AssignmentSettings) -> None:
        settings = resources.settings
        self.holder = SnapshotHolder()
        self.watcher = ConfigWatcher(
            SnapshotSource(resources.pool),
            self.holder,
            resources.redis,
            redis_conn.name(settings, redis_conn.CONFIG_CHANNEL),
            poll_s=own.config_poll_s,
        )
        self.sticky = CachedExposureStore(resources.redis, resources.pool, settings.redis_namespace)
        self.sender = IngestExposureSender(
            settings.ingest_target, settings.service_api_key, settings.channel_security()
        )
        if settings.service_api_key is None:
            log.warning("VERDICT_SERVICE_API_KEY is not set: ingest will refuse exposures")
        self.sink = ExposureSink(self.sender, max_buffer=own.exposure_buffer)
        self.assign = assign_servicer.AssignmentServicer(
            Assigner(self.holder, self.sticky, self.sink), self.holder
        )
        self.experiments = build_experiment_servicer(resources)
        self.api_keys = api_keys.build_api_key_servicer(resources)
        ASSIGN_DECISIONS.track(self.assign.decision_counts)
        EXPOSURE_BUFFER_DEPTH.track(lambda: self.sink.depth)

    @property
    def service_names(self) -> Sequence[str]:
        return (
            grpc_service_name(experiment_pb2, "ExperimentService"),
            grpc_service_name(assignment_pb2, "AssignmentService"),
            grpc_service_name(keys_pb2, "ApiKeyService"),
        )

    def register(self, server: grpc.aio.Server) -> None:
        # The hot path first: grpc asks generic handlers in registration order.
        assign_servicer.register(self.assign, server)
        experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(self.experiments, server)
        keys_pb2_grpc.add_ApiKeyServiceServicer_to_server(self.api_keys, server)

    async def start(self) -> None:
        await self.watcher.start()
        self.sink.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        await self.sink.stop()
        await self.sticky.close()
        await self.sender.close()


async def build(resources: Resources, settings: AssignmentSettings) -> AssignmentProcess:
    """The service factory given to `run_service`."""
    return AssignmentProcess(resources, settings)


DEFINITION = ServiceDefinition(
    "assignment", lambda s: s.assignment_port, AssignmentSettings.read, build
)
"""The assignment process, as the service template runs it."""
