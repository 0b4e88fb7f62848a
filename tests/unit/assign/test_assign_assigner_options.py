"""The Assign use case's issue-17 rules with in-memory fakes: the unit's identity, per-request
forced variations, explanations, the hashed attribute on exposures, fallback stickiness, and the
bounded wait for a configuration version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from google.protobuf import json_format

from verdict.evaluation import Reason
from verdict.v1 import experiment_pb2
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.exposures import ExposureSink, PendingExposure
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import build_snapshot, snapshot_proto
from verdict_assignment.assign.sticky import HashedKey
from verdict_platform.errors import InvalidArgument, Unavailable

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeSticky:
    """Per unit and per hashed value, as `CachedExposureStore` keeps them."""

    def __init__(self) -> None:
        self.by_unit: dict[tuple[str, str], str] = {}
        self.by_value: dict[HashedKey, str] = {}
        self.stored_now: dict[HashedKey, str] = {}
        self.hashed_lookups: list[list[HashedKey]] = []
        self.remembered: list[tuple[str, Mapping[str, str]]] = []

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        return {
            k: self.by_unit[(k, unit_id)] for k in experiment_keys if (k, unit_id) in self.by_unit
        }

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        self.remembered.append((unit_id, dict(variants)))
        for k, v in variants.items():
            self.by_unit.setdefault((k, unit_id), v)

    async def lookup_hashed(self, keys: Sequence[HashedKey]) -> Mapping[HashedKey, str]:
        self.hashed_lookups.append(list(keys))
        return {k: self.by_value[k] for k in keys if k in self.by_value}

    def remember_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        for k, v in variants.items():
            self.by_value.setdefault(k, v)  # NX, as Redis SET NX

    async def store_hashed(self, variants: Mapping[HashedKey, str]) -> None:
        self.stored_now.update(variants)
        self.remember_hashed(variants)


class NullSender:
    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None:
        return None


def _experiment(key: str, allocation_version: int = 1, **extra: Any) -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": key,
            "status": "EXPERIMENT_STATUS_RUNNING",
            "coverage": 1.0,
            "allocationVersion": str(allocation_version),
            "variants": [
                {"key": "a", "weight": 0.5, "isControl": True, "payload": {"model": "x"}},
                {"key": "b", "weight": 0.5, "payload": {"model": "y"}},
            ],
            **extra,
        },
        experiment_pb2.Experiment(),
    )


def _assigner(
    *experiments: experiment_pb2.Experiment,
) -> tuple[Assigner, ExposureSink, FakeSticky, SnapshotHolder]:
    holder = SnapshotHolder()
    holder.swap(build_snapshot(snapshot_proto(1, experiments)))
    sink, sticky = ExposureSink(NullSender()), FakeSticky()
    return Assigner(holder, sticky, sink), sink, sticky, holder


def _fields(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


async def test_an_id_attribute_other_than_the_unit_id_is_refused() -> None:
    assigner, *_ = _assigner(_experiment("e"))
    await assigner.assign("u1", {"id": "u1"}, [])  # the same id is fine
    for other in ("u2", 1, None):
        with pytest.raises(InvalidArgument) as raised:
            await assigner.assign("1", {"id": other}, [])
        assert _fields(raised.value) == ["attributes.id"]


async def test_unknown_forced_experiments_and_variants_are_refused_by_name() -> None:
    assigner, *_ = _assigner(_experiment("e"))
    with pytest.raises(InvalidArgument) as raised:
        await assigner.assign("u1", {}, [], forced={"e": "zzz", "nope": "a"})
    assert sorted(_fields(raised.value)) == ["forced_variations.e", "forced_variations.nope"]


async def test_forced_variations_are_answered_forced_never_exposed_never_sticky() -> None:
    moved = _experiment("moved", allocation_version=2)
    fallback = _experiment("fb", hashAttribute="user_id", fallbackAttribute="device_id")
    assigner, sink, sticky, _ = _assigner(_experiment("e"), moved, fallback)
    attributes = {"user_id": "u1", "device_id": "d1"}
    natural = {
        r.experiment_key: r.variant_key for r in (await assigner.assign("u1", attributes, []))[1]
    }
    sink._buffer.clear()
    sticky.remembered.clear()
    sticky.by_value.clear()
    flipped = {k: "b" if v == "a" else "a" for k, v in natural.items()}
    _, results = await assigner.assign("u-qa", attributes, [], forced=flipped)
    assert {r.experiment_key: (r.variant_key, r.reason) for r in results} == {
        k: (v, Reason.FORCED) for k, v in flipped.items()
    }
    assert all(r.payload_json is not None for r in results)
    assert sink.depth == 0  # QA traffic: no exposure
    assert sticky.remembered == [] and sticky.by_value == {}


async def test_exposures_record_the_attribute_and_value_hashed() -> None:
    by_user = _experiment("by-user", hashAttribute="user_id")
    fallback = _experiment("fb", hashAttribute="user_id", fallbackAttribute="device_id")
    assigner, sink, *_ = _assigner(_experiment("by-id"), by_user, fallback)
    await assigner.assign("u1", {"user_id": "alice"}, [])
    await assigner.assign("u2", {"device_id": "d9"}, ["fb"])
    recorded = {
        (e.unit_id, e.experiment_key): (e.hash_attribute, e.hash_value) for e in sink._buffer
    }
    assert recorded == {
        ("u1", "by-id"): ("", ""),  # the unit id itself
        ("u1", "by-user"): ("user_id", "alice"),
        ("u1", "fb"): ("user_id", "alice"),
        ("u2", "fb"): ("device_id", "d9"),  # through the fallback
    }


def _user_in_other_variant(assigner: Assigner, device_variant: str) -> str:
    """A user id whose own hash gives the other variant than `device_variant`."""
    snapshot = assigner._holder.require()
    for i in range(1000):
        user = f"user-{i}"
        [r] = snapshot.evaluator.assign("x", {"id": "x", "user_id": user}, ["fb"])
        if r.variant_key != device_variant:
            return user
    raise AssertionError("no user hashes to the other variant")


async def test_a_unit_keeps_its_fallback_variant_once_the_primary_attribute_appears() -> None:
    fallback = _experiment("fb", hashAttribute="user_id", fallbackAttribute="device_id")
    assigner, _, sticky, _ = _assigner(fallback, _experiment("plain"))
    _, [first] = await assigner.assign("anon", {"device_id": "d1"}, ["fb"])
    assert first.reason is Reason.ASSIGNED
    assert sticky.by_value == {("fb", "device_id", "d1"): first.variant_key}
    user = _user_in_other_variant(assigner, first.variant_key)

    _, [signed_in] = await assigner.assign("anon", {"user_id": user, "device_id": "d1"}, ["fb"])
    assert (signed_in.variant_key, signed_in.reason) == (first.variant_key, Reason.STICKY)
    assert sticky.by_value[("fb", "user_id", user)] == first.variant_key
    # carried over before the answer, not in the background: the next call must find it
    assert sticky.stored_now == {("fb", "user_id", user): first.variant_key}
    snapshot = assigner._holder.require()
    attributes = {"user_id": user, "device_id": "d1"}
    [why] = assigner.explanations(snapshot, [signed_in], "anon", attributes, ["fb"])
    assert (why.hash_attribute, why.hash_value) == ("user_id", user)
    assert "sticky" in why.detail

    _, [elsewhere] = await assigner.assign("other", {"user_id": user}, ["fb"])  # new device
    assert (elsewhere.variant_key, elsewhere.reason) == (first.variant_key, Reason.STICKY)


async def test_only_experiments_with_a_fallback_look_up_hashed_values() -> None:
    fallback = _experiment("fb", hashAttribute="user_id", fallbackAttribute="device_id")
    assigner, _, sticky, _ = _assigner(fallback, _experiment("plain"))
    await assigner.assign("u", {"user_id": "x", "device_id": "d"}, [])
    assert sticky.hashed_lookups == [[("fb", "user_id", "x"), ("fb", "device_id", "d")]]
    sticky.hashed_lookups.clear()
    await assigner.assign("u", {"user_id": "x", "device_id": "d"}, ["plain"])
    assert sticky.hashed_lookups == []


async def test_explanations_describe_the_answer_without_changing_it() -> None:
    layered = _experiment("e", layer={"id": "L", "start": 0.0, "end": 1.0})
    targeted = _experiment("t", targeting={"country": "DE"})
    assigner, *_ = _assigner(layered, targeted)
    snapshot, results = await assigner.assign("u1", {"country": "FR"}, ["e", "t"])
    plain = [(r.variant_key, r.reason) for r in results]
    explained = assigner.explanations(snapshot, results, "u1", {"country": "FR"}, ["e", "t"])
    assert [(r.variant_key, r.reason) for r in results] == plain
    e, t = explained
    assert (e.hash_attribute, e.hash_value) == ("id", "u1")
    assert e.HasField("bucket") and 0 <= e.bucket < 1
    assert e.HasField("layer_position") and e.detail
    assert t.failed_condition and "DE" in t.failed_condition


async def test_a_newer_configuration_is_waited_for_a_bounded_time() -> None:
    assigner, _, _, holder = _assigner(_experiment("e"))
    waiting = asyncio.create_task(assigner.assign("u", {}, [], min_config_version=2))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    holder.swap(build_snapshot(snapshot_proto(2, [_experiment("e"), _experiment("new")])))
    snapshot, _ = await waiting
    assert snapshot.version == 2
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"version 99 .* serves version 2"):
        await holder.wait_for(99, 0.2)
    assert time.monotonic() - started < 1
