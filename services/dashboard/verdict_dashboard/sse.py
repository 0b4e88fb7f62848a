"""Live results: one `AnalysisService.WatchResults` stream per open page, pushed to the browser
as server-sent events.

Each new snapshot re-renders the open tab; the browser swaps it in without a reload. When the
analysis service cannot be reached the stream says so (a `service` event) and ends; the browser's
EventSource reconnects by itself after `RETRY_MS`, and the first snapshot on the new stream
clears the message. A comment line every `KEEPALIVE_S` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from verdict.v1 import analysis_pb2
from verdict_dashboard.clients import Api, ServiceError, SignedOut, Unreachable

log = logging.getLogger(__name__)

RETRY_MS = 2000
KEEPALIVE_S = 15.0


def event(name: str, data: str, event_id: str = "") -> str:
    """One server-sent event; multi-line data is split into `data:` lines."""
    lines = [f"event: {name}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


Render = Callable[[analysis_pb2.ResultSnapshot], Awaitable[str]]


def _unreachable_text(error: ServiceError) -> str:
    if isinstance(error, Unreachable):
        return f"The {error.service} is unreachable: reconnecting…"
    if isinstance(error, SignedOut):
        return "Your key is no longer valid: sign in again."
    return f"Live results stopped: {error.message}"


async def snapshot_events(
    client: Api,
    key: str,
    after_id: int,
    render: Render,
    probe: Callable[[], Awaitable[object]],
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """The event stream of one page: `live` once `probe` (a unary call to the analysis
    service) succeeds, then `results` (the tab's new HTML) per snapshot newer than `after_id`;
    `service` when the analysis service is unreachable, and the stream ends."""
    yield f"retry: {RETRY_MS}\n\n"
    try:
        await probe()
    except ServiceError as error:
        yield event("service", _unreachable_text(error))
        return
    yield event("live", "connected")
    queue: asyncio.Queue[analysis_pb2.ResultSnapshot | BaseException] = asyncio.Queue(maxsize=16)

    async def pump() -> None:
        try:
            async for snapshot in client.watch_results(key):
                await queue.put(snapshot)
            await queue.put(EOFError())
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, which decides
            await queue.put(error)

    reader = asyncio.create_task(pump(), name=f"watch-{key}")
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if isinstance(item, analysis_pb2.ResultSnapshot):
                if item.id <= after_id:
                    continue
                after_id = item.id
                try:
                    html = await render(item)
                except ServiceError as error:
                    item = error  # the page's other calls failed: said below, then reconnect
                else:
                    yield event("results", html, str(item.id))
                    continue
            if isinstance(item, ServiceError):
                yield event("service", _unreachable_text(item))
            elif not isinstance(item, EOFError):
                log.warning("live results of %s ended: %r", key, item)
                yield event("service", "Live results stopped: reconnecting…")
            return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
