"""The Guard on a real in-process gRPC server: keys, roles, and the error mapping as a client sees
it (a domain validation error arrives as INVALID_ARGUMENT with the field in BadRequest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_status import rpc_status
from redis import exceptions as redis_errors

from verdict.v1 import experiment_pb2, experiment_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from verdict_platform.errors import FailedPrecondition, FieldViolation, InvalidArgument, Unavailable
from verdict_platform.guard import (
    Guard,
    _CallDetails,
    _GuardedGenericHandler,
    current_principal,
    guarded_server,
)
from verdict_platform.keyring import KeyRing
from verdict_platform.keys import hash_key
from verdict_platform.roles import Role
from verdict_platform.status import field_violations

KEYS = {"admin-key": ("ops", Role.ADMIN), "read-key": ("dashboard", Role.READ)}


class FakeDirectory:
    async def active_hashes(self) -> dict[bytes, tuple[str, Role]]:
        return {hash_key(k): v for k, v in KEYS.items()}


class ScriptedExperiments(experiment_pb2_grpc.ExperimentServiceServicer):
    """Raises a chosen domain error depending on the experiment key asked for."""

    async def GetExperiment(self, request: Any, context: Any) -> Any:
        if request.key == "invalid":
            raise InvalidArgument(
                [
                    FieldViolation("experiment.variants[1].weight", "must be in [0, 1]"),
                    FieldViolation("experiment.key", "must be a slug"),
                ]
            )
        if request.key == "running":
            raise FailedPrecondition("variants cannot change while running")
        if request.key == "db-down":
            raise Unavailable("database unavailable")
        if request.key == "pg-gone":
            raise ConnectionRefusedError("connection refused by 10.0.0.5:5432")
        if request.key == "redis-gone":
            raise redis_errors.ConnectionError("Error 111 connecting")
        if request.key == "bug":
            raise ZeroDivisionError("secret internals")
        return experiment_pb2.GetExperimentResponse(
            experiment=experiment_pb2.Experiment(key=request.key, name=current_principal().name)
        )


@pytest_asyncio.fixture(loop_scope="session")
async def stub() -> AsyncIterator[experiment_pb2_grpc.ExperimentServiceStub]:
    keyring = KeyRing(FakeDirectory(), refresh_s=60)
    await keyring.load()
    server = guarded_server(keyring)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(ScriptedExperiments(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield experiment_pb2_grpc.ExperimentServiceStub(channel)
    await server.stop(None)


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


async def error_of(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    status = await rpc_status.aio.from_call(call)
    violations = field_violations(status) if status is not None else {}
    return err.value.code(), err.value.details() or "", violations


pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_validation_error_reaches_client_with_field_violations(stub: Any) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="invalid"), metadata=bearer("read-key")
    )
    code, _, violations = await error_of(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert violations == {
        "experiment.variants[1].weight": "must be in [0, 1]",
        "experiment.key": "must be a slug",
    }


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("running", grpc.StatusCode.FAILED_PRECONDITION),
        ("db-down", grpc.StatusCode.UNAVAILABLE),
        ("pg-gone", grpc.StatusCode.UNAVAILABLE),
        ("redis-gone", grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_domain_errors_map_to_their_codes(stub: Any, key: str, code: grpc.StatusCode) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=key), metadata=bearer("admin-key")
    )
    assert (await error_of(call))[0] is code


async def test_unexpected_error_is_internal_without_leaking_details(stub: Any) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="bug"), metadata=bearer("admin-key")
    )
    code, message, _ = await error_of(call)
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message


async def test_missing_key_is_unauthenticated(stub: Any) -> None:
    call = stub.GetExperiment(experiment_pb2.GetExperimentRequest(key="x"))
    assert (await error_of(call))[0] is grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_key_is_unauthenticated(stub: Any) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="x"), metadata=bearer("forged")
    )
    assert (await error_of(call))[0] is grpc.StatusCode.UNAUTHENTICATED


async def test_role_without_the_rpc_is_permission_denied(stub: Any) -> None:
    request = experiment_pb2.CreateExperimentRequest()
    call = stub.CreateExperiment(request, metadata=bearer("read-key"))
    code, message, _ = await error_of(call)
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert "dashboard" in message


async def test_handler_sees_the_callers_key_name(stub: Any) -> None:
    reply = await stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="x"), metadata=bearer("admin-key")
    )
    assert reply.experiment.name == "ops"


async def test_concurrent_calls_each_see_their_own_key(stub: Any) -> None:
    """The key noted at handler lookup belongs to the call: interleaved calls never mix them."""
    keys = ["admin-key", None, "read-key", "forged"] * 25

    async def one(key: str | None) -> str:
        metadata = bearer(key) if key is not None else None
        call = stub.GetExperiment(experiment_pb2.GetExperimentRequest(key="x"), metadata=metadata)
        try:
            return (await call).experiment.name
        except grpc.aio.AioRpcError as err:
            return err.code().name

    names = await asyncio.gather(*(one(k) for k in keys))
    expected = {"admin-key": "ops", None: "UNAUTHENTICATED", "read-key": "dashboard",
                "forged": "UNAUTHENTICATED"}  # fmt: skip
    assert names == [expected[k] for k in keys]


class StubContext:
    def __init__(self, authorization: str | None) -> None:
        self.metadata = () if authorization is None else (("authorization", authorization),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise grpc.aio.AbortError(code.name)


async def test_a_key_noted_in_another_task_is_not_used() -> None:
    """A task started by the one that looked the handler up inherits its context, noted key
    included; the guard must read that task's own call metadata instead."""
    keyring = KeyRing(FakeDirectory(), refresh_s=60)
    await keyring.load()
    guarded = _GuardedGenericHandler(
        grpc.method_handlers_generic_handler(
            "verdict.v1.ExperimentService",
            {
                "GetExperiment": grpc.unary_unary_rpc_method_handler(
                    ScriptedExperiments().GetExperiment
                )
            },
        ),
        Guard(keyring),
    )
    method = "/verdict.v1.ExperimentService/GetExperiment"
    handler = guarded.service(_CallDetails(method, bearer("admin-key")))
    request = experiment_pb2.GetExperimentRequest(key="x")
    # Same task as the lookup: the noted key serves, whatever the context says.
    reply = await handler.unary_unary(request, StubContext(None))
    assert reply.experiment.name == "ops"
    # Another task, same inherited context: its own metadata decides.
    with pytest.raises(grpc.aio.AbortError, match="UNAUTHENTICATED"):
        await asyncio.create_task(handler.unary_unary(request, StubContext(None)))
    other = await asyncio.create_task(handler.unary_unary(request, StubContext("Bearer read-key")))
    assert other.experiment.name == "dashboard"


