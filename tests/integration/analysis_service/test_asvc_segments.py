"""ListSegments: the segments with a stored snapshot, in order and by pages, for the experiment
asked about only.

The servicer is called in-process (as grpc's helloworld example tests its greeter): what is
under test is its translation and the SQL behind it on the real PostgreSQL, which a process and a
socket add nothing to. Roles (`test_platform_roles`), the Guard's mapping of domain errors to
status codes (`test_platform_guard`) and the RPC through the real process (the console's
journey) are pinned elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from asvc_rows import experiment, insert_experiment, unique_key

from verdict.v1 import analysis_pb2
from verdict_analysis.alert_store import PostgresAlertLog
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.catalog_reader import ExperimentCatalog
from verdict_analysis.exposure_timeline import PostgresExposureCounts
from verdict_analysis.grpc_stopper import GrpcStopper
from verdict_analysis.results_reader import Results
from verdict_analysis.results_signals import RedisResultsPublisher, ResultsSignals
from verdict_analysis.servicer import AnalysisServicer
from verdict_analysis.snapshot_store import SnapshotStore
from verdict_analysis.stats_reader import DatabaseLocks
from verdict_platform.errors import InvalidArgument, NotFound
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
NO_CONTEXT = None
"""ListSegments reads nothing from its context (metadata and auth are the Guard's)."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def servicer(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[AnalysisServicer]:
    """AnalysisServicer wired as the analysis process wires it, on the session's servers."""
    catalog, snapshots = ExperimentCatalog(pool), SnapshotStore(pool)
    alerts = PostgresAlertLog(pool, deliver=False)
    stopper = GrpcStopper("127.0.0.1:1", None)  # never called: ListSegments stops nothing
    analyzer = Analyzer(
        catalog,
        DatabaseLocks(pool),
        snapshots,
        RedisResultsPublisher(redis_client, settings),
        stopper,
        alerts,
    )
    signals = ResultsSignals(redis_client, settings)
    results = Results(catalog, snapshots, signals, PostgresExposureCounts(pool), alerts)
    try:
        yield AnalysisServicer(analyzer, results)
    finally:
        await stopper.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def segmented(pool: asyncpg.Pool) -> str:
    """An experiment with snapshots of three segments (each twice) and of the whole population,
    next to another experiment with a segment of its own; returns the first one's key."""
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
    return key


async def test_segments_are_listed_once_each_in_order_by_pages(
    servicer: AnalysisServicer, segmented: str
) -> None:
    seen: list[tuple[str, str]] = []
    token = ""
    while True:
        page = await servicer.ListSegments(
            analysis_pb2.ListSegmentsRequest(
                experiment_key=segmented, page_size=2, page_token=token
            ),
            NO_CONTEXT,
        )
        assert len(page.segments) <= 2
        seen.extend((s.dimension, s.value) for s in page.segments)
        token = page.next_page_token
        if not token:
            break
    assert seen == [("country", "DE"), ("country", "FR"), ("plan", "pro")]


async def test_segments_of_an_unknown_experiment_are_not_found(
    servicer: AnalysisServicer,
) -> None:
    with pytest.raises(NotFound):
        await servicer.ListSegments(
            analysis_pb2.ListSegmentsRequest(experiment_key="no-such"), NO_CONTEXT
        )


async def test_segments_without_an_experiment_key_are_invalid_argument(
    servicer: AnalysisServicer,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await servicer.ListSegments(analysis_pb2.ListSegmentsRequest(), NO_CONTEXT)
    assert [v.field for v in caught.value.violations] == ["experiment_key"]


async def test_a_segments_page_token_not_ours_is_invalid_argument(
    servicer: AnalysisServicer, segmented: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await servicer.ListSegments(
            analysis_pb2.ListSegmentsRequest(experiment_key=segmented, page_token="bad"),
            NO_CONTEXT,
        )
    assert [v.field for v in caught.value.violations] == ["page_token"]
