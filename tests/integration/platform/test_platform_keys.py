"""API keys on the real PostgreSQL and Redis: stored hashed, listed without secrets, and a key
revoked with the CLI is refused by a running server."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from typing import Any

import asyncpg
import grpc
import pytest

from support.processes import service_env
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform import redis_conn
from verdict_platform.guard import guarded_server
from verdict_platform.keyring import KeyRing
from verdict_platform.keys import KeyStore
from verdict_platform.pubsub import subscribe_forever
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_keys_are_stored_hashed_never_in_clear(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    done = cli(settings, "keys", "create", "--role", "read", "--name", "hash-check")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("vdk_") and len(key) > 40
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE name = 'hash-check'")
    assert bytes(row["key_hash"]) == hashlib.sha256(key.encode()).digest()
    for value in row.values():
        assert key not in str(value)
    listing = cli(settings, "keys", "list")
    assert "hash-check\tread" in listing.stdout
    assert key not in listing.stdout


async def test_invalid_role_is_refused(settings: Settings) -> None:
    done = cli(settings, "keys", "create", "--role", "root", "--name", "bad-role")
    assert done.returncode != 0
    assert "role" in done.stderr


class Echo(experiment_pb2_grpc.ExperimentServiceServicer):
    async def GetExperiment(self, request: Any, context: Any) -> Any:
        return experiment_pb2.GetExperimentResponse(
            experiment=experiment_pb2.Experiment(key=request.key)
        )


async def test_revoked_key_is_refused(
    settings: Settings, pool: asyncpg.Pool, redis_client: Any
) -> None:
    keyring = KeyRing(
        KeyStore(pool), refresh_s=30
    )  # long period: the Redis announcement must do it
    await keyring.load()
    keyring.start()
    listener = asyncio.create_task(
        subscribe_forever(
            redis_client,
            redis_conn.name(settings, redis_conn.KEYS_CHANNEL),
            lambda _m: asyncio.sleep(0, keyring.changed()),
        )
    )
    channel_name = redis_conn.name(settings, redis_conn.KEYS_CHANNEL)
    for _ in range(100):
        if (await redis_client.pubsub_numsub(channel_name))[0][1] > 0:
            break
        await asyncio.sleep(0.02)
    server = guarded_server(keyring)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        done = await asyncio.to_thread(
            cli, settings, "keys", "create", "--role", "read", "--name", "to-revoke"
        )
        key = done.stdout.strip()
        meta = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
            request = experiment_pb2.GetExperimentRequest(key="k")
            reply = await _eventually_ok(stub, request, meta)
            assert reply.experiment.key == "k"
            revoked = await asyncio.to_thread(cli, settings, "keys", "revoke", "to-revoke")
            assert revoked.returncode == 0, revoked.stderr
            code = await _eventually_refused(stub, request, meta)
            assert code is grpc.StatusCode.UNAUTHENTICATED
        row = await pool.fetchrow("SELECT revoked_at FROM api_keys WHERE name = 'to-revoke'")
        assert row["revoked_at"] is not None
        assert cli(settings, "keys", "revoke", "to-revoke").returncode == 1
    finally:
        listener.cancel()
        await keyring.close()
        await server.stop(None)


async def _eventually_ok(stub: Any, request: Any, meta: Any) -> Any:
    for _ in range(50):
        try:
            return await stub.GetExperiment(request, metadata=meta)
        except grpc.aio.AioRpcError as err:
            assert err.code() is grpc.StatusCode.UNAUTHENTICATED
            await asyncio.sleep(0.05)
    raise AssertionError("a new key was not accepted within 2.5 s")


async def _eventually_refused(stub: Any, request: Any, meta: Any) -> grpc.StatusCode:
    for _ in range(50):
        try:
            await stub.GetExperiment(request, metadata=meta)
        except grpc.aio.AioRpcError as err:
            return err.code()
        await asyncio.sleep(0.05)
    raise AssertionError("a revoked key was still accepted after 2.5 s")


async def test_keys_cli_role_enum_matches_database_constraint(pool: asyncpg.Pool) -> None:
    store = KeyStore(pool)
    for role in Role:
        await store.create(f"role-{role.value}", role)
    names = {k.name for k in await store.list()}
    assert {f"role-{r.value}" for r in Role} <= names
