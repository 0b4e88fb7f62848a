"""Two analysis replicas never analyse one experiment at once (advisory lock on the real DB)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from asvc_rows import experiment, insert_experiment, unique_key

from verdict_analysis.advisory_lock import analysis_lock, lock_key
from verdict_analysis.alert_store import PostgresAlertLog
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.catalog_reader import ExperimentCatalog
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


@pytest.mark.asyncio(loop_scope="session")
async def test_two_concurrent_replicas_never_overlap(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    key = unique_key("asvc-lock")
    await insert_experiment(pool, experiment(key))
    url = settings.require_database_url()
    pools = [await asyncpg.create_pool(url, min_size=1, max_size=3) for _ in range(2)]
    inside = 0
    overlaps = 0
    outcomes: list[str] = []

    class Watched(DatabaseLocks):
        def hold(self, experiment_key: str):  # type: ignore[no-untyped-def]
            parent = super().hold(experiment_key)

            class Ctx:
                async def __aenter__(self):  # type: ignore[no-untyped-def]
                    nonlocal inside, overlaps
                    reader = await parent.__aenter__()
                    inside += 1
                    overlaps += inside > 1
                    await asyncio.sleep(0.05)
                    return reader

                async def __aexit__(self, *exc):  # type: ignore[no-untyped-def]
                    nonlocal inside
                    inside -= 1
                    return await parent.__aexit__(*exc)

            return Ctx()

    async def runner(p: asyncpg.Pool) -> None:
        analyzer = _replica(p, Watched(p))
        for _ in range(10):
            try:
                await analyzer.run(key)
                outcomes.append("ran")
            except Aborted:
                outcomes.append("aborted")
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(runner(pools[0]), runner(pools[1]))
    finally:
        for p in pools:
            await p.close()
    assert overlaps == 0
    assert "ran" in outcomes and "aborted" in outcomes
    stored = await SnapshotStore(pool).page(key, 100)
    assert len(stored) == outcomes.count("ran")
