"""The role matrix: which API-key roles may call which RPC.

Admin may call everything. A method missing from the table is refused for every other role, so a
new RPC is closed until someone decides who may call it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Role of an API key."""

    ASSIGN = "assign"
    """Backends: assignment and the config snapshot for local evaluation."""
    INGEST = "ingest"
    """The LLM gateway and the assignment service: events and exposures."""
    READ = "read"
    """Dashboards and analysts: read experiments, metrics, results."""
    ADMIN = "admin"
    """Operators: everything, including configuration changes and analysis runs."""
    ANALYSIS = "analysis"
    """The analysis service's own identity: stops experiments when a stopping rule fires, so
    the audit log tells a rule's action from a person's."""


_EXP = "/verdict.v1.ExperimentService/"
_ASG = "/verdict.v1.AssignmentService/"
_ING = "/verdict.v1.IngestService/"
_ANA = "/verdict.v1.AnalysisService/"
_KEY = "/verdict.v1.ApiKeyService/"
_OTLP_TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/"

_READ_ONLY = frozenset({Role.READ})
_ASSIGNERS = frozenset({Role.ASSIGN})
_ANY_KEY = frozenset(Role)

# Roles besides ADMIN allowed per method.
POLICY: dict[str, frozenset[Role]] = {
    _EXP + "CreateExperiment": frozenset(),
    _EXP + "GetExperiment": _READ_ONLY,
    _EXP + "ListExperiments": _READ_ONLY,
    _EXP + "UpdateExperiment": frozenset(),
    _EXP + "StartExperiment": frozenset(),
    _EXP + "StopExperiment": frozenset({Role.ANALYSIS}),
    _EXP + "ArchiveExperiment": frozenset(),
    _EXP + "CreateMetric": frozenset(),
    _EXP + "GetMetric": _READ_ONLY,
    _EXP + "ListMetrics": _READ_ONLY,
    _EXP + "UpdateMetric": frozenset(),
    _EXP + "PutSavedGroup": frozenset(),
    _EXP + "ListSavedGroups": _READ_ONLY,
    _EXP + "ListAuditEvents": _READ_ONLY,
    _EXP + "ImportGrowthBook": frozenset(),  # creates experiments: admin only, as the contract says
    _ASG + "Assign": _ASSIGNERS,
    _ASG + "GetConfigSnapshot": frozenset({Role.ASSIGN, Role.READ}),
    _ASG + "WatchConfig": frozenset({Role.ASSIGN, Role.READ}),
    _ING + "TrackEvents": frozenset({Role.INGEST}),
    _ING + "StreamEvents": frozenset({Role.INGEST}),
    _ING + "TrackExposures": frozenset({Role.INGEST}),
    _OTLP_TRACES + "Export": frozenset({Role.INGEST}),  # OTLP/gRPC spans, served by ingest
    _ANA + "GetResults": _READ_ONLY,
    _ANA + "ListResultSnapshots": _READ_ONLY,
    _ANA + "WatchResults": _READ_ONLY,
    _ANA + "RunAnalysis": frozenset(),
    _ANA + "CalculateSampleSize": _READ_ONLY,
    _ANA + "GetExposureTimeline": _READ_ONLY,
    _ANA + "ListAlerts": _READ_ONLY,
    _ANA + "ListSegments": _READ_ONLY,
    _KEY + "GetCaller": _ANY_KEY,
    _KEY + "ListApiKeys": frozenset(),
    _KEY + "CreateApiKey": frozenset(),
    _KEY + "RevokeApiKey": frozenset(),
}

# Methods that need no key at all: health checking and server reflection.
PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def is_public(method: str) -> bool:
    """True for health and reflection, which need no API key."""
    return method.startswith(PUBLIC_PREFIXES)


def allowed_roles(method: str) -> frozenset[Role]:
    """The roles that may call `method` (a full gRPC method path): admin, plus its policy's."""
    return POLICY.get(method, frozenset()) | {Role.ADMIN}


def allows(role: Role, method: str) -> bool:
    """True when a key with `role` may call `method`."""
    return role in allowed_roles(method)
