"""Two analysis replicas never analyse one experiment at once (advisory lock on the real DB)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from asvc_rows import experiment, insert_experiment, unique_key

from support.eventually import eventually_async
from verdict_analysis.advisory_lock import analysis_lock, lock_key
from verdict_analysis.alert_store import PostgresAlertLog
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.catalog_reader import ExperimentCatalog
from verdict_analysis.ports import StatsReader
from verdict_analysis.snapshot_store import SnapshotStore
from verdict_analysis.stats_reader import DatabaseLocks
from verdict_platform.errors import Aborted
from verdict_platform.settings import Settings


class _Nothing:
    async def published(self, experiment_key: str) -> None:
        return None

    async def stop(self, *args: object) -> None:
        raise AssertionError("no rule should fire")


def _replica(pool: asyncpg.Pool, locks: DatabaseLocks) -> Analyzer:
    nothing = _Nothing()
    return Analyzer(
        ExperimentCatalog(pool),
        locks,
        SnapshotStore(pool),
        nothing,
        nothing,  # type: ignore[arg-type]
        PostgresAlertLog(pool, deliver=False),
    )


def test_lock_key_is_stable_and_distinct() -> None:
    assert lock_key("a") == lock_key("a")
    assert lock_key("a") != lock_key("b")
    assert -(2**63) <= lock_key("a") < 2**63


@pytest.mark.asyncio(loop_scope="session")
async def test_second_holder_is_aborted_until_the_first_releases(settings: Settings) -> None:
    url = settings.require_database_url()
    replica_a = await asyncpg.create_pool(url, min_size=1, max_size=2)
    replica_b = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with analysis_lock(replica_a, "exp-lock"):
            with pytest.raises(Aborted):
                async with analysis_lock(replica_b, "exp-lock"):
                    pass
            async with analysis_lock(replica_b, "another-experiment"):
                pass
        async with analysis_lock(replica_b, "exp-lock"):
            pass
    finally:
        await replica_a.close()
        await replica_b.close()


class HeldUntil(DatabaseLocks):
    """Holds the real lock until `release` is set, and says when it holds it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, experiment_key: str) -> AsyncIterator[StatsReader]:
        async with super().hold(experiment_key) as reader:
            self.holding.set()
            await self.release.wait()
            yield reader


@pytest.mark.asyncio(loop_scope="session")
async def test_a_replica_is_refused_while_another_analyses_the_experiment(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    key = unique_key("asvc-lock")
    await insert_experiment(pool, experiment(key))
    url = settings.require_database_url()
    pools = [await asyncpg.create_pool(url, min_size=1, max_size=3) for _ in range(2)]
    held = HeldUntil(pools[0])
    first, second = _replica(pools[0], held), _replica(pools[1], DatabaseLocks(pools[1]))
    try:
        running = asyncio.create_task(first.run(key))
        await eventually_async(held.holding.is_set)
        try:
            with pytest.raises(Aborted):
                await second.run(key)
        finally:
            held.release.set()
        await running
        assert len(await SnapshotStore(pool).page(key, 100)) == 1  # the refused run stored none
        await second.run(key)  # the lock is free again
    finally:
        for p in pools:
            await p.close()
    assert len(await SnapshotStore(pool).page(key, 100)) == 2
