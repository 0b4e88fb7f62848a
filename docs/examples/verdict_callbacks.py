from verdict.integrations.litellm import VerdictProxyHook

# Reads VERDICT_ASSIGNMENT_TARGET, VERDICT_INGEST_TARGET and the API keys from the environment.
proxy_handler_instance = VerdictProxyHook.from_env()
