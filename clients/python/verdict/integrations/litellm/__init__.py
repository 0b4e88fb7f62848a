"""Verdict for LiteLLM: route calls by experiment, record each call, collect feedback.

SDK:

    from verdict.integrations.litellm import VerdictConfig, VerdictLiteLLM
    verdict = VerdictLiteLLM(VerdictConfig.from_env())
    litellm.callbacks = [verdict.callback]
    response = verdict.completion(model="gpt-4o-mini", messages=[...], user="user-42")

Proxy: `VerdictProxyHook.from_env()` in the proxy's `litellm_settings: callbacks:`.

Needs the `litellm` extra (`pip install verdict[litellm]`).
"""

from __future__ import annotations

import importlib
from typing import Any

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

# Loaded on first use: the pure parts (payloads, standard_logging) import without LiteLLM.
_HOMES = {
    "Feedback": "verdict.integrations.feedback",
    "Routed": "verdict.integrations.litellm.payloads",
    "apply_variants": "verdict.integrations.litellm.payloads",
    "Router": "verdict.integrations.litellm.routing",
    "VerdictCallback": "verdict.integrations.litellm.recording",
    "VerdictConfig": "verdict.integrations.litellm.gateway",
    "VerdictLiteLLM": "verdict.integrations.litellm.gateway",
    "VerdictProxyHook": "verdict.integrations.litellm.proxy",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
