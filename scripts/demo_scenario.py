"""One demo scenario: an experiment "prompt v2 vs v1", users chatting through LiteLLM (mock
calls, routed by Verdict), and the wait for the analysis service to stop it by itself.

Importable (the demo's test runs a reduced scenario against test processes); `demo.py` is the
`make demo` driver around it. The simulated truth is known: each variant's thumbs-up
probability and its typical latency. Latency is produced through the routed call: each variant's
payload carries LiteLLM's `mock_delay`, jittered per call as a real model's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2

from verdict.integrations import llm_metrics as lm
from verdict.integrations.litellm import VerdictConfig, VerdictLiteLLM
from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    common_pb2,
    experiment_pb2,
    experiment_pb2_grpc,
)

GUARDRAILS = (lm.LATENCY_P95, lm.COST_PER_USER, lm.ERROR_RATE)


@dataclass(frozen=True)
class Truth:
    """What the simulation makes true for one variant."""

    thumbs_up: float
    """Probability that a response gets a thumbs up."""
    delay_s: float
    """Typical latency of a call (LiteLLM's mock_delay), jittered by +-50 % per call."""
    error_rate: float = 0.01


@dataclass(frozen=True)
class Scenario:
    """A scenario and its expected ending."""

    title: str
    v1: Truth
    v2: Truth
    expected: str
    """"ship" or "rollback"."""
    max_users: int = 6000
    calls_per_user: int = 2
    wave: int = 200
    """Users arriving between two looks at the experiment."""
    concurrency: int = 64
    min_units_per_variant: int = 500
    deadline_s: float = 75.0


@dataclass(frozen=True)
class Endpoints:
    """Where the services are and the keys the demo uses."""

    assignment: str
    ingest: str
    analysis: str
    admin_key: str
    run_analysis: bool = False
    """Ask for an analysis after each wave (when the scheduler's interval is long)."""


@dataclass
class Outcome:
    """How a scenario ended."""

    key: str
    status: int
    decision: int = 0
    rule: int = 0
    reason: str = ""
    relative_effect: float | None = None
    absolute_effect: float | None = None
    interval: tuple[float, float] | None = None
    """The interval the decision rests on (sequential, anytime-valid), on `scale`."""
    scale: str = ""
    variant_values: dict[str, float] = field(default_factory=dict)
    metric: str = ""
    users_at_decision: int = 0
    users_simulated: int = 0
    calls: int = 0
    seconds_to_decision: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def experiment_spec(key: str, scenario: Scenario) -> experiment_pb2.Experiment:
    """The experiment: thumbs-up rate primary; latency, cost and errors as guardrails;
    sequential analysis; efficacy and guardrail-harm stopping."""
    metrics = [
        experiment_pb2.ExperimentMetric(
            metric_key=lm.THUMBS_UP_RATE, role=experiment_pb2.METRIC_ROLE_PRIMARY
        ),
        *[
            experiment_pb2.ExperimentMetric(metric_key=k, role=experiment_pb2.METRIC_ROLE_GUARDRAIL)
            for k in GUARDRAILS
        ],
    ]
    model = "gpt-4o-mini"
    return experiment_pb2.Experiment(
        key=key,
        name="prompt v2 vs v1",
        hypothesis="The v2 prompt gets more thumbs up, without slower, costlier or failing calls.",
        coverage=1.0,
        variants=[
            experiment_pb2.Variant(
                key="v1",
                name="prompt v1",
                weight=0.5,
                is_control=True,
                payload=_struct(
                    {"model": model, "prompt_version": "v1", "mock_delay": scenario.v1.delay_s}
                ),
            ),
            experiment_pb2.Variant(
                key="v2",
                name="prompt v2",
                weight=0.5,
                payload=_struct(
                    {"model": model, "prompt_version": "v2", "mock_delay": scenario.v2.delay_s}
                ),
            ),
        ],
        metrics=metrics,
        analysis_plan=experiment_pb2.AnalysisPlan(
            sequential=True, sequential_tuning_n=scenario.max_users // 2
        ),
        stopping_rules=experiment_pb2.StoppingRules(
            efficacy=True,
            guardrail_harm=True,
            min_units_per_variant=scenario.min_units_per_variant,
        ),
    )


PROMPTS = {"v1": "You are a helpful assistant.", "v2": "You are a helpful assistant. Be concrete."}


class Simulation:
    """Users chatting through the gateway (LiteLLM SDK helper, mock calls)."""

    def __init__(self, verdict: VerdictLiteLLM, scenario: Scenario, seed: int) -> None:
        self.verdict = verdict
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.users = 0
        self.calls = 0
        self._prefix = secrets.token_hex(3)

    async def _user(self, unit: str, slots: asyncio.Semaphore) -> None:
        import litellm

        async with slots:
            for turn in range(self.scenario.calls_per_user):
                call = await self.verdict.aroute(
                    {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": f"question {turn}"}],
                        "user": unit,
                        "mock_response": "Here is a concrete answer.",
                    }
                )
                version = call["metadata"]["verdict"]["prompt_version"] or "v1"
                truth = self.scenario.v2 if version == "v2" else self.scenario.v1
                call["mock_delay"] = float(call.get("mock_delay") or truth.delay_s) * (
                    0.5 + self.rng.random()
                )
                if self.rng.random() < truth.error_rate:
                    call["mock_response"] = litellm.RateLimitError(
                        "simulated", llm_provider="openai", model="gpt-4o-mini"
                    )
                self.calls += 1
                try:
                    response = await litellm.acompletion(**call)
                except litellm.RateLimitError:
                    continue
                if self.rng.random() < truth.thumbs_up:
                    self.verdict.feedback.thumbs_up(unit, response.id)

    async def wave(self, count: int) -> None:
        """`count` new users, each chatting `calls_per_user` times."""
        slots = asyncio.Semaphore(self.scenario.concurrency)
        units = [f"demo-{self._prefix}-{self.users + i}" for i in range(count)]
        self.users += count
        await asyncio.gather(*(self._user(u, slots) for u in units))
        await asyncio.to_thread(self.verdict.flush)


def _outcome(
    key: str,
    experiment: experiment_pb2.Experiment,
    sim: Simulation,
    snapshot: analysis_pb2.ResultSnapshot | None,
) -> Outcome:
    out = Outcome(key, experiment.status, users_simulated=sim.users, calls=sim.calls)
    if experiment.status != experiment_pb2.EXPERIMENT_STATUS_STOPPED:
        return out
    d = experiment.decision
    out.decision, out.rule, out.reason = d.decision, d.rule, d.reason
    out.seconds_to_decision = (
        d.stop_time.ToNanoseconds() - experiment.start_time.ToNanoseconds()
    ) / 1e9
    if snapshot is not None:
        out.users_at_decision = sum(snapshot.units.values())
        # The metric the rule fired on: the primary (efficacy) or the harmed guardrail.
        fired = lm.THUMBS_UP_RATE
        if d.rule == experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM:
            fired = next((k for k in GUARDRAILS if f"guardrail {k}:" in d.reason), "")
        for metric in snapshot.metrics:
            if metric.metric_key != fired:
                continue
            out.metric = fired
            out.variant_values = {v.variant_key: v.mean for v in metric.variants}
            for c in metric.comparisons:
                out.relative_effect = c.relative_effect
                # With a sequential plan the relative interval is the anytime-valid one.
                interval = c.relative_interval
                out.interval = (interval.lower, interval.upper)
                out.scale = analysis_pb2.EffectScale.Name(analysis_pb2.EFFECT_SCALE_RELATIVE)
    return out


async def run_scenario(
    endpoints: Endpoints,
    scenario: Scenario,
    progress: Callable[[Simulation, int], None] = lambda sim, status: None,
    seed: int = 7,
) -> Outcome:
    """Creates and starts the experiment, simulates users until it stops (or the budget is
    spent), and reads how it ended."""
    admin = (("authorization", f"Bearer {endpoints.admin_key}"),)
    key = f"prompt-v2-vs-v1-{secrets.token_hex(3)}"
    async with (
        grpc.aio.insecure_channel(endpoints.assignment) as a_channel,
        grpc.aio.insecure_channel(endpoints.analysis) as r_channel,
    ):
        experiments = experiment_pb2_grpc.ExperimentServiceStub(a_channel)
        results = analysis_pb2_grpc.AnalysisServiceStub(r_channel)
        await experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment_spec(key, scenario)),
            metadata=admin,
        )
        await experiments.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=admin
        )
        config = VerdictConfig(
            assignment_target=endpoints.assignment,
            ingest_target=endpoints.ingest,
            assign_api_key=endpoints.admin_key,
            ingest_api_key=endpoints.admin_key,
            prompts=PROMPTS,
            experiments=(key,),  # this scenario's experiment only
        )
        verdict = await asyncio.to_thread(VerdictLiteLLM, config)
        sim = Simulation(verdict, scenario, seed)
        verdict.callback.install()  # records each call
        try:
            await asyncio.to_thread(verdict.router.wait_ready)
            probe = {"user": "demo-probe", "model": "m", "messages": []}
            deadline = time.monotonic() + 10
            while key not in (await verdict.aroute(probe))["metadata"]["verdict"]["experiment"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway never saw the experiment start")
                await asyncio.sleep(0.1)
            started = time.monotonic()
            status = experiment_pb2.EXPERIMENT_STATUS_RUNNING
            while status == experiment_pb2.EXPERIMENT_STATUS_RUNNING:
                if (
                    sim.users < scenario.max_users
                    and time.monotonic() - started < scenario.deadline_s
                ):
                    await sim.wave(scenario.wave)
                elif time.monotonic() - started > scenario.deadline_s + 30:
                    break  # no decision within the budget: report what there is
                else:
                    await asyncio.sleep(0.5)
                if endpoints.run_analysis:
                    # ABORTED while the scheduler analyses it right now: fine either way.
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await results.RunAnalysis(
                            analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=admin
                        )
                got = await experiments.GetExperiment(
                    experiment_pb2.GetExperimentRequest(key=key), metadata=admin
                )
                status = got.experiment.status
                progress(sim, status)
            await asyncio.sleep(1.0)  # LiteLLM logs the last calls in the background
            if status == experiment_pb2.EXPERIMENT_STATUS_RUNNING:  # no decision: stop it by hand
                await experiments.StopExperiment(
                    experiment_pb2.StopExperimentRequest(
                        key=key,
                        reason="demo: no decision within the demo's budget",
                        decision=common_pb2.DECISION_INCONCLUSIVE,
                    ),
                    metadata=admin,
                )
        finally:
            verdict.callback.uninstall()
            await asyncio.to_thread(verdict.close, 5.0)
        got = await experiments.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=key), metadata=admin
        )
        snapshot = None
        with contextlib.suppress(grpc.aio.AioRpcError):  # no snapshot yet: nothing to show
            reply = await results.GetResults(
                analysis_pb2.GetResultsRequest(experiment_key=key), metadata=admin
            )
            snapshot = reply.snapshot
        return _outcome(key, got.experiment, sim, snapshot)
