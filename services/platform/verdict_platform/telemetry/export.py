"""Binds the plain instruments (`catalog.REGISTRY`) to OpenTelemetry's metrics SDK, and serves
them to Prometheus on `/metrics`.

Counters and gauges become observable instruments of the process's meter (callbacks that copy
the plain values at collection). Histograms are aggregated already (`instruments`), so the
readers here add them to what the SDK collected as histogram points: a `MetricReader` subclass
receives each collection in `_receive_metrics`, the SDK's documented extension point. The
Prometheus reader serves its own registry over HTTP (a daemon thread of `prometheus_client`),
over TLS when the service serves TLS (the same certificate; client certificates required when
VERDICT_TLS_CLIENT_CA_FILE is set, as for gRPC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, start_http_server

from verdict_platform.settings import Settings
from verdict_platform.telemetry.instruments import Labels, Reading, Registry

SCOPE = InstrumentationScope("verdict")


def _observations(labels: Labels, values: Iterable[tuple[Labels, float]]) -> list[Observation]:
    return [Observation(value, dict(zip(labels, key, strict=True))) for key, value in values]


def _callback(labels: Labels, read: Reading) -> Any:
    def observe(_options: CallbackOptions) -> list[Observation]:
        return _observations(labels, read())

    return observe


def bind(registry: Registry, meter: Meter) -> None:
    """Creates an observable instrument on `meter` for each counter and gauge of `registry`."""
    for counter in registry.counters:
        meter.create_observable_counter(
            counter.name,
            [_callback(counter.labels, counter.values)],
            unit=counter.unit,
            description=counter.description,
        )
    for counter, read in registry.derived:
        meter.create_observable_counter(
            counter.name,
            [_callback(counter.labels, read)],
            unit=counter.unit,
            description=counter.description,
        )
    for gauge in registry.gauges:
        meter.create_observable_gauge(
            gauge.name,
            [_callback(gauge.labels, gauge.values)],
            unit=gauge.unit,
            description=gauge.description,
        )


def histogram_metrics(registry: Registry) -> list[Metric]:
    """Every histogram of `registry` with at least one series, as SDK metric data."""
    now = time.time_ns()
    metrics = []
    for histogram in registry.histograms:
        points = [
            HistogramDataPoint(
                attributes=dict(zip(histogram.labels, view.labels, strict=True)),
                start_time_unix_nano=registry.started_ns,
                time_unix_nano=now,
                count=view.count,
                sum=view.sum,
                bucket_counts=view.counts,
                explicit_bounds=histogram.bounds,
                min=math.nan,  # not kept (see instruments.Series); Prometheus does not use them
                max=math.nan,
            )
            for view in histogram.views()
        ]
        if points:
            data = Histogram(points, AggregationTemporality.CUMULATIVE)
            metrics.append(Metric(histogram.name, histogram.description, histogram.unit, data))
    return metrics


def with_histograms(
    data: MetricsData | None, registry: Registry, resource: Resource
) -> MetricsData:
    """`data` (one collection of the SDK) with the histograms of `registry` added."""
    scope = ScopeMetrics(SCOPE, histogram_metrics(registry), "")
    if data is None or not data.resource_metrics:
        return MetricsData([ResourceMetrics(resource, [scope], "")])
    first, *rest = data.resource_metrics
    merged = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
    return MetricsData([merged, *rest])


class InMemoryReader(InMemoryMetricReader):
    """The SDK's in-memory reader, with the registry's histograms (tests read metrics here)."""

    def __init__(self, registry: Registry, resource: Resource) -> None:
        super().__init__()
        self._instruments = registry
        self._resource = resource

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(
            with_histograms(metrics_data, self._instruments, self._resource), timeout_millis
        )


class PrometheusReader(PrometheusMetricReader):
    """The Prometheus exporter's reader on a private registry, with the registry's histograms."""

    def __init__(self, registry: Registry, resource: Resource) -> None:
        self.prometheus_registry = CollectorRegistry(auto_describe=False)
        super().__init__(scope_info_enabled=False, registry=self.prometheus_registry)
        self._instruments = registry
        self._resource = resource

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(
            with_histograms(metrics_data, self._instruments, self._resource), timeout_millis
        )


def meter_provider(
    registry: Registry, resource: Resource, readers: Sequence[MetricReader]
) -> MeterProvider:
    """A meter provider with `readers` on which every instrument of `registry` is observed."""
    provider = MeterProvider(metric_readers=list(readers), resource=resource)
    bind(registry, provider.get_meter(SCOPE.name))
    return provider


class MetricsEndpoint:
    """`/metrics` of one process: the Prometheus reader, its HTTP server and thread."""

    def __init__(self, provider: MeterProvider, server: WSGIServer, port: int) -> None:
        self.provider = provider
        self._server = server
        self.port = port
        """The port it listens on."""

    def close(self) -> None:
        """Stops serving and shuts the meter provider down."""
        self._server.shutdown()
        self._server.server_close()
        self.provider.shutdown()


def serve_metrics(
    settings: Settings, registry: Registry, resource: Resource, port: int, variable: str
) -> MetricsEndpoint:
    """Serves `registry` on http(s)://host:port/metrics; OSError naming `variable` when the port
    cannot be bound."""
    reader = PrometheusReader(registry, resource)
    provider = meter_provider(registry, resource, [reader])
    tls: dict[str, Any] = {}
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = {"certfile": str(settings.tls_cert_file), "keyfile": str(settings.tls_key_file)}
        if settings.tls_client_ca_file is not None:
            tls.update(client_cafile=str(settings.tls_client_ca_file), client_auth_required=True)
    try:
        server, _thread = start_http_server(
            port, settings.host, registry=reader.prometheus_registry, **tls
        )
    except OSError as error:
        provider.shutdown()
        where = f"{settings.host}:{port} ({variable})"
        raise OSError(f"could not serve metrics on {where}: {error}") from error
    return MetricsEndpoint(provider, server, port)
