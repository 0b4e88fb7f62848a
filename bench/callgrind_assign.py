"""User-space instructions per request of the assignment service and of the bare echo, counted
with valgrind's callgrind under h2load: a measure of the handler's cost that does not depend on
the machine's speed (the throughput ratio of `bench_assign.py` does, a lot, on a shared machine).

Each server runs under `valgrind --tool=callgrind`; after a warm-up of 1,000 requests the counters
are zeroed (`callgrind_control -z`), `--requests` more are sent, and the counters dumped. Runs
differ by up to ±20k instructions per request (valgrind serialises threads, so timing-dependent
work such as polling varies). Needs valgrind (Debian package `valgrind`) and h2load.

Writes bench/results/callgrind-assign.json. Run: `make bench-callgrind`.
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

from verdict.v1 import assignment_pb2, assignment_pb2_grpc

RESULTS = b.ROOT / "bench" / "results" / "callgrind-assign.json"
WARM_UP = 1_000


def load(port: int, body: Path, key: str, requests: int) -> None:
    args = [
        "h2load", f"http://127.0.0.1:{port}{b.METHOD}", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", f"authorization: Bearer {key}", "-c", "4", "-m", "8", "-n", str(requests),
    ]  # fmt: skip
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
            requests: int, out_file: Path) -> float:  # fmt: skip
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
        load(port, body, key, WARM_UP)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                       capture_output=True)  # fmt: skip
        load(port, body, key, requests)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                       capture_output=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(120)
    return instructions(out_file) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
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
            },
        )
        assign = measure([sys.executable, "-m", "verdict_assignment"], env, port, body, key,
                         args.requests, tmp / "assign.out")  # fmt: skip
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
        echo = measure(echo_command, None, echo_port, body, key, args.requests, tmp / "echo.out")
    finally:
        asyncio.run(b.drop(base, settings))
    result = {
        "requests": args.requests,
        "instructions_per_request": {"assign": round(assign), "echo": round(echo)},
        "instruction_ratio_echo_over_assign": echo / assign,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
