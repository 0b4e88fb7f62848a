"""The one mapping from domain errors to gRPC status codes, with google.rpc rich details.

`InvalidArgument` carries a `google.rpc.BadRequest` with one field violation per offending field,
and a `FailedPrecondition` that names fields a `google.rpc.PreconditionFailure` (type "FIELD",
subject the field path); clients read them with `grpc_status.rpc_status.from_call`. Anything
unexpected is logged with its traceback and answered INTERNAL without leaking details.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from redis import exceptions as redis_errors

from verdict_platform import errors
from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

DETAILS_KEY = "grpc-status-details-bin"
PRECONDITION_TYPE_FIELD = "FIELD"
"""`PreconditionFailure.Violation.type` of a violation whose subject is a field path."""

_CODES: tuple[tuple[type[errors.VerdictError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
)

# A dependency that cannot be reached, when an adapter did not translate it to Unavailable itself.
# Narrow on purpose: a programming error must stay INTERNAL, not invite retries.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
)


def _dependency(error: BaseException) -> str:
    if isinstance(error, redis_errors.RedisError):
        return "redis"
    if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        return "postgresql"
    return "unknown"  # a bare ConnectionError: the adapter did not say which


@dataclass(frozen=True)
class RpcFailure:
    """What the client receives for an error: code, message and trailing metadata."""

    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def status_code_of(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an error: its domain code; UNAVAILABLE for a dependency that
    cannot be reached (a safety net behind the adapters' own translation); else INTERNAL."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    if isinstance(error, _UNREACHABLE):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, NotImplementedError):
        # A contract's RPC this server does not implement yet (the generated base servicer
        # raises this): callers can tell "not offered" from a failure.
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL


def to_failure(error: BaseException) -> RpcFailure:
    """Translates an exception into what the client receives."""
    code = status_code_of(error)
    if code is grpc.StatusCode.INTERNAL:
        log.error("unexpected error", exc_info=error)
        message = "internal error"
    elif code is grpc.StatusCode.UNIMPLEMENTED:
        message = "not implemented by this server"
    elif not isinstance(error, errors.VerdictError):
        log.warning("dependency unreachable: %r", error)
        DEPENDENCY_ERRORS.inc(_dependency(error))
        message = "a dependency is unavailable; retry with backoff"
    else:
        message = str(error) or code.name.lower()
    status = status_pb2.Status(code=code.value[0], message=message)
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    if isinstance(error, errors.FailedPrecondition) and error.violations:
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=PRECONDITION_TYPE_FIELD, subject=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(failure)
        status.details.append(detail)
    return RpcFailure(code, message, ((DETAILS_KEY, status.SerializeToString()),))


def field_violations(status: status_pb2.Status) -> dict[str, str]:
    """Field to description of the BadRequest details in a status (for clients and tests)."""
    found: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def precondition_violations(status: status_pb2.Status) -> dict[str, str]:
    """Field to description of the PreconditionFailure details in a status (for clients and
    tests): what a FAILED_PRECONDITION names as standing in the way."""
    found: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            found.update({v.subject: v.description for v in failure.violations})
    return found
