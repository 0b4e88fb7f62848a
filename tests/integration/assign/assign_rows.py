"""Writes configuration rows the way ExperimentService stores them (its storage contract), and
announces the change, for tests that must not depend on ExperimentService."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from google.protobuf import json_format

from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2
from verdict_platform import redis_conn
from verdict_platform.settings import Settings

ATTRIBUTES = {"country": "FR", "plan": "pro", "app_version": "2.4.1", "org_id": "acme"}


def experiment(
    key: str,
    *,
    weights: Sequence[float] = (0.5, 0.5),
    coverage: float = 1.0,
    targeting: Mapping[str, Any] | None = None,
    layer: tuple[str, float, float] | None = None,
    forced: Mapping[str, str] | None = None,
    hash_attribute: str = "",
    fallback_attribute: str = "",
    segments: Sequence[str] = (),
    seed: str = "",
) -> experiment_pb2.Experiment:
    """An experiment with variants v0, v1 ... (v0 the control), payload {"model": "m<i>"}."""
    e = experiment_pb2.Experiment(key=key, name=key, coverage=coverage)
    for i, weight in enumerate(weights):
        variant = e.variants.add(key=f"v{i}", name=f"v{i}", weight=weight, is_control=i == 0)
        variant.payload.update({"model": f"m{i}", "temperature": 0.2 * i})
    if targeting:
        e.targeting.update(dict(targeting))
    if layer:
        e.layer.id, e.layer.start, e.layer.end = layer
    if forced:
        e.forced_variations.update(forced)
    e.hash_attribute = hash_attribute
    e.fallback_attribute = fallback_attribute
    e.seed = seed  # fixed by tests whose figures depend on the split (the key is random)
    e.analysis_plan.segments.extend(segments)
    return e


async def announce(pool: asyncpg.Pool, redis: aioredis.Redis | None, settings: Settings) -> int:
    """Bumps config_state.version and publishes it; returns the new version."""
    version: int = await pool.fetchval(
        "UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version"
    )
    if redis is not None:
        await redis.publish(redis_conn.name(settings, redis_conn.CONFIG_CHANNEL), str(version))
    return version


async def put(
    pool: asyncpg.Pool,
    redis: aioredis.Redis | None,
    settings: Settings,
    experiments: Sequence[experiment_pb2.Experiment],
    *,
    status: str = "running",
    allocation_version: int = 1,
    saved_groups: Mapping[str, list[Any]] | None = None,
) -> int:
    """Creates or replaces experiments (and saved groups); returns the new config version."""
    for group, members in (saved_groups or {}).items():
        await pool.execute(
            "INSERT INTO saved_groups (key, members) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET members = EXCLUDED.members",
            group,
            json.dumps(members),
        )
    for given in experiments:
        e = experiment_pb2.Experiment()  # as ExperimentService stores it: spec agrees with columns
        e.CopyFrom(given)
        e.status = experiment_pb2.ExperimentStatus.Value(f"EXPERIMENT_STATUS_{status.upper()}")
        e.allocation_version = allocation_version
        await pool.execute(
            """INSERT INTO experiments (key, status, spec, allocation_version)
               VALUES ($1, $2, $3::jsonb, $4)
               ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, spec = EXCLUDED.spec,
                 version = experiments.version + 1,
                 allocation_version = EXCLUDED.allocation_version""",
            e.key,
            status,
            json.dumps(json_format.MessageToDict(e)),
            allocation_version,
        )
    return await announce(pool, redis, settings)


async def serves_version(
    stub: assignment_pb2_grpc.AssignmentServiceStub,
    metadata: Sequence[tuple[str, str]],
    version: int,
) -> bool:
    """Whether the assignment service answers from configuration `version` or a newer one."""
    request = assignment_pb2.AssignRequest(unit_id="version-probe", skip_exposure_logging=True)
    reply = await stub.Assign(request, metadata=metadata, timeout=5)
    return bool(reply.config_version >= version)
