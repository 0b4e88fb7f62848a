"""Holds the snapshot in use: readers take `current` (one reference read), the watcher swaps.

`wait_for` serves `AssignRequest.min_config_version` (read your own configuration write from any
replica): a request for a version this replica has not loaded yet waits, bounded, for it, and
pokes the watcher (`behind`) so that a lost pub/sub message costs a version check, not a poll
period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from verdict_assignment.assign.snapshot import Snapshot
from verdict_platform.errors import Unavailable


class SnapshotHolder:
    """The current snapshot, and a way to wait for a newer one (WatchConfig)."""

    def __init__(self) -> None:
        self.current: Snapshot | None = None
        self._changed = asyncio.Event()
        self.behind: Callable[[], None] | None = None
        """Called when a request waits for a newer version (the watcher checks at once)."""

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

    async def wait_for(self, version: int, timeout_s: float) -> Snapshot:
        """The current snapshot once its version is at least `version`; Unavailable, naming
        both versions, when this replica has not loaded it within `timeout_s`."""
        snapshot = self.current
        if snapshot is not None and snapshot.version >= version:
            return snapshot
        if self.behind is not None:
            self.behind()
        try:
            async with asyncio.timeout(timeout_s):
                return await self.wait_newer(version - 1)
        except TimeoutError:
            current = self.current
            loaded = "none" if current is None else str(current.version)
            raise Unavailable(
                f"configuration version {version} (min_config_version) not loaded within "
                f"{timeout_s:g} s; this replica serves version {loaded}"
            ) from None
