"""The scheduler: every interval, analyse each running experiment whose last snapshot is older
than the interval.

Replicas share the work through the analysis lock (a busy experiment is skipped: another replica
has it) and the snapshot age (a fresh snapshot means another replica just analysed it). A failure
of one experiment is logged and never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from verdict_analysis.analyzer import Analyzer
from verdict_analysis.ports import Catalog
from verdict_platform.errors import Aborted, VerdictError
from verdict_platform.telemetry.sampling import new_trace

log = logging.getLogger(__name__)

FRESHNESS = 0.9
"""A snapshot younger than this share of the interval counts as current (absorbs jitter)."""


class Scheduler:
    """Runs `Analyzer.run` for every running experiment, every `interval_s`."""

    def __init__(self, analyzer: Analyzer, catalog: Catalog, interval_s: float) -> None:
        self._analyzer = analyzer
        self._catalog = catalog
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """One pass over the running experiments; returns how many this replica analysed."""
        try:
            keys = await self._catalog.running_keys()
        except VerdictError as error:
            log.warning("cannot list running experiments: %s", error)
            return 0
        done = 0
        for key in keys:
            try:
                with new_trace():  # each scheduled run is a trace of its own (when sampled)
                    snapshot = await self._analyzer.run(
                        key, fresher_than_s=self._interval_s * FRESHNESS
                    )
            except Aborted:
                continue
            except VerdictError as error:
                log.warning("analysis of %s failed: %s", key, error)
                continue
            except Exception:
                log.exception("analysis of %s crashed", key)
                continue
            if snapshot is not None:
                done += 1
        return done

    async def run_forever(self) -> None:
        """Ticks until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.tick()
            await asyncio.sleep(max(0.0, self._interval_s - (loop.time() - started)))

    def start(self) -> None:
        """Starts the loop in the background."""
        self._task = asyncio.create_task(self.run_forever(), name="analysis-scheduler")

    async def stop(self) -> None:
        """Stops the loop (an analysis in flight is cancelled; its lock dies with it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
