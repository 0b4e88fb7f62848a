"""Holdouts and the experiments naming them, over gRPC with the Guard and the real PostgreSQL:
a holdout's shape, `holdout_key` checked on create, update and start, a holdout that cannot be
archived or stop being one while experiments name it; and the audit log of holdout and QA-mode
changes."""

from __future__ import annotations

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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Client]:
    async with serving(settings, pool, redis_client, make_key) as c:
        yield c


def _create(client: Client, e: pb.Experiment) -> Any:
    return client.stub.CreateExperiment(
        pb.CreateExperimentRequest(experiment=e), metadata=client.admin
    )


def _start(client: Client, key: str) -> Any:
    return client.stub.StartExperiment(pb.StartExperimentRequest(key=key), metadata=client.admin)


def _stop(client: Client, key: str) -> Any:
    return client.stub.StopExperiment(
        pb.StopExperimentRequest(key=key, reason="end of quarter"), metadata=client.admin
    )


def _archive(client: Client, key: str) -> Any:
    return client.stub.ArchiveExperiment(
        pb.ArchiveExperimentRequest(key=key), metadata=client.admin
    )


def _update(client: Client, patch: pb.Experiment, *paths: str) -> Any:
    return client.stub.UpdateExperiment(
        pb.UpdateExperimentRequest(experiment=patch, update_mask=FieldMask(paths=list(paths))),
        metadata=client.admin,
    )


async def _holdout(client: Client, *, running: bool = True) -> str:
    key = unique("holdout")
    await _create(client, experiment(key, holdout=True))
    if running:
        await _start(client, key)
    return key


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "variants": [
                    {"key": "held", "isControl": True},
                    {"key": "a"},
                    {"key": "b"},
                ]
            },
            "experiment.variants",
        ),
        ({"layer": {"id": "l1", "start": 0, "end": 0.5}}, "experiment.layer"),
        ({"holdoutKey": "some-other"}, "experiment.holdout_key"),
    ],
    ids=["three-variants", "layer", "own-holdout"],
)
async def test_a_holdout_has_two_variants_no_layer_and_no_holdout(
    client: Client, spec: dict[str, Any], field: str
) -> None:
    code, violations = await failure(_create(client, experiment(unique("h"), holdout=True, **spec)))
    assert code is Code.INVALID_ARGUMENT and field in violations


async def test_holdout_key_must_name_a_holdout(client: Client) -> None:
    plain = unique("plain")
    await _create(client, experiment(plain))
    for target in (plain, unique("missing")):
        code, violations = await failure(
            _create(client, experiment(unique("e"), holdoutKey=target))
        )
        assert code is Code.INVALID_ARGUMENT and set(violations) == {"experiment.holdout_key"}
    code, violations = await failure(
        _create(client, experiment("self-named", holdoutKey="self-named"))
    )
    assert code is Code.INVALID_ARGUMENT and set(violations) == {"experiment.holdout_key"}


async def test_holdout_key_is_checked_on_update(client: Client) -> None:
    key, plain = unique("e"), unique("plain")
    await _create(client, experiment(key))
    await _create(client, experiment(plain))
    code, violations = await failure(
        _update(client, pb.Experiment(key=key, holdout_key=plain), "holdout_key")
    )
    assert code is Code.INVALID_ARGUMENT and set(violations) == {"experiment.holdout_key"}


async def test_an_experiment_starts_only_while_its_holdout_runs(client: Client) -> None:
    holdout = await _holdout(client, running=False)
    key = unique("covered")
    await _create(client, experiment(key, holdoutKey=holdout))
    code, fields = await precondition_failure(_start(client, key))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"holdout_key"}
    assert "not running" in fields["holdout_key"]
    await _start(client, holdout)
    started = await _start(client, key)
    assert started.experiment.status == pb.EXPERIMENT_STATUS_RUNNING


async def test_a_running_experiment_cannot_move_under_a_holdout_that_is_not_running(
    client: Client,
) -> None:
    holdout = await _holdout(client, running=False)
    key = unique("moving")
    await _create(client, experiment(key))
    await _start(client, key)
    code, fields = await precondition_failure(
        _update(client, pb.Experiment(key=key, holdout_key=holdout), "holdout_key")
    )
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"experiment.holdout_key"}


async def test_a_named_holdout_cannot_be_archived_until_its_experiments_are(client: Client) -> None:
    holdout = await _holdout(client)
    key = unique("covered")
    await _create(client, experiment(key, holdoutKey=holdout))
    await _stop(client, holdout)  # stopping is always allowed
    code, fields = await precondition_failure(_archive(client, holdout))
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"holdout"}
    assert key in fields["holdout"]
    await _archive(client, key)
    archived = await _archive(client, holdout)
    assert archived.experiment.status == pb.EXPERIMENT_STATUS_ARCHIVED


async def test_a_named_holdout_stays_a_holdout(client: Client) -> None:
    holdout = await _holdout(client, running=False)
    await _create(client, experiment(unique("covered"), holdoutKey=holdout))
    code, fields = await precondition_failure(
        _update(client, pb.Experiment(key=holdout), "holdout")
    )
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"experiment.holdout"}


async def test_holdout_changes_only_in_draft(client: Client) -> None:
    key = unique("late")
    await _create(client, experiment(key))
    await _start(client, key)
    code, fields = await precondition_failure(
        _update(client, pb.Experiment(key=key, holdout=True), "holdout")
    )
    assert code is Code.FAILED_PRECONDITION and set(fields) == {"experiment.holdout"}


async def _last_change(client: Client, key: str) -> pb.AuditEvent:
    reply = await client.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(experiment_key=key, page_size=1), metadata=client.qa
    )
    event: pb.AuditEvent = reply.audit_events[0]
    return event


async def test_holdout_and_qa_mode_changes_are_audited(client: Client) -> None:
    holdout = await _holdout(client, running=False)
    created = await _last_change(client, holdout)
    assert created.action == "experiment.created" and created.changes["holdout"]["after"] is True
    key = unique("qa")
    await _create(client, experiment(key))
    await _update(
        client, pb.Experiment(key=key, qa_mode=True, holdout_key=holdout), "qa_mode", "holdout_key"
    )
    updated = await _last_change(client, key)
    assert updated.action == "experiment.updated"
    assert updated.changes["qa_mode"]["after"] is True
    assert updated.changes["holdout_key"]["after"] == holdout
    await _update(client, pb.Experiment(key=key), "qa_mode")
    assert (await _last_change(client, key)).changes["qa_mode"]["before"] is True
