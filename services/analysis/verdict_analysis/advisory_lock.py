"""Advisory locks: one analysis of an experiment at a time, across every replica.

The lock is a session-level `pg_try_advisory_lock` on a 64-bit key derived from the experiment
key (BLAKE2b, stable across processes and PostgreSQL versions, unlike `hashtext`). It is held on
the connection the analysis reads through, so a crashed worker's lock dies with its connection.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

import asyncpg

from verdict_platform.db import unavailable_on_disconnect
from verdict_platform.errors import Aborted

_NAMESPACE = b"verdict.analysis:"


def lock_key(experiment_key: str) -> int:
    """The signed 64-bit advisory-lock key of an experiment's analysis."""
    digest = hashlib.blake2b(_NAMESPACE + experiment_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def analysis_lock(
    pool: asyncpg.Pool, experiment_key: str
) -> AsyncIterator[asyncpg.Connection]:
    """Holds the experiment's lock on a pooled connection; Aborted when another holds it."""
    key = lock_key(experiment_key)
    async with unavailable_on_disconnect(), pool.acquire() as conn:
        locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if not locked:
            raise Aborted(f"another replica is analysing {experiment_key!r}; retry later")
        try:
            yield conn
        finally:
            if not conn.is_closed():
                with contextlib.suppress(*_RELEASE_ERRORS):
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)


_RELEASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, OSError)
