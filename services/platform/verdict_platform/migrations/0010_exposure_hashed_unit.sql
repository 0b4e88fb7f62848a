-- The hashed attribute on exposures (issue 17, "one identity per unit"): an experiment that
-- hashes on another attribute than the unit id (e.g. company_id) records, per exposure, which
-- attribute and which value were hashed. Analysis counts each hashed value as one unit (the
-- analysis unit, `coalesce(nullif(hash_value, ''), unit_id)`) and attributes a unit's events
-- to the value its exposure recorded. Empty (every exposure stored before, and those hashed on
-- the unit id): the unit id itself, so existing experiments analyse exactly as before.
-- Constant defaults: adding the columns rewrites no row.
ALTER TABLE exposures ADD COLUMN hash_attribute text NOT NULL DEFAULT '';
ALTER TABLE exposures ADD COLUMN hash_value text NOT NULL DEFAULT '';

-- The members of one hashed value (e.g. the users of one company), and whether an experiment
-- has any exposure hashed on another attribute (a range `hash_attribute > ''` of this index).
CREATE INDEX exposures_by_hashed_value ON exposures (experiment_key, hash_attribute, hash_value);
