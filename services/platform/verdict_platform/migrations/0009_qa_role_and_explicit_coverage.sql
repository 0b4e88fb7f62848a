-- Issue 17.

-- QA and support (role `qa`): Assign with forced variations and explanations, read experiments.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('assign', 'ingest', 'read', 'admin', 'analysis', 'qa'));

-- Experiment.coverage has presence now, and an absent coverage means 1 (everyone eligible).
-- Until now the spec JSON left out a coverage of 0, so a stored spec without "coverage" meant 0:
-- write that 0 explicitly, so that no stored experiment changes meaning (a running one would
-- otherwise start enrolling everyone at once, with no allocation change and no audit entry).
-- ExperimentService writes coverage explicitly from now on (absent on create: 1).
UPDATE experiments SET spec = jsonb_set(spec, '{coverage}', '0'::jsonb)
    WHERE NOT spec ? 'coverage';
UPDATE experiment_versions SET spec = jsonb_set(spec, '{coverage}', '0'::jsonb)
    WHERE NOT spec ? 'coverage';
