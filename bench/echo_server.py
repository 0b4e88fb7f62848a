"""A bare grpc.aio server that answers the Assign method with fixed bytes: the benchmark's
baseline (no interceptor, no health, no evaluation), same path and response size as the real one.

Run: `python bench/echo_server.py --port 50100 --response-file resp.bin`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import grpc


def _identity(data: bytes) -> bytes:
    return data


async def serve(port: int, response: bytes, reuse_port: bool) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return response

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    handler = grpc.unary_unary_rpc_method_handler(
        echo, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("verdict.v1.AssignmentService", {"Assign": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response-file", type=Path, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.response_file.read_bytes(), args.reuse_port))


if __name__ == "__main__":
    main()
