"""`verdict import growthbook FILE [--dry-run] [--start]`: GrowthBook experiments into Verdict.

Calls ExperimentService.ImportGrowthBook with an admin key (as `verdict metrics init-llm` does:
`--api-key`, else VERDICT_API_KEY, else the development admin key), so the import is validated,
stored in one transaction and audited by the service, never written to the database from here.
FILE is a GrowthBook SDK payload or features JSON; "-" reads standard input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from verdict.channels import bearer, sync_channel
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.metrics_cli import admin_key
from verdict_platform.settings import Settings

IMPORT_TIMEOUT_S = 60.0
"""Deadline of the call: a 4 MiB payload is converted and stored in one transaction."""
STATUS_NAMES = {
    experiment_pb2.EXPERIMENT_STATUS_DRAFT: "draft",
    experiment_pb2.EXPERIMENT_STATUS_RUNNING: "running",
}


def _violations(error: grpc.Call) -> list[str]:
    """Each BadRequest violation as "field: description" (the JSON path is in the latter)."""
    status = rpc_status.from_call(error)
    out = []
    for detail in [] if status is None else status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [f"{v.field}: {v.description}" for v in bad.field_violations]
    return out


def import_growthbook(
    settings: Settings,
    file: str,
    *,
    dry_run: bool,
    start: bool,
    target: str | None,
    api_key: str | None,
) -> int:
    """Imports FILE; prints each experiment and saved group, then what was skipped. Exit status
    0 on success, 1 when the service refuses, 2 for a missing key or an unreadable file."""
    key = admin_key(settings, api_key)
    if key is None:
        print(
            "error: no admin key: pass --api-key, set VERDICT_API_KEY, or run `make up` first",
            file=sys.stderr,
        )
        return 2
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"error: cannot read {file}: {error}", file=sys.stderr)
        return 2
    where = target or settings.assignment_target
    request = experiment_pb2.ImportGrowthBookRequest(
        payload_json=text, dry_run=dry_run, start=start
    )
    with sync_channel(where, settings.channel_security()) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        try:
            reply = stub.ImportGrowthBook(request, metadata=bearer(key), timeout=IMPORT_TIMEOUT_S)
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call):
                print(f"error: ImportGrowthBook at {where}: {error}", file=sys.stderr)
                return 1
            print(
                f"error: ImportGrowthBook at {where}: {error.code().name} {error.details()}",
                file=sys.stderr,
            )
            for line in _violations(error):
                print(f"  {line}", file=sys.stderr)
            return 1
    verb = "would import" if dry_run else "imported"
    for experiment in reply.experiments:
        status = STATUS_NAMES.get(experiment.status, "draft")
        print(f"{verb}  experiment  {experiment.key}  ({status}, seed {experiment.seed!r})")
    for group in reply.saved_groups:
        print(f"{verb}  saved group {group.key}  ({len(group.values)} values)")
    for reason in reply.skipped:
        print(f"skipped   {reason}")
    if dry_run:
        print("dry run: nothing stored")
    else:
        print(f"configuration version {reply.config_version}")
    return 0
