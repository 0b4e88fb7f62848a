"""What the guard reads from a call's metadata: the `authorization` value and, when tracing, the
W3C `traceparent`.

grpc looks the handler up by calling the generic handler's `service()` with the call's metadata
already converted to Python, inside the task that then runs the handler (one task per RPC).
`context.invocation_metadata()` would convert it a second time (~7 µs per call in a loaded
server), so `service()` notes the values with the current task (`note_call_metadata`) and the
handler takes them back in that same task (`call_metadata`); anywhere else it reads the
context's metadata.
"""

from __future__ import annotations

import contextvars
from asyncio import current_task
from collections.abc import Callable, Sequence
from typing import Any

import grpc

_seen_authorization: contextvars.ContextVar[tuple[object, str | None, str | None] | None] = (
    contextvars.ContextVar("verdict_seen_authorization", default=None)
)
"""(task, authorization, traceparent) noted by `service()` for the RPC that task serves."""

Metadata = Sequence[tuple[str, str | bytes]] | None


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def authorization_in(metadata: Metadata) -> tuple[str | None, str | None]:
    """(authorization, None): the scan when tracing is off stops at the key."""
    for key, value in metadata or ():
        if key == "authorization":
            return _text(value), None
    return None, None


def authorization_and_trace_in(metadata: Metadata) -> tuple[str | None, str | None]:
    """(authorization, traceparent), in one scan."""
    authorization = traceparent = None
    for key, value in metadata or ():
        if key == "authorization":
            authorization = _text(value)
        elif key == "traceparent":
            traceparent = _text(value)
    return authorization, traceparent


Scan = Callable[[Metadata], tuple[str | None, str | None]]


def call_metadata(
    context: grpc.aio.ServicerContext[Any, Any], scan: Scan
) -> tuple[str | None, str | None]:
    """This call's (authorization, traceparent): as `service()` noted them in this task, else
    read from the context."""
    seen = _seen_authorization.get()
    if seen is not None:
        # Forget it: the task's context holding the task is a reference cycle, which would keep
        # every finished RPC's task alive until a garbage collection.
        _seen_authorization.set(None)
        if seen[0] is current_task():
            return seen[1], seen[2]
    return scan(context.invocation_metadata())


def note_call_metadata(metadata: Metadata, scan: Scan) -> None:
    """Notes the call's values with the current task, for `call_metadata` in its handler."""
    try:
        task = current_task()
    except RuntimeError:  # no running loop: nothing to serve, nothing to note
        return
    if task is not None:
        _seen_authorization.set((task, *scan(metadata)))
