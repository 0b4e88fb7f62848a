"""ExperimentService on an in-process grpc.aio server with the platform's Guard, for tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis
from google.protobuf import json_format
from grpc_status import rpc_status

from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_assignment.experiments.servicer import build_experiment_servicer
from verdict_platform.guard import guarded_server
from verdict_platform.keyring import KeyRing
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.server import Resources
from verdict_platform.settings import Settings
from verdict_platform.status import field_violations, precondition_violations

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Client:
    """A stub on the test server and the credentials of an admin, a reader and a QA key."""

    stub: experiment_pb2_grpc.ExperimentServiceStub
    admin: Metadata
    reader: Metadata
    admin_name: str
    qa: Metadata


@asynccontextmanager
async def serving(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Client]:
    """Serves ExperimentService on a free port until the block exits."""
    admin, reader, qa = (
        await make_key(Role.ADMIN),
        await make_key(Role.READ),
        await make_key(Role.QA),
    )
    keyring = KeyRing(KeyStore(pool), 0.5)
    await keyring.load()
    servicer = build_experiment_servicer(Resources(settings, pool, redis_client, keyring))
    server = guarded_server(keyring)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Client(
                stub=experiment_pb2_grpc.ExperimentServiceStub(channel),
                admin=(("authorization", f"Bearer {admin}"),),
                reader=(("authorization", f"Bearer {reader}"),),
                admin_name=keyring.authenticate(f"Bearer {admin}").name,
                qa=(("authorization", f"Bearer {qa}"),),
            )
    finally:
        await server.stop(None)


def unique(prefix: str) -> str:
    """A key no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def experiment(key: str, **spec: Any) -> experiment_pb2.Experiment:
    """A valid two-variant experiment; `spec` overrides top-level JSON fields."""
    base: dict[str, Any] = {
        "key": key,
        "name": "Prompt v7 against v6",
        "variants": [
            {"key": "control", "weight": 0.5, "isControl": True, "payload": {"model": "m0"}},
            {"key": "v7", "weight": 0.5, "payload": {"model": "m1", "temperature": 0.2}},
        ],
        "coverage": 1.0,
    }
    base.update(spec)
    return json_format.ParseDict(base, experiment_pb2.Experiment())


async def failure(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    """Awaits a call expected to fail: its status code and BadRequest field violations."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = await rpc_status.aio.from_call(call)
        return error.code(), ({} if status is None else field_violations(status))
    raise AssertionError("the call succeeded")


async def precondition_failure(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    """Awaits a call expected to fail: its status code and the fields its PreconditionFailure
    details name."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = await rpc_status.aio.from_call(call)
        return error.code(), ({} if status is None else precondition_violations(status))
    raise AssertionError("the call succeeded")
