"""PostgreSQL adapter of the `AlertLog` port (tables `alerts` and `alert_episodes`).

Raising is idempotent through the database (a unique `dedup_key`, and one open episode per
experiment and rule), so two replicas or a restarted process never store an alert twice.
Delivery is claimed with `FOR UPDATE SKIP LOCKED` and a lease on `next_attempt_at`: one replica
delivers a given alert at a time, and an attempt cut short by a crash is resumed after the lease.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import asyncpg

from verdict.trace_context import traceparent
from verdict_analysis.alerts import NewAlert, StoredAlert, json_safe
from verdict_platform.db import unavailable_on_disconnect

_COLUMNS = (
    "id, dedup_key, experiment_key, rule, action, decision, reason, details::text, snapshot_id,"
    " created_at, attempts, last_error, delivered_at, trace_context"
)


def _stored(row: asyncpg.Record) -> StoredAlert:
    alert = NewAlert(
        experiment_key=row["experiment_key"],
        rule=row["rule"],
        action=row["action"],
        decision=row["decision"],
        reason=row["reason"],
        details=json.loads(row["details"]),
        snapshot_id=row["snapshot_id"],
        dedup_key=row["dedup_key"],
    )
    return StoredAlert(
        id=row["id"],
        alert=alert,
        created_at=row["created_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        trace_context=row["trace_context"],
    )


class PostgresAlertLog:
    """Alerts in PostgreSQL. With `deliver` False (no webhook configured) alerts are stored as
    not to be delivered, with that said in `last_error`."""

    def __init__(self, pool: asyncpg.Pool, *, deliver: bool) -> None:
        self._pool = pool
        self._deliver = deliver

    async def _insert(self, conn: asyncpg.Connection, alert: NewAlert) -> StoredAlert | None:
        row = await conn.fetchrow(
            f"""INSERT INTO alerts (dedup_key, experiment_key, rule, action, decision, reason,
                                   details, snapshot_id, last_error, next_attempt_at,
                                   trace_context)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9,
                        CASE WHEN $10 THEN now() END, $11)
                ON CONFLICT (dedup_key) DO NOTHING
                RETURNING {_COLUMNS}""",
            alert.dedup_key,
            alert.experiment_key,
            alert.rule,
            alert.action,
            alert.decision,
            alert.reason,
            json.dumps(json_safe(dict(alert.details))),
            alert.snapshot_id,
            "" if self._deliver else "no webhook configured (VERDICT_ALERT_WEBHOOK_URL)",
            self._deliver,
            traceparent(),  # the analysis run's trace, continued by the delivery
        )
        return None if row is None else _stored(row)

    async def raise_once(self, alert: NewAlert) -> StoredAlert | None:
        async with unavailable_on_disconnect(), self._pool.acquire() as conn:
            return await self._insert(conn, alert)

    async def raise_firing(
        self, experiment_key: str, firing: Sequence[NewAlert]
    ) -> list[StoredAlert]:
        rules = [a.rule for a in firing]
        raised: list[StoredAlert] = []
        async with (
            unavailable_on_disconnect(),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            await conn.execute(
                "DELETE FROM alert_episodes WHERE experiment_key = $1 AND rule <> ALL($2::text[])",
                experiment_key,
                rules,
            )
            for alert in firing:
                # Lock the (experiment, rule) slot first: of two replicas, one opens the episode.
                opened = await conn.fetchval(
                    """INSERT INTO alert_episodes (experiment_key, rule, alert_id)
                       VALUES ($1, $2, 0) ON CONFLICT DO NOTHING RETURNING opened_at""",
                    experiment_key,
                    alert.rule,
                )
                if opened is None:
                    continue
                key = f"{experiment_key}/episode/{alert.rule}/{opened.isoformat()}"
                stored = await self._insert(conn, replace(alert, dedup_key=key))
                if stored is None:
                    continue
                await conn.execute(
                    """UPDATE alert_episodes SET alert_id = $3
                       WHERE experiment_key = $1 AND rule = $2""",
                    experiment_key,
                    alert.rule,
                    stored.id,
                )
                raised.append(stored)
        return raised

    async def claim_due(self, limit: int, lease_s: float) -> list[StoredAlert]:
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                f"""UPDATE alerts SET next_attempt_at = now() + make_interval(secs => $2)
                    WHERE id IN (SELECT id FROM alerts
                                 WHERE next_attempt_at <= now()
                                 ORDER BY next_attempt_at LIMIT $1
                                 FOR UPDATE SKIP LOCKED)
                    RETURNING {_COLUMNS}""",
                limit,
                lease_s,
            )
        return sorted((_stored(r) for r in rows), key=lambda a: a.id)

    async def record_delivery(self, alert_id: int, error: str, retry_at: datetime | None) -> None:
        async with unavailable_on_disconnect():
            if not error:
                await self._pool.execute(
                    """UPDATE alerts SET attempts = attempts + 1, last_error = '',
                              delivered_at = now(), next_attempt_at = NULL WHERE id = $1""",
                    alert_id,
                )
            else:
                await self._pool.execute(
                    """UPDATE alerts SET attempts = attempts + 1, last_error = $2,
                              next_attempt_at = $3 WHERE id = $1""",
                    alert_id,
                    error[:1000],
                    retry_at,
                )

    async def page(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> list[StoredAlert]:
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                f"""SELECT {_COLUMNS} FROM alerts
                    WHERE ($1 = '' OR experiment_key = $1)
                      AND ($2::bigint IS NULL OR id < $2)
                    ORDER BY id DESC LIMIT $3""",
                experiment_key,
                before_id,
                limit,
            )
        return [_stored(r) for r in rows]
