"""Routing a LiteLLM call by the caller's assignment.

`Router.route(kwargs)` finds the unit of the call (`user`, or `metadata["verdict_unit_id"]`),
assigns it, and applies the variants' payloads (`payloads.apply_variants`). Assignment is local
(`verdict.LocalEvaluator`, following the configuration snapshot from a background thread, no
network on the call's path), falling back to `AssignmentService.Assign` (short deadline) until
the first snapshot is in or when local evaluation is off. Exposures of local assignments go to
ingest through an `ExposureLog`; `Assign` logs its own.

Verdict never fails a call: no unit, no running experiment, Verdict unreachable or anything
unexpected gives the call back unchanged, with a warning at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import grpc
from google.protobuf import struct_pb2

from verdict.channels import PLAINTEXT, ChannelSecurity, bearer, sync_channel
from verdict.evaluation import Reason
from verdict.integrations.litellm.exposures import ExposureLog
from verdict.integrations.litellm.payloads import Routed, apply_variants, attributes_of, unit_of
from verdict.integrations.throttled_log import ThrottledLog
from verdict.local import LocalEvaluator, attributes_to_dict
from verdict.v1 import assignment_pb2, assignment_pb2_grpc

log = logging.getLogger(__name__)


class Router:
    """Assigns the unit of each call and applies its variants' payloads; thread-safe."""

    def __init__(
        self,
        assignment_target: str,
        api_key: str | None,
        *,
        exposures: ExposureLog | None = None,
        local: bool = True,
        prompts: Mapping[str, str] | None = None,
        assign_timeout_s: float = 0.25,
        security: ChannelSecurity = PLAINTEXT,
        experiments: Sequence[str] | None = None,
    ) -> None:
        self._log = ThrottledLog(log)
        self._keys = list(experiments) if experiments else None
        self._prompts = dict(prompts or {})
        self._timeout_s = assign_timeout_s
        self._metadata = bearer(api_key)
        self._exposures = exposures
        self._channel = sync_channel(assignment_target, security)
        self._stub = assignment_pb2_grpc.AssignmentServiceStub(self._channel)
        self._local: LocalEvaluator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started: Future[None] | None = None
        if local:
            self._start_local(assignment_target, api_key or "", security)

    def _start_local(self, target: str, api_key: str, security: ChannelSecurity) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="verdict-config", daemon=True)
        self._thread.start()

        async def follow() -> None:
            self._local = LocalEvaluator(target, api_key, security=security, logger=self._log)
            await self._local.start(wait_s=3600 * 24 * 365)

        self._started = asyncio.run_coroutine_threadsafe(follow(), loop)

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Waits until local evaluation has its first snapshot; False when it has not by then
        (the router answers through `Assign` meanwhile)."""
        if self._started is None:
            return False
        try:
            self._started.result(timeout_s)
        except Exception:
            return False
        return True

    @property
    def local_version(self) -> int:
        """Version of the snapshot local evaluation uses; 0 before the first."""
        return 0 if self._local is None else self._local.version

    def wait_for_version(self, version: int, timeout_s: float = 10.0) -> bool:
        """Waits until local evaluation uses snapshot `version` or later (e.g. after starting
        an experiment, to route by it at once)."""
        if self._local is None or self._loop is None:
            return False
        local = self._local
        future = asyncio.run_coroutine_threadsafe(
            local.wait_for_version(version, timeout_s), self._loop
        )
        try:
            future.result(timeout_s + 1)
        except Exception:
            return False
        return True

    def route(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's parameters with the unit's variants applied; unchanged when there is no
        unit, no running experiment for it, or Verdict cannot tell."""
        try:
            unit = unit_of(kwargs)
            if unit is None:
                return dict(kwargs)
            attributes = attributes_of(kwargs)
            routed = self._assign(unit, attributes)
            return apply_variants(kwargs, unit, routed, self._prompts)
        except Exception as exc:  # Verdict never fails a call
            self._log.warning("call not routed by Verdict (%s); sent unchanged", type(exc).__name__)
            return dict(kwargs)

    async def aroute(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """`route` for async code: in place when local evaluation is ready (no I/O), else the
        `Assign` fallback runs in a worker thread so the event loop never waits on it."""
        if self.local_version:
            return self.route(kwargs)
        return await asyncio.to_thread(self.route, kwargs)

    def _assign(self, unit: str, attributes: dict[str, Any]) -> list[Routed]:
        local = self._local
        if local is not None and local.version:
            return self._assign_locally(local, unit, attributes)
        return self._assign_remotely(unit, attributes)

    def _assign_locally(
        self, local: LocalEvaluator, unit: str, attributes: dict[str, Any]
    ) -> list[Routed]:
        routed = []
        for a in local.assign(unit, attributes or None, self._keys):
            if not a.in_experiment or a.variant_key is None or a.payload_json is None:
                continue
            if self._exposures is not None and a.reason is Reason.ASSIGNED:
                config = local.experiment(a.experiment_key)
                version = config.allocation_version if config is not None else 1
                self._exposures.record(a.experiment_key, a.variant_key, unit, version)
            routed.append(Routed(a.experiment_key, a.variant_key, _payload(a.payload_json)))
        return routed

    def _assign_remotely(self, unit: str, attributes: dict[str, Any]) -> list[Routed]:
        request = assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=self._keys or [])
        if attributes:
            request.attributes.update(attributes)
        try:
            reply = self._stub.Assign(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            self._log.warning("Verdict's Assign failed (%s); calls go unchanged", code)
            return []
        return [
            Routed(a.experiment_key, a.variant_key, _struct(a.payload))
            for a in reply.assignments
            if a.in_experiment and a.variant_key
        ]

    def close(self) -> None:
        """Stops following the configuration and closes the channels."""
        if self._started is not None:
            self._started.cancel()  # still waiting for a first snapshot: stop waiting
        if self._loop is not None and self._local is not None:
            local = self._local
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(local.close(), self._loop).result(5)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop.close()
        self._channel.close()


def _struct(payload: struct_pb2.Struct) -> dict[str, Any]:
    return attributes_to_dict(payload)


@functools.lru_cache(maxsize=1024)
def _payload(payload_json: str) -> Mapping[str, Any]:
    """A variant's payload (the same few strings on every call: parsed once each). Read-only:
    `apply_variants` copies what it uses."""
    value = json.loads(payload_json)
    return value if isinstance(value, dict) else {}
