-- Alerts raised by stopping rules, stored once and delivered from here (issue: operators stay
-- in charge). `dedup_key` makes raising idempotent across restarts and replicas; delivery state
-- lives in the row, so an alert whose delivery was interrupted is resumed by any replica.
CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key        text NOT NULL UNIQUE,
    experiment_key   text NOT NULL,
    rule             text NOT NULL,
    action           text NOT NULL,
    decision         text NOT NULL,
    reason           text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}',
    snapshot_id      bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    delivered_at     timestamptz,
    -- When the next delivery attempt is due; NULL once delivered, given up, or with no webhook.
    next_attempt_at  timestamptz
);
CREATE INDEX alerts_by_experiment ON alerts (experiment_key, id DESC);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Alert-only rules firing now: a row opens when a rule starts firing (and its alert is raised)
-- and is deleted when the rule stops firing, so a rule that keeps firing alerts once.
CREATE TABLE alert_episodes (
    experiment_key  text NOT NULL,
    rule            text NOT NULL,
    alert_id        bigint NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_key, rule)
);

-- The stopping rule behind an automated change (empty for a person's).
ALTER TABLE audit_log ADD COLUMN rule text NOT NULL DEFAULT '';

-- The analysis service's own identity (role `analysis`: may stop experiments).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('assign', 'ingest', 'read', 'admin', 'analysis'));
