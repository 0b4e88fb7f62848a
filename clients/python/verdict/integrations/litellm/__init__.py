"""Verdict for LiteLLM: route calls by experiment, record each call, collect feedback.

SDK:

    from verdict.integrations.litellm import VerdictConfig, VerdictLiteLLM
    verdict = VerdictLiteLLM(VerdictConfig.from_env())
    litellm.callbacks = [verdict.callback]
    response = verdict.completion(model="gpt-4o-mini", messages=[...], user="user-42")

Proxy: `VerdictProxyHook.from_env()` in the proxy's `litellm_settings: callbacks:`.

Needs the `litellm` extra (`pip install verdict[litellm]`).
"""

from verdict.integrations.feedback import Feedback
from verdict.integrations.litellm.gateway import VerdictConfig, VerdictLiteLLM
from verdict.integrations.litellm.payloads import Routed, apply_variants
from verdict.integrations.litellm.proxy import VerdictProxyHook
from verdict.integrations.litellm.recording import VerdictCallback
from verdict.integrations.litellm.routing import Router

__all__ = [
    "Feedback",
    "Routed",
    "Router",
    "VerdictCallback",
    "VerdictConfig",
    "VerdictLiteLLM",
    "VerdictProxyHook",
    "apply_variants",
]
