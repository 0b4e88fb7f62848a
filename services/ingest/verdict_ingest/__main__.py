"""Runs the ingest service: `python -m verdict_ingest`."""

from __future__ import annotations

from verdict_ingest.service import build
from verdict_platform.server import run_service


def main() -> None:
    """Serves IngestService on VERDICT_INGEST_PORT until SIGTERM."""
    run_service("ingest", lambda s: s.ingest_port, build)


if __name__ == "__main__":
    main()
