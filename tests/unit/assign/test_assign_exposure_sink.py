"""The exposure sink: deduplication, bounded buffer, batching, retries, flush on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from support.eventually import eventually_async
from verdict_assignment.assign.exposures import (
    ExposureSink,
    PendingExposure,
    TransientSendError,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeSender:
    def __init__(self, transient_failures: int = 0, refuse: bool = False) -> None:
        self.batches: list[tuple[str, list[PendingExposure]]] = []
        self.attempts = 0
        self.transient_failures = transient_failures
        self.refuse = refuse

    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None:
        self.attempts += 1
        if self.attempts <= self.transient_failures:
            raise TransientSendError("unavailable")
        if self.refuse:
            raise RuntimeError("permission denied")
        self.batches.append((request_id, list(exposures)))

    @property
    def sent(self) -> list[PendingExposure]:
        return [e for _, batch in self.batches for e in batch]


def _exposure(unit: str, variant: str = "a") -> PendingExposure:
    return PendingExposure("exp", variant, unit, 1.0, 1)


async def test_repeats_are_sent_once_and_batches_are_bounded() -> None:
    sender = FakeSender()
    sink = ExposureSink(sender, batch_size=100)
    sink.start()
    for _ in range(3):
        for i in range(250):
            sink.record(_exposure(f"u{i}"))
    sink.record(_exposure("u1", "b"))  # another variant is news (ingest flags the conflict)
    await sink.stop()
    assert len(sender.sent) == 251
    assert max(len(batch) for _, batch in sender.batches) <= 100


async def test_flushes_at_most_every_interval() -> None:
    sender = FakeSender()
    sink = ExposureSink(sender, flush_interval_s=3600.0)  # one flush, then an hour's wait
    sink.start()
    sink.record(_exposure("u0"))
    await eventually_async(lambda: len(sender.batches) == 1)
    for i in range(1, 40):
        sink.record(_exposure(f"u{i}"))
    await asyncio.sleep(0)  # the flusher runs, and must wait out its interval
    assert len(sender.batches) == 1 and sink.depth == 39
    await sink.stop()  # a graceful stop sends the rest at once
    assert len(sender.batches) == 2 and len(sender.sent) == 40


async def test_transient_failures_are_retried_under_the_same_request_id() -> None:
    sender = FakeSender(transient_failures=2)
    sink = ExposureSink(sender)
    sink.record(_exposure("u1"))
    await sink.flush()
    assert sender.attempts == 3 and len(sender.batches) == 1 and sink.sent == 1


async def test_a_refused_batch_is_dropped_and_may_be_recorded_again() -> None:
    sender = FakeSender(refuse=True)
    sink = ExposureSink(sender)
    sink.record(_exposure("u1"))
    await sink.flush()
    assert sink.dropped == 1 and sender.attempts == 1
    sink.record(_exposure("u1"))
    assert sink.depth == 1


async def test_a_full_buffer_drops_new_exposures() -> None:
    sink = ExposureSink(FakeSender(), max_buffer=10)
    for i in range(15):
        sink.record(_exposure(f"u{i}"))
    assert sink.depth == 10 and sink.dropped == 5


async def test_the_recent_set_is_bounded() -> None:
    sender = FakeSender()
    sink = ExposureSink(sender, recent_size=5)
    for i in range(10):
        sink.record(_exposure(f"u{i}"))
    sink.record(_exposure("u0"))  # forgotten by now: recorded again (ingest deduplicates)
    await sink.flush()
    assert len(sender.sent) == 11


async def test_the_recent_bound_counts_exposures_not_units() -> None:
    sender = FakeSender()
    sink = ExposureSink(sender, recent_size=4)
    for key in ("e1", "e2", "e3"):
        sink.record(PendingExposure(key, "a", "u0", 1.0, 1))
    for unit in ("u1", "u2"):  # five exposures known: u0's three are forgotten together
        sink.record(_exposure(unit))
    sink.record(PendingExposure("e2", "a", "u0", 1.0, 1))
    sink.record(_exposure("u2"))  # still known
    await sink.flush()
    assert len(sender.sent) == 6


async def test_a_new_variant_for_a_unit_is_recorded_again() -> None:
    sender = FakeSender()
    sink = ExposureSink(sender)
    sink.record(_exposure("u1", "a"))
    sink.record(_exposure("u1", "b"))  # e.g. the experiment's allocation changed
    sink.record(_exposure("u1", "b"))
    await sink.flush()
    assert [e.variant_key for e in sender.sent] == ["a", "b"]
