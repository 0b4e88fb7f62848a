"""ListSegments in the real analysis process: the segments with a stored snapshot, in order and
by pages, for the experiment asked about only."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import grpc
import pytest
from asvc_rows import experiment, insert_experiment, unique_key
from conftest import MakeKey

from support.processes import RunningService
from verdict.v1 import analysis_pb2, analysis_pb2_grpc
from verdict_analysis.snapshot_store import SnapshotStore
from verdict_platform.roles import Role


@pytest.mark.asyncio(loop_scope="session")
async def test_segments_are_listed_in_order_by_pages(
    start_service: Callable[..., RunningService], make_key: MakeKey, pool: asyncpg.Pool
) -> None:
    reader = (("authorization", f"Bearer {await make_key(Role.READ)}"),)
    key, other = unique_key("asvc-seg"), unique_key("asvc-seg-other")
    for k in (key, other):
        await insert_experiment(pool, experiment(k))
    store = SnapshotStore(pool)
    for dimension, value in (("country", "FR"), ("plan", "pro"), ("country", "DE"), ("", "")):
        for _ in range(2):  # two snapshots of a segment list it once
            snapshot = analysis_pb2.ResultSnapshot(experiment_key=key)
            if dimension:
                snapshot.segment.dimension, snapshot.segment.value = dimension, value
            await store.add(snapshot)
    await store.add(
        analysis_pb2.ResultSnapshot(
            experiment_key=other, segment=analysis_pb2.Segment(dimension="os", value="ios")
        )
    )

    analysis = start_service(
        "verdict_analysis", "VERDICT_ANALYSIS_PORT", VERDICT_ANALYSIS_INTERVAL="3600"
    )
    async with grpc.aio.insecure_channel(analysis.target) as channel:
        stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
        seen: list[tuple[str, str]] = []
        token = ""
        while True:
            page = await stub.ListSegments(
                analysis_pb2.ListSegmentsRequest(experiment_key=key, page_size=2, page_token=token),
                metadata=reader,
            )
            assert len(page.segments) <= 2
            seen.extend((s.dimension, s.value) for s in page.segments)
            token = page.next_page_token
            if not token:
                break
        assert seen == [("country", "DE"), ("country", "FR"), ("plan", "pro")]

        for request, code in (
            (analysis_pb2.ListSegmentsRequest(experiment_key="no-such"), grpc.StatusCode.NOT_FOUND),
            (analysis_pb2.ListSegmentsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
            (
                analysis_pb2.ListSegmentsRequest(experiment_key=key, page_token="bad"),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListSegments(request, metadata=reader)
            assert caught.value.code() == code
