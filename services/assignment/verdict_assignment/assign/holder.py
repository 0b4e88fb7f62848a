"""Holds the snapshot in use: readers take `current` (one reference read), the watcher swaps."""

from __future__ import annotations

import asyncio

from verdict_assignment.assign.snapshot import Snapshot
from verdict_platform.errors import Unavailable


class SnapshotHolder:
    """The current snapshot, and a way to wait for a newer one (WatchConfig)."""

    def __init__(self) -> None:
        self.current: Snapshot | None = None
        self._changed = asyncio.Event()

    def require(self) -> Snapshot:
        """The snapshot in use; Unavailable before the first load."""
        snapshot = self.current
        if snapshot is None:
            raise Unavailable("configuration not loaded yet")
        return snapshot

    def swap(self, snapshot: Snapshot) -> None:
        """Makes `snapshot` current (ignored when older than the current one)."""
        current = self.current
        if current is not None and snapshot.version < current.version:
            return
        self.current = snapshot
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_newer(self, version: int) -> Snapshot:
        """Returns the first snapshot with a version above `version`."""
        while True:
            snapshot = self.current
            if snapshot is not None and snapshot.version > version:
                return snapshot
            await self._changed.wait()
