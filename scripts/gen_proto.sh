#!/usr/bin/env bash
# Regenerates the Python messages, gRPC stubs and type stubs from protos/ into $1
# (default clients/python). Used by `make proto` and by the drift check in `make check`.
set -euo pipefail
out="${1:-clients/python}"
venv="${VENV:-.venv}"
mkdir -p "$out/verdict/v1"
PATH="$venv/bin:$PATH" "$venv/bin/python" -m grpc_tools.protoc \
  -I protos \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  protos/verdict/v1/*.proto
touch "$out/verdict/v1/__init__.py"
