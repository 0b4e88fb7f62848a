"""Server bootstrap shared by every service.

The one service template: `run_service(ServiceDefinition)` reads every setting once, resolves the
servers (embedded default or configured URLs), opens the pool, Redis and the key ring, builds the
service, and serves it on a grpc.aio server with the standard health
service (per-service status), server reflection, the auth/error `Guard`, optional TLS/mTLS, and a
graceful stop on SIGTERM/SIGINT: health turns NOT_SERVING, new RPCs are refused, in-flight RPCs get
`grace_period_s` to finish, then the service flushes what it buffers and closes its resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.resources import Resource

from verdict_platform import redis_conn
from verdict_platform.db import create_pool
from verdict_platform.embedded import resolve_servers
from verdict_platform.guard import guarded_server
from verdict_platform.keyring import KeyRing
from verdict_platform.keys import KeyStore
from verdict_platform.logs import configure_logging
from verdict_platform.pubsub import subscribe_forever
from verdict_platform.settings import EnvReader, Settings, load_settings
from verdict_platform.telemetry.catalog import REGISTRY
from verdict_platform.telemetry.export import MetricsEndpoint, serve_metrics
from verdict_platform.telemetry.tracing import RpcTracing, Tracing, configure_tracing

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DRAIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Resources:
    """What the platform opens for a service: settings, database pool, Redis, key ring."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keyring: KeyRing


class Service(Protocol):
    """A service as the bootstrap sees it."""

    @property
    def service_names(self) -> Sequence[str]:
        """Fully qualified gRPC service names, e.g. 'verdict.v1.IngestService'."""
        ...

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicers to the server."""

    async def start(self) -> None:
        """Starts background work (flushers, schedulers, subscriptions)."""

    async def stop(self) -> None:
        """Finishes background work and flushes buffers; the server accepts no more RPCs."""


ServiceFactory = Callable[[Resources], Awaitable[Service]]
S = TypeVar("S")


@dataclass(frozen=True)
class ServiceDefinition(Generic[S]):
    """Everything the template needs to run one service process; each service package defines
    one (`DEFINITION` in its `service` module) and its `__main__` is `run_service(DEFINITION)`."""

    name: str
    """Short name: logs, traces, the launcher ("assignment", "ingest", "analysis")."""
    port: Callable[[Settings], int]
    """Its port among the platform settings."""
    read_settings: Callable[[EnvReader], S]
    """Reads the service's own settings (a frozen dataclass) with the platform's reader."""
    build: Callable[[Resources, S], Awaitable[Service]]
    """Builds the service on the opened resources and its settings."""


def grpc_service_name(module: ModuleType, service: str) -> str:
    """The full name of `service` as its generated descriptor spells it (never a literal),
    e.g. `grpc_service_name(ingest_pb2, "IngestService")`."""
    name: str = module.DESCRIPTOR.services_by_name[service].full_name
    return name


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
    if settings.tls_client_ca_file is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair,
        root_certificates=settings.tls_client_ca_file.read_bytes(),
        require_client_auth=True,
    )


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Channel options: message limits, keepalive, and SO_REUSEPORT only when workers share.
    A response may carry the whole configuration snapshot (bounded by max_snapshot_bytes)."""
    largest = max(MAX_MESSAGE_BYTES, 2 * settings.max_snapshot_bytes)
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", largest),
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


async def open_resources(settings: Settings) -> Resources:
    """Opens the pool, Redis client and key ring (keys loaded)."""
    pool = await create_pool(settings)
    client = redis_conn.connect_redis(settings)
    keyring = KeyRing(KeyStore(pool), settings.key_refresh_s)
    await keyring.load()
    return Resources(settings, pool, client, keyring)


async def close_resources(resources: Resources) -> None:
    """Closes what `open_resources` opened."""
    await resources.keyring.close()
    await resources.redis.aclose()
    await resources.pool.close()


async def serve(
    settings: Settings,
    name: str,
    port: int,
    factory: ServiceFactory,
    stop_event: asyncio.Event | None = None,
    tracing: RpcTracing | None = None,
) -> None:
    """Serves one service until SIGTERM/SIGINT (or `stop_event`), then stops gracefully; with
    `tracing`, sampled calls get server spans."""
    resources = await open_resources(settings)
    keys_task = asyncio.create_task(
        subscribe_forever(
            resources.redis,
            redis_conn.name(settings, redis_conn.KEYS_CHANNEL),
            lambda _msg: _changed(resources.keyring),
        ),
        name="keys-subscription",
    )
    resources.keyring.start()
    service = await factory(resources)

    server = guarded_server(
        resources.keyring, settings.request_limits(), tracing, options=server_options(settings)
    )
    service.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service.service_names)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{settings.host}:{port}"
    credentials = _credentials(settings)
    bound = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    if bound == 0:
        raise OSError(f"could not bind {address}")

    await service.start()
    await server.start()
    # What exists now (modules, the loaded configuration) lives as long as the process: keep it
    # out of every later collection's scan. The collection thresholds stay the default: larger
    # ones (10,000 allocations) made each young collection pause the server for several ms under
    # load (the RPCs in flight are traversed each time) for no saving in total GC time.
    gc.collect()
    gc.freeze()
    serving = health_pb2.HealthCheckResponse.SERVING
    for service_name in ["", *names]:
        await health_servicer.set(service_name, serving)
    log.info("serving", extra={"service": name, "address": address, "services": names})

    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("stopping", extra={"grace_period_s": settings.grace_period_s})
    await health_servicer.enter_graceful_shutdown()
    # Keep accepting RPCs for a moment while health says NOT_SERVING, so that load balancers and
    # health checkers notice and route elsewhere before new RPCs are refused.
    await asyncio.sleep(min(DRAIN_DELAY_S, settings.grace_period_s / 4))
    await server.stop(settings.grace_period_s)
    await service.stop()
    keys_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keys_task
    await close_resources(resources)
    log.info("stopped")


async def _changed(keyring: KeyRing) -> None:
    keyring.changed()


def run_service(definition: ServiceDefinition[Any]) -> None:
    """Entry point of every service process: all settings read once (the platform's and the
    service's own: a bad value stops the process here, naming the variable), logging, tracing,
    metrics on `/metrics`, then `serve` until SIGTERM/SIGINT; pending spans are exported last."""
    reader = EnvReader()
    platform_settings = load_settings(reader)
    own = definition.read_settings(reader)
    settings = resolve_servers(platform_settings)
    configure_logging(settings, definition.name)
    tracing = configure_tracing(settings, definition.name)
    metrics = _serve_metrics(settings, definition)

    async def factory(resources: Resources) -> Service:
        return await definition.build(resources, own)

    try:
        asyncio.run(
            serve(
                settings,
                definition.name,
                definition.port(settings),
                factory,
                tracing=tracing.rpc() if tracing is not None else None,
            )
        )
    finally:
        _shutdown(tracing, metrics)


def _serve_metrics(
    settings: Settings, definition: ServiceDefinition[Any]
) -> MetricsEndpoint | None:
    port = settings.metrics_port(definition.name)
    if port == 0:
        return None
    resource = Resource.create({"service.name": f"verdict-{definition.name}"})
    variable = f"VERDICT_{definition.name.upper()}_METRICS_PORT"
    endpoint = serve_metrics(settings, REGISTRY, resource, port, variable)
    log.info("metrics", extra={"address": f"{settings.host}:{port}", "path": "/metrics"})
    return endpoint


def _shutdown(tracing: Tracing | None, metrics: MetricsEndpoint | None) -> None:
    if metrics is not None:
        metrics.close()
    if tracing is not None:
        tracing.shutdown()
