"""The intake and its bounded queue, with an in-memory writer and exposure store."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import pytest
from test_ingest_validation import NOW, Ev, Ex

from verdict_ingest.encoding import EncodedBatch
from verdict_ingest.intake import EventIntake, ExposureCounts, ExposureIntake
from verdict_ingest.queue import WriteQueue, WriteResult
from verdict_ingest.validation import BatchLimits, ExposureRow, TimeWindow
from verdict_platform.errors import InvalidArgument, ResourceExhausted, Unavailable

pytestmark = pytest.mark.asyncio(loop_scope="session")
LIMITS = BatchLimits(max_items=100, max_bytes=1 << 20)


def intake(queue: WriteQueue) -> EventIntake:
    return EventIntake(queue, TimeWindow(), LIMITS, clock=lambda: NOW)


async def commit_all(queue: WriteQueue) -> None:
    """A fake writer: every row is new."""
    writes = await queue.take()
    for w in writes:
        w.future.set_result(WriteResult(w.batch.count, 0))
    queue.release(writes)


async def test_outcome_arrives_after_commit_with_rejections() -> None:
    queue = WriteQueue(capacity_events=10, take_events=10)
    task = asyncio.create_task(intake(queue).track("r", [Ev(), Ev(event_id="bad"), Ev()], 100))
    await asyncio.sleep(0)
    assert not task.done() and queue.depth == 2
    await commit_all(queue)
    outcome = await task
    assert (outcome.accepted, outcome.duplicates, outcome.rejected) == (2, 0, 1)
    assert queue.depth == 0


async def test_a_batch_of_only_rejected_events_needs_no_write() -> None:
    queue = WriteQueue(capacity_events=10, take_events=10)
    outcome = await intake(queue).track("r", [Ev(unit_id="")], 100)
    assert (outcome.accepted, outcome.rejected) == (0, 1) and queue.depth == 0


async def test_full_queue_answers_resource_exhausted() -> None:
    queue = WriteQueue(capacity_events=3, take_events=10)
    first = asyncio.create_task(intake(queue).track("r", [Ev(), Ev()], 100))
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted):
        await intake(queue).track("r", [Ev(), Ev()], 100)
    await commit_all(queue)
    await first


async def test_stream_batches_wait_for_room_instead_of_failing() -> None:
    queue = WriteQueue(capacity_events=2, take_events=10)
    events = intake(queue)
    first = await events.submit("b1", [Ev(), Ev()], 100)
    second = asyncio.create_task(events.submit("b2", [Ev()], 100))
    await asyncio.sleep(0.01)
    assert not second.done()
    await commit_all(queue)
    assert (await first.result()).accepted == 2
    pending = await second
    await commit_all(queue)
    assert (await pending.result()).accepted == 1


async def test_writers_take_several_small_batches_together() -> None:
    queue = WriteQueue(capacity_events=100, take_events=5)
    for _ in range(4):
        queue.offer(EncodedBatch(b"", 2, (), 0, 0))
    taken = await queue.take()
    assert [w.batch.count for w in taken] == [2, 2]
    queue.release(taken)
    assert queue.depth == 4


async def test_database_down_fails_waiting_writes_and_new_ones_fast() -> None:
    queue = WriteQueue(capacity_events=100, take_events=5)
    task = asyncio.create_task(intake(queue).track("r", [Ev()], 100))
    await asyncio.sleep(0)
    queue.set_unavailable("database unavailable")
    with pytest.raises(Unavailable):
        await task
    with pytest.raises(Unavailable):
        await intake(queue).track("r", [Ev()], 100)
    queue.set_unavailable(None)
    assert queue.available and queue.depth == 0


async def test_malformed_batch_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        await intake(WriteQueue(10, 10)).track("", [Ev()], 100)


class FakeExposureStore:
    def __init__(self, variants: dict[str, frozenset[str]] | None = None) -> None:
        self.stored: dict[tuple[str, str], str] = {}
        self.variants = variants if variants is not None else {}

    async def variants_of(self, experiment_keys: Collection[str]) -> dict[str, frozenset[str]]:
        return {k: v for k, v in self.variants.items() if k in experiment_keys}

    async def record(self, rows: Sequence[ExposureRow]) -> ExposureCounts:
        accepted = duplicates = conflicts = 0
        for r in rows:
            known = self.stored.setdefault((r.experiment_key, r.unit_id), r.variant_key)
            if known is r.variant_key:
                accepted += 1
            elif known == r.variant_key:
                duplicates += 1
            else:
                conflicts += 1
        return ExposureCounts(accepted, duplicates, conflicts)


async def test_exposure_intake_stores_valid_ones_and_reports_rejections() -> None:
    store = FakeExposureStore({"new-prompt": frozenset({"control", "v1"})})
    exposures = ExposureIntake(store, TimeWindow(), LIMITS, clock=lambda: NOW)
    outcome = await exposures.track("r", [Ex(), Ex(experiment_key="Bad")], 100)
    assert outcome.counts == ExposureCounts(1, 0, 0)
    assert [r.index for r in outcome.rejections] == [1]


async def test_exposures_to_unknown_experiments_or_variants_are_rejected_not_stored() -> None:
    store = FakeExposureStore({"new-prompt": frozenset({"control", "v1"})})
    exposures = ExposureIntake(store, TimeWindow(), LIMITS, clock=lambda: NOW)
    batch = [
        Ex(experiment_key="ghost"),
        Ex(variant_key="v9"),
        Ex(unit_id="u-ok"),
    ]
    outcome = await exposures.track("r", batch, 100)
    assert outcome.counts == ExposureCounts(1, 0, 0)
    assert [(r.index, r.field) for r in outcome.rejections] == [
        (0, "experiment_key"),
        (1, "variant_key"),
    ]
    assert list(store.stored) == [("new-prompt", "u-ok")]
