"""`verdict metrics init-llm` through the real ExperimentService: the catalog is created with
its types and directions, under the admin key's name in the audit log; a rerun changes nothing;
a key without the admin role is refused."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from gateway_suite import GatewaySuite, gateway_suite

from verdict.integrations.llm_metrics import LLM_METRICS
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.cli import main
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

DECREASE = experiment_pb2.DIRECTION_DECREASE


@pytest.fixture(scope="module")
def suite(settings: Settings) -> Iterator[GatewaySuite]:
    with gateway_suite(settings) as s:
        yield s


def _audit(stub: experiment_pb2_grpc.ExperimentServiceStub, suite: GatewaySuite) -> list[str]:
    reply = stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(page_size=100), metadata=suite.auth(Role.ADMIN)
    )
    return [f"{e.action} {e.actor}" for e in reply.audit_events]


def _keys(stub: experiment_pb2_grpc.ExperimentServiceStub, suite: GatewaySuite) -> set[str]:
    listed = stub.ListMetrics(
        experiment_pb2.ListMetricsRequest(page_size=100), metadata=suite.auth(Role.ADMIN)
    )
    return {m.key for m in listed.metrics}


def test_init_llm_creates_the_catalog_once_through_the_service(
    suite: GatewaySuite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["metrics", "init-llm", "--target", suite.assignment.target]
    assert main([*argv, "--api-key", suite.keys[Role.READ]]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err

    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        before = _keys(stub, suite)  # the session's database: another test may have made some
        assert main([*argv, "--api-key", suite.keys[Role.ADMIN]]) == 0
        out = capsys.readouterr().out
        assert sorted(line.split()[:2] for line in out.splitlines()) == sorted(
            ["exists" if m.key in before else "created", m.key] for m in LLM_METRICS
        )
        fresh = [m for m in LLM_METRICS if m.key not in before]
        listed = stub.ListMetrics(
            experiment_pb2.ListMetricsRequest(page_size=100), metadata=suite.auth(Role.ADMIN)
        )
        stored = {m.key: m for m in listed.metrics}
        for metric in LLM_METRICS:
            got = stored[metric.key]
            got.ClearField("create_time")
            assert got == metric
        kinds = {k: (m.type, m.direction) for k, m in stored.items() if k.startswith("llm_")}
        assert kinds["llm_thumbs_up_rate"][0] == experiment_pb2.METRIC_TYPE_RATIO
        assert kinds["llm_conversion"][0] == experiment_pb2.METRIC_TYPE_BINOMIAL
        assert kinds["llm_latency_p95"] == (experiment_pb2.METRIC_TYPE_QUANTILE, DECREASE)
        assert kinds["llm_ttft_p95"] == (experiment_pb2.METRIC_TYPE_QUANTILE, DECREASE)
        assert kinds["llm_cost_per_user"] == (experiment_pb2.METRIC_TYPE_MEAN, DECREASE)
        assert kinds["llm_error_rate"] == (experiment_pb2.METRIC_TYPE_RATIO, DECREASE)
        assert kinds["llm_regenerate_rate"] == (experiment_pb2.METRIC_TYPE_RATIO, DECREASE)
        audit = _audit(stub, suite)
        by_this_key = [a for a in audit if a == f"metric.created {suite.names[Role.ADMIN]}"]
        assert len(by_this_key) == len(fresh)  # each creation audited under the key's name

        assert main([*argv, "--api-key", suite.keys[Role.ADMIN]]) == 0
        rerun = capsys.readouterr().out
        assert [line.split()[:2] for line in rerun.splitlines()] == [
            ["exists", m.key] for m in LLM_METRICS
        ]
        assert _audit(stub, suite) == audit  # nothing changed
