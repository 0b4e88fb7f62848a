"""Safe defaults and validation on write of issue 17's fields, over gRPC with the Guard and the
real PostgreSQL: coverage is written out (absent: 1), a live experiment can always enrol someone
(FAILED_PRECONDITION naming the field otherwise), and ranges, filters and the fallback attribute
are checked on write (INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from exp_server import Client, experiment, failure, precondition_failure, serving, unique
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import experiment_pb2 as pb
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
Code = grpc.StatusCode
NOBODY = "the experiment would enrol nobody"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Client]:
    async with serving(settings, pool, redis_client, make_key) as c:
        yield c


def _no_coverage(key: str, **spec: Any) -> pb.Experiment:
    e = experiment(key, **spec)
    if "coverage" not in spec:
        e.ClearField("coverage")
    return e


def _create(client: Client, e: pb.Experiment) -> Any:
    return client.stub.CreateExperiment(
        pb.CreateExperimentRequest(experiment=e), metadata=client.admin
    )


def _start(client: Client, key: str) -> Any:
    return client.stub.StartExperiment(pb.StartExperimentRequest(key=key), metadata=client.admin)


def _update(client: Client, patch: pb.Experiment, *paths: str) -> Any:
    return client.stub.UpdateExperiment(
        pb.UpdateExperimentRequest(experiment=patch, update_mask=FieldMask(paths=list(paths))),
        metadata=client.admin,
    )


async def _get(client: Client, key: str) -> pb.Experiment:
    reply = await client.stub.GetExperiment(pb.GetExperimentRequest(key=key), metadata=client.qa)
    got: pb.Experiment = reply.experiment
    return got


async def test_an_experiment_created_without_coverage_is_stored_with_coverage_one(
    client: Client, pool: asyncpg.Pool
) -> None:
    key = unique("nocov")
    created = (await _create(client, _no_coverage(key))).experiment
    assert created.HasField("coverage") and created.coverage == 1.0
    got = await _get(client, key)
    assert got.HasField("coverage") and got.coverage == 1.0
    spec = json.loads(await pool.fetchval("SELECT spec::text FROM experiments WHERE key = $1", key))
    assert spec["coverage"] == 1.0  # explicit in storage: every reader sees the same thing


async def test_an_explicit_zero_coverage_is_kept_in_a_draft(
    client: Client, pool: asyncpg.Pool
) -> None:
    key = unique("zerocov")
    created = (await _create(client, experiment(key, coverage=0.0))).experiment
    assert created.HasField("coverage") and created.coverage == 0.0
    spec = json.loads(await pool.fetchval("SELECT spec::text FROM experiments WHERE key = $1", key))
    assert spec["coverage"] == 0.0


async def test_an_update_masking_coverage_without_a_value_restores_the_default(
    client: Client,
) -> None:
    key = unique("maskcov")
    await _create(client, experiment(key, coverage=0.25))
    reply = await _update(client, pb.Experiment(key=key), "coverage")
    assert reply.experiment.HasField("coverage") and reply.experiment.coverage == 1.0


async def test_starting_with_coverage_zero_is_refused_naming_coverage(client: Client) -> None:
    key = unique("startcov")
    await _create(client, experiment(key, coverage=0.0))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION
    assert fields == {"coverage": f"is 0: {NOBODY}"}
    assert (await _get(client, key)).status == pb.EXPERIMENT_STATUS_DRAFT


async def test_a_running_experiment_cannot_be_updated_to_coverage_zero(client: Client) -> None:
    key = unique("runcov")
    await _create(client, experiment(key))
    await _start(client, key)
    code, fields = await precondition_failure(
        _update(client, pb.Experiment(key=key, coverage=0.0), "coverage")
    )
    assert code is Code.FAILED_PRECONDITION
    assert set(fields) == {"experiment.coverage"}
    assert (await _get(client, key)).coverage == 1.0


async def test_a_stopped_experiment_cannot_be_updated_to_coverage_zero(client: Client) -> None:
    key = unique("stopcov")
    await _create(client, experiment(key))
    await _start(client, key)
    await client.stub.StopExperiment(
        pb.StopExperimentRequest(key=key, reason="done"), metadata=client.admin
    )
    code, fields = await precondition_failure(
        _update(client, pb.Experiment(key=key, coverage=0.0), "coverage")
    )
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"experiment.coverage"}


async def test_every_weight_zero_is_an_equal_split_and_starts(client: Client) -> None:
    key = unique("eqsplit")
    variants = [{"key": "control", "isControl": True}, {"key": "v1"}, {"key": "v2"}]
    created = (await _create(client, experiment(key, variants=variants))).experiment
    assert [v.weight for v in created.variants] == [0.0, 0.0, 0.0]
    started = await _start(client, key)
    assert started.experiment.status == pb.EXPERIMENT_STATUS_RUNNING


async def test_an_explicit_split_with_a_zero_weight_is_allowed(client: Client) -> None:
    key = unique("zeroweight")
    variants = [{"key": "control", "weight": 1.0, "isControl": True}, {"key": "v1"}]
    await _create(client, experiment(key, variants=variants))
    assert (await _start(client, key)).experiment.status == pb.EXPERIMENT_STATUS_RUNNING


def _ranged(*ranges: tuple[float, float]) -> list[dict[str, Any]]:
    return [
        {"key": f"v{i}", "isControl": i == 0, "range": {"start": s, "end": e}}
        for i, (s, e) in enumerate(ranges)
    ]


async def test_explicit_ranges_that_are_all_empty_cannot_start(client: Client) -> None:
    key = unique("emptyranges")
    await _create(client, experiment(key, variants=_ranged((0.2, 0.2), (0.5, 0.5))))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"variants"}


async def test_a_control_kept_out_of_traffic_cannot_start(client: Client) -> None:
    ranged = unique("emptycontrol")
    await _create(client, experiment(ranged, variants=_ranged((0.2, 0.2), (0.5, 0.9))))
    code, fields = await precondition_failure(_start(client, ranged))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"variants[0].range"}
    weighted = unique("zerocontrol")
    variants = [
        {"key": "control", "isControl": True, "weight": 0.0},
        {"key": "treatment", "weight": 1.0},
    ]
    await _create(client, experiment(weighted, variants=variants))
    code, fields = await precondition_failure(_start(client, weighted))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"variants[0].weight"}


async def test_explicit_ranges_replace_coverage(client: Client) -> None:
    key = unique("rangedcov")
    await _create(client, experiment(key, coverage=0.0, variants=_ranged((0, 0.3), (0.3, 0.6))))
    assert (await _start(client, key)).experiment.status == pb.EXPERIMENT_STATUS_RUNNING


async def test_a_filter_whose_ranges_are_all_empty_cannot_start(client: Client) -> None:
    key = unique("emptyfilter")
    filters = [
        {"seed": "other", "ranges": [{"start": 0, "end": 0.5}]},
        {"seed": "x", "ranges": [{"start": 0.1, "end": 0.1}, {"start": 0.7, "end": 0.7}]},
    ]
    await _create(client, experiment(key, filters=filters))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"filters[1].ranges"}


async def test_filters_on_one_seed_whose_ranges_never_overlap_cannot_start(client: Client) -> None:
    key = unique("disjointfilters")
    filters = [
        {"seed": "other", "ranges": [{"start": 0, "end": 0.3}, {"start": 0.6, "end": 0.7}]},
        {"seed": "other", "ranges": [{"start": 0.3, "end": 0.6}]},
    ]
    await _create(client, experiment(key, filters=filters))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"filters[1].ranges"}
    overlapping = unique("overlapfilters")
    filters[1]["ranges"] = [{"start": 0.25, "end": 0.6}]  # [0.25, 0.3) is in both
    await _create(client, experiment(overlapping, filters=filters))
    assert (await _start(client, overlapping)).experiment.status == pb.EXPERIMENT_STATUS_RUNNING


async def test_every_reason_to_enrol_nobody_is_named_at_once(client: Client) -> None:
    key = unique("allnobody")
    filters = [{"seed": "x", "ranges": [{"start": 0.4, "end": 0.4}]}]
    await _create(client, experiment(key, coverage=0.0, filters=filters))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION
    assert set(fields) == {"coverage", "filters[0].ranges"}


async def test_the_filter_hash_version_default_is_written_out(client: Client) -> None:
    filters = [{"seed": "s", "ranges": [{"start": 0, "end": 0.2}]}]
    created = (await _create(client, experiment(unique("fhv"), filters=filters))).experiment
    assert created.filters[0].hash_version == 2


LONG = "x" * 257
INVALID: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "ranges-some-not-all",
        {"variants": [{"key": "c", "isControl": True, "range": {"end": 0.5}}, {"key": "t"}]},
        {"experiment.variants[1].range"},
    ),
    (
        "range-outside",
        {"variants": _ranged((0, 0.5), (0.5, 1.5))},
        {"experiment.variants[1].range.end"},
    ),
    (
        "range-reversed",
        {"variants": _ranged((0, 0.5), (0.8, 0.6))},
        {"experiment.variants[1].range.end"},
    ),
    (
        "ranges-overlap",
        {"variants": _ranged((0, 0.5), (0.4, 0.9))},
        {"experiment.variants[1].range"},
    ),
    (
        "ranges-overlap-far",
        {"variants": _ranged((0, 0.9), (0.1, 0.2), (0.3, 0.4))},
        {"experiment.variants[1].range", "experiment.variants[2].range"},
    ),
    (
        "too-many-filters",
        {"filters": [{"seed": "s", "ranges": [{"end": 1}]}] * 11},
        {"experiment.filters"},
    ),
    ("filter-no-ranges", {"filters": [{"seed": "s"}]}, {"experiment.filters[0].ranges"}),
    (
        "filter-too-many-ranges",
        {"filters": [{"seed": "s", "ranges": [{"start": 0, "end": 0.01}] * 21}]},
        {"experiment.filters[0].ranges"},
    ),
    (
        "filter-bad-range",
        {"filters": [{"seed": "s", "ranges": [{"start": -0.1, "end": 0.5}]}]},
        {"experiment.filters[0].ranges[0].start"},
    ),
    (
        "filter-hash-version",
        {"filters": [{"seed": "s", "ranges": [{"end": 1}], "hashVersion": 3}]},
        {"experiment.filters[0].hash_version"},
    ),
    (
        "filter-long-seed",
        {"filters": [{"seed": LONG, "ranges": [{"end": 1}]}]},
        {"experiment.filters[0].seed"},
    ),
    ("filter-no-seed", {"filters": [{"ranges": [{"end": 1}]}]}, {"experiment.filters[0].seed"}),
    ("fallback-long", {"fallbackAttribute": LONG}, {"experiment.fallback_attribute"}),
    (
        "fallback-is-hash-attribute",
        {"hashAttribute": "user_id", "fallbackAttribute": "user_id"},
        {"experiment.fallback_attribute"},
    ),
    ("fallback-is-default-id", {"fallbackAttribute": "id"}, {"experiment.fallback_attribute"}),
    (
        "fallback-never-used-under-the-unit-id",
        {"fallbackAttribute": "device_id"},
        {"experiment.fallback_attribute"},
    ),
    ("coverage-above-one", {"coverage": 1.5}, {"experiment.coverage"}),
    (
        "weights-partial-sum",
        {"variants": [{"key": "c", "isControl": True, "weight": 0.5}, {"key": "t"}]},
        {"experiment.variants"},
    ),
]


@pytest.mark.parametrize(
    ("spec", "fields"), [(s, f) for _, s, f in INVALID], ids=[i for i, _, _ in INVALID]
)
async def test_invalid_allocation_is_invalid_argument_naming_the_field(
    client: Client, spec: dict[str, Any], fields: set[str]
) -> None:
    code, violations = await failure(_create(client, experiment(unique("inv"), **spec)))
    assert code is Code.INVALID_ARGUMENT
    assert set(violations) == fields


async def test_an_update_is_validated_like_a_create(client: Client) -> None:
    key = unique("updinv")
    await _create(client, experiment(key))
    patch = pb.Experiment(key=key, fallback_attribute="id")
    code, violations = await failure(_update(client, patch, "fallback_attribute"))
    assert code is Code.INVALID_ARGUMENT and set(violations) == {"experiment.fallback_attribute"}


async def test_a_valid_allocation_round_trips(client: Client) -> None:
    key = unique("valid")
    spec = {
        "variants": _ranged((0, 0.25), (0.5, 0.75)),
        "filters": [{"seed": "other", "ranges": [{"start": 0.2, "end": 1}], "hashVersion": 1}],
        "hashAttribute": "user_id",
        "fallbackAttribute": "device_id",
        "qaMode": True,
    }
    created = (await _create(client, experiment(key, **spec))).experiment
    got = await _get(client, key)
    assert got == created
    assert got.fallback_attribute == "device_id" and got.qa_mode
    assert got.variants[1].range.start == 0.5 and got.filters[0].hash_version == 1


async def test_ranges_change_while_running_like_weights(client: Client) -> None:
    key = unique("rangerun")
    await _create(client, experiment(key, variants=_ranged((0, 0.5), (0.5, 1))))
    await _start(client, key)
    patch = experiment(key, variants=_ranged((0, 0.2), (0.5, 0.7)))
    reply = await _update(client, patch, "variants")
    assert reply.experiment.allocation_version == 2
