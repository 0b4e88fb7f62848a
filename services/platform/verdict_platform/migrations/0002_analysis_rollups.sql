-- Incremental analysis: per-unit rollups of the metrics' additive sums up to a watermark.
--
-- For one experiment and one set of metric columns (`signature`, a hash of their definitions),
-- `analysis_rollups.sums[k]` is column k summed over the unit's events with ts < watermark;
-- the analysis adds the unit's raw events from the watermark on. Every exposed unit seen at
-- the last refresh has a row (zeros included), so a unit without one reads all its events.
CREATE TABLE analysis_rollup_state (
    experiment_key  text NOT NULL,
    signature       text NOT NULL,
    columns         jsonb NOT NULL,
    watermark       timestamptz NOT NULL,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_key, signature)
);

CREATE TABLE analysis_rollups (
    experiment_key  text NOT NULL,
    signature       text NOT NULL,
    unit_id         text NOT NULL,
    sums            float8[] NOT NULL,
    PRIMARY KEY (experiment_key, signature, unit_id)
);
