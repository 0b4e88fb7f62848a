"""Keeps the snapshot current: Redis pub/sub for speed, a database poll for safety.

ExperimentService publishes the new `config_state.version` on the config channel after each
commit; a message newer than the snapshot triggers a reload, which takes well under a second. When
Redis is down no message comes, so a poll of `config_state.version` every `poll_s` catches up, and
the subscription reloads once more when Redis comes back. Reloads are coalesced: one runs at a
time, and requests made meanwhile cause exactly one more. A failed reload keeps serving the last
good snapshot. A request waiting for a version not loaded yet (`min_config_version`) makes the
poller check at once (`SnapshotHolder.behind`); checks are one `SELECT version`, coalesced too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import build_snapshot
from verdict_assignment.assign.snapshot_source import SnapshotSource
from verdict_platform.pubsub import subscribe_forever
from verdict_platform.telemetry.catalog import CONFIG_RELOADS

log = logging.getLogger(__name__)

_MIN_CHECK_INTERVAL_S = 0.05
"""Least time between two version checks, however many requests wait for a newer version."""


class ConfigWatcher:
    """Loads the first snapshot, then follows configuration changes until stopped."""

    def __init__(
        self,
        source: SnapshotSource,
        holder: SnapshotHolder,
        redis: aioredis.Redis,
        channel: str,
        poll_s: float = 2.0,
    ) -> None:
        self._source = source
        self._holder = holder
        self._redis = redis
        self._channel = channel
        self._poll_s = poll_s
        self._wanted = asyncio.Event()
        self._check_now = asyncio.Event()
        holder.behind = self._check_now.set
        self._tasks: list[asyncio.Task[None]] = []
        self.reloads = 0
        """How many snapshots were loaded (for tests and metrics)."""

    async def start(self) -> None:
        """Loads the first snapshot (errors propagate: no serving without configuration)."""
        await self.reload()
        self._tasks = [
            asyncio.create_task(self._reloader(), name="config-reloader"),
            asyncio.create_task(self._poller(), name="config-poller"),
            asyncio.create_task(
                subscribe_forever(self._redis, self._channel, self._on_message, self._on_reconnect),
                name="config-subscription",
            ),
        ]

    async def stop(self) -> None:
        """Stops following."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def reload(self) -> None:
        """Loads the configuration now and swaps it in."""
        proto = await self._source.load()
        current = self._holder.current
        if current is not None and proto.version <= current.version:
            return
        self._holder.swap(build_snapshot(proto))
        self.reloads += 1
        CONFIG_RELOADS.inc("ok")
        log.info("configuration loaded", extra={"version": proto.version})

    def request_reload(self) -> None:
        """Asks the background reloader for a reload (coalesced)."""
        self._wanted.set()

    def _is_newer(self, version: int) -> bool:
        current = self._holder.current
        return current is None or version > current.version

    async def _on_message(self, data: bytes) -> None:
        try:
            version = int(data)
        except ValueError:
            version = -1  # not a version: reload to be safe
        if version < 0 or self._is_newer(version):
            self.request_reload()

    async def _on_reconnect(self) -> None:
        log.info("config subscription back; reloading what may have been missed")
        self.request_reload()

    async def _reloader(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.reload()
            except Exception as exc:
                CONFIG_RELOADS.inc("failed")
                log.warning("configuration reload failed, keeping the last one: %s", exc)
                await asyncio.sleep(0.5)
                self._wanted.set()

    async def _poller(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), self._poll_s)
            self._check_now.clear()
            await asyncio.sleep(_MIN_CHECK_INTERVAL_S)  # waiting requests: a check per interval
            try:
                if self._is_newer(await self._source.version()):
                    self.request_reload()
            except Exception as exc:
                log.warning("configuration poll failed: %s", exc)
