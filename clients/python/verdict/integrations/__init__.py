"""The gateway path: what an LLM gateway needs to route calls by experiment and record them.

- `verdict.integrations.genai_events`: the one shape of an LLM call as a Verdict event (name,
  measures, properties), shared by the LiteLLM callback and ingest's OpenTelemetry intake. Pure.
- `verdict.integrations.llm_metrics`: the LLM metric catalog defined over those events.
- `verdict.integrations.litellm`: routing (SDK helper, proxy hook), the recording callback and
  the feedback helper for LiteLLM (needs the `litellm` extra).

Nothing here imports LiteLLM unless `verdict.integrations.litellm` is imported.
"""
