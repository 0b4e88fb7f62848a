"""The adversarial inputs of the hardening review, each a named regression test through the real
services: none may stall, break or silently lose, and each gets a clear INVALID_ARGUMENT (or is
counted as rejected) naming the field."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from google.protobuf import json_format
from grpc_status import rpc_status

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict import LocalEvaluator
from verdict.v1 import (
    analysis_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings
from verdict_platform.status import field_violations

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Suite:
    assignment: RunningService
    ingest: RunningService
    analysis: RunningService
    admin: tuple[tuple[str, str], ...]
    admin_key: str
    channels: list[grpc.aio.Channel]

    @property
    def experiments(self) -> experiment_pb2_grpc.ExperimentServiceStub:
        return experiment_pb2_grpc.ExperimentServiceStub(self.channels[0])

    @property
    def events(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self.channels[1])

    @property
    def analyses(self) -> analysis_pb2_grpc.AnalysisServiceStub:
        return analysis_pb2_grpc.AnalysisServiceStub(self.channels[2])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def suite(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[Suite]:
    key = await KeyStore(pool).create(f"hardening-{secrets.token_hex(3)}", Role.ADMIN)
    await redis_client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
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
    channels = [grpc.aio.insecure_channel(s.target) for s in (assignment, ingest, analysis)]
    try:
        yield Suite(
            assignment, ingest, analysis, (("authorization", f"Bearer {key}"),), key, channels
        )
    finally:
        for channel in channels:
            await channel.close()
        for service in (analysis, assignment, ingest):
            service.stop()


async def _refused(call: object) -> dict[str, str]:
    """The field violations of a call that must fail with INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    status = await rpc_status.aio.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    return field_violations(status)


def _experiment(key: str, **fields: object) -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": key,
            "name": key,
            "coverage": 1,
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True, "payload": {"model": "a"}},
                {"key": "v1", "weight": 0.5, "payload": {"model": "b"}},
            ],
            **fields,
        },
        experiment_pb2.Experiment(),
    )


async def test_a_ten_megabyte_description_is_refused_and_listing_still_works(suite: Suite) -> None:
    key = f"huge-{secrets.token_hex(3)}"
    violations = await _refused(
        suite.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(
                experiment=_experiment(key, description="x" * 10_000_000)
            ),
            metadata=suite.admin,
        )
    )
    assert list(violations) == ["experiment.description"]
    listed = await suite.experiments.ListExperiments(
        experiment_pb2.ListExperimentsRequest(), metadata=suite.admin
    )
    assert key not in [e.key for e in listed.experiments]
    audit = await suite.experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(), metadata=suite.admin
    )
    assert all(e.experiment_key != key for e in audit.audit_events)


async def test_a_condition_nested_twenty_levels_is_refused_and_the_audit_log_stays_readable(
    suite: Suite,
) -> None:
    condition: dict[str, object] = {"plan": "pro"}
    for _ in range(20):
        condition = {"$not": condition}
    key = f"deep-{secrets.token_hex(3)}"
    violations = await _refused(
        suite.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(
                experiment=_experiment(key, targeting=condition)
            ),
            metadata=suite.admin,
        )
    )
    assert all(field.startswith("experiment.targeting") for field in violations)
    audit = await suite.experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(), metadata=suite.admin
    )
    assert audit.audit_events is not None  # read back without INTERNAL


def _nested_struct_bytes(levels: int) -> bytes:
    """A Struct nested `levels` deep, as raw protobuf bytes (no client library builds it)."""

    def length_delimited(field_number: int, body: bytes) -> bytes:
        size, out = len(body), bytearray()
        while True:
            byte = size & 0x7F
            size >>= 7
            out.append(byte | (0x80 if size else 0))
            if not size:
                break
        return bytes([(field_number << 3) | 2]) + bytes(out) + body

    struct = b""
    for _ in range(levels):
        value = length_delimited(5, struct)  # Value.struct_value
        entry = length_delimited(1, b"a") + length_delimited(2, value)  # key, value
        struct = length_delimited(1, entry)  # Struct.fields
    return struct


