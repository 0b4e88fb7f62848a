"""Domain errors: one class per failure a caller can act on.

Domain and service code raise these; `verdict_platform.status` maps them to gRPC status codes in
one place, with google.rpc rich details. Pure code never imports grpc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (e.g. "experiment.variants[1].weight")."""

    field: str
    description: str


class VerdictError(Exception):
    """Base of every error Verdict raises on purpose."""


class InvalidArgument(VerdictError):
    """The request is invalid; `violations` names each offending field."""

    def __init__(self, violations: Sequence[FieldViolation] | FieldViolation) -> None:
        vs = (violations,) if isinstance(violations, FieldViolation) else tuple(violations)
        if not vs:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations: tuple[FieldViolation, ...] = vs
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in vs))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        """Shorthand for a single violation."""
        return cls(FieldViolation(field, description))


class NotFound(VerdictError):
    """The named resource does not exist."""


class AlreadyExists(VerdictError):
    """A resource with that key exists already."""


class FailedPrecondition(VerdictError):
    """The resource is not in a state that allows the operation (e.g. variants while running).

    `violations` name the fields of the resource that stand in the way (e.g. "coverage": "is 0:
    the experiment would enrol nobody"); they travel as google.rpc.PreconditionFailure details.
    """

    def __init__(self, message: str = "", violations: Sequence[FieldViolation] = ()) -> None:
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        super().__init__(message)


class Aborted(VerdictError):
    """A concurrent operation won (e.g. another replica holds the lock); retry."""


class ResourceExhausted(VerdictError):
    """A bounded queue is full; the client should slow down and retry."""


class Unavailable(VerdictError):
    """A dependency (database, Redis, another service) is down; retry with backoff."""


class Unauthenticated(VerdictError):
    """No valid API key was presented."""


class PermissionDenied(VerdictError):
    """The API key's role does not allow the operation."""
