"""ExperimentService over gRPC, with the Guard, against the real PostgreSQL and Redis:
validation, errors, pagination, updates and the lifecycle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from exp_server import Client, experiment, failure, serving, unique
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import common_pb2, experiment_pb2
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
S = experiment_pb2.ExperimentStatus
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


async def create(client: Client, exp: experiment_pb2.Experiment) -> experiment_pb2.Experiment:
    reply = await client.stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=exp), metadata=client.admin
    )
    created: experiment_pb2.Experiment = reply.experiment
    return created


def update(
    client: Client, exp: experiment_pb2.Experiment, *paths: str, expected_version: int = 0
) -> Any:
    return client.stub.UpdateExperiment(
        experiment_pb2.UpdateExperimentRequest(
            experiment=exp,
            update_mask=FieldMask(paths=list(paths)),
            expected_version=expected_version,
        ),
        metadata=client.admin,
    )


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("key not a slug", {"key": "Not A Slug"}, "experiment.key"),
    (
        "one variant",
        {"variants": [{"key": "control", "weight": 1.0, "isControl": True}]},
        "experiment.variants",
    ),
    (
        "no control",
        {"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]},
        "experiment.variants",
    ),
    (
        "duplicate variant keys",
        {"variants": [{"key": "a", "weight": 0.5, "isControl": True}, {"key": "a", "weight": 0.5}]},
        "experiment.variants[1].key",
    ),
    (
        "weights do not sum to 1",
        {"variants": [{"key": "a", "weight": 0.5, "isControl": True}, {"key": "b", "weight": 0.4}]},
        "experiment.variants",
    ),
    (
        "weight above 1",
        {
            "variants": [
                {"key": "a", "weight": 1.5, "isControl": True},
                {"key": "b", "weight": -0.5},
            ]
        },
        "experiment.variants[0].weight",
    ),
    ("coverage above 1", {"coverage": 1.5}, "experiment.coverage"),
    ("targeting does not parse", {"targeting": {"$and": {"a": 1}}}, "experiment.targeting.$and"),
    (
        "payload above 64 KiB",
        {
            "variants": [
                {"key": "a", "weight": 0.5, "isControl": True},
                {"key": "b", "weight": 0.5, "payload": {"prompt": "x" * 70_000}},
            ]
        },
        "experiment.variants[1].payload",
    ),
    (
        "unknown metric",
        {"metrics": [{"metricKey": "no-such-metric", "role": "METRIC_ROLE_PRIMARY"}]},
        "experiment.metrics[0].metric_key",
    ),
    (
        "layer range inverted",
        {"layer": {"id": "l", "start": 0.6, "end": 0.2}},
        "experiment.layer.end",
    ),
    ("hash version 3", {"hashVersion": 3}, "experiment.hash_version"),
    (
        "forced to unknown variant",
        {"forcedVariations": {"u1": "zz"}},
        "experiment.forced_variations['u1']",
    ),
    ("alpha above 0.5", {"analysisPlan": {"alpha": 0.7}}, "experiment.analysis_plan.alpha"),
]


@pytest.mark.parametrize(
    ("spec", "field"), [(s, f) for _, s, f in INVALID], ids=[n for n, _, _ in INVALID]
)
async def test_invalid_experiment_is_invalid_argument_naming_the_field(
    client: Client, spec: dict[str, Any], field: str
) -> None:
    call = client.stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(
            experiment=experiment(unique("bad"), **spec)
            if "key" not in spec
            else experiment(**spec)
        ),
        metadata=client.admin,
    )
    code, violations = await failure(call)
    assert code is Code.INVALID_ARGUMENT
    assert field in violations


async def test_create_stores_defaults_and_the_spec_contract(
    client: Client, pool: asyncpg.Pool
) -> None:
    key = unique("created")
    created = await create(client, experiment(key))
    assert created.status == S.EXPERIMENT_STATUS_DRAFT
    assert (created.version, created.allocation_version) == (1, 1)
    assert (created.seed, created.hash_attribute, created.hash_version) == (key, "id", 2)
    assert created.HasField("create_time") and created.HasField("update_time")
    row = await pool.fetchrow(
        "SELECT status, version, allocation_version, spec::text FROM experiments WHERE key = $1",
        key,
    )
    assert row is not None
    assert (row["status"], row["version"], row["allocation_version"]) == ("draft", 1, 1)
    assert json.loads(row["spec"]) == json_format.MessageToDict(created)
    got = await client.stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=key), metadata=client.reader
    )
    assert got.experiment == created


async def test_duplicate_key_is_already_exists(client: Client) -> None:
    key = unique("dup")
    await create(client, experiment(key))
    code, _ = await failure(
        client.stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment(key)),
            metadata=client.admin,
        )
    )
    assert code is Code.ALREADY_EXISTS


async def test_an_unknown_key_is_not_found(client: Client) -> None:
    code, _ = await failure(
        client.stub.GetExperiment(
            experiment_pb2.GetExperimentRequest(key="nope-nope"), metadata=client.reader
        )
    )
    assert code is Code.NOT_FOUND


async def test_an_empty_key_is_invalid_argument_naming_it(client: Client) -> None:
    code, violations = await failure(
        client.stub.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=""), metadata=client.reader
        )
    )
    assert code is Code.INVALID_ARGUMENT and "key" in violations


async def test_starting_an_unknown_experiment_is_not_found(client: Client) -> None:
    code, _ = await failure(
        client.stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key="nope-nope"), metadata=client.admin
        )
    )
    assert code is Code.NOT_FOUND


async def test_a_read_key_cannot_create(client: Client) -> None:
    request = experiment_pb2.CreateExperimentRequest(experiment=experiment(unique("denied")))
    code, _ = await failure(client.stub.CreateExperiment(request, metadata=client.reader))
    assert code is Code.PERMISSION_DENIED


async def test_a_call_without_a_key_is_unauthenticated(client: Client) -> None:
    request = experiment_pb2.CreateExperimentRequest(experiment=experiment(unique("denied")))
    code, _ = await failure(client.stub.CreateExperiment(request))
    assert code is Code.UNAUTHENTICATED


async def test_pagination_walks_every_item_once_newest_first(client: Client) -> None:
    prefix = unique("page")
    keys = [f"{prefix}-{i:02d}" for i in range(7)]
    for key in keys:
        await create(client, experiment(key))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await client.stub.ListExperiments(
            experiment_pb2.ListExperimentsRequest(page_size=3, page_token=token),
            metadata=client.reader,
        )
        assert len(reply.experiments) <= 3
        seen.extend(e.key for e in reply.experiments)
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    mine = [k for k in seen if k.startswith(prefix)]
    assert mine == list(reversed(keys))
    assert len(seen) == len(set(seen)) and pages >= 3


async def test_listing_by_status_gives_only_that_status(client: Client) -> None:
    started, draft = unique("listed-running"), unique("listed-draft")
    for key in (started, draft):
        await create(client, experiment(key))
    await client.stub.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=started), metadata=client.admin
    )

    async def listed(status: int) -> list[experiment_pb2.Experiment]:
        reply = await client.stub.ListExperiments(
            experiment_pb2.ListExperimentsRequest(status=status, page_size=1000),
            metadata=client.reader,
        )
        return list(reply.experiments)

    running = await listed(S.EXPERIMENT_STATUS_RUNNING)
    assert {e.status for e in running} == {S.EXPERIMENT_STATUS_RUNNING}
    assert started in {e.key for e in running} and draft not in {e.key for e in running}
    drafts = await listed(S.EXPERIMENT_STATUS_DRAFT)
    assert draft in {e.key for e in drafts} and started not in {e.key for e in drafts}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (experiment_pb2.ListExperimentsRequest(page_token="garbage!"), "page_token"),
        (experiment_pb2.ListExperimentsRequest(page_size=1001), "page_size"),
        (experiment_pb2.ListExperimentsRequest(page_size=-1), "page_size"),
    ],
    ids=["token not ours", "page too large", "negative page size"],
)
async def test_bad_page_token_and_size_are_invalid_argument(
    client: Client, request_: experiment_pb2.ListExperimentsRequest, field: str
) -> None:
    code, violations = await failure(client.stub.ListExperiments(request_, metadata=client.reader))
    assert code is Code.INVALID_ARGUMENT and field in violations


async def test_a_page_token_is_refused_under_another_status_filter(client: Client) -> None:
    for i in range(2):
        await create(client, experiment(unique(f"tok{i}")))
    first = await client.stub.ListExperiments(
        experiment_pb2.ListExperimentsRequest(page_size=1), metadata=client.reader
    )
    code, violations = await failure(
        client.stub.ListExperiments(
            experiment_pb2.ListExperimentsRequest(
                page_size=1, page_token=first.next_page_token, status=S.EXPERIMENT_STATUS_RUNNING
            ),
            metadata=client.reader,
        )
    )
    assert code is Code.INVALID_ARGUMENT and "page_token" in violations


async def test_update_changes_only_the_masked_fields(client: Client) -> None:
    key = unique("upd")
    created = await create(client, experiment(key, description="before"))
    patch = experiment_pb2.Experiment(key=key, name="renamed", description="ignored")
    updated = (await update(client, patch, "name", expected_version=1)).experiment
    assert (updated.name, updated.description, updated.version) == ("renamed", "before", 2)
    assert updated.allocation_version == created.allocation_version


async def test_an_update_from_a_stale_version_is_failed_precondition(client: Client) -> None:
    key = unique("stale")
    await create(client, experiment(key))
    patch = experiment_pb2.Experiment(key=key, name="renamed")
    await update(client, patch, "name", expected_version=1)
    code, _ = await failure(update(client, patch, "name", expected_version=1))
    assert code is Code.FAILED_PRECONDITION


@pytest.mark.parametrize("paths", [("status",), ()], ids=["status is no field to update", "empty"])
async def test_a_bad_update_mask_is_invalid_argument(
    client: Client, paths: tuple[str, ...]
) -> None:
    key = unique("mask")
    await create(client, experiment(key))
    code, violations = await failure(update(client, experiment_pb2.Experiment(key=key), *paths))
    assert code is Code.INVALID_ARGUMENT and "update_mask" in violations


async def test_an_invalid_updated_value_is_invalid_argument(client: Client) -> None:
    key = unique("bad-update")
    await create(client, experiment(key))
    code, violations = await failure(update(client, experiment(key, coverage=3.0), "coverage"))
    assert code is Code.INVALID_ARGUMENT and "experiment.coverage" in violations


async def _running(client: Client) -> str:
    key = unique("run")
    await create(client, experiment(key))
    await client.stub.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key), metadata=client.admin
    )
    return key


async def test_a_running_experiments_variant_keys_are_frozen(client: Client) -> None:
    key = await _running(client)
    renamed = experiment(key)
    renamed.variants[1].key = "v8"
    code, _ = await failure(update(client, renamed, "variants"))
    assert code is Code.FAILED_PRECONDITION


async def test_a_running_experiments_payloads_are_frozen(client: Client) -> None:
    key = await _running(client)
    new_payload = experiment(key)
    new_payload.variants[1].payload.update({"model": "m2"})
    code, _ = await failure(update(client, new_payload, "variants"))
    assert code is Code.FAILED_PRECONDITION


async def test_traffic_changes_while_running_bump_the_allocation_version(
    client: Client, pool: asyncpg.Pool
) -> None:
    key = await _running(client)
    reweighted = experiment(key)
    reweighted.variants[0].weight, reweighted.variants[1].weight = 0.2, 0.8
    after_weights = (await update(client, reweighted, "variants")).experiment
    assert after_weights.allocation_version == 2
    assert [v.weight for v in after_weights.variants] == [0.2, 0.8]
    after_coverage = (
        await update(client, experiment_pb2.Experiment(key=key, coverage=0.5), "coverage")
    ).experiment
    assert after_coverage.allocation_version == 3
    row = await pool.fetchrow(
        "SELECT allocation_version, version FROM experiments WHERE key = $1", key
    )
    assert row is not None and tuple(row) == (3, after_coverage.version)


async def test_other_changes_while_running_keep_the_allocation_version(client: Client) -> None:
    key = await _running(client)
    renamed = (
        await update(client, experiment_pb2.Experiment(key=key, name="n"), "name")
    ).experiment
    assert (renamed.name, renamed.allocation_version) == ("n", 1)


async def test_a_draft_cannot_stop(client: Client) -> None:
    key = unique("draft-stop")
    await create(client, experiment(key))
    code, _ = await failure(
        client.stub.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=key, reason="why"), metadata=client.admin
        )
    )
    assert code is Code.FAILED_PRECONDITION


async def test_starting_sets_running_and_the_start_time(client: Client) -> None:
    key = unique("start")
    await create(client, experiment(key))
    started = (
        await client.stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=client.admin
        )
    ).experiment
    assert started.status == S.EXPERIMENT_STATUS_RUNNING and started.HasField("start_time")


async def test_a_running_experiment_cannot_start_again(client: Client) -> None:
    key = await _running(client)
    code, _ = await failure(
        client.stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=client.admin
        )
    )
    assert code is Code.FAILED_PRECONDITION


async def test_a_running_experiment_cannot_be_archived(client: Client) -> None:
    key = await _running(client)
    code, _ = await failure(
        client.stub.ArchiveExperiment(
            experiment_pb2.ArchiveExperimentRequest(key=key), metadata=client.admin
        )
    )
    assert code is Code.FAILED_PRECONDITION


async def test_a_stop_needs_a_reason(client: Client) -> None:
    key = await _running(client)
    code, violations = await failure(
        client.stub.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=key), metadata=client.admin
        )
    )
    assert code is Code.INVALID_ARGUMENT and "reason" in violations


async def test_shipping_an_unknown_variant_is_invalid_argument(client: Client) -> None:
    key = await _running(client)
    code, violations = await failure(
        client.stub.StopExperiment(
            experiment_pb2.StopExperimentRequest(
                key=key, reason="r", decision=common_pb2.DECISION_SHIP, ship_variant_key="zz"
            ),
            metadata=client.admin,
        )
    )
    assert code is Code.INVALID_ARGUMENT and "ship_variant_key" in violations


async def _stopped_shipping_v7(client: Client, key: str) -> experiment_pb2.Experiment:
    reply = await client.stub.StopExperiment(
        experiment_pb2.StopExperimentRequest(
            key=key, reason="v7 wins", decision=common_pb2.DECISION_SHIP, ship_variant_key="v7"
        ),
        metadata=client.admin,
    )
    stopped: experiment_pb2.Experiment = reply.experiment
    return stopped


async def test_a_stop_records_the_decision_and_who_made_it(client: Client) -> None:
    stopped = await _stopped_shipping_v7(client, await _running(client))
    assert stopped.status == S.EXPERIMENT_STATUS_STOPPED
    assert stopped.decision.decision == common_pb2.DECISION_SHIP
    assert stopped.decision.ship_variant_key == "v7"
    assert stopped.decision.stopped_by == client.admin_name


async def test_stopping_again_overrides_the_decision(client: Client) -> None:
    key = await _running(client)
    await _stopped_shipping_v7(client, key)
    overridden = (
        await client.stub.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=key, reason="on reflection"),
            metadata=client.admin,
        )
    ).experiment
    assert overridden.decision.decision == common_pb2.DECISION_INCONCLUSIVE
    assert overridden.decision.reason == "on reflection"


async def test_a_restart_clears_the_decision(client: Client) -> None:
    key = await _running(client)
    await _stopped_shipping_v7(client, key)
    restarted = (
        await client.stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=client.admin
        )
    ).experiment
    assert restarted.status == S.EXPERIMENT_STATUS_RUNNING and not restarted.HasField("decision")


async def _archived(client: Client) -> str:
    key = await _running(client)
    await _stopped_shipping_v7(client, key)
    archived = (
        await client.stub.ArchiveExperiment(
            experiment_pb2.ArchiveExperimentRequest(key=key), metadata=client.admin
        )
    ).experiment
    assert archived.status == S.EXPERIMENT_STATUS_ARCHIVED
    return key


async def test_an_archived_experiment_cannot_be_updated(client: Client) -> None:
    key = await _archived(client)
    code, _ = await failure(update(client, experiment_pb2.Experiment(key=key, name="x"), "name"))
    assert code is Code.FAILED_PRECONDITION


async def test_an_archived_experiment_cannot_be_started(client: Client) -> None:
    key = await _archived(client)
    code, _ = await failure(
        client.stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=client.admin
        )
    )
    assert code is Code.FAILED_PRECONDITION


async def test_archived_experiments_are_hidden_from_the_default_listing(client: Client) -> None:
    key = await _archived(client)
    listed = await client.stub.ListExperiments(
        experiment_pb2.ListExperimentsRequest(page_size=1000), metadata=client.admin
    )
    assert key not in {e.key for e in listed.experiments}


async def test_list_query_matches_key_or_name_ignoring_case_newest_first(client: Client) -> None:
    tag = unique("q")
    by_key = [await create(client, experiment(f"{tag}-{i}")) for i in range(3)]
    named = experiment(unique("other"), name=f"Prompt {tag.upper()} wording")
    await create(client, named)
    await create(client, experiment(unique("unrelated")))
    seen: list[str] = []
    token = ""
    while True:
        page = await client.stub.ListExperiments(
            experiment_pb2.ListExperimentsRequest(page_size=2, page_token=token, query=tag.upper()),
            metadata=client.reader,
        )
        seen.extend(e.key for e in page.experiments)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted([*(e.key for e in by_key), named.key])
    assert seen[0] == named.key  # newest first, as without a query


async def test_a_page_token_is_refused_under_another_query(client: Client) -> None:
    tag = unique("q")
    for i in range(2):
        await create(client, experiment(f"{tag}-{i}"))
    first = await client.stub.ListExperiments(
        experiment_pb2.ListExperimentsRequest(page_size=1, query=tag), metadata=client.reader
    )
    code, violations = await failure(
        client.stub.ListExperiments(
            experiment_pb2.ListExperimentsRequest(
                page_size=1, page_token=first.next_page_token, query="x"
            ),
            metadata=client.reader,
        )
    )
    assert code is Code.INVALID_ARGUMENT and "page_token" in violations


async def test_the_list_query_is_literal_text_not_a_pattern(client: Client) -> None:
    percent = await client.stub.ListExperiments(
        experiment_pb2.ListExperimentsRequest(query="%"), metadata=client.reader
    )
    assert list(percent.experiments) == []
