"""The analysis process as the platform runs it: wiring, the scheduler, the results signals."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from verdict.v1 import analysis_pb2, analysis_pb2_grpc
from verdict_analysis.alert_delivery import AlertDelivery
from verdict_analysis.alert_store import PostgresAlertLog
from verdict_analysis.analyzer import Analyzer, utc_now
from verdict_analysis.catalog_reader import ExperimentCatalog
from verdict_analysis.exposure_timeline import PostgresExposureCounts
from verdict_analysis.grpc_stopper import GrpcStopper
from verdict_analysis.results_reader import Results
from verdict_analysis.results_signals import RedisResultsPublisher, ResultsSignals
from verdict_analysis.scheduler import Scheduler
from verdict_analysis.servicer import AnalysisServicer
from verdict_analysis.settings import AnalysisSettings
from verdict_analysis.snapshot_store import SnapshotStore
from verdict_analysis.stats_reader import DatabaseLocks
from verdict_analysis.webhook_sender import WebhookSender
from verdict_platform.server import Resources, ServiceDefinition, grpc_service_name


class AnalysisService:
    """AnalysisService: the servicer, the scheduler and the results subscription."""

    def __init__(self, resources: Resources, own: AnalysisSettings) -> None:
        settings = resources.settings
        catalog = ExperimentCatalog(resources.pool)
        snapshots = SnapshotStore(resources.pool)
        self._stopper = GrpcStopper(
            settings.assignment_target, settings.service_api_key, settings.channel_security()
        )
        webhook = own.alert_webhook_url
        alerts = PostgresAlertLog(resources.pool, deliver=webhook is not None)
        self._delivery = (
            AlertDelivery(alerts, WebhookSender(webhook), utc_now) if webhook is not None else None
        )
        analyzer = Analyzer(
            catalog,
            DatabaseLocks(resources.pool),
            snapshots,
            RedisResultsPublisher(resources.redis, settings),
            self._stopper,
            alerts,
            alert_raised=self._delivery.nudge if self._delivery is not None else lambda: None,
        )
        self._signals = ResultsSignals(resources.redis, settings)
        self._scheduler = Scheduler(analyzer, catalog, own.interval_s)
        results = Results(
            catalog, snapshots, self._signals, PostgresExposureCounts(resources.pool), alerts
        )
        self._servicer = AnalysisServicer(analyzer, results)

    @property
    def service_names(self) -> Sequence[str]:
        """The gRPC service this process serves."""
        return (grpc_service_name(analysis_pb2, "AnalysisService"),)

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicer to the server."""
        analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Subscribes to the results channel and starts the scheduler."""
        self._signals.start()
        self._scheduler.start()
        if self._delivery is not None:
            self._delivery.start()

    async def stop(self) -> None:
        """Stops the scheduler and the subscription, closes the channel to ExperimentService."""
        await self._scheduler.stop()
        if self._delivery is not None:
            await self._delivery.stop()
        await self._signals.stop()
        await self._stopper.close()


async def build(resources: Resources, settings: AnalysisSettings) -> AnalysisService:
    """The service factory `run_service` calls."""
    return AnalysisService(resources, settings)


DEFINITION = ServiceDefinition("analysis", lambda s: s.analysis_port, AnalysisSettings.read, build)
"""The analysis process, as the service template runs it."""
