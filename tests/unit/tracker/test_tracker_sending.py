"""The trackers against an in-process fake IngestService that fails on command."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from support.eventually import eventually
from verdict.retry import Backoff
from verdict.tracking import (
    AsyncTracker,
    BufferFull,
    Tracker,
    TrackerOptions,
    WhenFull,
)
from verdict.v1 import ingest_pb2, ingest_pb2_grpc


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Stores events by id; fails the next calls with the scripted codes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: list[grpc.StatusCode] = []
        self.calls: list[tuple[str, int]] = []
        self.stored: set[str] = set()
        self.stall = threading.Event()
        self.stall.set()
        self.metadata: list[Any] = []
        self.entered = 0
        """Calls that reached the servicer (counted before a stall)."""

    def TrackEvents(self, request: ingest_pb2.TrackEventsRequest, context: Any) -> Any:
        with self.lock:
            self.entered += 1
        self.stall.wait()
        with self.lock:
            self.metadata.append(dict(context.invocation_metadata()))
            self.calls.append((request.request_id, len(request.events)))
            failure = self.failures.pop(0) if self.failures else None
        if failure is grpc.StatusCode.DEADLINE_EXCEEDED:
            time.sleep(0.3)  # longer than the client's deadline
        elif failure is not None:
            context.abort(failure, "scripted failure")
        accepted = duplicates = rejected = 0
        rejections = []
        with self.lock:
            for i, e in enumerate(request.events):
                if e.name == "bad":
                    rejected += 1
                    rejections.append(ingest_pb2.Rejection(index=i, field="name", reason="bad"))
                elif e.event_id in self.stored:
                    duplicates += 1
                else:
                    self.stored.add(e.event_id)
                    accepted += 1
        return ingest_pb2.TrackEventsResponse(
            accepted=accepted, duplicates=duplicates, rejected=rejected, rejections=rejections
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeIngest, str]]:
    servicer = FakeIngest()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.stall.set()
    server.stop(0)


def options(target: str, **kw: Any) -> TrackerOptions:
    base: dict[str, Any] = {
        "api_key": "vdk_test",
        "batch_size": 100,
        "flush_interval_s": 0.05,
        "deadline_s": 0.2,
        "backoff": Backoff(initial_s=0.01, max_s=0.05, jitter=True),
    }
    base.update(kw)
    return TrackerOptions(target=target, **base)


def test_events_are_batched_by_size_and_flushed_on_close(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    tracker = Tracker(options(target, flush_interval_s=5.0))
    ids = [tracker.track("u1", "llm.call", {"latency_ms": 1.0}) for _ in range(250)]
    eventually(lambda: len(server.calls) == 2)
    stats = tracker.close()
    assert [n for _, n in server.calls] == [100, 100, 50]
    assert server.stored == set(ids)
    assert (stats.tracked, stats.sent, stats.retried, stats.buffered) == (250, 250, 0, 0)
    assert server.metadata[0]["authorization"] == "Bearer vdk_test"


def test_a_partial_batch_is_sent_after_the_flush_interval(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    with Tracker(options(target)) as tracker:
        tracker.track("u1", "llm.call")
        eventually(lambda: len(server.stored) == 1)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ],
)
def test_retryable_failures_resend_the_same_batch(
    fake: tuple[FakeIngest, str], code: grpc.StatusCode
) -> None:
    server, target = fake
    server.failures = [code, code]
    tracker = Tracker(options(target))
    for _ in range(10):
        tracker.track("u1", "llm.call")
    assert tracker.flush(5.0)
    stats = tracker.close()
    assert stats.sent == 10 and stats.retried == 20 and stats.failed == 0
    assert len({request_id for request_id, _ in server.calls}) == 1  # one batch, resent
    assert len(server.stored) == 10


def test_non_retryable_failures_are_counted_not_silently_dropped(
    fake: tuple[FakeIngest, str],
) -> None:
    server, target = fake
    server.failures = [grpc.StatusCode.PERMISSION_DENIED]
    tracker = Tracker(options(target))
    for _ in range(5):
        tracker.track("u1", "llm.call")
    stats = tracker.close()
    assert (stats.sent, stats.failed, stats.retried) == (0, 5, 0)


def test_rejections_are_counted(fake: tuple[FakeIngest, str]) -> None:
    _, target = fake
    tracker = Tracker(options(target))
    tracker.track("u1", "llm.call")
    tracker.track("u1", "bad")
    stats = tracker.close()
    assert (stats.sent, stats.rejected) == (1, 1)


def test_full_buffer_raises_when_asked_to(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    server.stall.clear()
    tracker = Tracker(options(target, buffer_size=10, batch_size=5, when_full=WhenFull.RAISE))
    for _ in range(5):  # the first batch is taken and hangs in the stalled server
        tracker.track("u1", "llm.call")
    eventually(lambda: server.entered == 1)
    for _ in range(10):
        tracker.track("u1", "llm.call")
    with pytest.raises(BufferFull):
        tracker.track("u1", "llm.call")
    server.stall.set()
    stats = tracker.close()
    assert stats.tracked == 15 and stats.sent == 15


def test_full_buffer_blocks_until_there_is_room(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    server.stall.clear()
    tracker = Tracker(options(target, buffer_size=5, batch_size=5, deadline_s=5.0))
    for _ in range(5):
        tracker.track("u1", "llm.call")
    eventually(lambda: server.entered == 1)  # the sender took them; the server stalls
    for _ in range(5):
        tracker.track("u1", "llm.call")
    entered = threading.Event()

    def track_one_more() -> None:
        entered.set()
        tracker.track("u1", "llm.call")

    blocked = threading.Thread(target=track_one_more)
    blocked.start()
    entered.wait(5)
    blocked.join(0.2)  # it cannot finish while the buffer is full
    assert blocked.is_alive() and tracker.stats().tracked == 10
    server.stall.set()
    blocked.join(5)
    assert not blocked.is_alive()
    assert tracker.close().sent == 11


def test_blocking_gives_up_after_its_timeout(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    server.stall.clear()
    tracker = Tracker(
        options(target, buffer_size=1, batch_size=1, block_timeout_s=0.1, deadline_s=5.0)
    )
    tracker.track("u1", "llm.call")
    eventually(lambda: server.entered == 1)  # in flight, stalled
    tracker.track("u1", "llm.call")
    with pytest.raises(BufferFull, match=r"within 0\.1 s"):
        tracker.track("u1", "llm.call")
    server.stall.set()
    assert tracker.close().sent == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_async_tracker_batches_retries_and_flushes_on_close(
    fake: tuple[FakeIngest, str],
) -> None:
    server, target = fake
    server.failures = [grpc.StatusCode.UNAVAILABLE]
    async with AsyncTracker(options(target)) as tracker:
        ids = [await tracker.track("u1", "llm.call", {"cost_usd": 0.1}) for _ in range(150)]
        assert await tracker.flush(5.0)
        stats = tracker.stats()
    assert server.stored == set(ids)
    assert stats.sent == 150 and stats.retried == 100 and stats.buffered == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_async_tracker_raises_when_full(fake: tuple[FakeIngest, str]) -> None:
    _, target = fake
    tracker = AsyncTracker(options(target, buffer_size=3, when_full=WhenFull.RAISE))
    for _ in range(3):
        await tracker.track("u1", "llm.call")
    with pytest.raises(BufferFull):
        await tracker.track("u1", "llm.call")
    stats = await tracker.close()
    assert stats.sent == 3


def test_close_gives_up_at_its_deadline_and_counts_what_is_lost(
    fake: tuple[FakeIngest, str],
) -> None:
    server, target = fake
    server.failures = [grpc.StatusCode.UNAVAILABLE] * 10_000  # ingest never recovers
    tracker = Tracker(options(target))
    for _ in range(7):
        tracker.track("u1", "llm.call")
    stats = tracker.close(timeout_s=0.3)
    assert (stats.sent, stats.dropped, stats.buffered) == (0, 7, 0)


@pytest.mark.asyncio(loop_scope="session")
async def test_async_close_keeps_the_same_deadline_promise(fake: tuple[FakeIngest, str]) -> None:
    server, target = fake
    server.failures = [grpc.StatusCode.UNAVAILABLE] * 10_000
    tracker = AsyncTracker(options(target))
    for _ in range(7):
        await tracker.track("u1", "llm.call")
    stats = await tracker.close(timeout_s=0.3)
    assert (stats.sent, stats.dropped, stats.buffered) == (0, 7, 0)


def test_both_trackers_offer_the_same_methods_with_the_same_parameters() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    sync, asynchronous = public(Tracker), public(AsyncTracker)
    shared = {"track", "track_event", "flush", "stats", "close"}
    assert shared <= set(sync) and shared <= set(asynchronous)
    assert {name: sync[name] for name in shared} == {name: asynchronous[name] for name in shared}
