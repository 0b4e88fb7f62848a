"""An operator's journey through `buf curl` with API keys, against the real assignment process:
create an experiment, start it, assign, stop with a ship decision, archive, read the audit log;
invalid input answers INVALID_ARGUMENT naming the field, a wrong role PERMISSION_DENIED."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from google.rpc import error_details_pb2

from support.eventually import eventually
from support.processes import start_service_process
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or "buf"
SERVICE = "verdict.v1.ExperimentService"


class BufCurl:
    def __init__(self, target: str, key: str) -> None:
        self.base = f"http://{target}"
        self.key = key

    def run(
        self, method: str, body: dict[str, Any], key: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                "-H", f"authorization: Bearer {key or self.key}",
                "-d", json.dumps(body), f"{self.base}/{method}",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def ok(self, method: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        done = self.run(method, body, key)
        assert done.returncode == 0, f"{method}: {done.stderr}"
        reply: dict[str, Any] = json.loads(done.stdout or "{}")
        return reply

    def error(self, method: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        done = self.run(method, body, key)
        assert done.returncode != 0, f"{method} unexpectedly succeeded: {done.stdout}"
        failure: dict[str, Any] = json.loads(done.stderr)
        return failure


EXPERIMENT = {
    "key": "buf-lifecycle",
    "name": "Cheaper model for FAQ answers",
    "hypothesis": "gpt-4o-mini answers FAQs as well as gpt-4o",
    "coverage": 1.0,
    "targeting": {"country": {"$in": ["FR", "DE"]}},
    "variants": [
        {"key": "control", "name": "gpt-4o", "weight": 0.5, "isControl": True,
         "payload": {"model": "gpt-4o", "prompt_version": "v7", "temperature": 0.2}},
        {"key": "mini", "name": "gpt-4o-mini", "weight": 0.5,
         "payload": {"model": "gpt-4o-mini", "prompt_version": "v7", "temperature": 0.2}},
    ],
}  # fmt: skip


def bad_request_fields(failure: dict[str, Any]) -> set[str]:
    """Fields named by the google.rpc.BadRequest details of a buf curl error."""
    fields = set()
    for detail in failure.get("details", []):
        assert detail["type"] == "google.rpc.BadRequest"
        raw = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
        fields |= {v.field for v in error_details_pb2.BadRequest.FromString(raw).field_violations}
    return fields


@dataclass(frozen=True)
class Operator:
    """`buf curl` against the module's assignment process with an admin key, and an assign key."""

    curl: BufCurl
    assign_key: str

    def assign_once(self, reason: str) -> dict[str, Any] | None:
        """user-42's result for the experiment, if its reason is `reason`."""
        reply = self.curl.ok(
            "verdict.v1.AssignmentService/Assign",
            {
                "unitId": "user-42",
                "attributes": {"country": "FR"},
                "experimentKeys": ["buf-lifecycle"],
            },
            self.assign_key,
        )
        result: dict[str, Any] = reply["assignments"][0]
        return result if result["reason"] == reason else None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator(
    settings: Settings, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Operator]:
    admin_key, assign_key = await make_key(Role.ADMIN), await make_key(Role.ASSIGN)
    service = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        yield Operator(BufCurl(service.target, admin_key), assign_key)
    finally:
        await asyncio.to_thread(service.stop)


def test_invalid_input_is_invalid_argument_naming_the_field(operator: Operator) -> None:
    bad = operator.curl.error(
        f"{SERVICE}/CreateExperiment",
        {"experiment": {**EXPERIMENT, "key": "buf-bad", "variants": EXPERIMENT["variants"][:1]}},
    )
    assert bad["code"] == "invalid_argument"
    assert bad_request_fields(bad) == {"experiment.variants"}


def test_a_key_taken_is_already_exists(operator: Operator) -> None:
    taken = {**EXPERIMENT, "key": "buf-taken"}
    operator.curl.ok(f"{SERVICE}/CreateExperiment", {"experiment": taken})
    again = operator.curl.error(f"{SERVICE}/CreateExperiment", {"experiment": taken})
    assert again["code"] == "already_exists"


def test_an_assign_key_may_not_start_an_experiment(operator: Operator) -> None:
    operator.curl.ok(
        f"{SERVICE}/CreateExperiment", {"experiment": {**EXPERIMENT, "key": "buf-role"}}
    )
    denied = operator.curl.error(
        f"{SERVICE}/StartExperiment", {"key": "buf-role"}, operator.assign_key
    )
    assert denied["code"] == "permission_denied"


def test_an_operators_journey_from_draft_to_archive(operator: Operator) -> None:
    """Create, start, assign, stop shipping a variant, archive, then read the audit log."""
    curl = operator.curl
    created = curl.ok(f"{SERVICE}/CreateExperiment", {"experiment": EXPERIMENT})["experiment"]
    assert created["status"] == "EXPERIMENT_STATUS_DRAFT"
    started = curl.ok(f"{SERVICE}/StartExperiment", {"key": "buf-lifecycle"})["experiment"]
    assert started["status"] == "EXPERIMENT_STATUS_RUNNING"

    # The configuration reaches the assignment snapshot after StartExperiment returns.
    assigned = eventually(lambda: operator.assign_once("ASSIGNMENT_REASON_ASSIGNED"))
    assert assigned["variantKey"] in {"control", "mini"}
    model = {"control": "gpt-4o", "mini": "gpt-4o-mini"}[assigned["variantKey"]]
    assert assigned["payload"]["model"] == model

    stopped = curl.ok(
        f"{SERVICE}/StopExperiment",
        {
            "key": "buf-lifecycle",
            "reason": "mini is as good and cheaper",
            "decision": "DECISION_SHIP",
            "shipVariantKey": "mini",
        },
    )["experiment"]
    assert stopped["status"] == "EXPERIMENT_STATUS_STOPPED"
    assert stopped["decision"]["decision"] == "DECISION_SHIP"
    assert stopped["decision"]["shipVariantKey"] == "mini"
    eventually(lambda: operator.assign_once("ASSIGNMENT_REASON_NOT_RUNNING"))

    archived = curl.ok(f"{SERVICE}/ArchiveExperiment", {"key": "buf-lifecycle"})["experiment"]
    assert archived["status"] == "EXPERIMENT_STATUS_ARCHIVED"

    audit = curl.ok(f"{SERVICE}/ListAuditEvents", {"experimentKey": "buf-lifecycle"})["auditEvents"]
    actions = [e["action"] for e in reversed(audit)]
    assert actions == [
        "experiment.created",
        "experiment.started",
        "experiment.stopped",
        "experiment.archived",
    ]
    actors = {e["actor"] for e in audit}
    assert len(actors) == 1 and actors.pop().startswith("test-admin-")  # the admin key's name
    stop_event = next(e for e in audit if e["action"] == "experiment.stopped")
    assert stop_event["reason"] == "mini is as good and cheaper"
