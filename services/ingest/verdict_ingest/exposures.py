"""Exposures: the SQL that keeps the first (experiment, unit) and records later conflicts.

One transaction per batch. The insert keeps, per (experiment, unit), the first exposure seen:
within a batch the earliest timestamp (then the batch order), across batches the one committed
first. Then every exposure of the batch whose stored variant differs is a conflict: recorded in
`exposure_conflicts` (once per experiment, unit and variant) for analysis to exclude and report,
never merged. The counts: accepted (newly stored), conflicts (another variant is stored), and
duplicates (the rest: the same variant was stored already, by this batch or an earlier one).

The attribute and value hashed (`hash_attribute`, `hash_value`) are stored with the exposure
and, like its variant, kept from the first: a unit later seen under another hashed value (a
user who changed company) stays with the first one, which analysis attributes its events to.
They are not part of the idempotency key (experiment, unit) nor of the conflict rule (variant).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from time import perf_counter

import asyncpg
from opentelemetry import trace

from verdict_ingest.intake import ExposureCounts
from verdict_ingest.validation import ExposureRow
from verdict_platform.db import unavailable_on_disconnect
from verdict_platform.telemetry.catalog import INGEST_WRITE_DURATION

_tracer = trace.get_tracer("verdict.ingest")

DEADLOCK_RETRIES = 3

_INPUT = """
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int8[],
                     $6::text[], $7::text[], $8::text[])
    WITH ORDINALITY AS x(experiment_key, unit_id, variant_key, exposed_at, allocation_version,
                         segments, hash_attribute, hash_value, ord)
"""
INSERT_FIRST = f"""
INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at, allocation_version,
                       segments, hash_attribute, hash_value)
SELECT experiment_key, unit_id, variant_key, exposed_at, allocation_version, segments::jsonb,
       hash_attribute, hash_value
FROM ({_INPUT}) AS input
ORDER BY exposed_at, ord
ON CONFLICT (experiment_key, unit_id) DO NOTHING
"""
RECORD_CONFLICTS = f"""
WITH input AS ({_INPUT}),
conflicting AS (
    SELECT input.* FROM input
    JOIN exposures e USING (experiment_key, unit_id)
    WHERE e.variant_key <> input.variant_key
),
recorded AS (
    INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key, exposed_at)
    SELECT DISTINCT ON (experiment_key, unit_id, variant_key)
           experiment_key, unit_id, variant_key, exposed_at
    FROM conflicting
    ORDER BY experiment_key, unit_id, variant_key, exposed_at
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM conflicting
"""


class ExposureStore:
    """Exposures in PostgreSQL (tables `exposures`, `exposure_conflicts`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def variants_of(self, experiment_keys: Collection[str]) -> dict[str, frozenset[str]]:
        """The variant keys of each started (not draft) experiment among `experiment_keys`."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                """SELECT key, jsonb_path_query_array(spec, '$.variants[*].key')::text AS variants
                   FROM experiments WHERE key = ANY($1::text[]) AND status <> 'draft'""",
                list(experiment_keys),
            )
        return {row["key"]: frozenset(json.loads(row["variants"])) for row in rows}

    async def record(self, rows: Sequence[ExposureRow]) -> ExposureCounts:
        """Stores a batch in one transaction and counts its outcome."""
        if not rows:
            return ExposureCounts(0, 0, 0)
        args = (
            [r.experiment_key for r in rows],
            [r.unit_id for r in rows],
            [r.variant_key for r in rows],
            [r.exposed_at for r in rows],
            [r.allocation_version for r in rows],
            [json.dumps(r.segments) for r in rows],
            [r.hash_attribute for r in rows],
            [r.hash_value for r in rows],
        )
        started = perf_counter()
        outcome = "error"
        with _tracer.start_as_current_span(
            "exposures.write",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "verdict.exposures": len(rows)},
        ) as span:
            try:
                for attempt in range(DEADLOCK_RETRIES):
                    try:
                        async with (
                            unavailable_on_disconnect(),
                            self._pool.acquire() as conn,
                            conn.transaction(),
                        ):
                            status = await conn.execute(INSERT_FIRST, *args)
                            conflicts = int(await conn.fetchval(RECORD_CONFLICTS, *args))
                        break
                    except asyncpg.DeadlockDetectedError:  # two batches inserting the same units
                        if attempt == DEADLOCK_RETRIES - 1:
                            raise
                outcome = "ok"
            finally:
                INGEST_WRITE_DURATION.record(perf_counter() - started, "exposures", outcome)
            accepted = int(status.rsplit(" ", 1)[1])
            span.set_attribute("verdict.accepted", accepted)
            span.set_attribute("verdict.conflicts", conflicts)
        return ExposureCounts(accepted, len(rows) - accepted - conflicts, conflicts)