async def test_nesting_beyond_protobufs_own_limit_is_invalid_argument_not_unknown(
    suite: Suite,
) -> None:
    targeting = _nested_struct_bytes(60)
    experiment = b"\x0a\x04deep" + bytes([8 << 3 | 2]) + _varint(len(targeting)) + targeting
    request = bytes([1 << 3 | 2]) + _varint(len(experiment)) + experiment
    raw = suite.channels[0].unary_unary(
        "/verdict.v1.ExperimentService/CreateExperiment",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    violations = await _refused(raw(request, metadata=suite.admin))
    assert list(violations) == ["request"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def test_a_nul_in_an_experiment_name_is_refused(suite: Suite) -> None:
    violations = await _refused(
        suite.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(
                experiment=_experiment(f"nul-{secrets.token_hex(3)}", name="a\x00b")
            ),
            metadata=suite.admin,
        )
    )
    assert list(violations) == ["experiment.name"]


async def test_malformed_bytes_are_invalid_argument_on_every_service(suite: Suite) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f"
    for channel, method in [
        (suite.channels[0], "/verdict.v1.ExperimentService/CreateExperiment"),
        (suite.channels[0], "/verdict.v1.AssignmentService/GetConfigSnapshot"),
        (suite.channels[1], "/verdict.v1.IngestService/TrackEvents"),
        (suite.channels[2], "/verdict.v1.AnalysisService/CalculateSampleSize"),
    ]:
        raw = channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        violations = await _refused(raw(garbage, metadata=suite.admin))
        assert list(violations) == ["request"], method


async def test_a_timestamp_with_out_of_range_nanos_is_refused(suite: Suite) -> None:
    experiment = _experiment(f"nanos-{secrets.token_hex(3)}")
    experiment.schedule.start_time.seconds = 1_900_000_000
    experiment.schedule.start_time.nanos = 1_999_999_999
    violations = await _refused(
        suite.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment), metadata=suite.admin
        )
    )
    assert list(violations) == ["experiment.schedule.start_time"]
    event = ingest_pb2.Event(
        event_id="0b6e4f5c-8a2b-4d3e-9f10-112233445566", unit_id="u", name="llm.call"
    )
    event.timestamp.GetCurrentTime()
    event.timestamp.nanos = 1_999_999_999
    reply = await suite.events.TrackEvents(
        ingest_pb2.TrackEventsRequest(request_id="r", events=[event]), metadata=suite.admin
    )
    assert (reply.accepted, reply.rejected) == (0, 1)
    assert reply.rejections[0].field == "timestamp"


async def test_exposures_for_unknown_experiments_are_counted_as_rejected(suite: Suite) -> None:
    exposure = ingest_pb2.Exposure(
        experiment_key="nobody-made-this", variant_key="control", unit_id="u1"
    )
    exposure.timestamp.GetCurrentTime()
    reply = await suite.events.TrackExposures(
        ingest_pb2.TrackExposuresRequest(request_id="r", exposures=[exposure]),
        metadata=suite.admin,
    )
    assert (reply.accepted, reply.rejected) == (0, 1)
    assert reply.rejections[0].field == "experiment_key"


async def test_the_snapshot_stays_small_and_a_local_evaluator_starts(suite: Suite) -> None:
    key = f"local-{secrets.token_hex(3)}"
    spec = _experiment(key, description="d" * 16_000, hypothesis="h" * 4_000)
    await suite.experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=suite.admin
    )
    await suite.experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key), metadata=suite.admin
    )
    local = LocalEvaluator(suite.assignment.target, suite.admin_key)
    try:
        await local.start()
        await eventually_async(lambda: key in {a.experiment_key for a in local.assign("u1")})
    finally:
        await local.close()
