"""ImportGrowthBook and `verdict import growthbook` against the real assignment process (which
hosts ExperimentService) on PostgreSQL and Redis: what is stored, the refusals and their
status codes, a dry run, and GrowthBook's own SDK cases assigned by the real Assign after an
import with `start`."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.cli import main
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
Code = grpc.StatusCode
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "growthbook-sdk-cases.json"
SDK_CASES = [
    "default weights - 1",
    "uneven weights - 3",
    "coverage - 1",
    "three way test - 6",
    "evaluates conditions - pass",
    "evaluates conditions - fail",
    "custom hashAttribute",
    "skip inactive experiments",
    "JSON values for experiments",
    "Experiment namespace - pass",
    "Experiment namespace - fail",
    "Uses seed with weights/coverage",
    "SavedGroups correctly pulled from context for experiment",
]
"""A handful of GrowthBook's `run` cases, each of a different feature of the format."""


@dataclass(frozen=True)
class Served:
    service: RunningService
    channel: grpc.aio.Channel
    keys: dict[Role, str]

    def md(self, role: Role) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[role]}"),)

    @property
    def experiments(self) -> experiment_pb2_grpc.ExperimentServiceStub:
        return experiment_pb2_grpc.ExperimentServiceStub(self.channel)

    @property
    def assignment(self) -> assignment_pb2_grpc.AssignmentServiceStub:
        return assignment_pb2_grpc.AssignmentServiceStub(self.channel)

    def call(self, payload: Any, role: Role = Role.ADMIN, **options: bool) -> Any:
        """The ImportGrowthBook call (await it for the reply)."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        request = experiment_pb2.ImportGrowthBookRequest(payload_json=text, **options)
        return self.experiments.ImportGrowthBook(request, metadata=self.md(role))

    async def import_(self, payload: Any, **options: bool) -> Any:
        return await self.call(payload, **options)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Served]:
    keys = {role: await make_key(role) for role in (Role.ADMIN, Role.ASSIGN, Role.READ)}
    service = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            yield Served(service, channel, keys)
    finally:
        await asyncio.to_thread(service.stop)


def _prefix() -> str:
    return f"gb-{secrets.token_hex(3)}"


async def _failure(call: Any) -> tuple[grpc.StatusCode, list[tuple[str, str]]]:
    """A failed call's code and every BadRequest violation, in order (several may name the
    same field, which a dict would merge)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = await rpc_status.aio.from_call(call)
        found: list[tuple[str, str]] = []
        for detail in [] if status is None else status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found += [(v.field, v.description) for v in bad.field_violations]
        return error.code(), found
    raise AssertionError("the call succeeded")


def _payload(p: str) -> dict[str, Any]:
    return {
        "features": {
            f"{p}-cta": {
                "defaultValue": "blue",
                "rules": [
                    {"force": "red", "condition": {"country": "FR"}},
                    {"key": f"{p}-cta", "variations": ["blue", "green"], "hashVersion": 2,
                     "condition": {"id": {"$inGroup": f"{p}-beta"}},
                     "meta": [{"key": "blue"}, {"key": "green"}]},
                ],
            },
        },
        "savedGroups": {f"{p}-beta": ["u1", "u2"]},
    }  # fmt: skip


async def test_an_import_stores_drafts_and_their_saved_groups(served: Served) -> None:
    p = _prefix()
    reply = await served.import_(_payload(p))
    (imported,) = reply.experiments
    assert (imported.key, imported.status) == (f"{p}-cta", experiment_pb2.EXPERIMENT_STATUS_DRAFT)
    assert [g.key for g in reply.saved_groups] == [f"{p}-beta"]
    assert reply.skipped == [f"features.{p}-cta.rules[0]: a force rule (a fixed value or a "
                             "percentage rollout) is not an experiment"]  # fmt: skip
    assert reply.config_version > 0
    stored = await served.experiments.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=f"{p}-cta"), metadata=served.md(Role.READ)
    )
    assert stored.experiment == imported
    assert (stored.experiment.seed, stored.experiment.hash_version) == (f"{p}-cta", 2)
    groups = await served.experiments.ListSavedGroups(
        experiment_pb2.ListSavedGroupsRequest(page_size=1000), metadata=served.md(Role.READ)
    )
    assert f"{p}-beta" in {g.key for g in groups.saved_groups}
    audit = await served.experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=f"{p}-cta"),
        metadata=served.md(Role.READ),
    )
    assert [(e.action, e.reason) for e in audit.audit_events] == [
        ("experiment.created", "imported from GrowthBook")
    ]


