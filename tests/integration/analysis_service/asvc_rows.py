"""Rows written straight into the session database for the analysis tests."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf import json_format

from verdict.v1 import experiment_pb2


def experiment(key: str, **rules: object) -> experiment_pb2.Experiment:
    """A two-variant experiment with a binomial primary metric `asvc_conv`."""
    exp = experiment_pb2.Experiment(
        key=key,
        name=key,
        status=experiment_pb2.EXPERIMENT_STATUS_RUNNING,
        variants=[
            experiment_pb2.Variant(key="control", name="control", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="treatment", name="treatment", weight=0.5),
        ],
        coverage=1.0,
        metrics=[
            experiment_pb2.ExperimentMetric(
                metric_key="asvc_conv", role=experiment_pb2.METRIC_ROLE_PRIMARY
            )
        ],
        analysis_plan=experiment_pb2.AnalysisPlan(sequential=True),
        stopping_rules=experiment_pb2.StoppingRules(**rules),  # type: ignore[arg-type]
    )
    exp.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    return exp


METRIC = experiment_pb2.Metric(
    key="asvc_conv",
    name="conversion",
    type=experiment_pb2.METRIC_TYPE_BINOMIAL,
    source=experiment_pb2.MetricSource(event_name="asvc_purchase"),
)


async def insert_experiment(pool: asyncpg.Pool, exp: experiment_pb2.Experiment) -> None:
    """Inserts the experiment (running) and the metric, as ExperimentService stores them."""
    await pool.execute(
        """INSERT INTO metrics (key, spec) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO NOTHING""",
        METRIC.key,
        json.dumps(json_format.MessageToDict(METRIC)),
    )
    await pool.execute(
        """INSERT INTO experiments (key, status, spec, started_at)
           VALUES ($1, 'running', $2::jsonb, now())""",
        exp.key,
        json.dumps(json_format.MessageToDict(exp)),
    )


async def insert_exposures(pool: asyncpg.Pool, key: str, counts: dict[str, int]) -> None:
    """Exposes `counts[variant]` fresh units to each variant, an hour ago."""
    at = datetime.now(UTC) - timedelta(minutes=30)
    rows = [
        (key, f"u-{variant}-{i}-{secrets.token_hex(3)}", variant, at)
        for variant, n in counts.items()
        for i in range(n)
    ]
    await pool.copy_records_to_table(
        "exposures",
        records=rows,
        columns=["experiment_key", "unit_id", "variant_key", "exposed_at"],
    )


def unique_key(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