class RecordingServer:
    """Stands in for grpc.aio.Server: records which registration calls reach it."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered.append(service)


class Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _guarded_recording(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, RecordingServer]:
    inner = RecordingServer()
    monkeypatch.setattr(grpc.aio, "server", lambda **kw: inner)
    return guarded_server(KeyRing(FakeDirectory(), 60)), inner


async def test_guard_serves_registered_methods_through_generic_handlers_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, inner = _guarded_recording(monkeypatch)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(ScriptedExperiments(), server)
    assert inner.registered == []  # grpc's registered methods cost every call (guard.py)
    assert len(inner.generic) == 1  # the generated code's generic handler, not a second copy
    method = "/verdict.v1.ExperimentService/GetExperiment"
    assert inner.generic[0].service(Details(method)) is not None


async def test_guard_registers_a_service_added_only_as_registered_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, inner = _guarded_recording(monkeypatch)

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    server.add_registered_method_handlers("test.Echo", handlers)
    assert inner.registered == [] and len(inner.generic) == 1
    assert inner.generic[0].service(Details("/test.Echo/Echo")) is not None
    assert inner.generic[0].service(Details("/test.Other/Echo")) is None


async def test_a_request_over_the_limits_is_refused_at_the_door(stub: Any) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="k" * 300), metadata=bearer("read-key")
    )
    code, _, violations = await error_of(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations) == ["key"] and "300 bytes" in violations["key"]


async def test_a_nul_is_refused_before_the_handler_runs(stub: Any) -> None:
    call = stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="bug\x00"), metadata=bearer("read-key")
    )
    code, _, violations = await error_of(call)  # "bug" would be INTERNAL had it run
    assert code is grpc.StatusCode.INVALID_ARGUMENT and list(violations) == ["key"]


MALFORMED = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, length beyond the bytes


class EchoIngest(ingest_pb2_grpc.IngestServiceServicer):
    async def StreamEvents(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield ingest_pb2.StreamEventsResponse(batch_id=request.batch_id)


async def test_malformed_bytes_are_invalid_argument_not_unknown() -> None:
    keyring = KeyRing(FakeDirectory(), refresh_s=60)
    await keyring.load()
    server = guarded_server(keyring)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(ScriptedExperiments(), server)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(EchoIngest(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw = channel.unary_unary(
                "/verdict.v1.ExperimentService/GetExperiment",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            code, _, violations = await error_of(raw(MALFORMED, metadata=bearer("read-key")))
            assert code is grpc.StatusCode.INVALID_ARGUMENT and list(violations) == ["request"]

            stream = channel.stream_stream(
                "/verdict.v1.IngestService/StreamEvents",
                request_serializer=lambda b: b,
                response_deserializer=ingest_pb2.StreamEventsResponse.FromString,
            )
            good = ingest_pb2.StreamEventsRequest(batch_id="b1").SerializeToString()
            call = stream(iter([good, MALFORMED]), metadata=bearer("admin-key"))
            first = await call.read()
            assert first.batch_id == "b1"  # the batch before the bad bytes is answered
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(None)
