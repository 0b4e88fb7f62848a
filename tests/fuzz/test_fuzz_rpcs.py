"""Every RPC of every service, fuzzed through the real servers (assignment, ingest, analysis on
the session's PostgreSQL and Redis), with requests built from the proto descriptors and with raw
corrupted bytes. For each request:

- the answer is never INTERNAL, UNKNOWN or DEADLINE_EXCEEDED (a bound of `CALL_TIMEOUT_S`: no
  input may stall a service), nor UNAVAILABLE (the process stays up);
- a request that fails changes nothing stored (a fingerprint of every table, before and after).

`VERDICT_FUZZ_EXAMPLES` sets the examples per RPC (`make fuzz`: 1,000; `make test`: the default
below). A failure prints the request, shrunk by Hypothesis.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from support.eventually import eventually
from support.processes import RunningService, start_service_process
from support.proto_fuzz import corrupted, request_strategy
from verdict.v1 import analysis_pb2, assignment_pb2, experiment_pb2, ingest_pb2
from verdict_platform.keys import generate_key, hash_key
from verdict_platform.settings import Settings

EXAMPLES = int(os.environ.get("VERDICT_FUZZ_EXAMPLES", "60"))
CALL_TIMEOUT_S = 10.0
FORBIDDEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}
SERVICES = {  # proto module, service, process
    "ExperimentService": (experiment_pb2, "assignment"),
    "AssignmentService": (assignment_pb2, "assignment"),
    "IngestService": (ingest_pb2, "ingest"),
    "AnalysisService": (analysis_pb2, "analysis"),
    "TraceService": (trace_service_pb2, "ingest"),  # OTLP/gRPC spans, served by ingest
}
METHODS = [
    (process, method)
    for module, process in SERVICES.values()
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
FINGERPRINT = """
SELECT (SELECT count(*) || ':' || coalesce(sum(version), 0) || ':' || coalesce(string_agg(
            status, ',' ORDER BY key), '') FROM experiments),
       (SELECT count(*) FROM experiment_versions),
       (SELECT count(*) || ':' || coalesce(max(id), 0) FROM audit_log),
       (SELECT count(*) FROM metrics),
       (SELECT count(*) || ':' || coalesce(md5(string_agg(members::text, ',' ORDER BY key)), '')
        FROM saved_groups),
       (SELECT count(*) || ':' || count(revoked_at) FROM api_keys),
       (SELECT version FROM config_state),
       (SELECT count(*) FROM exposures),
       (SELECT count(*) FROM exposure_conflicts),
       (SELECT count(*) FROM events),
       (SELECT count(*) FROM analysis_snapshots),
       (SELECT count(*) FROM alerts)
"""


class Database:
    """A connection on its own event loop thread, for the synchronous Hypothesis tests."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn: asyncpg.Connection = self.run(asyncpg.connect(url))

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(30)

    def fingerprint(self) -> tuple[Any, ...]:
        return tuple(self.run(self._conn.fetchrow(FINGERPRINT)))

    def close(self) -> None:
        self.run(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        # An unclosed loop (and its self-pipe sockets) is reported by whichever later test
        # happens to collect it, as a ResourceWarning that fails that test.
        self._loop.close()


@dataclass
class Deployment:
    services: dict[str, RunningService]
    channels: dict[str, grpc.Channel]
    metadata: tuple[tuple[str, str], ...]
    db: Database

    def settle(self) -> tuple[Any, ...]:
        """The fingerprint once background writes (exposures from Assign) have landed."""
        last: list[tuple[Any, ...]] = [self.db.fingerprint()]

        def stable() -> bool:
            now = self.db.fingerprint()
            same = now == last[0]
            last[0] = now
            return same

        eventually(stable, timeout=10, interval=0.3)
        return last[0]


def _seed(db: Database) -> None:
    """An experiment (running), a metric and a saved group the fuzzed requests can name."""
    metric = experiment_pb2.Metric(
        key="fuzz-metric",
        type=experiment_pb2.METRIC_TYPE_BINOMIAL,
        source=experiment_pb2.MetricSource(event_name="fuzz.event"),
    )
    experiment = json_format.ParseDict(
        {
            "key": "fuzz-exp",
            "status": "EXPERIMENT_STATUS_RUNNING",
            "coverage": 1,
            "seed": "fuzz-exp",
            "hashAttribute": "id",
            "hashVersion": 2,
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True, "payload": {"m": "a"}},
                {"key": "treatment", "weight": 0.5, "payload": {"m": "b"}},
            ],
            "targeting": {"country": {"$in": ["FR", "DE"]}},
            "metrics": [{"metricKey": "fuzz-metric", "role": "METRIC_ROLE_PRIMARY"}],
            "version": "1",
            "allocationVersion": "1",
        },
        experiment_pb2.Experiment(),
    )

    async def seed() -> None:
        conn = db._conn
        await conn.execute(
            "INSERT INTO metrics (key, spec) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
            metric.key,
            json_format.MessageToJson(metric),
        )
        await conn.execute(
            """INSERT INTO experiments (key, status, spec, started_at)
               VALUES ($1, 'running', $2::jsonb, now()) ON CONFLICT DO NOTHING""",
            experiment.key,
            json_format.MessageToJson(experiment),
        )
        await conn.execute(
            """INSERT INTO saved_groups (key, members) VALUES ('fuzz-group', '["a", 1]')
               ON CONFLICT DO NOTHING"""
        )
        await conn.execute("UPDATE config_state SET version = version + 1")

    db.run(seed())


