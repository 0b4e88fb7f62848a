"""IngestService against the real PostgreSQL, through a real service process."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import experiment_pb2, ingest_pb2, ingest_pb2_grpc
from verdict_platform import config_codec
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def event(unit: str = "u1", name: str = "llm.call", at: float | None = None) -> ingest_pb2.Event:
    return ingest_pb2.Event(
        event_id=str(uuid.uuid4()),
        unit_id=unit,
        name=name,
        timestamp=_ts(time.time() if at is None else at),
        measures={"latency_ms": 812.5, "gen_ai.usage.output_tokens": 120.0},
        properties={"gen_ai.request.model": "gpt-4o-mini", "prompt_version": "v3"},
    )


@pytest.fixture(scope="module")
def ingest(settings: Settings) -> Iterator[RunningService]:
    service = start_service_process(
        settings, "verdict_ingest", "VERDICT_INGEST_PORT", {"VERDICT_INGEST_MAX_BATCH": "100"}
    )
    yield service
    service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def stub(
    ingest: RunningService, make_key: object
) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    key = await make_key(Role.INGEST)  # type: ignore[operator]
    metadata = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(ingest.target) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        await eventually_async(lambda: _accepts(stub, metadata))
        stub.metadata = metadata  # type: ignore[attr-defined]
        yield stub


async def _accepts(stub: ingest_pb2_grpc.IngestServiceStub, metadata: tuple) -> bool:
    """Whether a probe batch goes through (UNAUTHENTICATED until the service knows the key)."""
    await stub.TrackEvents(
        ingest_pb2.TrackEventsRequest(request_id="probe", events=[event("probe")]),
        metadata=metadata,
        timeout=5,
    )
    return True


async def track(
    stub: ingest_pb2_grpc.IngestServiceStub, events: list[ingest_pb2.Event]
) -> ingest_pb2.TrackEventsResponse:
    return await stub.TrackEvents(
        ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=events),
        metadata=stub.metadata,  # type: ignore[attr-defined]
        timeout=10,
    )


async def test_valid_events_are_stored_with_measures_as_arrays(stub, pool: asyncpg.Pool) -> None:
    e = event("unit-arrays")
    reply = await track(stub, [e])
    assert (reply.accepted, reply.duplicates, reply.rejected) == (1, 0, 0)
    row = await pool.fetchrow(
        "SELECT unit_id, name, measure_names, measure_values, properties::text AS p"
        " FROM events WHERE event_id = $1",
        uuid.UUID(e.event_id),
    )
    assert row["unit_id"] == "unit-arrays" and row["name"] == "llm.call"
    assert dict(zip(row["measure_names"], row["measure_values"], strict=True)) == dict(e.measures)
    assert "gpt-4o-mini" in row["p"]


async def test_retried_batch_is_not_counted_twice(stub, pool: asyncpg.Pool) -> None:
    batch = [event("unit-retry") for _ in range(20)]
    first = await track(stub, batch)
    again = await track(stub, batch)
    assert (first.accepted, first.duplicates) == (20, 0)
    assert (again.accepted, again.duplicates) == (0, 20)
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE unit_id = 'unit-retry'")
    assert stored == 20


async def test_duplicates_within_a_batch_count_as_duplicates(stub, pool: asyncpg.Pool) -> None:
    e = event("unit-twice")
    reply = await track(stub, [e, e, event("unit-twice")])
    assert (reply.accepted, reply.duplicates) == (2, 1)


async def test_partial_acceptance_reports_each_rejection(stub, pool: asyncpg.Pool) -> None:
    good = event("unit-partial")
    bad_id = event("unit-partial")
    bad_id.event_id = "not-a-uuid"
    nan = event("unit-partial")
    nan.measures["latency_ms"] = float("nan")
    old = event("unit-partial", at=time.time() - 8 * 86_400)
    reply = await track(stub, [bad_id, good, nan, old])
    assert (reply.accepted, reply.duplicates, reply.rejected) == (1, 0, 3)
    assert [(r.index, r.field) for r in reply.rejections] == [
        (0, "event_id"),
        (2, "measures[latency_ms]"),
        (3, "timestamp"),
    ]
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE unit_id = 'unit-partial'")
    assert stored == 1


@pytest.mark.parametrize(
    "request_",
    [
        ingest_pb2.TrackEventsRequest(request_id="r", events=[]),
        ingest_pb2.TrackEventsRequest(request_id="", events=[event()]),
        ingest_pb2.TrackEventsRequest(request_id="r", events=[event() for _ in range(101)]),
    ],
    ids=["no events", "no request id", "more events than the batch limit"],
)
async def test_malformed_batches_are_invalid_argument(stub, request_) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.TrackEvents(request_, metadata=stub.metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_key_without_the_ingest_role_is_permission_denied(ingest, make_key) -> None:
    key = await make_key(Role.READ)
    async with grpc.aio.insecure_channel(ingest.target) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)

        async def refusal_once_known() -> grpc.StatusCode | None:
            try:
                await stub.TrackEvents(
                    ingest_pb2.TrackEventsRequest(request_id="r", events=[event()]),
                    metadata=(("authorization", f"Bearer {key}"),),
                    timeout=10,
                )
            except grpc.aio.AioRpcError as error:
                # UNAUTHENTICATED until the service has learnt of the new key
                return None if error.code() == grpc.StatusCode.UNAUTHENTICATED else error.code()
            raise AssertionError("a read key was allowed to ingest")

        code = await eventually_async(refusal_once_known)
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_stream_acknowledges_every_batch_in_order(stub, pool: asyncpg.Pool) -> None:
    batches = [
        ingest_pb2.StreamEventsRequest(
            batch_id=f"b{i}", events=[event("unit-stream") for _ in range(50)]
        )
        for i in range(30)
    ]

    async def requests() -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        for b in batches:
            yield b
        yield batches[0]  # a resent batch: acknowledged, all duplicates

    acks = [a async for a in stub.StreamEvents(requests(), metadata=stub.metadata, timeout=30)]
    assert [a.batch_id for a in acks] == [*(f"b{i}" for i in range(30)), "b0"]
    assert all(a.accepted == 50 for a in acks[:-1])
    assert (acks[-1].accepted, acks[-1].duplicates) == (0, 50)
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE unit_id = 'unit-stream'")
    assert stored == 1500


async def test_stream_ends_with_invalid_argument_after_earlier_acks(stub) -> None:
    async def requests() -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        yield ingest_pb2.StreamEventsRequest(batch_id="ok", events=[event("unit-s2")])
        yield ingest_pb2.StreamEventsRequest(batch_id="empty", events=[])

    acks = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for ack in stub.StreamEvents(requests(), metadata=stub.metadata, timeout=30):
            acks.append(ack.batch_id)
    assert acks == ["ok"]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def started_experiment(pool: asyncpg.Pool, key: str) -> None:
    """A running experiment with variants control and treatment, stored as ExperimentService
    stores it (exposures to unknown experiments or variants are rejected)."""
    experiment = experiment_pb2.Experiment(
        key=key,
        status=experiment_pb2.EXPERIMENT_STATUS_RUNNING,
        variants=[
            experiment_pb2.Variant(key="control", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="treatment", weight=0.5),
        ],
    )
    await pool.execute(
        """INSERT INTO experiments (key, status, spec) VALUES ($1, 'running', $2::jsonb)
           ON CONFLICT (key) DO NOTHING""",
        key,
        config_codec.experiment_spec(experiment),
    )


def exposure(
    exp: str,
    unit: str,
    variant: str,
    at: float | None = None,
    hashed: tuple[str, str] = ("", ""),
) -> ingest_pb2.Exposure:
    return ingest_pb2.Exposure(
        experiment_key=exp,
        variant_key=variant,
        unit_id=unit,
        timestamp=_ts(time.time() if at is None else at),
        allocation_version=1,
        segments={"country": "fr"},
        hash_attribute=hashed[0],
        hash_value=hashed[1],
    )


async def test_exposures_keep_the_first_variant_and_record_conflicts(
    stub, pool: asyncpg.Pool
) -> None:
    await started_experiment(pool, "exp-a")

    async def send(*exposures: ingest_pb2.Exposure) -> ingest_pb2.TrackExposuresResponse:
        return await stub.TrackExposures(
            ingest_pb2.TrackExposuresRequest(request_id=str(uuid.uuid4()), exposures=exposures),
            metadata=stub.metadata,
            timeout=10,
        )

    now = time.time()
    first = await send(
        exposure("exp-a", "u1", "control", now - 10), exposure("exp-a", "u2", "treatment", now)
    )
    assert (first.accepted, first.duplicates, first.conflicts) == (2, 0, 0)
    later = await send(
        exposure("exp-a", "u1", "control", now),  # same variant: duplicate
        exposure("exp-a", "u2", "control", now),  # another variant: conflict
        exposure("exp-a", "u3", "treatment", now),
        exposure("Bad Key", "u4", "control", now),
    )
    assert (later.accepted, later.duplicates, later.conflicts, later.rejected) == (1, 1, 1, 1)
    assert later.rejections[0].index == 3 and later.rejections[0].field == "experiment_key"
    stored = await pool.fetchval(
        "SELECT variant_key FROM exposures WHERE experiment_key = 'exp-a' AND unit_id = 'u2'"
    )
    assert stored == "treatment"
    conflicts = await pool.fetch(
        "SELECT unit_id, variant_key FROM exposure_conflicts WHERE experiment_key = 'exp-a'"
    )
    assert [(r["unit_id"], r["variant_key"]) for r in conflicts] == [("u2", "control")]


async def test_within_a_batch_the_earliest_exposure_wins(stub, pool: asyncpg.Pool) -> None:
    await started_experiment(pool, "exp-b")
    now = time.time()
    reply = await stub.TrackExposures(
        ingest_pb2.TrackExposuresRequest(
            request_id="r",
            exposures=[
                exposure("exp-b", "u1", "treatment", now),
                exposure("exp-b", "u1", "control", now - 60),
            ],
        ),
        metadata=stub.metadata,
        timeout=10,
    )
    assert (reply.accepted, reply.conflicts) == (1, 1)
    stored = await pool.fetchval(
        "SELECT variant_key FROM exposures WHERE experiment_key = 'exp-b' AND unit_id = 'u1'"
    )
    assert stored == "control"


async def test_partitions_exist_ahead_and_behind_the_window(stub, pool: asyncpg.Pool) -> None:
    names = {
        r["relname"]
        for r in await pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
        )
    }
    today = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    for offset in range(-8, 8):
        day = today.fromordinal(today.toordinal() + offset)
        assert f"events_{day:%Y%m%d}" in names


async def test_exposures_to_unknown_experiments_or_variants_are_counted_as_rejected(
    stub, pool: asyncpg.Pool
) -> None:
    await started_experiment(pool, "exp-c")
    reply = await stub.TrackExposures(
        ingest_pb2.TrackExposuresRequest(
            request_id=str(uuid.uuid4()),
            exposures=[
                exposure("no-such-experiment", "u1", "control"),
                exposure("exp-c", "u1", "no-such-variant"),
                exposure("exp-c", "u2", "treatment"),
            ],
        ),
        metadata=stub.metadata,
        timeout=10,
    )
    assert (reply.accepted, reply.rejected) == (1, 2)
    assert [(r.index, r.field) for r in reply.rejections] == [
        (0, "experiment_key"),
        (1, "variant_key"),
    ]
    stored = await pool.fetch(
        "SELECT experiment_key, unit_id FROM exposures WHERE unit_id IN ('u1', 'u2')"
        " AND experiment_key IN ('exp-c', 'no-such-experiment')"
    )
    assert [(r["experiment_key"], r["unit_id"]) for r in stored] == [("exp-c", "u2")]


async def test_exposures_store_the_hashed_attribute_and_value_of_the_first(
    stub, pool: asyncpg.Pool
) -> None:
    await started_experiment(pool, "exp-d")
    now = time.time()

    async def send(*exposures: ingest_pb2.Exposure) -> ingest_pb2.TrackExposuresResponse:
        return await stub.TrackExposures(
            ingest_pb2.TrackExposuresRequest(request_id=str(uuid.uuid4()), exposures=exposures),
            metadata=stub.metadata,
            timeout=10,
        )

    first = await send(
        exposure("exp-d", "u1", "treatment", now - 60, ("company_id", "acme")),
        exposure("exp-d", "u2", "treatment", now - 50, ("company_id", "acme")),
        exposure("exp-d", "u3", "control", now - 40),  # hashed on the unit id
    )
    assert (first.accepted, first.rejected) == (3, 0)
    # u1 changed company: same variant, so a duplicate; its first hashed value stays.
    later = await send(exposure("exp-d", "u1", "treatment", now, ("company_id", "globex")))
    assert (later.accepted, later.duplicates, later.conflicts) == (0, 1, 0)
    stored = await pool.fetch(
        "SELECT unit_id, hash_attribute, hash_value FROM exposures"
        " WHERE experiment_key = 'exp-d' ORDER BY unit_id"
    )
    assert [tuple(r) for r in stored] == [
        ("u1", "company_id", "acme"),
        ("u2", "company_id", "acme"),
        ("u3", "", ""),
    ]


async def test_hashed_attribute_and_value_go_together(stub, pool: asyncpg.Pool) -> None:
    await started_experiment(pool, "exp-e")
    reply = await stub.TrackExposures(
        ingest_pb2.TrackExposuresRequest(
            request_id=str(uuid.uuid4()),
            exposures=[
                exposure("exp-e", "u1", "control", hashed=("company_id", "")),
                exposure("exp-e", "u2", "control", hashed=("", "acme")),
                exposure("exp-e", "u3", "control", hashed=("company_id", "a" * 257)),
                exposure("exp-e", "u4", "control", hashed=("id", "someone-else")),
                exposure("exp-e", "u5", "control", hashed=("id", "u5")),
            ],
        ),
        metadata=stub.metadata,
        timeout=10,
    )
    assert (reply.accepted, reply.rejected) == (1, 4)
    assert [(r.index, r.field) for r in reply.rejections] == [
        (0, "hash_value"),
        (1, "hash_attribute"),
        (2, "hash_value"),
        (3, "hash_value"),
    ]
    stored = await pool.fetch(
        "SELECT unit_id, hash_attribute, hash_value FROM exposures WHERE experiment_key = 'exp-e'"
    )
    assert [tuple(r) for r in stored] == [("u5", "id", "u5")]
