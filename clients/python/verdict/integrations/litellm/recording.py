"""The recording callback: one `llm.call` event per LiteLLM call, success or failure.

Register it with LiteLLM (`litellm.callbacks = [callback]`, or the proxy's `litellm_settings:
callbacks:`). LiteLLM calls the sync pair for `completion` and the async pair for `acompletion`
(and in the proxy); each turns the call's `standard_logging_object` into the event
(`standard_logging.call_from_logging`) and offers it to the tracker, which sends it in the
background: nothing waits on the network, and nothing raised here reaches the call.
"""

from __future__ import annotations

import logging
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

from verdict.integrations import genai_events as ge
from verdict.integrations.litellm.standard_logging import call_from_logging, event_id_of
from verdict.integrations.sink import EventSink
from verdict.integrations.throttled_log import ThrottledLog
from verdict.tracking import AsyncTracker, Tracker

log = logging.getLogger(__name__)

_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


class VerdictCallback(CustomLogger):
    """Records each LiteLLM call as a Verdict event through `tracker`."""

    def __init__(self, tracker: Tracker | AsyncTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sink = EventSink(tracker)
        self._log = ThrottledLog(log)
        self.recorded = 0
        """Events offered to the tracker."""
        self.unattributed = 0
        """Calls without a unit (no `user`, no `metadata["verdict_unit_id"]`): not recorded."""

    def install(self) -> None:
        """Registers with LiteLLM (`litellm.callbacks`), once."""
        if not any(c is self for c in litellm.callbacks):
            litellm.callbacks.append(self)

    def uninstall(self) -> None:
        """Unregisters from LiteLLM: from `litellm.callbacks` and from the success and failure
        lists LiteLLM copies its callbacks into on first use (else it keeps calling it)."""
        for name in _CALLBACK_LISTS:
            listed = getattr(litellm, name, None)
            if isinstance(listed, list):
                listed[:] = [c for c in listed if c is not self]

    def record(self, kwargs: dict[str, Any], failed: bool) -> None:
        """Turns one logged call into its event and offers it; never raises."""
        try:
            call = call_from_logging(kwargs, failed)
            if call is None:
                self.unattributed += 1
                return
            slo = kwargs["standard_logging_object"]
            if self.sink.submit(ge.call_event(call, event_id_of(slo))):
                self.recorded += 1
        except Exception as exc:  # a logging callback must never break the gateway
            self._log.warning("call not recorded by Verdict: %s", type(exc).__name__)

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, failed=False)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, failed=True)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, failed=False)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, failed=True)