@pytest.fixture(scope="module")
def deployment(settings: Settings) -> Iterator[Deployment]:
    db = Database(settings.require_database_url())
    key = generate_key()
    db.run(
        db._conn.execute(
            "INSERT INTO api_keys (name, role, key_hash) VALUES ($1, 'admin', $2)",
            f"fuzz-admin-{secrets.token_hex(3)}",
            hash_key(key),
        )
    )
    _seed(db)
    ingest = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
    assignment = start_service_process(
        settings,
        "verdict_assignment",
        "VERDICT_ASSIGNMENT_PORT",
        {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": key},
    )
    analysis = start_service_process(
        settings,
        "verdict_analysis",
        "VERDICT_ANALYSIS_PORT",
        {"VERDICT_ASSIGNMENT_TARGET": assignment.target, "VERDICT_ANALYSIS_INTERVAL": "3600"},
    )
    # The scheduler's first tick analyses fuzz-exp at once; wait for it so that it is not taken
    # for a refused request's write.
    eventually(
        lambda: db.run(
            db._conn.fetchval(
                "SELECT count(*) FROM analysis_snapshots WHERE experiment_key = 'fuzz-exp'"
            )
        )
    )
    services = {"assignment": assignment, "ingest": ingest, "analysis": analysis}
    channels = {name: grpc.insecure_channel(s.target) for name, s in services.items()}
    try:
        yield Deployment(services, channels, (("authorization", f"Bearer {key}"),), db)
    finally:
        for channel in channels.values():
            channel.close()
        for service in services.values():
            service.stop()
        db.close()


def _call(deployment: Deployment, process: str, method: Any, body: bytes) -> grpc.StatusCode:
    """Calls `method` with raw bytes; returns the status code (OK when it answered)."""
    channel = deployment.channels[process]
    path = f"/{method.containing_service.full_name}/{method.name}"
    identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    md = deployment.metadata
    try:
        if not method.client_streaming and not method.server_streaming:
            channel.unary_unary(path, identity, identity)(body, timeout=CALL_TIMEOUT_S, metadata=md)
        elif not method.client_streaming:
            responses = channel.unary_stream(path, identity, identity)(
                body, timeout=CALL_TIMEOUT_S, metadata=md
            )
            _first_or_quiet(responses)
        else:
            responses = channel.stream_stream(path, identity, identity)(
                iter([body]), timeout=CALL_TIMEOUT_S, metadata=md
            )
            for _ in responses:
                pass
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _first_or_quiet(responses: Any) -> None:
    """A watch stream: its first message, or its error; a stream that is simply quiet for a
    second (nothing to send yet) is fine and is cancelled."""
    done = threading.Event()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            next(responses, None)
        except grpc.RpcError as error:
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(1.0):
        responses.cancel()
        done.wait(5)
        return
    if outcome and outcome[0].code() != grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
        raise outcome[0]


ASYNC_WRITES = (7, 8)
"""Fingerprint columns written in the background after an Assign (its exposures)."""


def _check(deployment: Deployment, process: str, method: Any, body: bytes) -> None:
    before = deployment.db.fingerprint()
    code = _call(deployment, process, method, body)
    assert code not in FORBIDDEN, f"{method.full_name} answered {code.name} to {body!r:.300}"
    if code is not grpc.StatusCode.OK:
        after = deployment.db.fingerprint()
        if method.name == "Assign":  # an earlier Assign's exposures may land meanwhile
            before, after = (
                tuple(v for i, v in enumerate(fp) if i not in ASYNC_WRITES)
                for fp in (before, after)
            )
        assert after == before, f"{method.full_name} failed with {code.name} but stored something"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("process", "method"), METHODS, ids=[m.full_name for _, m in METHODS])
def test_no_request_breaks_a_service_or_changes_data_when_refused(
    deployment: Deployment, process: str, method: Any
) -> None:
    deployment.settle()
    strategy = request_strategy(method.input_type).map(lambda m: m.SerializeToString())
    bodies = st.one_of(strategy, strategy.flatmap(corrupted))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies)
    def fuzz(body: bytes) -> None:
        _check(deployment, process, method, body)

    fuzz()
    deployment.settle()
    for name, service in deployment.services.items():
        with grpc.insecure_channel(service.target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
