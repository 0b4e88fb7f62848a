"""The ImportGrowthBook use case on in-memory fakes: one transaction for everything, nothing
stored on a dry run or on any refusal, drafts unless started, the audit log and one published
configuration version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from exp_fakes import FakePublisher, FakeStore, TickingClock
from google.protobuf import struct_pb2

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.importer import REASON, GrowthBookImporter, ImportCommand
from verdict_platform.errors import AlreadyExists, InvalidArgument

pytestmark = pytest.mark.asyncio(loop_scope="session")
DRAFT = experiment_pb2.EXPERIMENT_STATUS_DRAFT
RUNNING = experiment_pb2.EXPERIMENT_STATUS_RUNNING

PAYLOAD: dict[str, Any] = {
    "features": {
        "cta": {
            "defaultValue": "blue",
            "rules": [
                {"force": "red", "condition": {"country": "FR"}},
                {"key": "cta-test", "variations": ["blue", "green"],
                 "condition": {"id": {"$inGroup": "beta"}}},
            ],
        },
    },
    "experiments": [{"key": "paused", "variations": [0, 1], "active": False}],
    "savedGroups": {"beta": ["u1", "u2"]},
}  # fmt: skip


def build() -> tuple[GrowthBookImporter, FakeStore, FakePublisher]:
    store, publisher = FakeStore(), FakePublisher()
    return GrowthBookImporter(store, publisher, TickingClock()), store, publisher


async def test_an_import_stores_drafts_groups_and_audit_in_one_version() -> None:
    importer, store, publisher = build()
    outcome = await importer.run(ImportCommand(json.dumps(PAYLOAD)), "ops")
    assert [(e.key, e.status, e.version) for e in outcome.experiments] == [
        ("cta-test", DRAFT, 1),
        ("paused", DRAFT, 1),
    ]
    assert store.state.experiments["cta-test"] == outcome.experiments[0]
    assert store.state.experiments["cta-test"].seed == "cta-test"
    assert [g.key for g in outcome.saved_groups] == ["beta"] and "beta" in store.state.groups
    assert outcome.skipped == ("features.cta.rules[0]: a force rule (a fixed value or a "
                               "percentage rollout) is not an experiment",)  # fmt: skip
    assert [(a.action, a.actor, a.reason) for a in store.state.audit] == [
        ("experiment.created", "ops", REASON),
        ("experiment.created", "ops", REASON),
        ("saved_group.put", "ops", REASON),
    ]
    assert outcome.config_version == store.state.config_version == 2
    assert publisher.published == [2]


async def test_start_starts_what_growthbook_runs_and_says_what_it_left() -> None:
    importer, store, _ = build()
    outcome = await importer.run(ImportCommand(json.dumps(PAYLOAD), start=True), "ops")
    assert {e.key: e.status for e in outcome.experiments} == {"cta-test": RUNNING, "paused": DRAFT}
    assert store.state.experiments["cta-test"].status == RUNNING
    assert outcome.skipped[-1].startswith("experiments[0]: imported as a draft, not started")
    actions = [a.action for a in store.state.audit]
    assert actions.count("experiment.started") == 1


async def test_a_dry_run_stores_and_publishes_nothing() -> None:
    importer, store, publisher = build()
    outcome = await importer.run(ImportCommand(json.dumps(PAYLOAD), dry_run=True), "ops")
    assert [e.key for e in outcome.experiments] == ["cta-test", "paused"]
    assert outcome.config_version == 0
    assert store.state.experiments == {} and store.state.groups == {} and not store.state.audit
    assert publisher.published == []


async def test_a_taken_key_refuses_the_whole_import_even_on_a_dry_run() -> None:
    importer, store, publisher = build()
    single = {"experiments": [{"key": "paused", "variations": [0, 1]}]}
    await importer.run(ImportCommand(json.dumps(single)), "ops")
    before = (dict(store.state.experiments), dict(store.state.groups), len(store.state.audit))
    for dry_run in (True, False):
        with pytest.raises(AlreadyExists, match="'paused' exists already"):
            await importer.run(ImportCommand(json.dumps(PAYLOAD), dry_run=dry_run), "ops")
    after = (dict(store.state.experiments), dict(store.state.groups), len(store.state.audit))
    assert after == before  # cta-test and the group were rolled back with it
    assert publisher.published == [2]


async def test_a_saved_group_stored_with_other_values_is_not_replaced() -> None:
    importer, store, _ = build()
    store.state.groups["beta"] = experiment_pb2.SavedGroup(
        key="beta", values=[struct_pb2.Value(string_value="someone-else")]
    )
    with pytest.raises(AlreadyExists, match="saved group 'beta' exists already"):
        await importer.run(ImportCommand(json.dumps(PAYLOAD)), "ops")
    assert store.state.experiments == {}


async def test_a_saved_group_stored_with_the_same_values_is_reused() -> None:
    importer, store, _ = build()
    store.state.groups["beta"] = experiment_pb2.SavedGroup(
        key="beta", values=[struct_pb2.Value(string_value=v) for v in ("u1", "u2")]
    )
    outcome = await importer.run(ImportCommand(json.dumps(PAYLOAD)), "ops")
    assert outcome.saved_groups == () and "cta-test" in store.state.experiments


async def test_bad_json_is_invalid_argument_on_payload_json() -> None:
    importer, store, _ = build()
    with pytest.raises(InvalidArgument) as error:
        await importer.run(ImportCommand('{"features": 3}'), "ops")
    assert [(v.field, v.description) for v in error.value.violations] == [
        ("payload_json", "features: must be an object, not a number")
    ]
    assert store.state.experiments == {}
