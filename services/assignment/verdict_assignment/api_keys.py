"""The gRPC face of ApiKeyService over `verdict_platform.keys.KeyStore`: decode, call, encode.

Every change is announced on the Redis keys channel (as the `verdict keys` CLI does), so each
process's key ring reloads at once; with Redis down they reload on their refresh timer.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from verdict.v1 import keys_pb2, keys_pb2_grpc
from verdict_assignment.experiments.paging import decode_token, encode_token, page_size
from verdict_platform import redis_conn
from verdict_platform.db import unavailable_on_disconnect
from verdict_platform.errors import InvalidArgument
from verdict_platform.guard import current_principal
from verdict_platform.keys import ApiKey, KeyStore
from verdict_platform.roles import Role
from verdict_platform.server import Resources

log = logging.getLogger(__name__)

SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["ApiKeyService"].full_name

ROLE_TO_PROTO = {
    Role.ASSIGN: keys_pb2.API_KEY_ROLE_ASSIGN,
    Role.INGEST: keys_pb2.API_KEY_ROLE_INGEST,
    Role.READ: keys_pb2.API_KEY_ROLE_READ,
    Role.ADMIN: keys_pb2.API_KEY_ROLE_ADMIN,
    Role.ANALYSIS: keys_pb2.API_KEY_ROLE_ANALYSIS,
    Role.QA: keys_pb2.API_KEY_ROLE_QA,
}
PROTO_TO_ROLE = {v: k for k, v in ROLE_TO_PROTO.items()}


def api_key_message(key: ApiKey) -> keys_pb2.ApiKey:
    """A stored key as the API returns it."""
    message = keys_pb2.ApiKey(name=key.name, role=ROLE_TO_PROTO[key.role])
    message.create_time.FromDatetime(key.created_at)
    if key.revoked_at is not None:
        message.revoke_time.FromDatetime(key.revoked_at)
    return message


class ApiKeyServicer(keys_pb2_grpc.ApiKeyServiceServicer):
    """Translates ApiKeyService RPCs to the key store."""

    def __init__(self, store: KeyStore, redis: aioredis.Redis, keys_channel: str) -> None:
        self._store = store
        self._redis = redis
        self._channel = keys_channel

    async def GetCaller(
        self, request: keys_pb2.GetCallerRequest, context: Any
    ) -> keys_pb2.GetCallerResponse:
        caller = current_principal()
        return keys_pb2.GetCallerResponse(name=caller.name, role=ROLE_TO_PROTO[caller.role])

    async def ListApiKeys(
        self, request: keys_pb2.ListApiKeysRequest, context: Any
    ) -> keys_pb2.ListApiKeysResponse:
        limit = page_size(request.page_size)
        position = decode_token(request.page_token, "api_keys", "", (str, int))
        after = None if position is None else (str(position[0]), int(position[1]))
        async with unavailable_on_disconnect():
            rows = await self._store.page(after, limit + 1)
        page = rows[:limit]
        token = encode_token(
            "api_keys", "", (page[-1].name, page[-1].id) if len(rows) > limit else None
        )
        return keys_pb2.ListApiKeysResponse(
            api_keys=[api_key_message(k) for k in page], next_page_token=token
        )

    async def CreateApiKey(
        self, request: keys_pb2.CreateApiKeyRequest, context: Any
    ) -> keys_pb2.CreateApiKeyResponse:
        role = PROTO_TO_ROLE.get(request.role)
        if role is None:
            raise InvalidArgument.of(
                "role", "is required: assign, ingest, read, qa, analysis or admin"
            )
        async with unavailable_on_disconnect():
            stored, secret = await self._store.issue(request.name, role)
        await self._announce()
        log.info("api key created", extra={"key_name": stored.name, "role": role.value})
        return keys_pb2.CreateApiKeyResponse(api_key=api_key_message(stored), secret=secret)

    async def RevokeApiKey(
        self, request: keys_pb2.RevokeApiKeyRequest, context: Any
    ) -> keys_pb2.RevokeApiKeyResponse:
        if not request.name:
            raise InvalidArgument.of("name", "is required")
        async with unavailable_on_disconnect():
            revoked = await self._store.revoke(request.name)
        await self._announce()
        log.info("api key revoked", extra={"key_name": revoked.name})
        return keys_pb2.RevokeApiKeyResponse(api_key=api_key_message(revoked))

    async def _announce(self) -> None:
        try:
            await self._redis.publish(self._channel, b"changed")
        except Exception as exc:  # processes also reload on a timer; a down Redis only delays it
            log.warning("could not announce a key change on Redis: %s", exc)


def build_api_key_servicer(resources: Resources) -> ApiKeyServicer:
    """The servicer on the process's pool and Redis client."""
    channel = redis_conn.name(resources.settings, redis_conn.KEYS_CHANNEL)
    return ApiKeyServicer(KeyStore(resources.pool), resources.redis, channel)
