"""The in-memory key ring: verifies API keys without I/O on the request path.

Active keys (hash to name and role) are loaded at start and reloaded in the background every
`key_refresh_s`, and at once when a `keys` change is announced on Redis, so a revoked key is
refused within a second when Redis is up and within the refresh period when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from verdict_platform.errors import PermissionDenied, Unauthenticated
from verdict_platform.keys import hash_key
from verdict_platform.roles import Role
from verdict_platform.telemetry.catalog import KEY_RELOADS

log = logging.getLogger(__name__)

MAX_VERIFIED = 10_000
"""Bound on remembered header values, so random forged keys cannot grow memory."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key's name and role."""

    name: str
    role: Role


class KeyDirectory(Protocol):
    """Where active keys come from (the PostgreSQL `KeyStore`, or a fake in unit tests)."""

    async def active_hashes(self) -> dict[bytes, tuple[str, Role]]:
        """Hash to (name, role) of every active key."""
        ...


class KeyRing:
    """Verifies bearer keys against an in-memory copy of the active keys."""

    def __init__(self, store: KeyDirectory, refresh_s: float) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._keys: dict[bytes, Principal] = {}
        # Header value -> principal, for keys already verified against the current `_keys`
        # (spares a SHA-256 per call); replaced together with `_keys` on every reload.
        self._verified: dict[str, Principal] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def load(self) -> None:
        """Reloads the active keys from the store."""
        try:
            hashes = await self._store.active_hashes()
        except Exception:
            KEY_RELOADS.inc("failed")
            raise
        self._keys = {h: Principal(name, role) for h, (name, role) in hashes.items()}
        self._verified = {}
        KEY_RELOADS.inc("ok")

    def start(self) -> None:
        """Starts the background refresh."""
        self._task = asyncio.create_task(self._refresh_forever(), name="keyring-refresh")

    def changed(self) -> None:
        """Schedules an immediate reload (a key was created or revoked)."""
        self._wake.set()

    async def close(self) -> None:
        """Stops the background refresh."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._refresh_s)
            self._wake.clear()
            try:
                await self.load()
            except Exception as exc:  # keep serving the last good copy while the DB is down
                log.warning("key reload failed, keeping the previous keys: %s", exc)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `authorization` header value; Unauthenticated otherwise."""
        if not authorization:
            raise Unauthenticated("missing 'authorization: Bearer <API key>' metadata")
        principal = self._verified.get(authorization)
        if principal is not None:
            return principal
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <API key>'")
        principal = self._keys.get(hash_key(token.strip()))
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
        if len(self._verified) < MAX_VERIFIED:
            self._verified[authorization] = principal
        return principal

    def authorize(
        self, authorization: str | None, method: str, allowed: frozenset[Role]
    ) -> Principal:
        """Authenticates, then checks that the key's role is among `allowed` for `method`."""
        principal = self.authenticate(authorization)
        if principal.role not in allowed:
            raise PermissionDenied(
                f"API key {principal.name!r} has role {principal.role.value!r}, "
                f"which may not call {method}"
            )
        return principal
