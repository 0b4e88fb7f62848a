"""`VerdictLiteLLM`: routing, recording and feedback for a gateway built on LiteLLM's SDK.

    verdict = VerdictLiteLLM(VerdictConfig.from_env())
    litellm.callbacks = [verdict.callback]
    response = verdict.completion(model="gpt-4o-mini", messages=[...], user="user-42")
    verdict.feedback.thumbs_up("user-42", response.id)

`completion` / `acompletion` route the call by the user's assignment and call LiteLLM; the
callback records it. `route(kwargs)` alone gives the routed parameters for any other LiteLLM
entry point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verdict.channels import PLAINTEXT, ChannelSecurity
from verdict.integrations.feedback import Feedback
from verdict.integrations.litellm.exposures import ExposureLog
from verdict.integrations.litellm.recording import VerdictCallback
from verdict.integrations.litellm.routing import Router
from verdict.tracking import AsyncTracker, Tracker, TrackerOptions, WhenFull


@dataclass(frozen=True)
class VerdictConfig:
    """Where Verdict is and the keys a gateway uses."""

    assignment_target: str = "127.0.0.1:50051"
    """host:port of the assignment service (configuration snapshot, `Assign`)."""
    ingest_target: str = "127.0.0.1:50052"
    """host:port of the ingest service (events, exposures)."""
    assign_api_key: str | None = field(default=None, repr=False)
    """Key with the `assign` role: local evaluation's snapshot and the `Assign` fallback."""
    ingest_api_key: str | None = field(default=None, repr=False)
    """Key with the `ingest` role: call events, feedback and exposures."""
    local: bool = True
    """Assign in-process from the configuration snapshot (else every call asks `Assign`)."""
    prompts: Mapping[str, str] | None = None
    """System prompts by version: a variant's `prompt_version` selects the call's system
    message."""
    security: ChannelSecurity = PLAINTEXT
    """TLS / mTLS of the channels (`verdict.channels`)."""
    experiments: tuple[str, ...] | None = None
    """Route by these experiments only (by key); None: every running experiment."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VerdictConfig:
        """From `VERDICT_ASSIGNMENT_TARGET`, `VERDICT_INGEST_TARGET`, `VERDICT_ASSIGN_API_KEY`,
        `VERDICT_INGEST_API_KEY` (each key falls back to `VERDICT_API_KEY`) and
        `VERDICT_LOCAL_EVALUATION` (`false` to always call `Assign`)."""
        e = os.environ if env is None else env
        shared = e.get("VERDICT_API_KEY") or None
        d = cls()
        return cls(
            assignment_target=e.get("VERDICT_ASSIGNMENT_TARGET") or d.assignment_target,
            ingest_target=e.get("VERDICT_INGEST_TARGET") or d.ingest_target,
            assign_api_key=e.get("VERDICT_ASSIGN_API_KEY") or shared,
            ingest_api_key=e.get("VERDICT_INGEST_API_KEY") or shared,
            local=(e.get("VERDICT_LOCAL_EVALUATION") or "true").lower() not in ("0", "false"),
        )


class VerdictLiteLLM:
    """A router, a recording callback and a feedback helper sharing one tracker."""

    def __init__(
        self, config: VerdictConfig, *, tracker: Tracker | AsyncTracker | None = None
    ) -> None:
        self.config = config
        self._own_tracker = tracker is None
        self.tracker: Tracker | AsyncTracker = tracker or Tracker(
            TrackerOptions(
                target=config.ingest_target,
                api_key=config.ingest_api_key,
                when_full=WhenFull.RAISE,  # never block a call: a full buffer drops (counted)
                security=config.security,
            )
        )
        self.exposures = (
            ExposureLog(config.ingest_target, config.ingest_api_key, security=config.security)
            if config.local
            else None
        )
        self.router = Router(
            config.assignment_target,
            config.assign_api_key,
            exposures=self.exposures,
            local=config.local,
            prompts=config.prompts,
            security=config.security,
            experiments=config.experiments,
        )
        self.callback = VerdictCallback(self.tracker)
        """Register with LiteLLM: `litellm.callbacks = [verdict.callback]`."""
        self.feedback = Feedback(self.callback.sink)

    def route(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's parameters with the user's variants applied (see `Router.route`)."""
        return self.router.route(kwargs)

    async def aroute(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """`route` for async code."""
        return await self.router.aroute(kwargs)

    def completion(self, **kwargs: Any) -> Any:
        """`litellm.completion` with the call routed."""
        import litellm

        return litellm.completion(**self.route(kwargs))

    async def acompletion(self, **kwargs: Any) -> Any:
        """`litellm.acompletion` with the call routed."""
        import litellm

        return await litellm.acompletion(**(await self.aroute(kwargs)))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Sends what is buffered now (exposures first: analysis counts units by exposure)."""
        if self.exposures is not None:
            self.exposures.flush(timeout_s)
        if isinstance(self.tracker, Tracker):
            self.tracker.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Stops the router, flushes exposures, and closes the tracker when it made it (within
        `timeout_s`, default the tracker's `close_timeout_s`; an `AsyncTracker` given to it is
        closed by its owner, in its loop)."""
        self.router.close()
        if self.exposures is not None:
            self.exposures.close(5.0 if timeout_s is None else timeout_s)
        if self._own_tracker and isinstance(self.tracker, Tracker):
            self.tracker.close(timeout_s)
