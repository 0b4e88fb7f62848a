"""Every metric Verdict exports, in one place: name, meaning, labels.

The instruments are plain Python objects (`instruments`), process-wide like OpenTelemetry's own
global providers: code that counts something imports its counter from here; the service template
binds `REGISTRY` to the process's meter provider and serves it on `/metrics`. The Prometheus names
add the unit and `_total` to counters (e.g. `verdict_rpc_server_duration_seconds_bucket`,
`verdict_assign_decisions_total`); docs/OPERATIONS.md says which metric tells what.
"""

from __future__ import annotations

from verdict_platform.telemetry.instruments import SECONDS_BOUNDS, SIZE_BOUNDS, Registry

REGISTRY = Registry()
"""The instruments of this process."""

# Every service: RPCs (updated by the guard), keys, dependencies.
RPC_DURATION = REGISTRY.histogram(
    "verdict_rpc_server_duration",
    "Time from a call's arrival in its handler to its answer, per method and status code",
    "s",
    SECONDS_BOUNDS,
    ("method", "code"),
)
RPC_REQUESTS = REGISTRY.count_of(
    RPC_DURATION, "verdict_rpc_server_requests", "Calls answered, per method and status code"
)
KEY_RELOADS = REGISTRY.counter(
    "verdict_key_reloads", "Reloads of the API keys from PostgreSQL, by outcome", ("outcome",)
)
DEPENDENCY_ERRORS = REGISTRY.counter(
    "verdict_dependency_errors",
    "Failures to reach PostgreSQL or Redis (connection lost, refused, timed out); dependency"
    " is postgresql, redis, or unknown for a bare connection error",
    ("dependency",),
)

# Assignment.
ASSIGN_DECISIONS = REGISTRY.counter(
    "verdict_assign_decisions",
    "Per-experiment results of Assign, by reason (assigned, not_targeted, sticky, ...)",
    ("reason",),
)
EXPOSURES_RECORDED = REGISTRY.counter(
    "verdict_exposures_recorded", "First assignments queued to be sent to ingest as exposures"
)
EXPOSURES_SENT = REGISTRY.counter(
    "verdict_exposures_sent", "Exposures ingest acknowledged"
)  # fmt: skip
EXPOSURES_DROPPED = REGISTRY.counter(
    "verdict_exposures_dropped",
    "Exposures lost: buffer full, batch refused or failed for good, not flushed at shutdown",
    ("cause",),
)
EXPOSURE_BUFFER_DEPTH = REGISTRY.gauge(
    "verdict_exposure_buffer_depth", "Exposures waiting to be sent to ingest"
)
CONFIG_RELOADS = REGISTRY.counter(
    "verdict_config_reloads", "Reloads of the configuration snapshot, by outcome", ("outcome",)
)

# Ingest.
INGEST_EVENTS = REGISTRY.counter(
    "verdict_ingest_events",
    "Events received, by outcome: accepted (stored), duplicate (stored before), rejected",
    ("outcome",),
)
INGEST_EXPOSURES = REGISTRY.counter(
    "verdict_ingest_exposures",
    "Exposures received, by outcome: accepted, duplicate, conflict (other variant), rejected",
    ("outcome",),
)
INGEST_QUEUE_DEPTH = REGISTRY.gauge(
    "verdict_ingest_queue_depth", "Events queued or being written (bounded by the queue size)"
)
INGEST_BATCH_SIZE = REGISTRY.histogram(
    "verdict_ingest_batch_size",
    "Items per batch: per request (events, exposures) and per write transaction (transaction)",
    "",
    SIZE_BOUNDS,
    ("kind",),
)
INGEST_WRITE_DURATION = REGISTRY.histogram(
    "verdict_ingest_write_duration",
    "Time of one write transaction into PostgreSQL, per table and outcome",
    "s",
    SECONDS_BOUNDS,
    ("table", "outcome"),
)

# Analysis.
ANALYSIS_DURATION = REGISTRY.histogram(
    "verdict_analysis_duration",
    "Time of one analysis of an experiment (statistics, snapshot, rules), by outcome (ok,"
    " error); runs skipped because the snapshot is fresh or another replica holds the lock are"
    " not counted",
    "s",
    SECONDS_BOUNDS,
    ("experiment", "outcome"),
)
STOPPING_RULE_FIRINGS = REGISTRY.counter(
    "verdict_stopping_rule_firings",
    "Stopping rules that fired in an analysis run, by rule and action (stop, alert)",
    ("rule", "action"),
)
ALERT_DELIVERIES = REGISTRY.counter(
    "verdict_alert_deliveries", "Webhook delivery attempts of alerts, by outcome", ("outcome",)
)
