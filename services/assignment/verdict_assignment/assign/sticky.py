"""Sticky assignments: a unit keeps its variant when weights or coverage change while running.

Trade-off. Looking up every unit's earlier variant on every `Assign` would put a Redis round trip
(about 250 µs from redis-py, half a bare gRPC call) on the hot path, and Postgres behind it on
every miss. But stickiness only matters once an experiment's allocation changed while it ran
(`allocation_version > 1`): before that, hashing gives every unit the variant it had anyway. So
only those experiments pay for a lookup; every other experiment is answered from memory.

For them: Redis is a cache in front, PostgreSQL's `exposures` table (first exposure per
experiment and unit, written by ingest) is the truth. A Redis miss consults Postgres and caches
what it finds; a unit with no exposure follows the new allocation and its new variant is cached at
once, so its next calls hit Redis. When Redis fails, a breaker skips it for a few seconds and
Postgres answers alone (same answers, slower); when both fail, the unit gets the hashed variant
and the failure is logged (availability over stickiness for that call).

Per hashed value (`lookup_hashed`, `remember_hashed`): an experiment with a fallback attribute
(GrowthBook's sticky bucketing with `fallbackAttribute`) keeps variants per (experiment,
attribute, value) hashed, e.g. (e, "device_id", d), so that a unit bucketed by its device keeps
its variant once it signs in and is hashed by user id. Same cache-in-front design, under
`<namespace>:sticky-hashed:<experiment>:<len(attribute)>:<attribute>:<value>`; the truth is the
exposures that recorded that attribute and value (their `hash_attribute`, `hash_value`). Only
those experiments pay for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import asyncpg
import redis.asyncio as aioredis

from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

_FROM_EXPOSURES = """
    SELECT experiment_key, variant_key FROM exposures
    WHERE unit_id = $1 AND experiment_key = ANY($2::text[])
"""
# The first exposure of each hashed value wins, as the first per unit does for `_FROM_EXPOSURES`.
_FROM_EXPOSURES_BY_VALUE = """
    SELECT DISTINCT ON (e.experiment_key, e.hash_attribute, e.hash_value)
        e.experiment_key, e.hash_attribute, e.hash_value, e.variant_key
    FROM exposures e
    JOIN unnest($1::text[], $2::text[], $3::text[]) AS q(experiment_key, hash_attribute, hash_value)
      USING (experiment_key, hash_attribute, hash_value)
    ORDER BY e.experiment_key, e.hash_attribute, e.hash_value, e.exposed_at
"""

HashedKey = tuple[str, str, str]
"""(experiment key, attribute hashed, value hashed)."""

_Id = TypeVar("_Id", str, tuple[str, str, str])


class StickyStore(Protocol):
    """Where earlier variants are found (port; the service uses `CachedExposureStore`)."""

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        """Experiment key -> the unit's earlier variant, for those it has one."""
        ...

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        """Records variants just given to the unit (experiment key -> variant), in the
        background."""

    async def lookup_hashed(self, keys: Sequence[HashedKey]) -> Mapping[HashedKey, str]:
        """(experiment, attribute, value) -> the variant given earlier to that hashed value."""
        ...

    def remember_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        """Records variants just given per hashed value, in the background."""

    async def store_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        """Records variants per hashed value before returning (a unit's fallback variant
        carried over to its primary value: a later call must find it)."""


