"""Assign's issue-17 behaviour in a real process on a real port, with PostgreSQL and Redis: the
unit's identity, per-request forced variations and who may send them, explanations,
min_config_version, the hashed attribute on exposures, and fallback-attribute stickiness (from
Redis, and from PostgreSQL's exposures when Redis does not know the value).

Exposures go to an in-test ingest (`fake_ingest`) that stores them with their hashed attribute
and value; it adds `exposures.hash_attribute`/`hash_value` when the migrations have not (the
exposures work of issue 17 adds them). The process polls the database only once an hour, so a
change it has not been told about is loaded only because a request asked for it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from assign_rows import experiment, put, serves_version
from fake_ingest import FakeIngest
from grpc_status import rpc_status

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.evaluation import hash as bucket_of
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings
from verdict_platform.status import field_violations

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
Code = grpc.StatusCode
MakeKey = Callable[[Role], Awaitable[str]]
NO_POLL = {"VERDICT_CONFIG_POLL_S": "3600"}


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def hashed_variant(e: experiment_pb2.Experiment, value: str) -> str:
    """The variant hashing `value` gives in an `assign_rows.experiment` split 50/50."""
    bucket = bucket_of(e.seed or e.key, value, 2)
    assert bucket is not None
    return "v0" if bucket < 0.5 else "v1"


def other(variant: str) -> str:
    return "v1" if variant == "v0" else "v0"


def value_in(e: experiment_pb2.Experiment, variant: str, prefix: str) -> str:
    """A value (`prefix-<n>`) that hashing puts in `variant`."""
    return next(
        v for v in (f"{prefix}-{i}" for i in range(1000)) if hashed_variant(e, v) == variant
    )


@dataclass(frozen=True)
class Served:
    """The module's assignment process, its in-test ingest, and keys."""

    service: RunningService
    ingest: FakeIngest
    channel: grpc.aio.Channel
    assign_key: str
    admin_key: str
    db: tuple[asyncpg.Pool, aioredis.Redis, Settings]

    @property
    def stub(self) -> assignment_pb2_grpc.AssignmentServiceStub:
        return assignment_pb2_grpc.AssignmentServiceStub(self.channel)

    async def store(self, *experiments: experiment_pb2.Experiment) -> None:
        version = await put(*self.db, experiments)
        await eventually_async(lambda: serves_version(self.stub, _bearer(self.assign_key), version))

    def call(
        self,
        unit: str,
        keys: list[str],
        attributes: Mapping[str, object] | None = None,
        key: str | None = None,
        **options: object,
    ) -> grpc.aio.UnaryUnaryCall:
        request = assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=keys, **options)
        request.attributes.update(dict(attributes or {}))
        return self.stub.Assign(request, metadata=_bearer(key or self.assign_key), timeout=10)

    async def assign(
        self, unit: str, keys: list[str], attributes: Mapping[str, object] | None = None,
        key: str | None = None, **options: object,
    ) -> assignment_pb2.AssignResponse:  # fmt: skip
        return await self.call(unit, keys, attributes, key, **options)

    async def exposed(self, experiment_key: str, sentinel_unit: str) -> list[str]:
        """Unit ids exposed to the experiment once `sentinel_unit` (assigned now) reached
        ingest: exposures are sent in order, so whatever came before is in by then."""
        hashable = {"user_id": sentinel_unit}  # whatever the experiment hashes
        await self.assign(sentinel_unit, [experiment_key], hashable)

        def received() -> list[str]:
            return [e.unit_id for e in self.ingest.received(experiment_key)]

        await eventually_async(lambda: sentinel_unit in received())
        return received()


@asynccontextmanager
async def serving(settings: Settings, pool: asyncpg.Pool, make_key: MakeKey) -> AsyncIterator[
    tuple[RunningService, FakeIngest, grpc.aio.Channel]
]:  # fmt: skip
    ingest = FakeIngest(pool)
    await ingest.server.start()
    ingest_key = await make_key(Role.INGEST)
    try:
        service = await asyncio.to_thread(  # the fake ingest must keep running on this loop
            start_service_process,
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {
                **NO_POLL,
                "VERDICT_INGEST_TARGET": ingest.target,
                "VERDICT_SERVICE_API_KEY": ingest_key,
            },
        )
        try:
            async with grpc.aio.insecure_channel(service.target) as channel:
                yield service, ingest, channel
        finally:
            await asyncio.to_thread(service.stop)
    finally:
        await ingest.server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, make_key: MakeKey
) -> AsyncIterator[Served]:
    assign_key, admin_key = await make_key(Role.ASSIGN), await make_key(Role.ADMIN)
    async with serving(settings, pool, make_key) as (service, ingest, channel):
        yield Served(
            service, ingest, channel, assign_key, admin_key, (pool, redis_client, settings)
        )


