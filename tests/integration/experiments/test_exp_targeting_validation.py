"""CreateExperiment and UpdateExperiment refuse a malformed targeting condition with one field
violation per problem, at `experiment.targeting.<path>`, over gRPC with the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from exp_server import Client, experiment, failure, serving, unique
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import experiment_pb2 as pb
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Client]:
    async with serving(settings, pool, redis_client, make_key) as c:
        yield c


def _create(client: Client, targeting: dict[str, Any]) -> Any:
    exp = experiment(unique("tgt"), targeting=targeting)
    return client.stub.CreateExperiment(
        pb.CreateExperimentRequest(experiment=exp), metadata=client.admin
    )


def _deep(levels: int) -> dict[str, Any]:
    condition: dict[str, Any] = {"country": "FR"}
    for _ in range(levels):
        condition = {"$not": condition}
    return condition


@pytest.mark.parametrize(
    ("targeting", "fields"),
    [
        ({"email": {"$regex": "^(a+"}}, {"experiment.targeting.email.$regex"}),
        ({"email": {"$regex": "(a)\\1"}}, {"experiment.targeting.email.$regex"}),
        ({"country": {"$in": "FR"}}, {"experiment.targeting.country.$in"}),
        ({"plan": {"$foo": 1}}, {"experiment.targeting.plan.$foo"}),
        (
            {"$and": [{"a": 1}, {"email": {"$regexi": "(?=x)"}}], "b": {"$exists": "yes"}},
            {"experiment.targeting.$and[1].email.$regexi", "experiment.targeting.b.$exists"},
        ),
        (_deep(20), {"experiment.targeting." + ".".join(["$not"] * 10)}),
    ],
    ids=["invalid-regex", "backreference", "in-not-array", "unknown-op", "two", "deep"],
)
async def test_create_refuses_each_problem_at_its_path(
    client: Client, targeting: dict[str, Any], fields: set[str]
) -> None:
    code, violations = await failure(_create(client, targeting))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == fields


async def test_create_accepts_a_well_formed_condition(client: Client) -> None:
    targeting = {"ua": {"$regex": "(?<os>iOS|Android)"}, "v": {"$vgte": "2.1.0"}}
    reply = await _create(client, targeting)
    assert reply.experiment.targeting["v"]["$vgte"] == "2.1.0"


async def test_update_refuses_a_malformed_condition(client: Client) -> None:
    created = (await _create(client, {"country": "FR"})).experiment
    patch = pb.Experiment(key=created.key)
    patch.targeting.update({"country": {"$nin": "FR"}})
    call = client.stub.UpdateExperiment(
        pb.UpdateExperimentRequest(experiment=patch, update_mask=FieldMask(paths=["targeting"])),
        metadata=client.admin,
    )
    code, violations = await failure(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == {"experiment.targeting.country.$nin"}
