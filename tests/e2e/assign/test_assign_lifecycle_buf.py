"""An operator's journey through `buf curl` with API keys, against the real assignment process:
create an experiment, start it, assign, stop with a ship decision, archive, read the audit log;
invalid input answers INVALID_ARGUMENT naming the field, a wrong role PERMISSION_DENIED."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.rpc import error_details_pb2

from support.processes import RunningService

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


def assign_until(curl: BufCurl, key: str, reason: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        reply = curl.ok(
            "verdict.v1.AssignmentService/Assign",
            {
                "unitId": "user-42",
                "attributes": {"country": "FR"},
                "experimentKeys": ["buf-lifecycle"],
            },
            key,
        )
        result: dict[str, Any] = reply["assignments"][0]
        if result["reason"] == reason or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_full_lifecycle_through_buf_curl(
    start_service: Callable[..., RunningService], make_key_sync: str, assign_key_sync: str
) -> None:
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    curl = BufCurl(service.target, make_key_sync)

    bad = curl.error(
        f"{SERVICE}/CreateExperiment",
        {"experiment": {**EXPERIMENT, "variants": EXPERIMENT["variants"][:1]}},
    )
    assert bad["code"] == "invalid_argument"
    assert bad_request_fields(bad) == {"experiment.variants"}

    created = curl.ok(f"{SERVICE}/CreateExperiment", {"experiment": EXPERIMENT})["experiment"]
    assert created["status"] == "EXPERIMENT_STATUS_DRAFT"
    assert (
        curl.error(f"{SERVICE}/CreateExperiment", {"experiment": EXPERIMENT})["code"]
        == "already_exists"
    )

    started = curl.ok(f"{SERVICE}/StartExperiment", {"key": "buf-lifecycle"})["experiment"]
    assert started["status"] == "EXPERIMENT_STATUS_RUNNING"

    assigned = assign_until(curl, assign_key_sync, "ASSIGNMENT_REASON_ASSIGNED")
    assert assigned["reason"] == "ASSIGNMENT_REASON_ASSIGNED"
    assert assigned["variantKey"] in {"control", "mini"}
    model = {"control": "gpt-4o", "mini": "gpt-4o-mini"}[assigned["variantKey"]]
    assert assigned["payload"]["model"] == model
    assert (
        curl.error(f"{SERVICE}/StartExperiment", {"key": "buf-lifecycle"}, assign_key_sync)["code"]
        == "permission_denied"
    )

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
    assert (
        assign_until(curl, assign_key_sync, "ASSIGNMENT_REASON_NOT_RUNNING")["reason"]
        == "ASSIGNMENT_REASON_NOT_RUNNING"
    )

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
    assert len(actors) == 1 and actors.pop().startswith("test-sync-admin-")  # the admin key's name
    stop_event = next(e for e in audit if e["action"] == "experiment.stopped")
    assert stop_event["reason"] == "mini is as good and cheaper"
