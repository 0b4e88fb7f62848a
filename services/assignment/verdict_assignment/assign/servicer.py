"""AssignmentService over gRPC: decode, call the use case, encode. Errors are mapped by the Guard.

`Assign` answers with bytes the snapshot prebuilt (see `snapshot`), so its handler is registered
with an identity response serializer instead of the generated one; the wire format is the same
`AssignResponse` every generated client decodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from verdict.local import attributes_to_dict
from verdict.v1 import assignment_pb2
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.holder import SnapshotHolder

SERVICE_NAME = "verdict.v1.AssignmentService"


class AssignmentServicer:
    """The three RPCs of AssignmentService."""

    def __init__(self, assigner: Assigner, holder: SnapshotHolder) -> None:
        self._assigner = assigner
        self._holder = holder

    async def Assign(self, request: assignment_pb2.AssignRequest, context: Any) -> bytes:
        snapshot, results = await self._assigner.assign(
            request.unit_id,
            attributes_to_dict(request.attributes),
            request.experiment_keys,
            not request.skip_exposure_logging,
        )
        return snapshot.encode(results)

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
            request_deserializer=assignment_pb2.AssignRequest.FromString,
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
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
