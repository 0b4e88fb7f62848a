-- The W3C traceparent of the analysis run that raised an alert ('' when that run was not
-- sampled): its delivery, later and maybe by another replica, continues the same trace.
ALTER TABLE alerts ADD COLUMN trace_context text NOT NULL DEFAULT '';
