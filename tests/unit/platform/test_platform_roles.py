"""The role matrix: who may call what, and that no RPC of the contracts is left out."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from verdict.v1 import analysis_pb2, assignment_pb2, experiment_pb2, ingest_pb2, keys_pb2
from verdict_platform.roles import POLICY, Role, allows, is_public, may_force

ALL_METHODS = sorted(
    f"/{service.full_name}/{method.name}"
    for module in (
        experiment_pb2,
        assignment_pb2,
        ingest_pb2,
        analysis_pb2,
        keys_pb2,
        trace_service_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)


def test_every_rpc_of_the_contracts_has_a_policy() -> None:
    assert sorted(POLICY) == ALL_METHODS


@pytest.mark.parametrize("method", ALL_METHODS)
def test_admin_may_call_everything(method: str) -> None:
    assert allows(Role.ADMIN, method)


EXPECTED = {
    Role.ASSIGN: {
        "/verdict.v1.AssignmentService/Assign",
        "/verdict.v1.AssignmentService/GetConfigSnapshot",
        "/verdict.v1.AssignmentService/WatchConfig",
        "/verdict.v1.ApiKeyService/GetCaller",
    },
    Role.INGEST: {
        "/verdict.v1.IngestService/TrackEvents",
        "/verdict.v1.IngestService/StreamEvents",
        "/verdict.v1.IngestService/TrackExposures",
        "/verdict.v1.ApiKeyService/GetCaller",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    },
    Role.READ: {
        "/verdict.v1.ExperimentService/GetExperiment",
        "/verdict.v1.ExperimentService/ListExperiments",
        "/verdict.v1.ExperimentService/GetMetric",
        "/verdict.v1.ExperimentService/ListMetrics",
        "/verdict.v1.ExperimentService/ListSavedGroups",
        "/verdict.v1.ExperimentService/ListAuditEvents",
        "/verdict.v1.AssignmentService/GetConfigSnapshot",
        "/verdict.v1.AssignmentService/WatchConfig",
        "/verdict.v1.AnalysisService/GetResults",
        "/verdict.v1.AnalysisService/ListResultSnapshots",
        "/verdict.v1.AnalysisService/WatchResults",
        "/verdict.v1.AnalysisService/CalculateSampleSize",
        "/verdict.v1.AnalysisService/GetExposureTimeline",
        "/verdict.v1.AnalysisService/ListAlerts",
        "/verdict.v1.AnalysisService/ListSegments",
        "/verdict.v1.ApiKeyService/GetCaller",
    },
}


EXPECTED[Role.ANALYSIS] = {
    "/verdict.v1.ExperimentService/StopExperiment",
    "/verdict.v1.ApiKeyService/GetCaller",
}

EXPECTED[Role.QA] = {
    "/verdict.v1.AssignmentService/Assign",
    "/verdict.v1.AssignmentService/GetConfigSnapshot",
    "/verdict.v1.AssignmentService/WatchConfig",
    "/verdict.v1.ExperimentService/GetExperiment",
    "/verdict.v1.ExperimentService/ListExperiments",
    "/verdict.v1.ExperimentService/GetMetric",
    "/verdict.v1.ExperimentService/ListMetrics",
    "/verdict.v1.ExperimentService/ListSavedGroups",
    "/verdict.v1.ExperimentService/ListAuditEvents",
    "/verdict.v1.ApiKeyService/GetCaller",
}


def test_only_qa_and_admin_may_force_variants() -> None:
    assert {role for role in Role if may_force(role)} == {Role.QA, Role.ADMIN}


@pytest.mark.parametrize("role", [Role.ASSIGN, Role.INGEST, Role.READ, Role.ANALYSIS, Role.QA])
def test_role_matrix(role: Role) -> None:
    allowed = {m for m in ALL_METHODS if allows(role, m)}
    assert allowed == EXPECTED[role]


def test_configuration_changes_need_admin() -> None:
    for method in ALL_METHODS:
        if method.rsplit("/", 1)[1].startswith(
            ("Create", "Update", "Start", "Stop", "Put", "Revoke", "Import", "Archive")
        ):
            assert not any(
                allows(r, method) for r in (Role.ASSIGN, Role.INGEST, Role.READ, Role.QA)
            )
            if not method.endswith("/StopExperiment"):
                assert not allows(Role.ANALYSIS, method)


def test_unknown_method_is_closed_to_all_but_admin() -> None:
    method = "/verdict.v1.ExperimentService/DeleteEverything"
    assert not allows(Role.READ, method)
    assert allows(Role.ADMIN, method)


def test_health_and_reflection_are_public_and_nothing_else() -> None:
    assert is_public("/grpc.health.v1.Health/Check")
    assert is_public("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not any(is_public(m) for m in ALL_METHODS)
