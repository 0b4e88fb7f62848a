"""`make demo`'s scenario, reduced, through real services (analysis every 0.5 s): users chat
through LiteLLM mock calls routed by Verdict; with a large known lift the analysis service's
efficacy rule ships v2 by itself; with a slower v2 the latency guardrail rolls it back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_suite import GatewaySuite, gateway_suite

from verdict.channels import bearer
from verdict.integrations.llm_metrics import ensure_llm_metrics
from verdict.v1 import common_pb2, experiment_pb2
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from demo_scenario import Endpoints, Scenario, Truth, run_scenario

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def suite(settings: Settings) -> Iterator[GatewaySuite]:
    with gateway_suite(settings, analysis_interval_s=0.5) as s:
        with grpc.insecure_channel(s.assignment.target) as channel:
            ensure_llm_metrics(channel, bearer(s.keys[Role.ADMIN]))
        yield s


def _endpoints(suite: GatewaySuite) -> Endpoints:
    assert suite.analysis is not None
    return Endpoints(
        suite.assignment.target, suite.ingest.target, suite.analysis.target, suite.keys[Role.ADMIN]
    )


async def test_a_known_lift_is_shipped_by_the_efficacy_rule(suite: GatewaySuite) -> None:
    scenario = Scenario(
        "lift",
        v1=Truth(thumbs_up=0.2, delay_s=0.005, error_rate=0.0),
        v2=Truth(thumbs_up=0.7, delay_s=0.005, error_rate=0.0),
        expected="ship",
        max_users=1200,
        wave=100,
        min_units_per_variant=100,
        deadline_s=60,
    )
    outcome = await run_scenario(_endpoints(suite), scenario)
    assert outcome.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED
    assert outcome.decision == common_pb2.DECISION_SHIP, outcome.reason
    assert outcome.rule == experiment_pb2.STOPPING_RULE_EFFICACY
    assert outcome.metric == "llm_thumbs_up_rate"
    assert outcome.interval is not None and outcome.interval[0] > 0  # excludes zero, upward
    assert outcome.users_at_decision >= 2 * scenario.min_units_per_variant
    assert outcome.seconds_to_decision is not None and outcome.seconds_to_decision > 0


async def test_a_slower_v2_is_rolled_back_by_the_latency_guardrail(suite: GatewaySuite) -> None:
    scenario = Scenario(
        "slower",
        v1=Truth(thumbs_up=0.3, delay_s=0.02, error_rate=0.0),
        v2=Truth(thumbs_up=0.3, delay_s=0.12, error_rate=0.0),
        expected="rollback",
        max_users=1500,
        wave=100,
        min_units_per_variant=100,
        deadline_s=60,
    )
    outcome = await run_scenario(_endpoints(suite), scenario)
    assert outcome.decision == common_pb2.DECISION_ROLLBACK, outcome.reason
    assert outcome.rule == experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM
    assert outcome.metric == "llm_latency_p95"
    assert outcome.variant_values["v2"] > outcome.variant_values["v1"]
