"""The analysis process as the platform runs it: wiring, the scheduler, the results signals."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from verdict.v1 import analysis_pb2_grpc
from verdict_analysis.alerts import WebhookAlerter
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.catalog import ExperimentCatalog
from verdict_analysis.collector import DatabaseLocks
from verdict_analysis.results import Results
from verdict_analysis.results_channel import RedisResultsPublisher, ResultsSignals
from verdict_analysis.scheduler import Scheduler
from verdict_analysis.servicer import AnalysisServicer
from verdict_analysis.snapshots import SnapshotStore
from verdict_analysis.stopper import GrpcStopper
from verdict_platform.server import Resources


class AnalysisService:
    """AnalysisService: the servicer, the scheduler and the results subscription."""

    def __init__(self, resources: Resources) -> None:
        settings = resources.settings
        catalog = ExperimentCatalog(resources.pool)
        snapshots = SnapshotStore(resources.pool)
        self._stopper = GrpcStopper(settings.assignment_target, settings.service_api_key)
        analyzer = Analyzer(
            catalog,
            DatabaseLocks(resources.pool),
            snapshots,
            RedisResultsPublisher(resources.redis, settings),
            self._stopper,
            WebhookAlerter(settings.alert_webhook_url),
        )
        self._signals = ResultsSignals(resources.redis, settings)
        self._scheduler = Scheduler(analyzer, catalog, settings.analysis_interval_s)
        self._servicer = AnalysisServicer(analyzer, Results(catalog, snapshots, self._signals))

    @property
    def service_names(self) -> Sequence[str]:
        """The gRPC service this process serves."""
        return ("verdict.v1.AnalysisService",)

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicer to the server."""
        analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Subscribes to the results channel and starts the scheduler."""
        self._signals.start()
        self._scheduler.start()

    async def stop(self) -> None:
        """Stops the scheduler and the subscription, closes the channel to ExperimentService."""
        await self._scheduler.stop()
        await self._signals.stop()
        await self._stopper.close()


async def build(resources: Resources) -> AnalysisService:
    """The service factory `run_service` calls."""
    return AnalysisService(resources)
