"""The experiment and exposure rows the operators' e2e tests use."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg

from verdict.v1 import experiment_pb2

METRIC = experiment_pb2.Metric(
    key="ops_conv",
    name="conversion",
    type=experiment_pb2.METRIC_TYPE_BINOMIAL,
    source=experiment_pb2.MetricSource(event_name="ops_purchase"),
)


def running_experiment_spec(key: str, srm_action: int) -> experiment_pb2.Experiment:
    """A 50/50 experiment with a binomial primary metric and the given SRM action."""
    return experiment_pb2.Experiment(
        key=key,
        name=key,
        variants=[
            experiment_pb2.Variant(key="control", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="treatment", weight=0.5),
        ],
        coverage=1.0,
        metrics=[
            experiment_pb2.ExperimentMetric(
                metric_key=METRIC.key, role=experiment_pb2.METRIC_ROLE_PRIMARY
            )
        ],
        analysis_plan=experiment_pb2.AnalysisPlan(sequential=True),
        stopping_rules=experiment_pb2.StoppingRules(srm_action=srm_action),  # type: ignore[arg-type]
    )


async def expose(pool: asyncpg.Pool, key: str, counts: dict[str, int], days_ago: int = 0) -> None:
    """Records `counts[variant]` new units' exposures, `days_ago` days back (UTC midday, or a
    few minutes ago for today)."""
    now = datetime.now(UTC)
    if days_ago:
        day = (now - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0, microsecond=0)
    else:
        day = now - timedelta(minutes=5)
    rows = [
        (key, f"u-{variant}-{i}-{secrets.token_hex(3)}", variant, day)
        for variant, n in counts.items()
        for i in range(n)
    ]
    await pool.copy_records_to_table(
        "exposures",
        records=rows,
        columns=["experiment_key", "unit_id", "variant_key", "exposed_at"],
    )
