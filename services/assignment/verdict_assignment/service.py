"""The assignment process: ExperimentService (configuration), ApiKeyService and AssignmentService
(hot path).

Background work: the config watcher (Redis pub/sub plus a database poll) and the exposure
flusher. On a graceful stop the server has already refused new RPCs and finished in-flight ones;
then the watcher stops and the exposure buffer is flushed to ingest.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from verdict.v1 import experiment_pb2_grpc, keys_pb2_grpc
from verdict_assignment import api_keys
from verdict_assignment.assign import servicer as assign_servicer
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.exposures import ExposureSink
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.ingest_client import IngestExposureSender
from verdict_assignment.assign.sticky import CachedExposureStore
from verdict_assignment.assign.store import ConfigStore
from verdict_assignment.assign.watcher import ConfigWatcher
from verdict_platform import redis_conn
from verdict_platform.server import Resources

log = logging.getLogger(__name__)

EXPERIMENT_SERVICE = "verdict.v1.ExperimentService"
CONFIG_POLL_S = 2.0
"""Fallback poll of config_state.version, for when Redis pub/sub is down."""


def _experiment_servicer_factory() -> Callable[[Resources], Any] | None:
    """ExperimentService's factory, when its package provides one."""
    for name in ("verdict_assignment.experiments", "verdict_assignment.experiments.servicer"):
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            log.warning("ExperimentService not available from %s: %s", name, error)
            continue
        factory: Callable[[Resources], Any] | None = getattr(
            module, "build_experiment_servicer", None
        )
        if factory is not None:
            return factory
    log.warning("ExperimentService not available: no build_experiment_servicer")
    return None


class AssignmentProcess:
    """What `run_service` serves in the assignment process."""

    def __init__(self, resources: Resources) -> None:
        settings = resources.settings
        self.holder = SnapshotHolder()
        self.watcher = ConfigWatcher(
            ConfigStore(resources.pool),
            self.holder,
            resources.redis,
            redis_conn.name(settings, redis_conn.CONFIG_CHANNEL),
            poll_s=CONFIG_POLL_S,
        )
        self.sticky = CachedExposureStore(resources.redis, resources.pool, settings.redis_namespace)
        self.sender = IngestExposureSender(settings.ingest_target, settings.service_api_key)
        if settings.service_api_key is None:
            log.warning("VERDICT_SERVICE_API_KEY is not set: ingest will refuse exposures")
        self.sink = ExposureSink(self.sender)
        self.assign = assign_servicer.AssignmentServicer(
            Assigner(self.holder, self.sticky, self.sink), self.holder
        )
        factory = _experiment_servicer_factory()
        self.experiments = factory(resources) if factory is not None else None
        self.api_keys = api_keys.build_api_key_servicer(resources)

    @property
    def service_names(self) -> Sequence[str]:
        names = [assign_servicer.SERVICE_NAME, api_keys.SERVICE_NAME]
        if self.experiments is not None:
            names.insert(0, EXPERIMENT_SERVICE)
        return names

    def register(self, server: grpc.aio.Server) -> None:
        # The hot path first: grpc asks generic handlers in registration order.
        assign_servicer.register(self.assign, server)
        if self.experiments is not None:
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


async def build(resources: Resources) -> AssignmentProcess:
    """The service factory given to `run_service`."""
    return AssignmentProcess(resources)
