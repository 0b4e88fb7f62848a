"""Migrations on the real PostgreSQL: they apply once, and a second run changes nothing."""

from __future__ import annotations

import asyncpg
import pytest

from verdict_platform.migrator import available, migrate

pytestmark = pytest.mark.asyncio(loop_scope="session")

SCHEMA = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, column_name
"""


async def test_migrations_apply_twice_without_change(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetch(SCHEMA)
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY 1")
        assert [(r["version"], r["checksum"]) for r in recorded] == [
            (m.version, m.checksum) for m in available()
        ]
        assert await migrate(conn) == []
        assert await conn.fetch(SCHEMA) == before


async def test_design_tables_exist(pool: asyncpg.Pool) -> None:
    tables = {
        r["tablename"]
        for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {
        "api_keys",
        "experiments",
        "experiment_versions",
        "audit_log",
        "metrics",
        "saved_groups",
        "exposures",
        "exposure_conflicts",
        "events",
        "analysis_snapshots",
    } <= tables


async def test_events_are_partitioned_by_day_around_today(pool: asyncpg.Pool) -> None:
    parts = await pool.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"""
    )
    today = await pool.fetchval("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
    assert f"events_{today}" in {r["relname"] for r in parts}


async def test_concurrent_migrators_serialise(pool: asyncpg.Pool) -> None:
    import asyncio

    async def run() -> list[int]:
        async with pool.acquire() as conn:
            return await migrate(conn)

    assert await asyncio.gather(run(), run(), run()) == [[], [], []]
