-- Verdict's schema: configuration, keys, exposures, day-partitioned events, analysis snapshots.

-- API keys: only the SHA-256 of a key is stored. A name is unique among active keys.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('assign', 'ingest', 'read', 'admin')),
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Experiments: the configuration as the proto JSON of verdict.v1.Experiment, plus the columns
-- that queries filter and order by.
CREATE TABLE experiments (
    key                 text PRIMARY KEY,
    status              text NOT NULL CHECK (status IN ('draft', 'running', 'stopped', 'archived')),
    spec                jsonb NOT NULL,
    version             bigint NOT NULL DEFAULT 1,
    allocation_version  bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    stopped_at          timestamptz
);
CREATE INDEX experiments_by_status ON experiments (status, created_at DESC, key);

-- Every stored version of an experiment's configuration.
CREATE TABLE experiment_versions (
    experiment_key  text NOT NULL REFERENCES experiments (key),
    version         bigint NOT NULL,
    spec            jsonb NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    changed_by      text NOT NULL,
    PRIMARY KEY (experiment_key, version)
);

-- The audit log: who changed what, when, and why.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_key  text,
    action          text NOT NULL,
    actor           text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    changes         jsonb NOT NULL DEFAULT '{}',
    reason          text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_experiment ON audit_log (experiment_key, id DESC);

-- The metric catalog (proto JSON of verdict.v1.Metric).
CREATE TABLE metrics (
    key         text PRIMARY KEY,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Saved groups for $inGroup targeting.
CREATE TABLE saved_groups (
    key         text PRIMARY KEY,
    members     jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Version of the whole configuration, bumped by every change the assignment snapshot depends on.
CREATE TABLE config_state (
    id       integer PRIMARY KEY CHECK (id = 1),
    version  bigint NOT NULL
);
INSERT INTO config_state (id, version) VALUES (1, 1);

-- Exposures: the first (experiment, unit) wins and is the truth behind sticky assignment.
CREATE TABLE exposures (
    experiment_key      text NOT NULL,
    unit_id             text NOT NULL,
    variant_key         text NOT NULL,
    exposed_at          timestamptz NOT NULL,
    allocation_version  bigint NOT NULL DEFAULT 1,
    segments            jsonb NOT NULL DEFAULT '{}',
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_key, unit_id)
);

-- A unit later seen in another variant: kept for analysis to exclude and report.
CREATE TABLE exposure_conflicts (
    experiment_key  text NOT NULL,
    unit_id         text NOT NULL,
    variant_key     text NOT NULL,
    exposed_at      timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_key, unit_id, variant_key)
);

-- Events, partitioned by day of their timestamp. Measures are parallel arrays of names and
-- float8 values, so analysis reads them without parsing JSON per row. A retried event repeats
-- its (ts, event_id), which the primary key deduplicates within its partition.
CREATE TABLE events (
    ts              timestamptz NOT NULL,
    event_id        uuid NOT NULL,
    unit_id         text NOT NULL,
    name            text NOT NULL,
    measure_names   text[] NOT NULL DEFAULT '{}',
    measure_values  float8[] NOT NULL DEFAULT '{}',
    properties      jsonb NOT NULL DEFAULT '{}',
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, event_id)
) PARTITION BY RANGE (ts);
CREATE INDEX events_by_name_unit ON events (name, unit_id, ts);

-- Creates the daily partitions of `events` for [first_day, first_day + days); idempotent.
CREATE FUNCTION verdict_ensure_event_partitions(first_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created integer := 0;
    part text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := first_day + i;
        part := 'events_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                part, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Drops the daily partitions of `events` that end on or before `before_day`; returns how many.
CREATE FUNCTION verdict_drop_event_partitions(before_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'events' AND c.relname ~ '^events_[0-9]{8}$'
          AND to_date(substr(c.relname, 8), 'YYYYMMDD') < before_day
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

SELECT verdict_ensure_event_partitions((now() AT TIME ZONE 'UTC')::date - 8, 12);

-- Analysis snapshots: serialised verdict.v1.ResultSnapshot, the dashboard's time series.
CREATE TABLE analysis_snapshots (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_key      text NOT NULL,
    segment_dimension   text NOT NULL DEFAULT '',
    segment_value       text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    snapshot            bytea NOT NULL
);
CREATE INDEX analysis_snapshots_latest
    ON analysis_snapshots (experiment_key, segment_dimension, segment_value, id DESC);
