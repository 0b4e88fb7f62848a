-- Intraday folds on an ingestion watermark (`rollup`): from here on, `watermark` of
-- `analysis_rollup_state` and `analysis_quantile_state` is a bound on the events' `received_at`
-- (a rollup holds the events received before it, whatever their `ts`), so late events are
-- folded by the next fold instead of being missed. Rollups built on the old `ts` watermark
-- are dropped: the next refresh rebuilds them.
DELETE FROM analysis_rollups;
DELETE FROM analysis_rollup_state;
DELETE FROM analysis_quantile_state;

-- An hourly fold rewrites a few percent of the rows: room on each page keeps those updates
-- HOT (no new index entries), and autovacuum reclaims the old versions.
ALTER TABLE analysis_rollups SET (fillfactor = 80);