async def test_a_dry_run_stores_nothing(served: Served) -> None:
    p = _prefix()
    reply = await served.import_(_payload(p), dry_run=True)
    assert [e.key for e in reply.experiments] == [f"{p}-cta"] and reply.config_version == 0
    code, _ = await _failure(
        served.experiments.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=f"{p}-cta"), metadata=served.md(Role.READ)
        )
    )
    assert code == Code.NOT_FOUND


async def test_a_taken_key_is_already_exists_and_nothing_of_the_import_is_stored(
    served: Served, pool: asyncpg.Pool
) -> None:
    p = _prefix()
    await served.import_({"experiments": [{"key": f"{p}-taken", "variations": [0, 1]}]})
    payload = _payload(p)
    payload["experiments"] = [{"key": f"{p}-taken", "variations": [0, 1]}]
    code, _ = await _failure(served.call(payload))
    assert code == Code.ALREADY_EXISTS
    rows = await pool.fetchval("SELECT count(*) FROM experiments WHERE key = $1", f"{p}-cta")
    groups = await pool.fetchval("SELECT count(*) FROM saved_groups WHERE key = $1", f"{p}-beta")
    assert (rows, groups) == (0, 0)


@pytest.mark.parametrize(
    ("payload", "description"),
    [
        ('{"features": {', "is not valid JSON at line 1 column 15: "),
        ('{"features": {"f": {"rules": [{"variations": [0, 1], "coverage": "all"}]}}}',
         "features.f.rules[0].coverage: must be a finite number, not a string"),
        ('["not", "an", "object"]', "(root): must be a JSON object, not an array"),
        # An integer literal too large for a double (JavaScript reads it as Infinity): was
        # INTERNAL (OverflowError), wherever a number is checked.
        ('{"features": {"f": {"rules": [{"variations": [0, 1], "coverage": 1' + "0" * 400 + "}]}}}",
         "features.f.rules[0].coverage: must be a finite number, not an infinite number"),
        ('{"features": {"f": {"rules": [{"variations": [0, 1], "ranges": [[0, 1' + "0" * 400
         + "], [0, 1]]}]}}}", "features.f.rules[0].ranges[0]: must be [start, end]: two numbers"),
        ('{"features": {"f": {"rules": [{"variations": [0, 1], "namespace": ["n", 0, -1'
         + "0" * 400 + "]}]}}}", "features.f.rules[0].namespace: must be [id, start, end]"),
    ],
)  # fmt: skip
async def test_bad_input_is_invalid_argument_naming_the_json_path(
    served: Served, payload: str, description: str
) -> None:
    code, violations = await _failure(served.call(payload))
    assert code == Code.INVALID_ARGUMENT
    assert [field for field, _ in violations] == ["payload_json"]
    assert violations[0][1].startswith(description), violations


async def test_a_variation_too_large_for_a_double_is_skipped_not_internal(
    served: Served,
) -> None:
    """An integer no double holds in a variation's value is skipped like any non-finite
    number (GrowthBook's JavaScript would read it as Infinity), not an INTERNAL error."""
    huge = "1" + "0" * 400
    p = _prefix()
    payload = (
        f'{{"experiments": [{{"key": "{p}-huge", "variations": [{{"n": {huge}}}, {{"n": 1}}]}},'
        f' {{"key": "{p}-fine", "variations": [0, 1]}}]}}'
    )
    reply = await served.import_(payload, dry_run=True)
    assert [e.key for e in reply.experiments] == [f"{p}-fine"]
    assert len(reply.skipped) == 1 and reply.skipped[0].startswith("experiments[0]: "), reply
    assert "finite" in reply.skipped[0]


