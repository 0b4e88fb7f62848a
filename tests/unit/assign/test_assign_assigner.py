"""The Assign use case with in-memory fakes: sticky variants and exposure recording."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from google.protobuf import json_format

from verdict.evaluation import Reason
from verdict.v1 import experiment_pb2
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.exposures import ExposureSink, PendingExposure
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import build_snapshot, snapshot_proto
from verdict_platform.errors import InvalidArgument, Unavailable

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeSticky:
    def __init__(self, stored: dict[tuple[str, str], str]) -> None:
        self.stored = stored
        self.lookups: list[tuple[str, list[str]]] = []
        self.remembered: dict[tuple[str, str], str] = {}

    async def lookup(self, unit_id: str, experiment_keys: Sequence[str]) -> Mapping[str, str]:
        self.lookups.append((unit_id, list(experiment_keys)))
        return {
            k: self.stored[(k, unit_id)] for k in experiment_keys if (k, unit_id) in self.stored
        }

    def remember(self, unit_id: str, variants: Mapping[str, str]) -> None:
        for k, v in variants.items():
            self.remembered[(k, unit_id)] = v

    async def lookup_hashed(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> Mapping[tuple[str, str, str], str]:
        return {}  # no experiment here has a fallback attribute

    def remember_hashed(self, variants: Mapping[tuple[str, str, str], str]) -> None:
        raise AssertionError("no experiment here has a fallback attribute")

    async def store_hashed(self, variants: Mapping[tuple[str, str, str], str]) -> None:
        raise AssertionError("no experiment here has a fallback attribute")


class NullSender:
    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None:
        return None


def _experiment(
    key: str, weights: tuple[float, float], allocation_version: int = 1, **extra: object
) -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": key,
            "status": "EXPERIMENT_STATUS_RUNNING",
            "coverage": 1.0,
            "allocationVersion": str(allocation_version),
            "variants": [
                {"key": "a", "weight": weights[0], "isControl": True},
                {"key": "b", "weight": weights[1]},
            ],
            **extra,
        },
        experiment_pb2.Experiment(),
    )


def _assigner(
    *experiments: experiment_pb2.Experiment, sticky: FakeSticky
) -> tuple[Assigner, ExposureSink]:
    holder = SnapshotHolder()
    holder.swap(build_snapshot(snapshot_proto(1, experiments)))
    sink = ExposureSink(NullSender())
    return Assigner(holder, sticky, sink), sink


async def test_sticky_store_is_consulted_only_for_moved_allocations() -> None:
    sticky = FakeSticky({("moved", "u1"): "a"})
    assigner, _ = _assigner(
        _experiment("plain", (0.5, 0.5)), _experiment("moved", (0.0, 1.0), 2), sticky=sticky
    )
    _, results = await assigner.assign("u1", {}, [])
    by_key = {r.experiment_key: r for r in results}
    assert by_key["moved"].variant_key == "a" and by_key["moved"].reason is Reason.STICKY
    assert sticky.lookups == [("u1", ["moved"])]
    _, results = await assigner.assign("u2", {}, ["moved"])
    assert results[0].variant_key == "b" and results[0].reason is Reason.ASSIGNED
    assert sticky.remembered == {("moved", "u2"): "b"}
    sticky.lookups.clear()
    await assigner.assign("u3", {}, ["plain"])
    assert sticky.lookups == []


async def test_assigned_units_are_exposures_forced_and_previews_are_not() -> None:
    assigner, sink = _assigner(
        _experiment(
            "e", (0.5, 0.5), forcedVariations={"qa": "b"}, analysisPlan={"segments": ["country"]}
        ),
        sticky=FakeSticky({}),
    )
    await assigner.assign("u1", {"country": "FR", "age": 3}, [])
    await assigner.assign("qa", {}, [])
    await assigner.assign("u2", {}, [], log_exposures=False)
    assert sink.depth == 1
    exposure = sink._buffer[0]
    assert exposure.unit_id == "u1" and exposure.segments == (("country", "FR"),)


async def test_bad_unit_ids_and_missing_configuration_are_refused() -> None:
    assigner, _ = _assigner(_experiment("e", (0.5, 0.5)), sticky=FakeSticky({}))
    for unit in ["", "é" * 129]:
        with pytest.raises(InvalidArgument):
            await assigner.assign(unit, {}, [])
    with pytest.raises(Unavailable):
        await Assigner(SnapshotHolder(), None, None).assign("u", {}, [])


async def test_segment_attributes_that_ingest_could_not_store_are_refused() -> None:
    from verdict_assignment.assign.assigner import check_segments
    from verdict_platform.errors import InvalidArgument

    check_segments({"country": "FR", "plan": 3}, ("country", "plan"))  # fine
    for bad in ("x" * 1025, "F\x00R"):
        with pytest.raises(InvalidArgument) as raised:
            check_segments({"country": bad}, ("country",))
        assert raised.value.violations[0].field == "attributes.country"
