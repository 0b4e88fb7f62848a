"""A Redis subscription that survives Redis going away: it reconnects with backoff and calls
`on_reconnect` after each reconnection, so the subscriber can reload what it may have missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


async def subscribe_forever(
    client: aioredis.Redis,
    channel: str,
    on_message: Callable[[bytes], Awaitable[None]],
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    max_backoff_s: float = 2.0,
) -> None:
    """Delivers each message on `channel` to `on_message` until cancelled."""
    backoff = 0.1
    failed_before = False
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            if failed_before and on_reconnect is not None:
                await on_reconnect()
            failed_before = False
            backoff = 0.1
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await on_message(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failed_before = True
            log.warning("subscription to %s lost (%s); retrying in %.1fs", channel, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await pubsub.aclose()  # type: ignore[no-untyped-call]
