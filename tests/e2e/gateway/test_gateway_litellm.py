"""LiteLLM through Verdict, with `mock_response` (no network) against the real services: the
variant's payload reaches the call (SDK helper and proxy hook), each call is one `llm.call`
event checked field by field in PostgreSQL (streamed and not, success and error), exposures of
local assignments land, feedback is tied to the response, and a user in no experiment or an
unreachable Verdict gets the call unchanged."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import grpc
import litellm
import pytest
from gateway_suite import GatewaySuite, gateway_suite
from google.protobuf import struct_pb2
from litellm.caching.dual_cache import DualCache
from litellm.proxy._types import UserAPIKeyAuth

from support.eventually import eventually, eventually_async
from support.processes import free_port
from verdict.integrations.litellm import VerdictConfig, VerdictLiteLLM, VerdictProxyHook
from verdict.tracking import Tracker
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAYLOADS = {
    "v1": {"model": "gpt-4o-mini", "prompt_version": "v1"},
    "v2": {"model": "gpt-4o", "prompt_version": "v2", "temperature": 0.2, "max_tokens": 64},
}
PROMPTS = {"v1": "You are terse.", "v2": "You are warm and precise."}


@pytest.fixture(scope="module")
def suite(settings: Settings) -> Iterator[GatewaySuite]:
    with gateway_suite(settings) as s:
        yield s


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


@pytest.fixture(scope="module")
def experiment(suite: GatewaySuite) -> str:
    """A running 50/50 experiment for units with `plan: pro`."""
    key = f"gw-prompt-{secrets.token_hex(3)}"
    spec = experiment_pb2.Experiment(
        key=key,
        name="prompt v2 vs v1",
        coverage=1.0,
        targeting=_struct({"plan": "pro"}),
        variants=[
            experiment_pb2.Variant(
                key="v1", weight=0.5, is_control=True, payload=_struct(PAYLOADS["v1"])
            ),
            experiment_pb2.Variant(key="v2", weight=0.5, payload=_struct(PAYLOADS["v2"])),
        ],
    )
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        admin = suite.auth(Role.ADMIN)
        stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=admin
        )
        stub.StartExperiment(experiment_pb2.StartExperimentRequest(key=key), metadata=admin)
    return key


@pytest.fixture(scope="module")
def verdict(suite: GatewaySuite, experiment: str) -> Iterator[VerdictLiteLLM]:
    config = VerdictConfig(
        assignment_target=suite.assignment.target,
        ingest_target=suite.ingest.target,
        assign_api_key=suite.keys[Role.ASSIGN],
        ingest_api_key=suite.keys[Role.INGEST],
        prompts=PROMPTS,
        experiments=(experiment,),  # the session's database holds other tests' experiments
    )
    gateway = VerdictLiteLLM(config)
    try:
        assert gateway.router.wait_ready()
        # The first snapshot may predate the start; wait until the router routes by it.
        probe = {"user": "probe", "metadata": {"verdict_attributes": {"plan": "pro"}}}
        eventually(lambda: gateway.route(probe)["metadata"]["verdict"]["experiment"] == experiment)
        gateway.callback.install()
        yield gateway
    finally:
        gateway.callback.uninstall()
        gateway.close(timeout_s=5)


def _units(verdict: VerdictLiteLLM, experiment: str) -> dict[str, str]:
    """A unit per variant, by the router's own assignment (and the variant it expects)."""
    found: dict[str, str] = {}
    for i in range(200):
        unit = f"gw-user-{secrets.token_hex(4)}-{i}"
        routed = verdict.route({"user": unit, "metadata": {"verdict_attributes": {"plan": "pro"}}})
        variant = routed["metadata"]["verdict"]["variant"]
        found.setdefault(variant, unit)
        if len(found) == 2:
            return {v: u for v, u in found.items()}
    raise AssertionError("no unit in each variant")