async def _refusal(call: grpc.aio.UnaryUnaryCall) -> tuple[grpc.StatusCode, str, list[str]]:
    """The status code, message and BadRequest fields of a refused call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    status = await rpc_status.aio.from_call(call)
    fields = [] if status is None else list(field_violations(status))
    return caught.value.code(), caught.value.details() or "", fields


# Identity.


async def test_an_id_attribute_other_than_the_unit_id_is_refused(served: Served) -> None:
    e = experiment(unique("ident"))
    await served.store(e)
    same = await served.assign("u-1", [e.key], {"id": "u-1"}, skip_exposure_logging=True)
    assert same.assignments[0].reason == R.ASSIGNMENT_REASON_ASSIGNED
    for differing in ("u-2", 1):
        refused = served.call("1", [e.key], {"id": differing}, skip_exposure_logging=True)
        code, _, fields = await _refusal(refused)
        assert (code, fields) == (Code.INVALID_ARGUMENT, ["attributes.id"])


# Forced variations.


async def test_an_admin_forces_a_variant_answered_forced_never_exposed_never_sticky(
    served: Served,
) -> None:
    e = experiment(unique("forced"), hash_attribute="user_id", fallback_attribute="device_id")
    await served.store(e)
    device = "dev-forced"
    forced_variant = other(hashed_variant(e, device))
    reply = await served.assign(
        "qa-unit", [e.key], {"device_id": device}, served.admin_key,
        forced_variations={e.key: forced_variant},
    )  # fmt: skip
    [answer] = reply.assignments
    assert (answer.variant_key, answer.reason) == (forced_variant, R.ASSIGNMENT_REASON_FORCED)
    assert answer.in_experiment and answer.payload["model"] == f"m{forced_variant[1]}"
    # The same device without forcing gets its hashed variant: the forced one was not kept.
    [again] = (await served.assign("unit-2", [e.key], {"device_id": device})).assignments
    assert (again.variant_key, again.reason) == (
        hashed_variant(e, device),
        R.ASSIGNMENT_REASON_ASSIGNED,
    )
    assert "qa-unit" not in await served.exposed(e.key, "sentinel")


async def test_an_assign_key_may_not_force_variants(served: Served) -> None:
    e = experiment(unique("noforce"))
    await served.store(e)
    call = served.call("u-1", [e.key], forced_variations={e.key: "v1"})
    code, message, _ = await _refusal(call)
    assert code == Code.PERMISSION_DENIED and "forced_variations" in message


async def test_unknown_forced_experiments_and_variants_are_refused_by_name(
    served: Served,
) -> None:
    e = experiment(unique("badforce"))
    await served.store(e)
    call = served.call(
        "u-1", [e.key], key=served.admin_key,
        forced_variations={e.key: "no-such-variant", "no-such-experiment": "v0"},
    )  # fmt: skip
    code, _, fields = await _refusal(call)
    assert code == Code.INVALID_ARGUMENT
    assert sorted(fields) == [f"forced_variations.{e.key}", "forced_variations.no-such-experiment"]


async def test_more_than_a_hundred_forced_variations_are_refused(served: Served) -> None:
    call = served.call(
        "u-1", [], key=served.admin_key, forced_variations={f"e{i}": "v0" for i in range(101)}
    )
    code, _, fields = await _refusal(call)
    assert (code, fields) == (Code.INVALID_ARGUMENT, ["forced_variations"])


# Explanations.


async def test_an_explained_answer_is_the_plain_answer_with_explanations(served: Served) -> None:
    p = unique("explain")
    open_, targeted = experiment(f"{p}-open"), experiment(f"{p}-de", targeting={"country": "DE"})
    await served.store(open_, targeted)
    keys = [open_.key, targeted.key, f"{p}-missing"]
    attributes = {"country": "FR"}
    plain = await served.assign("u-9", keys, attributes, skip_exposure_logging=True)
    explained = await served.assign(
        "u-9", keys, attributes, skip_exposure_logging=True, explain=True
    )
    assert all(not a.HasField("explanation") for a in plain.assignments)
    assert all(a.HasField("explanation") for a in explained.assignments)
    stripped = assignment_pb2.AssignResponse()
    stripped.CopyFrom(explained)
    for a in stripped.assignments:
        a.ClearField("explanation")
    assert stripped == plain
    open_why, targeted_why, _ = (a.explanation for a in explained.assignments)
    assert (open_why.hash_attribute, open_why.hash_value) == ("id", "u-9")
    assert open_why.HasField("bucket")
    assert (open_why.bucket < 0.5) == (plain.assignments[0].variant_key == "v0")
    assert open_why.detail
    assert "DE" in targeted_why.failed_condition


# min_config_version.


async def test_min_config_version_reads_a_change_made_through_experiment_service(
    served: Served, pool: asyncpg.Pool
) -> None:
    experiments = experiment_pb2_grpc.ExperimentServiceStub(served.channel)
    admin = _bearer(served.admin_key)
    e = experiment(unique("ryw"))
    await experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=e), metadata=admin
    )
    started = await experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=e.key), metadata=admin
    )
    # config_version on change responses comes with the management work of issue 17; until
    # then, the version committed by the change is read where it is kept.
    version = started.config_version or await pool.fetchval("SELECT version FROM config_state")
    reply = await served.assign(
        "u-1", [e.key], skip_exposure_logging=True, min_config_version=version
    )
    assert reply.config_version >= version
    assert reply.assignments[0].reason == R.ASSIGNMENT_REASON_ASSIGNED


async def test_min_config_version_loads_a_change_nobody_announced(
    served: Served, pool: asyncpg.Pool
) -> None:
    e = experiment(unique("unannounced"))
    version = await put(pool, None, served.db[2], [e])  # committed, not published
    reply = await served.assign(
        "u-1", [e.key], skip_exposure_logging=True, min_config_version=version
    )
    assert reply.config_version >= version
    assert reply.assignments[0].reason == R.ASSIGNMENT_REASON_ASSIGNED


async def test_a_version_from_the_future_is_unavailable_after_the_wait(served: Served) -> None:
    started = time.monotonic()
    call = served.call("u-1", [], skip_exposure_logging=True, min_config_version=10**12)
    code, message, _ = await _refusal(call)
    waited = time.monotonic() - started
    assert code == Code.UNAVAILABLE
    assert str(10**12) in message and "serves version" in message
    assert 1.5 < waited < 4.0


# The hashed attribute on exposures, and fallback stickiness.


async def test_exposures_record_the_attribute_and_value_hashed(
    served: Served, pool: asyncpg.Pool
) -> None:
    by_id, by_user = (
        experiment(unique("by-id")),
        experiment(unique("by-user"), hash_attribute="user_id"),
    )
    await served.store(by_id, by_user)
    await served.assign("unit-7", [by_id.key, by_user.key], {"user_id": "alice"})
    for e in (by_id, by_user):
        assert "unit-7" in await served.exposed(e.key, "sentinel")
    rows = await pool.fetch(
        "SELECT experiment_key, hash_attribute, hash_value FROM exposures "
        "WHERE unit_id = 'unit-7' AND experiment_key = ANY($1::text[])",
        [by_id.key, by_user.key],
    )
    assert {r["experiment_key"]: (r["hash_attribute"], r["hash_value"]) for r in rows} == {
        by_id.key: ("", ""),
        by_user.key: ("user_id", "alice"),
    }


async def test_a_unit_keeps_its_fallback_variant_once_it_signs_in(served: Served) -> None:
    e = experiment(unique("fallback"), hash_attribute="user_id", fallback_attribute="device_id")
    await served.store(e)
    device = "device-1"
    device_variant = hashed_variant(e, device)
    user = value_in(e, other(device_variant), "user")

    [anonymous] = (await served.assign("anon-1", [e.key], {"device_id": device})).assignments
    assert (anonymous.variant_key, anonymous.reason) == (
        device_variant,
        R.ASSIGNMENT_REASON_ASSIGNED,
    )

    async def signed_in() -> bool:  # the device's variant is cached in the background
        reply = await served.assign("anon-1", [e.key], {"user_id": user, "device_id": device})
        return bool(reply.assignments[0].reason == R.ASSIGNMENT_REASON_STICKY)

    await eventually_async(signed_in)
    [kept] = (
        await served.assign("anon-1", [e.key], {"user_id": user, "device_id": device})
    ).assignments
    assert kept.variant_key == device_variant

    async def elsewhere() -> assignment_pb2.Assignment:  # the user on a new device
        reply = await served.assign("laptop", [e.key], {"user_id": user})
        return reply.assignments[0]

    await eventually_async(lambda: _is(elsewhere(), device_variant, R.ASSIGNMENT_REASON_STICKY))


async def _is(answer: Awaitable[assignment_pb2.Assignment], variant: str, reason: int) -> bool:
    a = await answer
    return bool(a.variant_key == variant and a.reason == reason)


async def test_a_fallback_variant_is_found_in_postgres_when_redis_has_none(
    served: Served, pool: asyncpg.Pool
) -> None:
    e = experiment(unique("fallback-db"), hash_attribute="user_id", fallback_attribute="device_id")
    await served.store(e)
    device = value_in(e, "v0", "device")
    user = value_in(e, "v0", "user")
    # An exposure ingest stored for this device (in v1: neither value hashes there), from
    # another replica: this one's Redis cache never saw it.
    await pool.execute(
        """INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at,
             hash_attribute, hash_value) VALUES ($1, 'phone', 'v1', now(), 'device_id', $2)""",
        e.key,
        device,
    )
    [answer] = (
        await served.assign("laptop", [e.key], {"user_id": user, "device_id": device})
    ).assignments
    assert (answer.variant_key, answer.reason) == ("v1", R.ASSIGNMENT_REASON_STICKY)
    # ... and kept for the user from now on: stored for the user id before the answer, and
    # durably in PostgreSQL by the exposure this answer records (hashed by user id).
    await eventually_async(
        lambda: _is(
            _first(served.assign("tablet", [e.key], {"user_id": user})),
            "v1",
            R.ASSIGNMENT_REASON_STICKY,
        )
    )


async def _first(reply: Awaitable[assignment_pb2.AssignResponse]) -> assignment_pb2.Assignment:
    return (await reply).assignments[0]


# The qa role (Role.QA comes with the management work of issue 17).


async def test_a_qa_key_may_force_variants(served: Served, make_key: MakeKey) -> None:
    assert hasattr(Role, "QA"), "Role.QA comes with the management work of issue 17 (roles.py)"
    qa_key = await make_key(Role("qa"))
    e = experiment(unique("qa"))
    await served.store(e)
    forced = other(hashed_variant(e, "u-qa"))

    async def forced_answer() -> bool:  # the new key reaches the key ring within a second
        try:
            reply = await served.assign(
                "u-qa", [e.key], key=qa_key, forced_variations={e.key: forced}
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == Code.UNAUTHENTICATED:
                return False
            raise
        [a] = reply.assignments
        return bool(a.variant_key == forced and a.reason == R.ASSIGNMENT_REASON_FORCED)

    await eventually_async(forced_answer)


async def test_a_call_naming_only_a_covered_experiment_exposes_the_unit_to_its_holdout(
    served: Served,
) -> None:
    """A backend asks for its own experiment, never for the holdout covering it: the units
    held out (HELD_OUT) and the units let in must still be exposed to the holdout, in the
    variant it gave them, or the holdout's analysis never sees its held-out group."""
    holdout = experiment(unique("holdout"))
    holdout.holdout = True
    covered = experiment(unique("covered"))
    covered.holdout_key = holdout.key
    await served.store(holdout, covered)
    held = value_in(holdout, "v0", "held")
    let_in = value_in(holdout, "v1", "in")
    [held_answer] = (await served.assign(held, [covered.key])).assignments
    [in_answer] = (await served.assign(let_in, [covered.key])).assignments
    assert held_answer.reason == R.ASSIGNMENT_REASON_HELD_OUT
    assert in_answer.in_experiment
    await served.exposed(holdout.key, "sentinel")
    variants = {e.unit_id: e.variant_key for e in served.ingest.received(holdout.key)}
    assert (variants.get(held), variants.get(let_in)) == ("v0", "v1"), variants
    assert [e.unit_id for e in served.ingest.received(covered.key)] == [let_in]
