"""Instructions per call of the guarded Assign handler alone (20 experiments with targeting
conditions, in-process, no gRPC), under valgrind's callgrind: deterministic to a few dozen
instructions, so it resolves what the server benchmark's ±20k noise (`callgrind_assign.py`)
cannot, such as the cost of tracing configured but not sampled.

Each mode runs the handler N times in a process under callgrind, once with N=0 and once with
N=5,000; the difference divided by N is the cost per call. The call goes through the guard as a
server call does (the metadata noted by the generic handler's lookup, then the wrapped handler),
in a task of its own, for the same unit as `make bench-callgrind` (its exposures are recorded by
the first call; a new unit's first Assign costs more, tracing or not). Modes: tracing off;
tracing configured, ratio 0 (no call sampled); ratio 0 and each call carrying a caller's
unsampled `traceparent`; ratio 0.01; ratio 1 (every call a span, the price of a sampled call).
Spans go to a batch processor with an exporter that drops them.

Writes bench/results/callgrind-handler.json. Run: `python bench/callgrind_handler.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "callgrind-handler.json"
CALLS = 5_000
MODES: dict[str, tuple[float | None, bool]] = {
    "tracing off": (None, False),
    "tracing configured, ratio 0": (0.0, False),
    "ratio 0, caller did not sample": (0.0, True),
    "ratio 0.01": (0.01, False),
    "ratio 1 (every call sampled)": (1.0, False),
}
UNSAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


async def run(calls: int, ratio: float | None, caller: bool) -> None:
    import grpc
    from bench_assign import ATTRIBUTES, experiment

    from verdict.v1 import assignment_pb2, experiment_pb2
    from verdict_assignment.assign import fastpath
    from verdict_assignment.assign import servicer as assign_servicer
    from verdict_assignment.assign.assigner import Assigner
    from verdict_assignment.assign.exposures import ExposureSink
    from verdict_assignment.assign.holder import SnapshotHolder
    from verdict_assignment.assign.snapshot import build_snapshot, snapshot_proto
    from verdict_platform.guard import Guard, _GuardedGenericHandler
    from verdict_platform.keyring import KeyRing
    from verdict_platform.keys import hash_key
    from verdict_platform.roles import Role

    tracing = None
    if ratio is not None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult as Result
        from opentelemetry.sdk.trace.sampling import ParentBased

        from verdict_platform.telemetry.sampling import DecidedRoot, set_ratio
        from verdict_platform.telemetry.tracing import RpcTracing

        class Drop(SpanExporter):  # type: ignore[misc]
            def export(self, spans: Any) -> Result:
                return Result.SUCCESS

        provider = TracerProvider(sampler=ParentBased(root=DecidedRoot()))
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
        set_ratio(ratio)
        tracing = RpcTracing(provider.get_tracer("verdict.rpc"), ratio)

    class Keys:
        async def active_hashes(self) -> dict[bytes, tuple[str, Role]]:
            return {hash_key("key"): ("bench", Role.ASSIGN)}

    class Sender:
        async def send(self, request_id: str, exposures: Any) -> None:
            return None

    class Context:
        def invocation_metadata(self) -> Any:
            return metadata

    class Details:
        method = "/verdict.v1.AssignmentService/Assign"
        invocation_metadata: Any = ()

    experiments = []
    for i in range(20):
        e = experiment(i)
        e.status = experiment_pb2.EXPERIMENT_STATUS_RUNNING
        experiments.append(e)
    holder = SnapshotHolder()
    holder.swap(build_snapshot(snapshot_proto(1, experiments)))
    sink = ExposureSink(Sender())
    servicer = assign_servicer.AssignmentServicer(Assigner(holder, None, sink), holder)
    keyring = KeyRing(Keys(), 60)
    await keyring.load()
    generic = grpc.method_handlers_generic_handler(
        assign_servicer.SERVICE_NAME,
        {
            "Assign": grpc.unary_unary_rpc_method_handler(
                servicer.Assign,
                request_deserializer=fastpath.decode_request,
                response_serializer=lambda b: b,
            )
        },
    )
    # Without tracing, the guard is built as before tracing existed, so this script also measures
    # an older checkout (PYTHONPATH pointing at its packages) for comparison.
    guard = Guard(keyring, tracing=tracing) if tracing is not None else Guard(keyring)
    lookup = _GuardedGenericHandler(generic, guard)
    metadata: tuple[tuple[str, str], ...] = (("authorization", "Bearer key"),)
    if caller:
        metadata += (("traceparent", UNSAMPLED),)
    details = Details()
    details.invocation_metadata = metadata
    context = Context()
    request = assignment_pb2.AssignRequest(unit_id="user-1234567")
    request.attributes.update(ATTRIBUTES)
    body = request.SerializeToString()

    async def call(body: bytes) -> bytes:
        handler = lookup.service(details)  # notes the metadata, as grpc's lookup does
        response: bytes = await handler.unary_unary(handler.request_deserializer(body), context)
        return response

    await call(body)  # records the unit's exposures (no flusher runs here)
    for _ in range(calls):
        await asyncio.create_task(call(body))  # one task per call, as in the server


def instructions(calls: int, ratio: float | None, caller: bool, out: Path) -> int:
    args = [
        sys.executable,
        __file__,
        "--inner",
        str(calls),
        "--caller" if caller else "--no-caller",
    ]
    args += ["--ratio", str(ratio)] if ratio is not None else []
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *args],
        check=True,
        capture_output=True,
    )
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inner", type=int, default=None)
    parser.add_argument("--ratio", type=float, default=None)
    parser.add_argument("--caller", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--only", default=None, help="measure this mode only (no results file)")
    args = parser.parse_args()
    if args.inner is not None:
        asyncio.run(run(args.inner, args.ratio, args.caller))
        return
    tmp = Path(tempfile.mkdtemp(prefix="callgrind-handler-"))
    per_call = {}
    for name, (ratio, caller) in MODES.items():
        if args.only is not None and name != args.only:
            continue
        zero = instructions(0, ratio, caller, tmp / "zero.out")
        loaded = instructions(CALLS, ratio, caller, tmp / "loaded.out")
        per_call[name] = round((loaded - zero) / CALLS)
        print(f"{name}: {per_call[name]} instructions per call", flush=True)
    if args.only is not None:
        return
    off = per_call["tracing off"]
    result = {
        "calls": CALLS,
        "experiments": 20,
        "instructions_per_call": per_call,
        "over_tracing_off": {k: v - off for k, v in per_call.items()},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