class CachedExposureStore:
    """Redis cache (`<namespace>:sticky:<experiment>:<unit>`, `<namespace>:sticky-hashed:...`)
    in front of Postgres exposures."""

    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        namespace: str,
        *,
        ttl_s: int = 30 * 86400,
        redis_timeout_s: float = 0.2,
        db_timeout_s: float = 1.0,
        breaker_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._prefix = f"{namespace}:sticky:"
        self._hashed_prefix = f"{namespace}:sticky-hashed:"
        self._ttl_s = ttl_s
        self._redis_timeout_s = redis_timeout_s
        self._db_timeout_s = db_timeout_s
        self._breaker_s = breaker_s
        self._redis_down_until = 0.0
        self._background: set[asyncio.Task[None]] = set()

    def _key(self, experiment_key: str, unit_id: str) -> str:
        return f"{self._prefix}{experiment_key}:{unit_id}"

    def hashed_key(self, key: HashedKey) -> str:
        """The Redis key of a hashed value's variant."""
        experiment_key, attribute, value = key  # the length tells "a:b"+"c" from "a"+"b:c"
        return f"{self._hashed_prefix}{experiment_key}:{len(attribute)}:{attribute}:{value}"

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: BaseException) -> None:
        DEPENDENCY_ERRORS.inc("redis")
        if self._redis_usable():
            log.warning("sticky cache unavailable for %.0fs: %r", self._breaker_s, error)
        self._redis_down_until = time.monotonic() + self._breaker_s

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        async def from_db(missing: list[str]) -> dict[str, str]:
            rows = await self._pool.fetch(
                _FROM_EXPOSURES, unit_id, missing, timeout=self._db_timeout_s
            )
            return {row["experiment_key"]: row["variant_key"] for row in rows}

        keys = list(experiment_keys)
        found, from_postgres = await self._lookup(
            keys, [self._key(k, unit_id) for k in keys], from_db
        )
        if from_postgres:
            self.remember(unit_id, from_postgres)
        return found

    async def lookup_hashed(self, keys: Sequence[HashedKey]) -> Mapping[HashedKey, str]:
        async def from_db(missing: list[HashedKey]) -> dict[HashedKey, str]:
            rows = await self._pool.fetch(
                _FROM_EXPOSURES_BY_VALUE,
                [k[0] for k in missing],
                [k[1] for k in missing],
                [k[2] for k in missing],
                timeout=self._db_timeout_s,
            )
            return {
                (r["experiment_key"], r["hash_attribute"], r["hash_value"]): r["variant_key"]
                for r in rows
            }

        wanted = list(keys)
        found, from_postgres = await self._lookup(
            wanted, [self.hashed_key(k) for k in wanted], from_db
        )
        if from_postgres:
            self.remember_hashed(from_postgres)
        return found

    async def _lookup(
        self,
        ids: list[_Id],
        redis_keys: list[str],
        from_db: Callable[[list[_Id]], Awaitable[dict[_Id, str]]],
    ) -> tuple[dict[_Id, str], dict[_Id, str]]:
        """The variants of `ids` (cached under `redis_keys`): Redis first, Postgres for the
        rest. Returns (everything found, what only Postgres knew)."""
        found: dict[_Id, str] = {}
        missing = ids
        if self._redis_usable():
            try:
                async with asyncio.timeout(self._redis_timeout_s):
                    values = await self._redis.mget(redis_keys)
                found = {
                    k: v.decode() if isinstance(v, bytes) else v
                    for k, v in zip(ids, values, strict=True)
                    if v
                }
                missing = [k for k in ids if k not in found]
            except Exception as error:
                self._redis_failed(error)
        if not missing:
            return found, {}
        try:
            from_postgres = await from_db(missing)
        except Exception as error:
            DEPENDENCY_ERRORS.inc("postgresql")
            log.warning("sticky lookup failed, using the hashed variants: %r", error)
            return found, {}
        found.update(from_postgres)
        return found, from_postgres

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        self._cache_soon({self._key(k, unit_id): v for k, v in variants.items()})

    def remember_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        self._cache_soon({self.hashed_key(k): v for k, v in variants.items()})

    async def store_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        if variants and self._redis_usable():
            await self._cache({self.hashed_key(k): v for k, v in variants.items()})

    def _cache_soon(self, entries: dict[str, str]) -> None:
        if not entries or not self._redis_usable():
            return
        task = asyncio.create_task(self._cache(entries))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cache(self, entries: Mapping[str, str]) -> None:
        try:
            async with asyncio.timeout(self._redis_timeout_s):
                pipe = self._redis.pipeline(transaction=False)
                for key, variant_key in entries.items():
                    # NX: never overwrite what an earlier call (or Postgres) established.
                    pipe.set(key, variant_key, ex=self._ttl_s, nx=True)
                await pipe.execute()
        except Exception as error:
            self._redis_failed(error)

    async def close(self) -> None:
        """Waits for the cache writes in flight."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
