"""Faults, against servers the tests start themselves.

- The ingest process is killed with SIGKILL at random points while a tracker sends 100,000
  events, then restarted on the same port; the tracker resends what was not acknowledged.
  Exactly the events sent are stored, none twice. Five times.
- PostgreSQL (a throwaway pgserver the test owns) is stopped for 10 s mid-stream and started
  again: the service answers UNAVAILABLE meanwhile, nothing is lost, and the same service
  process carries on (no restart).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from support.eventually import eventually
from support.processes import RunningService, free_port, start_service_process
from verdict.retry import Backoff
from verdict.tracking import Tracker, TrackerOptions
from verdict_platform.keys import KeyStore
from verdict_platform.migrator import migrate
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

EVENTS = 100_000
REPEATS = 5
KILLS_PER_REPEAT = 2
FAST_ENV = {"VERDICT_GRACE_PERIOD_S": "1"}


def tracker_options(target: str, key: str) -> TrackerOptions:
    return TrackerOptions(
        target=target,
        api_key=key,
        batch_size=2000,
        flush_interval_s=0.05,
        buffer_size=50_000,
        deadline_s=5.0,
        backoff=Backoff(initial_s=0.05, max_s=0.5, jitter=True),
        close_timeout_s=120.0,
    )


async def _create_key(url: str) -> str:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        return await KeyStore(pool).create(f"faults-{random.random()}", Role.INGEST)
    finally:
        await pool.close()


async def _stored_ids(url: str, unit_prefix: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id FROM events WHERE unit_id LIKE $1", unit_prefix + "%"
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


class Killer(threading.Thread):
    """Kills the service at random points and restarts it on the same port."""

    def __init__(self, settings: Settings, service: RunningService, kills: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.service = service
        self.kills = kills
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.done = 0

    def run(self) -> None:
        for _ in range(self.kills):
            # The fault under test: a kill at a random point of the stream (seeded per repeat).
            if self.stop.wait(self.rng.uniform(0.2, 1.5)):
                return
            self.service.kill()
            self.service = start_service_process(
                self.settings,
                "verdict_ingest",
                "VERDICT_INGEST_PORT",
                FAST_ENV,
                port=self.service.port,
            )
            self.done += 1


@pytest.fixture(scope="module")
def ingest_key(settings: Settings) -> str:
    return asyncio.run(_create_key(settings.require_database_url()))


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(REPEATS))
def test_sigkill_while_streaming_stores_exactly_the_events_sent(
    settings: Settings, ingest_key: str, repeat: int
) -> None:
    port = free_port()
    service = start_service_process(
        settings, "verdict_ingest", "VERDICT_INGEST_PORT", FAST_ENV, port=port
    )
    killer = Killer(settings, service, KILLS_PER_REPEAT, seed=repeat)
    prefix = f"kill-{repeat}-{random.getrandbits(32)}-"
    tracker = Tracker(tracker_options(service.target, ingest_key))
    sent: list[str] = []
    try:
        killer.start()
        for i in range(EVENTS):
            sent.append(
                tracker.track(
                    f"{prefix}{i % 500}",
                    "llm.call",
                    {"latency_ms": float(i), "cost_usd": 0.001},
                    {"route": "chat"},
                )
            )
            if i % 5000 == 0:
                time.sleep(0.05)  # the load's pacing: spread the stream so the kills land mid-way
        stats = tracker.close()
        killer.join(60)
    finally:
        killer.stop.set()
        killer.join(60)
        killer.service.stop()
    stored = asyncio.run(_stored_ids(settings.require_database_url(), prefix))
    assert killer.done >= 1
    assert stats.retried > 0, f"no kill landed mid-stream: {stats}"
    assert (stats.failed, stats.dropped) == (0, 0)
    assert stats.sent == EVENTS
    assert len(stored) == EVENTS, "an event was stored twice or lost"
    assert set(stored) == set(sent)


@pytest.fixture
def own_postgres() -> Iterator[tuple[object, str]]:
    import pgserver

    # Not under pytest's tmp_path: run as root, pgserver runs PostgreSQL as its own user and opens
    # the folders above the data to it, but any pytest session starting meanwhile on the machine
    # closes /tmp/pytest-of-root again (0700), and pg_ctl then fails mid-test.
    data = Path(tempfile.mkdtemp(prefix="verdict-faults-pg-"))
    server = pgserver.get_server(data / "pg", cleanup_mode="stop")
    try:
        yield server, server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


async def _prepare(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await _create_key(url)


@pytest.mark.slow
def test_postgres_down_for_10_s_loses_nothing_and_needs_no_restart(
    settings: Settings, own_postgres: tuple[object, str]
) -> None:
    from pgserver._commands import pg_ctl

    server, url = own_postgres
    key = asyncio.run(_prepare(url))
    local = dataclasses.replace(settings, database_url=url)
    service = start_service_process(local, "verdict_ingest", "VERDICT_INGEST_PORT", FAST_ENV)
    tracker = Tracker(tracker_options(service.target, key))
    sent: list[str] = []

    def send_for_a_tenth_of_a_second() -> None:
        for _ in range(100):
            sent.append(tracker.track(f"pgdown-{len(sent) % 200}", "llm.call", {"latency_ms": 1.0}))
        time.sleep(0.1)  # the load's pacing (~1,000 events a second), not a wait for anything

    def outage_of_10_s() -> None:
        eventually(lambda: tracker.stats().sent > 0)  # mid-stream: events are being committed
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]
        time.sleep(10.0)  # the fault under test: PostgreSQL away for 10 s
        server.ensure_postgres_running()  # type: ignore[attr-defined]

    breaker = threading.Thread(target=outage_of_10_s, daemon=True)
    try:
        breaker.start()
        while breaker.is_alive():  # load throughout the outage ...
            send_for_a_tenth_of_a_second()
        for _ in range(10):  # ... and for a second after PostgreSQL is back
            send_for_a_tenth_of_a_second()
        stats = tracker.close()
        assert service.proc.poll() is None, "the service died"
    finally:
        service.stop()
    assert stats.retried > 0, "the outage was not seen as UNAVAILABLE"
    assert (stats.failed, stats.dropped, stats.sent) == (0, 0, len(sent))
    stored = asyncio.run(_stored_ids(url, "pgdown-"))
    assert len(stored) == len(sent)
    assert set(stored) == set(sent)
