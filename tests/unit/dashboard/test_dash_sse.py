"""The live stream of one page: `live` once the analysis service answers, a `results` event per
snapshot newer than the page's, a `service` event and the end when it cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from verdict.v1 import analysis_pb2
from verdict_dashboard.clients import Unreachable
from verdict_dashboard.sse import event, snapshot_events


class FakeApi:
    def __init__(self, snapshots: list[analysis_pb2.ResultSnapshot], fail_after: bool) -> None:
        self._snapshots = snapshots
        self._fail_after = fail_after

    async def watch_results(self, key: str) -> AsyncIterator[analysis_pb2.ResultSnapshot]:
        for s in self._snapshots:
            yield s
        if self._fail_after:
            raise Unreachable("analysis service", grpc.StatusCode.UNAVAILABLE, "down")
        await asyncio.Event().wait()  # a live stream stays open


async def render(snapshot: analysis_pb2.ResultSnapshot) -> str:
    return f"<p>snapshot {snapshot.id}</p>\n<p>second line</p>"


async def reachable() -> None:
    return None


async def unreachable() -> None:
    raise Unreachable("analysis service", grpc.StatusCode.UNAVAILABLE, "down")


async def collect(stream: AsyncIterator[str], count: int) -> list[str]:
    out = []
    async for item in stream:
        out.append(item)
        if len(out) == count:
            break
    return out


def test_an_event_splits_multi_line_data() -> None:
    assert event("results", "a\nb", "3") == "event: results\nid: 3\ndata: a\ndata: b\n\n"


@pytest.mark.asyncio
async def test_only_snapshots_newer_than_the_page_are_sent_then_the_outage_is_said() -> None:
    api: Any = FakeApi([analysis_pb2.ResultSnapshot(id=i) for i in (4, 5, 6)], fail_after=True)
    items = await collect(snapshot_events(api, "k", 5, render, reachable), 10)
    assert items[0] == "retry: 2000\n\n"
    assert items[1].startswith("event: live")
    assert items[2] == event("results", "<p>snapshot 6</p>\n<p>second line</p>", "6")
    assert items[3] == event("service", "The analysis service is unreachable: reconnecting…")
    assert len(items) == 4  # the stream ends; the browser reconnects by itself


@pytest.mark.asyncio
async def test_an_unreachable_service_is_said_at_once() -> None:
    api: Any = FakeApi([], fail_after=False)
    items = await collect(snapshot_events(api, "k", 0, render, unreachable), 10)
    assert [i.split("\n")[0] for i in items] == ["retry: 2000", "event: service"]


@pytest.mark.asyncio
async def test_an_idle_stream_sends_keepalive_comments() -> None:
    api: Any = FakeApi([], fail_after=False)
    stream = snapshot_events(api, "k", 0, render, reachable, keepalive_s=0.01)
    items = await collect(stream, 3)
    await stream.aclose()  # type: ignore[attr-defined]
    assert items[2] == ": keepalive\n\n"
