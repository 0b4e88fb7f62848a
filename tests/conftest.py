"""Fixtures shared by every test.

The servers: with VERDICT_DATABASE_URL / VERDICT_REDIS_URL set (CI: the machine's PostgreSQL and
Redis) those are used; otherwise the embedded ones under the data folder. Each test session gets
a fresh database and its own Redis namespace, dropped at the end, so tests never touch a user's
data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from support.processes import RunningService, start_service_process
from verdict_platform import redis_conn
from verdict_platform.db import with_database
from verdict_platform.embedded import resolve_servers
from verdict_platform.keys import KeyStore
from verdict_platform.migrator import migrate
from verdict_platform.roles import Role
from verdict_platform.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent

# The gateway tests run LiteLLM offline: its model cost map from the installed package, never
# downloaded (read when LiteLLM is first imported).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


async def _create_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_settings() -> Settings:
    """Settings pointing at the servers (configured, or embedded under .data)."""
    base = load_settings()
    if "VERDICT_DATA_DIR" not in os.environ:
        base = dataclasses.replace(base, data_dir=ROOT / ".data")
    return resolve_servers(base)


@pytest.fixture(scope="session")
def settings(server_settings: Settings) -> Iterator[Settings]:
    """Settings for this test session: a fresh, migrated database and a private namespace."""
    yield from _fresh(server_settings)


@pytest.fixture(scope="module")
def own_settings(server_settings: Settings) -> Iterator[Settings]:
    """Settings with a database and namespace of the module's own, for tests whose answers
    depend on every running experiment (LiteLLM routing considers them all): experiments that
    other modules leave running in the session's database cannot change them."""
    yield from _fresh(server_settings)


def _fresh(server_settings: Settings) -> Iterator[Settings]:
    token = secrets.token_hex(4)
    name = f"verdict_test_{token}"
    server_url = server_settings.require_database_url()
    asyncio.run(_create_database(server_url, name))
    yield dataclasses.replace(
        server_settings,
        database_url=with_database(server_url, name),
        redis_namespace=f"verdict-test-{token}",
        key_refresh_s=0.5,
        grace_period_s=5.0,
    )
    asyncio.run(_drop_database(server_url, name))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the session's database."""
    p = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=5)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the session's server."""
    client = redis_conn.connect_redis(settings)
    yield client
    await client.aclose()


MakeKey = Callable[[Role], Awaitable[str]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def make_key(pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings) -> MakeKey:
    """Creates an API key with a role (unique name) and announces it; returns it in clear."""
    store = KeyStore(pool)

    async def create(role: Role) -> str:
        key = await store.create(f"test-{role.value}-{secrets.token_hex(4)}", role)
        await redis_client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
        return key

    return create


@pytest.fixture
def start_service(settings: Settings) -> Iterator[Callable[..., RunningService]]:
    """Starts a service as a real process on a free port; stops it after the test."""
    started: list[RunningService] = []

    def start(module: str, port_variable: str, **env: str) -> RunningService:
        service = start_service_process(settings, module, port_variable, env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def _create_key_sync(settings: Settings, role: Role) -> str:
    async def create() -> str:
        p = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
        client = redis_conn.connect_redis(settings)
        try:
            key = await KeyStore(p).create(f"test-sync-{role.value}-{secrets.token_hex(4)}", role)
            await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
            return key
        finally:
            await client.aclose()
            await p.close()

    return asyncio.run(create())


@pytest.fixture
def make_key_sync(settings: Settings) -> str:
    """An admin API key created synchronously (for tests that use the sync gRPC API)."""
    return _create_key_sync(settings, Role.ADMIN)


@pytest.fixture
def key_sync(settings: Settings) -> Callable[[Role], str]:
    """Creates an API key with a role synchronously (announced to running services)."""
    return lambda role: _create_key_sync(settings, role)


@pytest.fixture
def assign_key_sync(settings: Settings) -> str:
    """An API key with the `assign` role, created synchronously."""
    return _create_key_sync(settings, Role.ASSIGN)
