"""Helpers for tests: processes, free ports, gRPC calls."""
