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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis

from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

_FROM_EXPOSURES = """
    SELECT experiment_key, variant_key FROM exposures
    WHERE unit_id = $1 AND experiment_key = ANY($2::text[])
"""


class StickyStore(Protocol):
    """Where earlier variants are found (port; the service uses `CachedExposureStore`)."""

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        """Experiment key -> the unit's earlier variant, for those it has one."""
        ...

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        """Records variants just given to the unit (experiment key -> variant), in the
        background."""


class CachedExposureStore:
    """Redis cache (`<namespace>:sticky:<experiment>:<unit>`) in front of Postgres exposures."""

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
        self._ttl_s = ttl_s
        self._redis_timeout_s = redis_timeout_s
        self._db_timeout_s = db_timeout_s
        self._breaker_s = breaker_s
        self._redis_down_until = 0.0
        self._background: set[asyncio.Task[None]] = set()

    def _key(self, experiment_key: str, unit_id: str) -> str:
        return f"{self._prefix}{experiment_key}:{unit_id}"

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: BaseException) -> None:
        DEPENDENCY_ERRORS.inc("redis")
        if self._redis_usable():
            log.warning("sticky cache unavailable for %.0fs: %r", self._breaker_s, error)
        self._redis_down_until = time.monotonic() + self._breaker_s

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        missing = list(experiment_keys)
        if self._redis_usable():
            try:
                async with asyncio.timeout(self._redis_timeout_s):
                    values = await self._redis.mget([self._key(k, unit_id) for k in missing])
                found = {
                    k: v.decode() if isinstance(v, bytes) else v
                    for k, v in zip(missing, values, strict=True)
                    if v
                }
                missing = [k for k in missing if k not in found]
            except Exception as error:
                self._redis_failed(error)
        if not missing:
            return found
        try:
            rows = await self._pool.fetch(
                _FROM_EXPOSURES, unit_id, missing, timeout=self._db_timeout_s
            )
        except Exception as error:
            DEPENDENCY_ERRORS.inc("postgresql")
            log.warning("sticky lookup failed, using the hashed variants: %r", error)
            return found
        from_db = {row["experiment_key"]: row["variant_key"] for row in rows}
        if from_db:
            self.remember(unit_id, from_db)
        found.update(from_db)
        return found

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        if not variants or not self._redis_usable():
            return
        task = asyncio.create_task(self._cache(unit_id, dict(variants)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cache(self, unit_id: str, variants: Mapping[str, str]) -> None:
        try:
            async with asyncio.timeout(self._redis_timeout_s):
                pipe = self._redis.pipeline(transaction=False)
                for experiment_key, variant_key in variants.items():
                    # NX: never overwrite what an earlier call (or Postgres) established.
                    pipe.set(
                        self._key(experiment_key, unit_id), variant_key, ex=self._ttl_s, nx=True
                    )
                await pipe.execute()
        except Exception as error:
            self._redis_failed(error)

    async def close(self) -> None:
        """Waits for the cache writes in flight."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
