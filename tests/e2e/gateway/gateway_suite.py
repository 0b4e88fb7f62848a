"""The services a gateway talks to, as real processes on free ports, with one key per role."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg

from support.processes import RunningService, start_service_process
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings


@dataclass
class GatewaySuite:
    """Assignment (+ ExperimentService), ingest and optionally analysis, and their keys."""

    assignment: RunningService
    ingest: RunningService
    analysis: RunningService | None
    keys: dict[Role, str]
    names: dict[Role, str]
    """The keys' names (the actor in the audit log)."""

    def auth(self, role: Role) -> tuple[tuple[str, str], ...]:
        """Call metadata with the key of `role`."""
        return (("authorization", f"Bearer {self.keys[role]}"),)


def create_keys(settings: Settings, roles: list[Role]) -> dict[Role, tuple[str, str]]:
    """One new key per role, as (name, key) (announced, though the processes started after load
    them anyway)."""

    async def create() -> dict[Role, tuple[str, str]]:
        pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
        client = redis_conn.connect_redis(settings)
        try:
            store = KeyStore(pool)
            keys = {}
            for role in roles:
                name = f"gw-{role.value}-{secrets.token_hex(4)}"
                keys[role] = (name, await store.create(name, role))
            await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
            return keys
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(create())


@contextmanager
def gateway_suite(
    settings: Settings, analysis_interval_s: float | None = None
) -> Iterator[GatewaySuite]:
    """Starts the services (analysis too when an interval is given); stops them after."""
    named = create_keys(settings, [Role.ADMIN, Role.ASSIGN, Role.INGEST, Role.ANALYSIS, Role.READ])
    keys = {role: key for role, (_, key) in named.items()}
    started: list[RunningService] = []
    try:
        ingest = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
        started.append(ingest)
        assignment = start_service_process(
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": keys[Role.INGEST]},
        )
        started.append(assignment)
        analysis = None
        if analysis_interval_s is not None:
            analysis = start_service_process(
                settings,
                "verdict_analysis",
                "VERDICT_ANALYSIS_PORT",
                {
                    "VERDICT_ASSIGNMENT_TARGET": assignment.target,
                    "VERDICT_SERVICE_API_KEY": keys[Role.ANALYSIS],
                    "VERDICT_ANALYSIS_INTERVAL": str(analysis_interval_s),
                },
            )
            started.append(analysis)
        yield GatewaySuite(
            assignment, ingest, analysis, keys, {role: name for role, (name, _) in named.items()}
        )
    finally:
        for service in reversed(started):
            service.stop()
