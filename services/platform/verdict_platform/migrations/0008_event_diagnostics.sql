-- Diagnostics of the analysis (issue 13): per experiment and event name, how many events
-- received before `watermark` (a bound on `received_at`, like the rollups') were left out
-- because they precede their unit's first exposure, or come from a unit never exposed to the
-- experiment. Counted by each fold over the events it stages; an analysis adds the events
-- received since. Small: one row per event name a metric of the experiment reads.
CREATE TABLE analysis_event_diagnostics (
    experiment_key  text NOT NULL,
    event_name      text NOT NULL,
    watermark       timestamptz NOT NULL,
    before_exposure bigint NOT NULL DEFAULT 0,
    unexposed       bigint NOT NULL DEFAULT 0,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_key, event_name)
);
