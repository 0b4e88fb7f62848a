"""Redis adapter of the results channel: analysis publishes the experiment key of each stored
snapshot; watchers fan it out to their streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from verdict_platform import redis_conn
from verdict_platform.pubsub import subscribe_forever
from verdict_platform.settings import Settings
from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


class RedisResultsPublisher:
    """Publishes on `<namespace>:results`; a Redis outage only delays watchers (they poll)."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._channel = redis_conn.name(settings, redis_conn.RESULTS_CHANNEL)

    async def published(self, experiment_key: str) -> None:
        try:
            await self._client.publish(self._channel, experiment_key.encode())
        except (RedisError, OSError) as error:
            DEPENDENCY_ERRORS.inc("redis")
            log.warning("could not publish results of %s: %s", experiment_key, error)


class ResultsSignals:
    """One subscription per process; each watcher waits on its experiment's event."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._channel = redis_conn.name(settings, redis_conn.RESULTS_CHANNEL)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribes in the background."""
        self._task = asyncio.create_task(
            subscribe_forever(self._client, self._channel, self._received, self._reconnected),
            name="results-subscription",
        )

    async def stop(self) -> None:
        """Unsubscribes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def waiter(self, experiment_key: str) -> Iterator[asyncio.Event]:
        """An event set whenever a snapshot of the experiment is announced (or on reconnect)."""
        event = asyncio.Event()
        self._waiters.setdefault(experiment_key, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(experiment_key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[experiment_key]

    async def _received(self, data: bytes) -> None:
        key = data.decode(errors="replace")
        for event in self._waiters.get(key, ()):
            event.set()

    async def _reconnected(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
