"""Announces configuration versions on Redis (best effort: replicas also poll the database)."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0
"""A down Redis must not hold an RPC that has already committed."""


class RedisConfigPublisher:
    """Publishes the new `config_state.version` (ASCII digits) on the config channel."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel

    async def publish(self, version: int) -> None:
        """Publishes `version`; a Redis failure is logged and swallowed."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._client.publish(self._channel, str(version).encode("ascii"))
        except Exception as exc:  # the change is committed; replicas fall back to polling
            log.warning(
                "could not publish config version %d on %s: %s", version, self._channel, exc
            )