async def _events(pool: asyncpg.Pool, unit: str, count: int) -> list[asyncpg.Record]:
    async def stored() -> list[asyncpg.Record]:
        rows = await pool.fetch("SELECT * FROM events WHERE unit_id = $1 ORDER BY ts", unit)
        return rows if len(rows) >= count else []

    rows = await eventually_async(stored)
    assert len(rows) == count, "\n".join(
        f"{r['name']} {r['properties']} {list(r['measure_names'])}" for r in rows
    )
    return rows


def _measures(row: asyncpg.Record) -> dict[str, float]:
    return dict(zip(row["measure_names"], row["measure_values"], strict=True))


def _chat(unit: str) -> dict[str, Any]:
    return {
        "model": "gpt-3.5-turbo",  # the caller's default; the experiment decides
        "messages": [{"role": "user", "content": "hello"}],
        "user": unit,
        "metadata": {"verdict_attributes": {"plan": "pro"}},
        "mock_response": "Hi! How can I help?",
    }


async def test_sdk_helper_routes_to_the_variant_and_records_each_call(
    verdict: VerdictLiteLLM, experiment: str, pool: asyncpg.Pool
) -> None:
    units = _units(verdict, experiment)
    for variant, unit in units.items():
        response = verdict.completion(**_chat(unit))
        assert response.model == PAYLOADS[variant]["model"]  # the variant's model was called
        stream = verdict.completion(**_chat(unit), stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hi! How can I help?"
        with pytest.raises(litellm.RateLimitError):
            verdict.completion(
                **{
                    **_chat(unit),
                    "mock_response": litellm.RateLimitError(
                        "slow down", llm_provider="openai", model="gpt-4o"
                    ),
                }
            )
        verdict.feedback.thumbs_up(unit, response.id)
        verdict.flush()

        rows = await _events(pool, unit, 4)
        calls = [r for r in rows if r["name"] == "llm.call"]
        assert len(calls) == 3
        plain, streamed, failed = calls
        model = PAYLOADS[variant]["model"]
        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.provider.name": "openai",
            "prompt_version": str(PAYLOADS[variant]["prompt_version"]),
            "verdict.experiment": experiment,
            "verdict.variant": variant,
        }
        props = json.loads(plain["properties"])
        assert props == {
            **base,
            "gen_ai.response.model": model,
            "gen_ai.response.id": response.id,
            "gen_ai.response.finish_reasons": "stop",
        }
        m = _measures(plain)
        assert set(m) == {
            "latency_ms",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "cost_usd",
            "error",
        }
        assert m["error"] == 0 and m["latency_ms"] > 0
        assert m["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
        assert m["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
        assert m["cost_usd"] == pytest.approx(response._hidden_params["response_cost"])
        assert plain["ts"].timestamp() <= streamed["ts"].timestamp()

        s = _measures(streamed)
        assert 0 <= s["ttft_ms"] <= s["latency_ms"] and s["gen_ai.usage.output_tokens"] > 0
        assert json.loads(streamed["properties"])["verdict.variant"] == variant

        f = _measures(failed)
        assert f == {"error": 1.0, "latency_ms": f["latency_ms"]}
        failed_props = json.loads(failed["properties"])
        assert failed_props["error.type"] == "RateLimitError"
        assert failed_props["verdict.variant"] == variant

        thumbs = [r for r in rows if r["name"] == "feedback.thumbs_up"]
        assert len(thumbs) == 1
        assert json.loads(thumbs[0]["properties"]) == {"gen_ai.response.id": response.id}

        exposed = await pool.fetchval(
            "SELECT variant_key FROM exposures WHERE experiment_key = $1 AND unit_id = $2",
            experiment,
            unit,
        )
        assert exposed == variant  # local evaluation logged the exposure


async def test_the_variant_sets_parameters_and_the_prompt_version_system_message(
    verdict: VerdictLiteLLM, experiment: str
) -> None:
    unit = _units(verdict, experiment)["v2"]
    routed = verdict.route(_chat(unit))
    assert routed["model"] == "gpt-4o" and routed["temperature"] == 0.2
    assert routed["max_tokens"] == 64
    assert routed["messages"][0] == {"role": "system", "content": PROMPTS["v2"]}
    response = await verdict.acompletion(**_chat(unit))
    assert response.model == "gpt-4o"


async def test_proxy_hook_routes_the_request_and_records_async_calls(
    suite: GatewaySuite, verdict: VerdictLiteLLM, experiment: str, pool: asyncpg.Pool
) -> None:
    hook = VerdictProxyHook(verdict)
    units = _units(verdict, experiment)
    verdict.callback.uninstall()  # the proxy's hook records instead
    hook.install()
    try:
        for variant, unit in units.items():
            # As the proxy does: the hook edits the request, then LiteLLM runs it.
            data = _chat(unit)
            del data["user"]  # the proxy's key names the end user instead
            auth = UserAPIKeyAuth(api_key="sk-test", end_user_id=unit)
            data = await hook.async_pre_call_hook(auth, DualCache(), data, "acompletion")
            assert data["model"] == PAYLOADS[variant]["model"]
            response = await litellm.acompletion(**data)
            assert response.model == PAYLOADS[variant]["model"]
            chunks = await litellm.acompletion(**{**data, "stream": True})
            async for _ in chunks:
                pass
            with pytest.raises(litellm.InternalServerError):
                await litellm.acompletion(**{**data, "mock_response": Exception("boom")})
    finally:
        hook.uninstall()
        verdict.callback.install()
    verdict.flush()
    for variant, unit in units.items():
        rows = [r for r in await _events(pool, unit, 3)]
        assert [json.loads(r["properties"])["verdict.variant"] for r in rows] == [variant] * 3
        assert [json.loads(r["properties"])["gen_ai.request.model"] for r in rows] == [
            PAYLOADS[variant]["model"]
        ] * 3
        assert [_measures(r)["error"] for r in rows] == [0.0, 0.0, 1.0]
        assert "ttft_ms" in _measures(rows[1]) and "ttft_ms" not in _measures(rows[0])
        assert json.loads(rows[2]["properties"])["error.type"] == "InternalServerError"


async def test_a_user_in_no_experiment_gets_the_call_unchanged(
    verdict: VerdictLiteLLM, experiment: str, pool: asyncpg.Pool
) -> None:
    unit = f"gw-free-{uuid.uuid4().hex[:8]}"
    call = {**_chat(unit), "metadata": {"verdict_attributes": {"plan": "free"}}}
    routed = verdict.route(call)
    assert routed["model"] == "gpt-3.5-turbo" and routed["messages"] == call["messages"]
    assert routed["metadata"]["verdict"] == {
        "unit_id": unit,
        "experiment": "",
        "variant": "",
        "prompt_version": "",
    }
    response = verdict.completion(**call)
    assert response.model == "gpt-3.5-turbo"
    verdict.flush()
    (row,) = await _events(pool, unit, 1)
    assert "verdict.experiment" not in json.loads(row["properties"])


async def test_an_unreachable_verdict_leaves_calls_unchanged_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    config = VerdictConfig(assignment_target=nowhere, ingest_target=nowhere, local=False)
    gateway = VerdictLiteLLM(config)
    try:
        gateway.callback.install()
        try:
            with caplog.at_level("WARNING", logger="verdict.integrations"):
                for _ in range(5):
                    response = gateway.completion(**_chat("someone"))
                    assert response.model == "gpt-3.5-turbo"
            # Offered (LiteLLM runs sync callbacks in a worker thread); the tracker retries.
            assert eventually(lambda: gateway.callback.recorded == 5)
        finally:
            gateway.callback.uninstall()
        warnings = [r for r in caplog.records if "Assign failed" in r.getMessage()]
        assert len(warnings) == 1
        assert gateway.router._log.suppressed == 4
    finally:
        gateway.close(timeout_s=0.5)
    assert isinstance(gateway.tracker, Tracker) and gateway.tracker.stats().dropped == 5
