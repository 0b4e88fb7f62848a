"""Stops experiments through ExperimentService over gRPC, so the audit log records who and why.

Analysis calls with its own identity (VERDICT_SERVICE_API_KEY, a key with the `analysis` role).
StopExperiment is not idempotent in effect (a second call overrides the decision), so it is not
retried here; the next scheduled analysis tries again while the experiment is still running.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import struct_pb2

from verdict.channels import PLAINTEXT, ChannelSecurity, aio_channel, bearer
from verdict.trace_context import with_trace
from verdict.v1 import common_pb2, experiment_pb2, experiment_pb2_grpc
from verdict_platform.errors import FailedPrecondition, Unavailable

STOP_TIMEOUT_S = 10.0


def details_struct(details: Mapping[str, Any]) -> struct_pb2.Struct:
    """The details as a Struct (NaN and infinities, which JSON cannot carry, as strings)."""
    struct = struct_pb2.Struct()
    clean = {
        k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in details.items()
    }
    struct.update(clean)
    return struct


class GrpcStopper:
    """Calls ExperimentService.StopExperiment at `target` with `api_key`."""

    def __init__(
        self, target: str, api_key: str | None, security: ChannelSecurity = PLAINTEXT
    ) -> None:
        self._channel = aio_channel(target, security)
        self._stub = experiment_pb2_grpc.ExperimentServiceStub(self._channel)
        self._metadata = bearer(api_key)

    async def stop(
        self,
        experiment_key: str,
        reason: str,
        decision: common_pb2.Decision.ValueType,
        ship_variant_key: str,
        details: Mapping[str, Any],
        rule: experiment_pb2.StoppingRule.ValueType,
    ) -> None:
        request = experiment_pb2.StopExperimentRequest(
            key=experiment_key,
            reason=reason,
            decision=decision,
            ship_variant_key=ship_variant_key,
            details=details_struct(details),
            rule=rule,
        )
        try:
            await self._stub.StopExperiment(
                request, metadata=with_trace(self._metadata), timeout=STOP_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise FailedPrecondition(error.details() or "not running") from error
            raise Unavailable(
                f"ExperimentService.StopExperiment failed: {error.code().name}: {error.details()}"
            ) from error

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()