async def test_a_payload_over_4_mib_is_invalid_argument(served: Served) -> None:
    payload = json.dumps({"features": {}, "pad": "x" * (4 * 1024 * 1024)})
    code, violations = await _failure(served.call(payload))
    assert code == Code.INVALID_ARGUMENT
    assert violations[0][0] == "payload_json"
    assert violations[0][1].endswith("bytes; at most 4194304 allowed"), violations


async def test_only_admin_may_import(served: Served) -> None:
    for role in (Role.READ, Role.ASSIGN):
        code, _ = await _failure(served.call(_payload(_prefix()), role=role))
        assert code == Code.PERMISSION_DENIED


def _sdk_case(name: str) -> list[Any]:
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["run"]
    return next(case for case in cases if case[0] == name)


async def test_growthbook_sdk_cases_assign_alike_through_the_service(served: Served) -> None:
    """Each case's experiment under a key of its own and its GrowthBook seed (the seed is what
    GrowthBook hashes with: its `seed`, else its key), imported with `start`, then assigned."""
    p = _prefix()
    experiments, groups = [], {}
    for i, name in enumerate(SDK_CASES):
        _, context, gb, *_ = _sdk_case(name)
        experiments.append({**gb, "key": f"{p}-{i}", "seed": gb.get("seed") or gb["key"]})
        groups.update(context.get("savedGroups", {}))
    reply = await served.import_({"experiments": experiments, "savedGroups": groups}, start=True)
    assert len(reply.experiments) == len(SDK_CASES)
    md = served.md(Role.ASSIGN)

    async def serves() -> bool:
        probe = assignment_pb2.AssignRequest(unit_id="probe", skip_exposure_logging=True)
        answer = await served.assignment.Assign(probe, metadata=md, timeout=5)
        return bool(answer.config_version >= reply.config_version)

    await eventually_async(serves)
    for i, name in enumerate(SDK_CASES):
        _, context, gb, expected_value, in_experiment, _hash_used = _sdk_case(name)
        attributes = dict(context.get("attributes", {}))
        request = assignment_pb2.AssignRequest(
            unit_id=str(attributes.pop("id")), experiment_keys=[f"{p}-{i}"],
            skip_exposure_logging=True,
        )  # fmt: skip
        request.attributes.update(attributes)
        (got,) = (await served.assignment.Assign(request, metadata=md)).assignments
        assert got.in_experiment == in_experiment, name
        payload = json_format.MessageToDict(got.payload) if got.in_experiment else None
        control = gb["variations"][0]
        value = payload if isinstance(expected_value, dict) else (payload or {}).get("value")
        assert (value if got.in_experiment else control) == expected_value, name


async def test_the_cli_imports_dry_runs_and_reports_refusals(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _prefix()
    file = tmp_path / "growthbook.json"
    file.write_text(json.dumps(_payload(p)), encoding="utf-8")
    argv = ["import", "growthbook", str(file), "--target", served.service.target]

    def run(*extra: str, role: Role = Role.ADMIN) -> int:
        return main([*argv, *extra, "--api-key", served.keys[role]])

    assert await asyncio.to_thread(run, "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"would import  experiment  {p}-cta  (draft, seed '{p}-cta')"
    assert out[-1] == "dry run: nothing stored"
    assert await asyncio.to_thread(run, role=Role.READ) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err

    assert await asyncio.to_thread(run, "--start") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"imported  experiment  {p}-cta  (running, seed '{p}-cta')"
    assert out[1] == f"imported  saved group {p}-beta  (2 values)"
    assert out[2].startswith(f"skipped   features.{p}-cta.rules[0]: a force rule")
    assert out[-1].startswith("configuration version ")
    stored = await served.experiments.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=f"{p}-cta"), metadata=served.md(Role.READ)
    )
    assert stored.experiment.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING

    assert await asyncio.to_thread(run) == 1  # the same again: the key is taken
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    file.write_text('{"features": {"f": {"rules": [{"variations": "ab"}]}}}', encoding="utf-8")
    assert await asyncio.to_thread(run) == 1
    err = capsys.readouterr().err
    assert "INVALID_ARGUMENT" in err
    assert "payload_json: features.f.rules[0].variations: must be an array, not a string" in err
