-- Incremental quantile metrics: each qualifying event's value up to a watermark.
--
-- Quantiles do not add, so their rollup keeps the values themselves, narrow and already
-- joined to their unit's arm and cut to the metric's window after exposure: one rollup per
-- experiment and quantile definition (`signature`: event, measure, window). Every exposed unit
-- seen at the last refresh has a row in `analysis_quantile_units` (with or without values), so a
-- unit without one reads all its events raw; the analysis adds raw events from the watermark on.
-- `n_units` counts those rows: while it equals the experiment's exposures (which are never
-- deleted), no unit is missing and neither a refresh nor an analysis looks for one.
CREATE TABLE analysis_quantile_state (
    rollup_id       integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_key  text NOT NULL,
    signature       text NOT NULL,
    definition      jsonb NOT NULL,
    watermark       timestamptz NOT NULL,
    n_units         bigint NOT NULL DEFAULT 0,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (experiment_key, signature)
);

CREATE TABLE analysis_quantile_units (
    rollup_id  integer NOT NULL REFERENCES analysis_quantile_state ON DELETE CASCADE,
    unit_id    text NOT NULL,
    PRIMARY KEY (rollup_id, unit_id)
);

CREATE TABLE analysis_quantile_values (
    rollup_id    integer NOT NULL REFERENCES analysis_quantile_state ON DELETE CASCADE,
    unit_id      text NOT NULL,
    variant_key  text NOT NULL,
    bucket       integer NOT NULL,
    value        float8 NOT NULL
);
-- `bucket` is `quantile_sql.value_bucket(value)`, an order-preserving bucket of the value;
-- the order-statistic lookups read a few buckets of one rollup.
CREATE INDEX analysis_quantile_values_by_bucket ON analysis_quantile_values (rollup_id, bucket);


-- The additive rollups skip their search for missing units the same way.
ALTER TABLE analysis_rollup_state ADD COLUMN n_units bigint NOT NULL DEFAULT 0;
