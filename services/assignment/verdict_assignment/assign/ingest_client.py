"""Sends exposure batches to `IngestService.TrackExposures` (the sink's gRPC adapter)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import timestamp_pb2

from verdict.channels import RETRYABLE, ChannelSecurity, aio_channel, bearer
from verdict.trace_context import with_trace
from verdict.v1 import ingest_pb2, ingest_pb2_grpc
from verdict_assignment.assign.exposures import PendingExposure, TransientSendError


def to_proto(exposure: PendingExposure) -> ingest_pb2.Exposure:
    """The wire form of one exposure."""
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromNanoseconds(int(exposure.timestamp * 1e9))
    return ingest_pb2.Exposure(
        experiment_key=exposure.experiment_key,
        variant_key=exposure.variant_key,
        unit_id=exposure.unit_id,
        timestamp=timestamp,
        allocation_version=exposure.allocation_version,
        segments=dict(exposure.segments),
        hash_attribute=exposure.hash_attribute,
        hash_value=exposure.hash_value,
    )


class IngestExposureSender:
    """One channel to ingest, authenticated with the service API key."""

    def __init__(
        self,
        target: str,
        api_key: str | None,
        security: ChannelSecurity,
        timeout_s: float = 5.0,
    ) -> None:
        self._channel = aio_channel(target, security)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._metadata = bearer(api_key)
        self._timeout_s = timeout_s

    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None:
        """Sends one batch; TransientSendError when a retry may succeed."""
        request = ingest_pb2.TrackExposuresRequest(
            request_id=request_id, exposures=[to_proto(e) for e in exposures]
        )
        try:
            await self._stub.TrackExposures(
                request, timeout=self._timeout_s, metadata=with_trace(self._metadata)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in RETRYABLE:
                raise TransientSendError(f"{error.code().name}: {error.details()}") from error
            raise

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()
