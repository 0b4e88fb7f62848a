"""Redis: the client, and the namespaced names of keys and channels.

Every key and channel starts with `settings.redis_namespace`, so several Verdict installations
(or test sessions) can share one Redis without seeing each other's data or messages.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from verdict_platform.settings import Settings

SOCKET_TIMEOUT_S = 2.0

# Channel names (suffixes); the full name is `<namespace>:<suffix>`.
CONFIG_CHANNEL = "config"
"""Published by ExperimentService after each committed configuration change (the new version)."""
KEYS_CHANNEL = "keys"
"""Published after an API key is created or revoked."""
RESULTS_CHANNEL = "results"
"""Published by analysis after a snapshot is stored (the experiment key)."""


def connect_redis(settings: Settings) -> aioredis.Redis:
    """A Redis client with deadlines on every command (it connects lazily)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.require_redis_url(),
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=10,
    )
    return client


def name(settings: Settings, suffix: str) -> str:
    """The namespaced Redis key or channel for `suffix`."""
    return f"{settings.redis_namespace}:{suffix}"
