"""The README's gateway snippets are the files in docs/examples (checked verbatim) and they run
against the real services: the LiteLLM SDK example, the proxy's callback module named by the
proxy config, and the OpenTelemetry SDK example; the Collector config is checked for its
exporter (no Collector binary here)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import litellm
import pytest
import pytest_asyncio
import yaml
from gateway_suite import GatewaySuite, gateway_suite
from litellm.caching.dual_cache import DualCache
from litellm.proxy._types import UserAPIKeyAuth

from support.eventually import eventually_async
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def suite(own_settings: Settings) -> Iterator[GatewaySuite]:
    # A database of its own: the examples route across every running experiment.
    with gateway_suite(own_settings) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(own_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the module's own database (overrides the session's)."""
    p = await asyncpg.create_pool(own_settings.require_database_url(), min_size=1, max_size=2)
    yield p
    await p.close()


def _env(suite: GatewaySuite, user: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")},
        "VERDICT_ASSIGNMENT_TARGET": suite.assignment.target,
        "VERDICT_INGEST_TARGET": suite.ingest.target,
        "VERDICT_ASSIGN_API_KEY": suite.keys[Role.ASSIGN],
        "VERDICT_INGEST_API_KEY": suite.keys[Role.INGEST],
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DEMO_USER": user,
    }


def _run(example: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _names(pool: asyncpg.Pool, unit: str, count: int) -> list[str]:
    async def stored() -> list[str]:
        rows = await pool.fetch("SELECT name FROM events WHERE unit_id = $1 ORDER BY name", unit)
        return [r["name"] for r in rows] if len(rows) >= count else []

    return await eventually_async(stored)


@pytest.mark.parametrize(
    "name",
    [
        "litellm_sdk.py",
        "verdict_callbacks.py",
        "litellm_proxy.yaml",
        "otel_genai.py",
        "otel_collector.yaml",
    ],
)
def test_the_readme_shows_each_example_verbatim(name: str) -> None:
    fence = "python" if name.endswith(".py") else "yaml"
    assert f"```{fence}\n{(EXAMPLES / name).read_text()}```" in README


@pytest.mark.asyncio(loop_scope="session")
async def test_the_sdk_example_routes_records_and_sends_feedback(
    suite: GatewaySuite, pool: asyncpg.Pool
) -> None:
    user = f"readme-sdk-{secrets.token_hex(4)}"
    run = await asyncio.to_thread(_run, "litellm_sdk.py", _env(suite, user))
    assert run.returncode == 0, run.stderr
    # The model is the caller's unless a running experiment (other tests' too) routes the user.
    model, answer = run.stdout.strip().split(" ", 1)
    assert answer == "It ships tomorrow."
    assert await _names(pool, user, 2) == ["feedback.thumbs_up", "llm.call"]
    props = await pool.fetchval(
        "SELECT properties FROM events WHERE unit_id = $1 AND name = 'llm.call'", user
    )
    assert json.loads(props)["gen_ai.response.model"] == model


@pytest.mark.asyncio(loop_scope="session")
async def test_the_otel_example_lands_as_an_llm_call(
    suite: GatewaySuite, pool: asyncpg.Pool
) -> None:
    user = f"readme-otel-{secrets.token_hex(4)}"
    run = await asyncio.to_thread(_run, "otel_genai.py", _env(suite, user))
    assert run.returncode == 0, run.stderr
    assert await _names(pool, user, 1) == ["llm.call"]
    props = await pool.fetchval("SELECT properties FROM events WHERE unit_id = $1", user)
    assert json.loads(props)["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_proxy_config_names_the_hook_and_the_hook_routes_and_records(
    suite: GatewaySuite, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((EXAMPLES / "litellm_proxy.yaml").read_text())
    module_name, attribute = config["litellm_settings"]["callbacks"].split(".")
    user = f"readme-proxy-{secrets.token_hex(4)}"
    for key, value in _env(suite, user).items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # as the proxy loads it
    hook = getattr(module, attribute)
    hook.install()
    try:
        data = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "user": user,
            "mock_response": "hello",
        }
        data = await hook.async_pre_call_hook(UserAPIKeyAuth(), DualCache(), data, "acompletion")
        assert data["metadata"]["verdict"]["unit_id"] == user
        await litellm.acompletion(**data)
        assert await _names(pool, user, 1) == ["llm.call"]
    finally:
        hook.uninstall()
        hook.gateway.close(timeout_s=5)


def test_the_collector_config_exports_traces_to_verdict_with_the_key() -> None:
    config = yaml.safe_load((EXAMPLES / "otel_collector.yaml").read_text())
    exporter = config["exporters"]["otlp/verdict"]
    assert exporter["headers"]["authorization"].startswith("Bearer ")
    assert exporter["endpoint"].endswith(":50052")
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/verdict"]
