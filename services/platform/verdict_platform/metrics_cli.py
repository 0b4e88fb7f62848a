"""`verdict metrics init-llm`: create the LLM metric catalog through ExperimentService.

Over gRPC with an admin key (so every metric created is in the audit log, under the key's
name), never straight into the database. The key: `--api-key`, else `VERDICT_API_KEY`, else the
development admin key `verdict up` keeps in the data folder. Existing metrics are left alone.
"""

from __future__ import annotations

import os
import sys

import grpc

from verdict.channels import bearer, sync_channel
from verdict.integrations.llm_metrics import LLM_METRICS, ensure_llm_metrics
from verdict_platform.dev_keys import DEV_ADMIN
from verdict_platform.settings import Settings


def admin_key(settings: Settings, given: str | None) -> str | None:
    """The key to use: given, `VERDICT_API_KEY`, or the development admin key file."""
    if given:
        return given
    if os.environ.get("VERDICT_API_KEY"):
        return os.environ["VERDICT_API_KEY"]
    path = settings.data_dir.resolve() / DEV_ADMIN.file
    return path.read_text().strip() if path.exists() else None


def init_llm(settings: Settings, target: str | None, api_key: str | None) -> int:
    """Creates the catalog; prints what was created and what existed. Exit status 1 when the
    service refuses or cannot be reached."""
    key = admin_key(settings, api_key)
    if key is None:
        print(
            "error: no admin key: pass --api-key, set VERDICT_API_KEY, or run `make up` first",
            file=sys.stderr,
        )
        return 2
    where = target or settings.assignment_target
    with sync_channel(where, settings.channel_security()) as channel:
        try:
            outcome = ensure_llm_metrics(channel, bearer(key))
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "error"
            detail = error.details() if isinstance(error, grpc.Call) else str(error)
            print(f"error: CreateMetric at {where}: {code} {detail}", file=sys.stderr)
            return 1
    names = {m.key: m.name for m in LLM_METRICS}
    for key_ in outcome.created:
        print(f"created  {key_:<26} {names[key_]}")
    for key_ in outcome.existing:
        print(f"exists   {key_:<26} {names[key_]}")
    return 0
