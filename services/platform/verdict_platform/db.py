"""PostgreSQL: the connection pool, and telling a down database from a bad query.

Pools are created by the service at start (never at import), with a deadline on every connect and
a retry while the database comes up. Callers turn connection failures into `Unavailable` with
`unavailable_on_disconnect`, so clients see UNAVAILABLE and retry instead of INTERNAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from verdict.retry import Backoff
from verdict_platform.errors import Unavailable
from verdict_platform.settings import Settings
from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
CONNECT_BACKOFF = Backoff(initial_s=0.2, max_s=2.0)
"""Waits between attempts to reach a database that is (re)starting."""

# Errors that mean "the database is not reachable right now", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A connection whose protocol state broke when the server went away mid-operation ("cannot
    # switch to state 15; another operation is in progress"): unusable, to be replaced, and the
    # request retried, like a dropped one (seen with PostgreSQL stopped during a COPY).
    asyncpg.InternalClientError,
)


def is_disconnect(error: BaseException) -> bool:
    """True when `error` means the database is unreachable (retry later), not a bad query."""
    return isinstance(error, CONNECTION_ERRORS)


@contextlib.asynccontextmanager
async def unavailable_on_disconnect(what: str = "database") -> AsyncIterator[None]:
    """Re-raises connection failures inside the block as `Unavailable`."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        DEPENDENCY_ERRORS.inc("postgresql")
        raise Unavailable(f"{what} unavailable: {type(exc).__name__}: {exc}") from exc


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def create_pool(settings: Settings, *, attempts: int = 30) -> asyncpg.Pool:
    """A connection pool, retrying for a while if the database is still starting."""
    url = settings.require_database_url()
    waits = CONNECT_BACKOFF.delays()
    for attempt in range(1, attempts + 1):
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=60,
            )
            return pool
        except CONNECTION_ERRORS as exc:
            if attempt == attempts:
                raise Unavailable(f"database unreachable after {attempts} attempts: {exc}") from exc
            log.warning("database not reachable (attempt %d): %s", attempt, exc)
            await asyncio.sleep(next(waits))
    raise AssertionError("unreachable")


async def connect(settings: Settings) -> asyncpg.Connection:
    """A single connection (CLI, migrations)."""
    conn: asyncpg.Connection = await asyncpg.connect(
        settings.require_database_url(), timeout=CONNECT_TIMEOUT_S
    )
    return conn
