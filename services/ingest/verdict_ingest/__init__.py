"""The ingest service: validates events and exposures and writes them to PostgreSQL.

Modules: `config` (settings from the environment), `validation` (pure: the documented limits),
`encoding` (pure: the hot loop, validating and encoding events as binary COPY data), `intake`
(the use cases), `queue` (the bounded write queue: backpressure, batching), `writer` (all the
events SQL: COPY, insert-or-ignore through staging on retries), `exposures` (exposure SQL: first
wins, conflicts), `partitions` (daily partitions ahead, retention), `servicer` (protobuf in and
out), `service` (wiring and background tasks).
"""
