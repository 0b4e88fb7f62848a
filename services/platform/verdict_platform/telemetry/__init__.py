"""Telemetry of every Verdict process: traces (`tracing`), metrics (`instruments` counted by
plain Python code, declared in `catalog`, exported by `export`), and the ids of the current span
in the JSON logs (`verdict_platform.logs`)."""
