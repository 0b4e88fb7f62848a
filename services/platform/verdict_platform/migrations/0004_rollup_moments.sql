-- Per-variant moments of an additive rollup (`rollup_moments`): for every rolled unit of one
-- variant, the unit count and the vector of `sum c_k`, `sum (c_k > 0)` and `sum c_k c_l`
-- (k <= l) over the rollup's per-unit sums. Recomputed by each refresh that changes the
-- rollup; `moments_built` says they match its rows (a rollup from before this table has none).
ALTER TABLE analysis_rollup_state ADD COLUMN moments_built boolean NOT NULL DEFAULT false;

CREATE TABLE analysis_rollup_moments (
    experiment_key  text NOT NULL,
    signature       text NOT NULL,
    variant_key     text NOT NULL,
    units           bigint NOT NULL,
    moments         float8[] NOT NULL,
    PRIMARY KEY (experiment_key, signature, variant_key),
    FOREIGN KEY (experiment_key, signature)
        REFERENCES analysis_rollup_state ON DELETE CASCADE
);
