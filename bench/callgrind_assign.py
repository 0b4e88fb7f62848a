"""User-space instructions per request of the assignment service and of the bare echo, counted
with valgrind's callgrind under h2load: a measure of the handler's cost that does not depend on
the machine's speed (the throughput ratio of `bench_assign.py` does, a lot, on a shared machine).

Each server runs under `valgrind --tool=callgrind`; after a warm-up of 1,000 requests the counters
are zeroed (`callgrind_control -z`), `--requests` more are sent, and the counters dumped. Runs
differ by up to ±20k instructions per request (valgrind serialises threads, so timing-dependent
work such as polling varies). Needs valgrind (Debian package `valgrind`) and h2load.

Tracing: by default the assignment service runs as deployed with no exporter. With
`--trace-ratio R` it exports spans over OTLP/gRPC to a receiver in this process, starting a trace
for a share R of the calls (R=0: tracing configured, no call sampled); with
`--unsampled-caller` every request also carries a W3C `traceparent` whose caller did not sample.
The service serves `/metrics` (not scraped) in every mode, as deployed.

Writes bench/results/callgrind-assign.json (callgrind-assign-trace-R[-caller].json with tracing).
Run: `make bench-callgrind` (`ARGS="--trace-ratio 0.01"`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_assign as b

from support.otlp_receiver import OtlpReceiver
from verdict.v1 import assignment_pb2, assignment_pb2_grpc

RESULTS = b.ROOT / "bench" / "results" / "callgrind-assign.json"
WARM_UP = 1_000
UNSAMPLED_CALLER = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def load(port: int, body: Path, key: str, requests: int, headers: list[str]) -> None:
    args = [
        "h2load", f"http://127.0.0.1:{port}{b.METHOD}", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", f"authorization: Bearer {key}", "-c", "4", "-m", "8", "-n", str(requests),
    ]  # fmt: skip
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert f"{requests} succeeded, 0 failed" in out, out


def instructions(out_file: Path) -> int:
    """The counters of the last dump (the one after zeroing)."""
    dumps = sorted(out_file.parent.glob(out_file.name + ".*"))
    for line in dumps[-1].read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[-1]}")


def measure(command: list[str], env: dict[str, str] | None, port: int, body: Path, key: str,
            requests: int, out_file: Path, headers: list[str]) -> float:  # fmt: skip
    """Instructions per request of the server `command` listening on `port`."""
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    server = subprocess.Popen(
        valgrind + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if env is not None:  # the assignment service answers health checks
            b.wait_serving(f"127.0.0.1:{port}", timeout=300)
        else:  # the bare echo does not: give it valgrind's start-up time
            time.sleep(20)
        load(port, body, key, WARM_UP, headers)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                       capture_output=True)  # fmt: skip
        load(port, body, key, requests, headers)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                       capture_output=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(120)
    return instructions(out_file) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--trace-ratio", type=float, default=None)
    parser.add_argument("--unsampled-caller", action="store_true")
    args = parser.parse_args()
    receiver = OtlpReceiver() if args.trace_ratio is not None else None
    headers = [UNSAMPLED_CALLER] if args.unsampled_caller else []
    base = b.resolve_servers(dataclasses.replace(b.load_settings(), data_dir=b.ROOT / ".data"))
    settings, key = asyncio.run(b.prepare(base, 20))
    tmp = Path(tempfile.mkdtemp(prefix="callgrind-assign-"))
    request = assignment_pb2.AssignRequest(unit_id="user-1234567")
    request.attributes.update(b.ATTRIBUTES)
    message = request.SerializeToString()
    body = tmp / "request.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    try:
        port = b.free_port()
        env = b.service_env(
            settings,
            {
                "VERDICT_ASSIGNMENT_PORT": str(port),
                "VERDICT_WORKERS": "1",
                "VERDICT_LOG_LEVEL": "WARNING",
                "VERDICT_INGEST_TARGET": f"127.0.0.1:{b.free_port()}",
                "VERDICT_ASSIGNMENT_METRICS_PORT": str(b.free_port()),
                **(
                    {
                        "VERDICT_TRACE_EXPORTER": "otlp",
                        "VERDICT_OTLP_ENDPOINT": receiver.endpoint,
                        "VERDICT_TRACE_SAMPLE_RATIO": str(args.trace_ratio),
                    }
                    if receiver is not None
                    else {}
                ),
            },
        )
        assign = measure([sys.executable, "-m", "verdict_assignment"], env, port, body, key,
                         args.requests, tmp / "assign.out", headers)  # fmt: skip
        # The echo answers with the real response's bytes, taken from a plain server.
        procs = b.start_assignment(settings, port, 1)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = assignment_pb2_grpc.AssignmentServiceStub(channel).Assign(
                    request, metadata=(("authorization", f"Bearer {key}"),)
                )
        finally:
            b.stop(procs)
        response = tmp / "response.bin"
        response.write_bytes(reply.SerializeToString())
        echo_port = b.free_port()
        echo_command = [sys.executable, str(b.ROOT / "bench" / "echo_server.py"),
                        "--port", str(echo_port), "--response-file", str(response)]  # fmt: skip
        echo = measure(echo_command, None, echo_port, body, key, args.requests, tmp / "echo.out",
                       headers)  # fmt: skip
    finally:
        asyncio.run(b.drop(base, settings))
        if receiver is not None:
            receiver.close()
    result = {
        "requests": args.requests,
        "tracing": "off" if args.trace_ratio is None else f"otlp, ratio {args.trace_ratio}",
        "unsampled_caller": args.unsampled_caller,
        "spans_exported": len(receiver.spans()) if receiver is not None else 0,
        "instructions_per_request": {"assign": round(assign), "echo": round(echo)},
        "instruction_ratio_echo_over_assign": echo / assign,
    }
    path = RESULTS
    if args.trace_ratio is not None:
        caller = "-caller" if args.unsampled_caller else ""
        path = RESULTS.with_name(f"callgrind-assign-trace-{args.trace_ratio:g}{caller}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
