"""The LiteLLM proxy hook: route each request by the user's assignment, record each call.

In the proxy's config (`verdict_callbacks.py` next to it holds
`proxy_handler_instance = VerdictProxyHook.from_env()`):

    litellm_settings:
      callbacks: verdict_callbacks.proxy_handler_instance

The proxy calls `async_pre_call_hook` before each request: the unit is the request's `user`
(OpenAI's field), `metadata.verdict_unit_id`, or the proxy's end user of the key; the variant's
payload is applied to the request. Recording is the `VerdictCallback` it extends. Any trouble
leaves the request unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from verdict.integrations.litellm.gateway import VerdictConfig, VerdictLiteLLM
from verdict.integrations.litellm.payloads import UNIT_KEY, unit_of
from verdict.integrations.litellm.recording import VerdictCallback
from verdict.integrations.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

ROUTED_CALL_TYPES = frozenset({"completion", "acompletion", "text_completion", "atext_completion"})


class VerdictProxyHook(VerdictCallback):
    """A LiteLLM proxy callback that routes (pre-call hook) and records (logging callbacks)."""

    def __init__(self, gateway: VerdictLiteLLM) -> None:
        super().__init__(gateway.tracker)
        self.sink = gateway.callback.sink
        self.gateway = gateway
        self._hook_log = ThrottledLog(log)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VerdictProxyHook:
        """A hook configured from the environment (`VerdictConfig.from_env`)."""
        return cls(VerdictLiteLLM(VerdictConfig.from_env(env)))

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        """Applies the user's variants to the request (in place, and returned)."""
        if call_type not in ROUTED_CALL_TYPES:
            return data
        try:
            if unit_of(data) is None:
                end_user = getattr(user_api_key_dict, "end_user_id", None)
                if not isinstance(end_user, str) or not end_user:
                    return data
                data["metadata"] = {**(data.get("metadata") or {}), UNIT_KEY: end_user}
            routed = await self.gateway.aroute(data)
        except Exception as exc:  # the request goes on unchanged
            self._hook_log.warning("request not routed by Verdict: %s", type(exc).__name__)
            return data
        data.clear()
        data.update(routed)
        return data
