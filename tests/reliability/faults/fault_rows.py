"""An experiment with exposures and events written straight into a database, for the analysis
faults: deterministic (a seed), so two databases can hold the same data."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf import json_format

from verdict.v1 import analysis_pb2, experiment_pb2

METRICS = [
    experiment_pb2.Metric(
        key="fault_conv",
        name="conversion",
        type=experiment_pb2.METRIC_TYPE_BINOMIAL,
        source=experiment_pb2.MetricSource(event_name="fault_purchase"),
    ),
    experiment_pb2.Metric(
        key="fault_latency",
        name="latency",
        type=experiment_pb2.METRIC_TYPE_MEAN,
        source=experiment_pb2.MetricSource(event_name="fault_call", measure="latency_ms"),
    ),
]


def experiment(key: str) -> experiment_pb2.Experiment:
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
            experiment_pb2.ExperimentMetric(metric_key=m.key, role=role)
            for m, role in zip(
                METRICS,
                (experiment_pb2.METRIC_ROLE_PRIMARY, experiment_pb2.METRIC_ROLE_SECONDARY),
                strict=True,
            )
        ],
        analysis_plan=experiment_pb2.AnalysisPlan(sequential=True),
    )
    exp.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=3))
    return exp


async def write_experiment(
    url: str, key: str, units: int, events: int, seed: int, received_hours_ago: float = 0.0
) -> None:
    """The experiment (running), `units` exposed units and `events` events among them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    exposed = now - timedelta(hours=2)
    conn = await asyncpg.connect(url)
    try:
        for metric in METRICS:
            await conn.execute(
                "INSERT INTO metrics (key, spec) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
                metric.key,
                json.dumps(json_format.MessageToDict(metric)),
            )
        await conn.execute(
            "INSERT INTO experiments (key, status, spec, started_at) "
            "VALUES ($1, 'running', $2::jsonb, now())",
            key,
            json.dumps(json_format.MessageToDict(experiment(key))),
        )
        variants = ["control", "treatment"]
        await conn.copy_records_to_table(
            "exposures",
            records=[(key, f"{key}-u{i}", variants[i % 2], exposed) for i in range(units)],
            columns=["experiment_key", "unit_id", "variant_key", "exposed_at"],
        )
        received = now - timedelta(hours=received_hours_ago)
        rows = []
        for _ in range(events):
            unit = rng.randrange(units)
            ts = exposed + timedelta(seconds=rng.uniform(1, 3600))
            event_id = uuid.UUID(int=rng.getrandbits(128))
            if rng.random() < 0.2:
                rows.append((ts, event_id, f"{key}-u{unit}", "fault_purchase", [], [], received))
            else:
                latency = rng.gauss(800 + 40 * (unit % 2), 120)
                rows.append(
                    (
                        ts,
                        event_id,
                        f"{key}-u{unit}",
                        "fault_call",
                        ["latency_ms"],
                        [latency],
                        received,
                    )
                )
        await conn.copy_records_to_table(
            "events",
            records=rows,
            columns=[
                "ts",
                "event_id",
                "unit_id",
                "name",
                "measure_names",
                "measure_values",
                "received_at",
            ],
        )
    finally:
        await conn.close()


Figures = tuple[object, ...]


def figures(snapshot: analysis_pb2.ResultSnapshot) -> Figures:
    """What an analysis answers: units per variant, exclusions, and per metric and variant the
    analysed units and the mean (to 9 decimals, the precision the rollups are held to)."""
    return (
        tuple(sorted(snapshot.units.items())),
        snapshot.excluded_units,
        tuple(
            (m.metric_key, tuple((v.variant_key, v.units, round(v.mean, 9)) for v in m.variants))
            for m in sorted(snapshot.metrics, key=lambda m: m.metric_key)
        ),
    )


async def stored_snapshots(url: str, key: str) -> list[analysis_pb2.ResultSnapshot]:
    """Every stored snapshot of the experiment, parsed (a torn row would not parse)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT snapshot FROM analysis_snapshots WHERE experiment_key = $1 ORDER BY id", key
        )
    finally:
        await conn.close()
    return [analysis_pb2.ResultSnapshot.FromString(bytes(r["snapshot"])) for r in rows]
