"""The snapshot: prebuilt response bytes equal what protobuf would encode; broken experiments are
left out instead of taking the others down."""

from __future__ import annotations

from google.protobuf import json_format

from verdict.evaluation import Reason
from verdict.local import evaluator_from_snapshot
from verdict.v1 import assignment_pb2, experiment_pb2
from verdict_assignment.assign.snapshot import PROTO_REASON, build_snapshot, snapshot_proto

RUNNING = experiment_pb2.EXPERIMENT_STATUS_RUNNING


def _experiment(key: str, **fields: object) -> experiment_pb2.Experiment:
    spec = {
        "key": key,
        "status": "EXPERIMENT_STATUS_RUNNING",
        "coverage": 1.0,
        "variants": [
            {"key": "a", "weight": 0.5, "isControl": True, "payload": {"model": "x", "t": 0.1}},
            {"key": "b", "weight": 0.5, "payload": {"model": "y", "nested": {"k": [1, "z"]}}},
        ],
        **fields,
    }
    return json_format.ParseDict(spec, experiment_pb2.Experiment())


def test_encoded_response_equals_the_protobuf_encoding() -> None:
    snapshot = build_snapshot(
        snapshot_proto(42, [_experiment("one"), _experiment("two", forcedVariations={"qa": "b"})])
    )
    for unit in ["qa", "u1", "u2", "u3"]:
        results = snapshot.evaluator.assign(unit, {}, ["one", "two", "nope"])
        decoded = assignment_pb2.AssignResponse.FromString(snapshot.encode(results))
        expected = assignment_pb2.AssignResponse(config_version=42)
        for r in results:
            a = expected.assignments.add(
                experiment_key=r.experiment_key,
                variant_key=r.variant_key or "",
                reason=PROTO_REASON[r.reason],
                in_experiment=r.in_experiment,
            )
            if r.in_experiment:
                variant = snapshot.proto.experiments[["one", "two"].index(r.experiment_key)]
                a.payload.CopyFrom(variant.variants[r.variant_index].payload)
        assert decoded == expected
    assert decoded.assignments[2].reason == assignment_pb2.ASSIGNMENT_REASON_UNKNOWN_KEY


def test_a_broken_experiment_is_left_out_of_the_snapshot() -> None:
    good = _experiment("good")
    bad = _experiment("bad", forcedVariations={"qa": "no-such-variant"})
    snapshot = build_snapshot(snapshot_proto(3, [bad, good]))
    assert list(snapshot.experiments) == ["good"]
    assert [e.key for e in snapshot.proto.experiments] == ["good"]
    assert snapshot.evaluator.assign("u", {}, ["bad"])[0].reason is Reason.UNKNOWN_KEY


def test_only_running_experiments_with_a_changed_allocation_are_sticky() -> None:
    moved = _experiment("moved", allocationVersion="2")
    stopped = _experiment("stopped", allocationVersion="3", status="EXPERIMENT_STATUS_STOPPED")
    snapshot = build_snapshot(snapshot_proto(1, [moved, stopped, _experiment("plain")]))
    assert snapshot.sticky_keys == frozenset({"moved"})


def test_client_and_server_build_the_same_evaluator() -> None:
    proto = snapshot_proto(
        7,
        [_experiment("e", targeting={"org": {"$inGroup": "g"}}, hashAttribute="org")],
        [experiment_pb2.SavedGroup(key="g", values=[])],
    )
    proto.saved_groups[0].values.add().string_value = "acme"
    server = build_snapshot(proto).evaluator
    client = evaluator_from_snapshot(
        assignment_pb2.ConfigSnapshot.FromString(proto.SerializeToString())
    )
    for org in ["acme", "other"]:  # the server's results carry no bucket (not in the response)
        expected = [r._replace(bucket=None) for r in client.assign("u", {"org": org})]
        assert server.assign("u", {"org": org}) == expected


def test_only_fallbacks_of_another_attribute_than_the_unit_id_are_looked_up() -> None:
    def experiment(key: str, **extra: object) -> experiment_pb2.Experiment:
        spec = {
            "key": key,
            "status": "EXPERIMENT_STATUS_RUNNING",
            "allocationVersion": "2",
            "variants": [
                {"key": "a", "weight": 0.5, "isControl": True},
                {"key": "b", "weight": 0.5},
            ],
            **extra,
        }
        return json_format.ParseDict(spec, experiment_pb2.Experiment())

    snapshot = build_snapshot(
        snapshot_proto(
            3,
            [
                experiment("plain"),
                experiment("by-user", hashAttribute="user_id"),
                experiment("fb", hashAttribute="user_id", fallbackAttribute="device_id"),
                experiment("id-fb", fallbackAttribute="device_id"),
            ],
        )
    )
    assert snapshot.hashing == {
        "by-user": ("user_id", ""),
        "fb": ("user_id", "device_id"),
        "id-fb": ("id", "device_id"),
    }
    assert snapshot.fallback_keys == {"fb"}
    assert snapshot.sticky_keys == {"plain", "by-user", "id-fb"}  # "fb": per hashed value
