"""What the guard reads from a call's metadata: the `authorization` value and, when tracing, the
W3C `traceparent`.

grpc looks the handler up by calling the generic handler's `service()` with the call's metadata
already converted to Python, inside the task that then runs the handler (one task per RPC).
`context.invocation_metadata()` would convert it a second time (~7 µs per call in a loaded
server), so `service()` notes the values with the current task (`note_authorization`, or
`note_authorization_and_trace` when tracing) and the handler takes them back in that same task
(`call_metadata`); anywhere else it reads the context's metadata.
"""

from __future__ import annotations

import contextvars
from asyncio import current_task
from collections.abc import Callable, Sequence
from typing import Any

import grpc

Noted = tuple[object, str | None, str | None]
"""(task, authorization, traceparent)."""

_seen: contextvars.ContextVar[Noted | None] = contextvars.ContextVar(
    "verdict_seen_call_metadata", default=None
)
"""What `service()` noted for the RPC that task serves."""

Metadata = Sequence[tuple[str, str | bytes]] | None
Note = Callable[[Metadata], None]


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def authorization_in(metadata: Metadata) -> str | None:
    """The `authorization` value (the scan stops at it)."""
    for key, value in metadata or ():
        if key == "authorization":
            return _text(value)
    return None


def traceparent_in(metadata: Metadata) -> str | None:
    """The W3C `traceparent` value."""
    for key, value in metadata or ():
        if key == "traceparent":
            return _text(value)
    return None


def call_metadata(context: grpc.aio.ServicerContext[Any, Any], tracing: bool) -> Noted:
    """This call's (task, authorization, traceparent): as `service()` noted them in this task,
    else read from the context (the traceparent only when `tracing`)."""
    seen = _seen.get()
    if seen is not None:
        # Forget it: the task's context holding the task is a reference cycle, which would keep
        # every finished RPC's task alive until a garbage collection.
        _seen.set(None)
        if seen[0] is current_task():
            return seen
    metadata = context.invocation_metadata()
    return None, authorization_in(metadata), traceparent_in(metadata) if tracing else None


def _task() -> object | None:
    try:
        return current_task()
    except RuntimeError:  # no running loop: nothing to serve, nothing to note
        return None


def note_authorization(metadata: Metadata) -> None:
    """Notes the call's key with the current task, for `call_metadata` in its handler."""
    task = _task()
    if task is not None:
        _seen.set((task, authorization_in(metadata), None))


def note_authorization_and_trace(metadata: Metadata) -> None:
    """Notes the call's key and traceparent (one scan) with the current task."""
    task = _task()
    if task is None:
        return
    authorization = traceparent = None
    for key, value in metadata or ():
        if key == "authorization":
            authorization = _text(value)
        elif key == "traceparent":
            traceparent = _text(value)
    _seen.set((task, authorization, traceparent))
