"""A QA engineer's view through `buf curl` (server reflection, API keys) of the real assignment
process: an explained answer shows why the unit got it, an admin key forces a variant, an assign
key may not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from test_assign_lifecycle_buf import BufCurl

from support.eventually import eventually
from support.processes import start_service_process
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

SERVICE = "verdict.v1.ExperimentService"
ASSIGN = "verdict.v1.AssignmentService/Assign"
KEY = "buf-explain"
EXPERIMENT = {
    "key": KEY,
    "name": "Shorter system prompt",
    "coverage": 1.0,
    "targeting": {"plan": "pro"},
    "variants": [
        {"key": "long", "name": "long prompt", "weight": 0.5, "isControl": True,
         "payload": {"prompt_version": "v7"}},
        {"key": "short", "name": "short prompt", "weight": 0.5,
         "payload": {"prompt_version": "v8"}},
    ],
}  # fmt: skip


@dataclass(frozen=True)
class QA:
    curl: BufCurl
    assign_key: str

    def assign(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.curl.ok(ASSIGN, body, key or self.assign_key)
        return result


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def qa(settings: Settings, make_key: Callable[[Role], Awaitable[str]]) -> AsyncIterator[QA]:
    admin_key, assign_key = await make_key(Role.ADMIN), await make_key(Role.ASSIGN)
    service = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        curl = BufCurl(service.target, admin_key)
        curl.ok(f"{SERVICE}/CreateExperiment", {"experiment": EXPERIMENT})
        curl.ok(f"{SERVICE}/StartExperiment", {"key": KEY})
        yield QA(curl, assign_key)
    finally:
        await asyncio.to_thread(service.stop)


def _answer(reply: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = reply["assignments"][0]
    return result


def test_an_explained_assignment_says_why(qa: QA) -> None:
    def explained(plan: str) -> dict[str, Any] | None:
        body = {"unitId": "user-7", "attributes": {"plan": plan}, "experimentKeys": [KEY],
                "skipExposureLogging": True, "explain": True}  # fmt: skip
        answer = _answer(qa.assign(body))
        return None if answer["reason"] == "ASSIGNMENT_REASON_UNKNOWN_KEY" else answer

    pro = eventually(lambda: explained("pro"))  # once the start reached the snapshot
    assert pro["reason"] == "ASSIGNMENT_REASON_ASSIGNED"
    why = pro["explanation"]
    assert (why["hashAttribute"], why["hashValue"]) == ("id", "user-7")
    assert 0 <= why["bucket"] < 1 and why["detail"]
    assert (why["bucket"] < 0.5) == (pro["variantKey"] == "long")

    free = explained("free")
    assert free is not None and free["reason"] == "ASSIGNMENT_REASON_NOT_TARGETED"
    assert "pro" in free["explanation"]["failedCondition"]


def test_an_admin_forces_a_variant_an_assign_key_may_not(qa: QA) -> None:
    body = {"unitId": "user-8", "attributes": {"plan": "pro"}, "experimentKeys": [KEY],
            "forcedVariations": {KEY: "short"}}  # fmt: skip
    forced = eventually(lambda: _answer(qa.assign(body, qa.curl.key)))
    assert (forced["variantKey"], forced["reason"]) == ("short", "ASSIGNMENT_REASON_FORCED")
    assert forced["payload"] == {"prompt_version": "v8"}
    denied = qa.curl.error(ASSIGN, body, qa.assign_key)
    assert denied["code"] == "permission_denied" and "forced_variations" in denied["message"]
