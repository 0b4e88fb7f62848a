"""AssignmentService over gRPC: decode, call the use case, encode. Errors are mapped by the Guard.

`Assign` answers with bytes the snapshot prebuilt (see `snapshot`), so its handler is registered
with an identity response serializer instead of the generated one; the wire format is the same
`AssignResponse` every generated client decodes. Its request deserializer is
`fastpath.decode_request`, which gives the unit id, attributes and keys as plain Python values,
or a `RequestProblem` (malformed bytes, attributes over a limit) answered INVALID_ARGUMENT.

A request with options (forced variations, explain, min_config_version) leaves the hot path
after decoding: forcing needs the qa or admin role (PERMISSION_DENIED otherwise), and an
explained answer is the prebuilt response decoded, each assignment completed with its
`Explanation`, and encoded again (the same results, at protobuf's price). Requests without
options take the same steps as before the options existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from verdict.v1 import assignment_pb2
from verdict_assignment.assign import fastpath
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_platform.errors import InvalidArgument, PermissionDenied
from verdict_platform.guard import current_principal
from verdict_platform.roles import may_force

SERVICE_NAME = assignment_pb2.DESCRIPTOR.services_by_name["AssignmentService"].full_name


class AssignmentServicer:
    """The three RPCs of AssignmentService."""

    def __init__(self, assigner: Assigner, holder: SnapshotHolder) -> None:
        self._assigner = assigner
        self._holder = holder
        # Results so far per reason (`fastpath.COUNTED_REASONS`), counted by the C join of the
        # response (Python counting cost ~14k instructions per Assign of 20 results), read at
        # collection (`decision_counts`).
        self.decisions = fastpath.decision_counters()

    def decision_counts(self) -> list[tuple[tuple[str, ...], float]]:
        """(reason,) -> results so far, for `verdict_assign_decisions`."""
        counts = list(self.decisions)
        return [
            ((reason.value,), float(n))
            for reason, n in zip(fastpath.COUNTED_REASONS, counts, strict=True)
            if n
        ]

    async def Assign(
        self, request: fastpath.DecodedRequest | fastpath.RequestProblem, context: Any
    ) -> bytes:
        if isinstance(request, fastpath.RequestProblem):
            raise InvalidArgument.of(request.field, request.description)
        unit_id, attributes, keys, skip_logging, options = request
        attributes.setdefault("id", unit_id)  # ours to change; spares the evaluator a copy
        if options is not None:
            return await self._assign_with(options, unit_id, attributes, keys, not skip_logging)
        snapshot, results = await self._assigner.assign(unit_id, attributes, keys, not skip_logging)
        return snapshot.encode(results, self.decisions)

    async def _assign_with(
        self,
        options: fastpath.AssignOptions,
        unit_id: str,
        attributes: dict[str, Any],
        keys: tuple[str, ...],
        log_exposures: bool,
    ) -> bytes:
        """Assign for a request with options (off the hot path)."""
        forced = options.forced
        if forced and not may_force(current_principal().role):
            raise PermissionDenied("forced_variations needs an API key with the qa or admin role")
        snapshot, results = await self._assigner.assign(
            unit_id,
            attributes,
            keys,
            log_exposures,
            forced=forced,
            min_config_version=options.min_config_version,
        )
        encoded = snapshot.encode(results, self.decisions)
        if not options.explain:
            return encoded
        response = assignment_pb2.AssignResponse.FromString(encoded)
        explanations = self._assigner.explanations(
            snapshot, results, unit_id, attributes, keys, forced
        )
        for assignment, explanation in zip(response.assignments, explanations, strict=True):
            assignment.explanation.CopyFrom(explanation)
        return response.SerializeToString()

    async def GetConfigSnapshot(
        self, request: assignment_pb2.GetConfigSnapshotRequest, context: Any
    ) -> assignment_pb2.GetConfigSnapshotResponse:
        return assignment_pb2.GetConfigSnapshotResponse(snapshot=self._holder.require().proto)

    async def WatchConfig(
        self, request: assignment_pb2.WatchConfigRequest, context: Any
    ) -> AsyncIterator[assignment_pb2.WatchConfigResponse]:
        known = request.known_version
        while True:
            snapshot = await self._holder.wait_newer(known)
            known = snapshot.version
            yield assignment_pb2.WatchConfigResponse(snapshot=snapshot.proto)


def _identity(data: bytes) -> bytes:
    return data


def register(servicer: AssignmentServicer, server: grpc.aio.Server) -> None:
    """Adds AssignmentService to `server`."""
    handlers = {
        "Assign": grpc.unary_unary_rpc_method_handler(
            servicer.Assign,
            request_deserializer=fastpath.decode_request,
            response_serializer=_identity,
        ),
        "GetConfigSnapshot": grpc.unary_unary_rpc_method_handler(
            servicer.GetConfigSnapshot,
            request_deserializer=assignment_pb2.GetConfigSnapshotRequest.FromString,
            response_serializer=assignment_pb2.GetConfigSnapshotResponse.SerializeToString,
        ),
        "WatchConfig": grpc.unary_stream_rpc_method_handler(
            servicer.WatchConfig,
            request_deserializer=assignment_pb2.WatchConfigRequest.FromString,
            response_serializer=assignment_pb2.WatchConfigResponse.SerializeToString,
        ),
    }
    # Generic only: grpc.aio's "registered methods" cost every call more than they save (guard.py).
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
