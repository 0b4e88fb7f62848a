"""A Redis subscription that survives Redis going away: it reconnects with backoff and calls
`on_reconnect` after each reconnection, so the subscriber can reload what it may have missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from verdict.retry import Backoff
from verdict_platform.telemetry.catalog import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

RESUBSCRIBE_BACKOFF = Backoff(initial_s=0.1, max_s=2.0)
"""Waits between attempts to subscribe again after Redis went away."""


async def subscribe_forever(
    client: aioredis.Redis,
    channel: str,
    on_message: Callable[[bytes], Awaitable[None]],
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    backoff: Backoff = RESUBSCRIBE_BACKOFF,
) -> None:
    """Delivers each message on `channel` to `on_message` until cancelled."""
    waits = backoff.delays()
    failed_before = False
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            if failed_before and on_reconnect is not None:
                await on_reconnect()
            failed_before = False
            waits = backoff.delays()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await on_message(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            DEPENDENCY_ERRORS.inc("redis")
            failed_before = True
            wait = next(waits)
            log.warning("subscription to %s lost (%s); retrying in %.1fs", channel, exc, wait)
            await asyncio.sleep(wait)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await pubsub.aclose()  # type: ignore[no-untyped-call]
