"""Migration 0009 on the real PostgreSQL: specs stored before `coverage` had presence (the JSON
left a 0 out) get an explicit 0, so no stored experiment starts enrolling everyone; and the `qa`
role is admitted."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from verdict.v1 import experiment_pb2
from verdict_platform.config_codec import EXPERIMENT_COLUMNS, experiment_from_row
from verdict_platform.db import with_database
from verdict_platform.migrator import available, migrate
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXPLICIT_COVERAGE = 9


@pytest_asyncio.fixture(loop_scope="session")
async def before_0009(server_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A fresh database migrated up to 0008."""
    server = server_settings.require_database_url()
    name = f"verdict_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(server, name))
    try:
        await conn.execute(
            """CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        for m in available():
            if m.version < EXPLICIT_COVERAGE:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _insert(conn: asyncpg.Connection, key: str, spec: dict[str, object]) -> None:
    await conn.execute(
        "INSERT INTO experiments (key, status, spec) VALUES ($1, 'running', $2::jsonb)",
        key,
        json.dumps(spec),
    )
    await conn.execute(
        """INSERT INTO experiment_versions (experiment_key, version, spec, changed_by)
           VALUES ($1, 1, $2::jsonb, 'test')""",
        key,
        json.dumps(spec),
    )


async def test_a_stored_zero_coverage_stays_zero(before_0009: asyncpg.Connection) -> None:
    conn = before_0009
    await _insert(conn, "was-zero", {"key": "was-zero"})
    await _insert(conn, "was-half", {"key": "was-half", "coverage": 0.5})
    assert EXPLICIT_COVERAGE in await migrate(conn)
    rows = await conn.fetch(f"SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY key")
    coverage = {}
    for row in rows:
        e: experiment_pb2.Experiment = experiment_from_row(row)
        assert e.HasField("coverage")
        coverage[e.key] = e.coverage
    assert coverage == {"was-half": 0.5, "was-zero": 0.0}
    versions = await conn.fetch("SELECT spec->'coverage' AS c FROM experiment_versions ORDER BY 1")
    assert sorted(json.loads(r["c"]) for r in versions) == [0, 0.5]


async def test_the_qa_role_is_admitted(before_0009: asyncpg.Connection) -> None:
    conn = before_0009
    insert = "INSERT INTO api_keys (name, role, key_hash) VALUES ($1, 'qa', $2)"
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(insert, "qa-early", secrets.token_bytes(32))
    await migrate(conn)
    await conn.execute(insert, "qa-later", secrets.token_bytes(32))
