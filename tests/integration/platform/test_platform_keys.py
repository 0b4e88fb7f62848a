"""API keys on the real PostgreSQL and Redis: stored hashed, listed without secrets, and a key
revoked with the CLI is refused by a running server."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio

from support.eventually import eventually_async
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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def guarded_target(
    settings: Settings, pool: asyncpg.Pool, redis_client: Any
) -> AsyncIterator[str]:
    """A guarded server whose key ring learns of key changes only through Redis announcements
    (its own refresh period is far longer than any test)."""
    keyring = KeyRing(KeyStore(pool), refresh_s=3600)
    await keyring.load()
    keyring.start()
    channel_name = redis_conn.name(settings, redis_conn.KEYS_CHANNEL)
    listener = asyncio.create_task(
        subscribe_forever(
            redis_client, channel_name, lambda _m: asyncio.sleep(0, keyring.changed())
        )
    )

    async def subscribed() -> bool:
        return bool((await redis_client.pubsub_numsub(channel_name))[0][1] > 0)

    await eventually_async(subscribed, describe=lambda: "the key ring never subscribed")
    server = guarded_server(keyring)
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        listener.cancel()
        await keyring.close()
        await server.stop(None)


async def _create_with_cli(settings: Settings, name: str) -> str:
    create = ("keys", "create", "--role", "read", "--name", name)
    done = await asyncio.to_thread(cli, settings, *create)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def _get_experiment(target: str, key: str) -> experiment_pb2.GetExperimentResponse:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        reply: experiment_pb2.GetExperimentResponse = await stub.GetExperiment(
            experiment_pb2.GetExperimentRequest(key="k"),
            metadata=(("authorization", f"Bearer {key}"),),
        )
        return reply


async def _refused(target: str, key: str) -> grpc.StatusCode | None:
    try:
        await _get_experiment(target, key)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return None


async def test_a_key_created_with_the_cli_is_accepted_by_a_running_server(
    settings: Settings, guarded_target: str
) -> None:
    key = await _create_with_cli(settings, "to-accept")
    reply = await eventually_async(lambda: _get_experiment(guarded_target, key))
    assert reply.experiment.key == "k"


async def test_a_key_revoked_with_the_cli_is_refused_by_a_running_server(
    settings: Settings, pool: asyncpg.Pool, guarded_target: str
) -> None:
    key = await _create_with_cli(settings, "to-revoke")
    await eventually_async(lambda: _get_experiment(guarded_target, key))
    revoked = await asyncio.to_thread(cli, settings, "keys", "revoke", "to-revoke")
    assert revoked.returncode == 0, revoked.stderr
    code = await eventually_async(lambda: _refused(guarded_target, key))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    row = await pool.fetchrow("SELECT revoked_at FROM api_keys WHERE name = 'to-revoke'")
    assert row["revoked_at"] is not None


async def test_revoking_a_key_that_is_not_active_fails(settings: Settings) -> None:
    await _create_with_cli(settings, "revoked-twice")
    assert cli(settings, "keys", "revoke", "revoked-twice").returncode == 0
    assert cli(settings, "keys", "revoke", "revoked-twice").returncode == 1


async def test_keys_cli_role_enum_matches_database_constraint(pool: asyncpg.Pool) -> None:
    store = KeyStore(pool)
    for role in Role:
        await store.create(f"role-{role.value}", role)
    names = {k.name for k in await store.list()}
    assert {f"role-{r.value}" for r in Role} <= names
