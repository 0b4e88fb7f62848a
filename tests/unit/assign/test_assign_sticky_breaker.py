"""The sticky store's circuit breaker around Redis (`CachedExposureStore`), with stand-ins for
Redis and the pool: a failing Redis is skipped for `breaker_s` (PostgreSQL answers alone, same
answers), tried again after it, and a call never fails because a dependency did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from verdict_assignment.assign.sticky import CachedExposureStore

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FlakyRedis:
    """`mget` and pipelines that fail while `down`; counts the calls that reached it."""

    def __init__(self) -> None:
        self.down = False
        self.slow = False
        self.mgets = 0
        self.values: dict[str, str] = {}

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        self.mgets += 1
        if self.slow:
            await asyncio.sleep(30.0)
        if self.down:
            raise ConnectionError("redis is down")
        return [self.values[k].encode() if k in self.values else None for k in keys]

    def pipeline(self, transaction: bool = False) -> FlakyRedis._Pipe:
        return FlakyRedis._Pipe(self)

    class _Pipe:
        def __init__(self, redis: FlakyRedis) -> None:
            self.redis = redis
            self.sets: list[tuple[str, str]] = []

        def set(self, key: str, value: str, ex: int, nx: bool) -> None:
            self.sets.append((key, value))

        async def execute(self) -> None:
            if self.redis.down:
                raise ConnectionError("redis is down")
            for key, value in self.sets:
                self.redis.values.setdefault(key, value)


class Exposures:
    """The pool: `exposures` rows (experiment, unit) -> variant; fails while `down`."""

    def __init__(self, rows: Mapping[tuple[str, str], str]) -> None:
        self.rows = dict(rows)
        self.down = False
        self.fetches = 0

    async def fetch(  # asyncpg's signature
        self,
        query: str,
        unit_id: str,
        keys: list[str],
        timeout: float,  # noqa: ASYNC109
    ) -> list[Any]:
        self.fetches += 1
        if self.down:
            raise OSError("postgres is down")
        return [
            {"experiment_key": k, "variant_key": self.rows[(k, unit_id)]}
            for k in keys
            if (k, unit_id) in self.rows
        ]


def _store(redis: FlakyRedis, pool: Exposures, breaker_s: float) -> CachedExposureStore:
    return CachedExposureStore(
        redis,  # type: ignore[arg-type]
        pool,  # type: ignore[arg-type]
        "ns",
        redis_timeout_s=0.05,
        breaker_s=breaker_s,
    )


async def test_a_failing_redis_is_skipped_for_the_breaker_period_then_tried_again() -> None:
    redis, pool = FlakyRedis(), Exposures({("e", "u"): "b"})
    store = _store(redis, pool, breaker_s=1.0)
    redis.down = True
    assert await store.lookup("u", ["e"]) == {"e": "b"}  # PostgreSQL answers
    assert redis.mgets == 1
    redis.down = False
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    assert redis.mgets == 1, "Redis was asked again within the breaker period"
    assert pool.fetches == 2
    await asyncio.sleep(1.05)
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    assert redis.mgets == 2, "Redis was not tried again after the breaker period"
    await store.close()


async def test_a_slow_redis_trips_the_breaker_like_a_failing_one() -> None:
    redis, pool = FlakyRedis(), Exposures({("e", "u"): "b"})
    store = _store(redis, pool, breaker_s=10.0)
    redis.slow = True
    started = time.monotonic()
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    assert time.monotonic() - started < 10.0, "the Redis timeout did not bound the lookup"
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    assert redis.mgets == 1
    await store.close()


async def test_what_postgres_knew_is_cached_and_then_read_from_redis() -> None:
    redis, pool = FlakyRedis(), Exposures({("e", "u"): "b"})
    store = _store(redis, pool, breaker_s=10.0)
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    await store.close()  # the cache write in the background
    assert redis.values == {"ns:sticky:e:u": "b"}
    pool.down = True
    assert await store.lookup("u", ["e"]) == {"e": "b"}
    assert pool.fetches == 1


async def test_with_both_down_a_lookup_finds_nothing_instead_of_failing() -> None:
    redis, pool = FlakyRedis(), Exposures({("e", "u"): "b"})
    store = _store(redis, pool, breaker_s=10.0)
    redis.down = pool.down = True
    assert await store.lookup("u", ["e"]) == {}  # the unit gets its hashed variant
    store.remember("u", {"e": "a"})  # skipped while the breaker is open: no task, no error
    await store.close()
    assert redis.values == {}
