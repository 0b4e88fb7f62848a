"""API keys: generation, hashing and the store behind them.

A key is 32 random bytes (urlsafe base64, prefixed `vdk_`), shown once at creation. Only its
SHA-256 is stored. A fast hash is enough here, unlike passwords: the key has 256 bits of entropy, so
a stolen table cannot be brute-forced, and verification stays cheap on the Assign hot path.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from verdict_platform.errors import AlreadyExists, InvalidArgument, NotFound
from verdict_platform.roles import Role

KEY_PREFIX = "vdk_"
MIN_SUPPLIED_KEY_CHARS = 32
"""A key supplied by a deployment (`verdict keys put`) must be at least this long: ~190 bits
when drawn from the base64 alphabet, so the fast hash stays safe to store."""


def generate_key() -> str:
    """A new random API key in clear (to be shown once)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    """The stored form of a key: its SHA-256 digest."""
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    id: int = 0
    """Row identifier: orders keys of the same name (pages)."""

    @property
    def active(self) -> bool:
        """True until revoked."""
        return self.revoked_at is None


def parse_role(text: str) -> Role:
    """The role named `text`, or InvalidArgument naming the field `role`."""
    try:
        return Role(text)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidArgument.of("role", f"{text!r} is not one of {allowed}") from None


class KeyStore:
    """API keys in PostgreSQL (table `api_keys`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, name: str, role: Role) -> str:
        """Stores a new key and returns it in clear: the only time it is visible."""
        _, key = await self.issue(name, role)
        return key

    async def issue(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """Stores a new key; returns it as stored and in clear (the only time it is visible)."""
        if not name or len(name) > 128:
            raise InvalidArgument.of("name", "must be 1 to 128 characters")
        key = generate_key()
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO api_keys (name, role, key_hash) VALUES ($1, $2, $3)
                    RETURNING {_COLUMNS}""",
                name,
                role.value,
                hash_key(key),
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"an API key named {name!r} exists") from None
        return _api_key(row), key

    async def put(self, name: str, role: Role, key: str) -> str:
        """Makes `key` the active key of `name` with `role`, for deployments that keep their
        keys in a secret store (a Kubernetes Secret) rather than in Verdict's output. Idempotent:
        "unchanged" when it already is; "rotated" when another key of that name was active (now
        revoked); "created" otherwise. A key that was ever stored before is refused."""
        if not name or len(name) > 128:
            raise InvalidArgument.of("name", "must be 1 to 128 characters")
        if len(key) < MIN_SUPPLIED_KEY_CHARS or any(c.isspace() for c in key):
            raise InvalidArgument.of(
                "key", f"must be at least {MIN_SUPPLIED_KEY_CHARS} characters, no whitespace"
            )
        digest = hash_key(key)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchrow(
                "SELECT key_hash, role FROM api_keys WHERE name = $1 AND revoked_at IS NULL "
                "FOR UPDATE",
                name,
            )
            if current is not None and bytes(current["key_hash"]) == digest:
                if current["role"] == role.value:
                    return "unchanged"
                await conn.execute(
                    "UPDATE api_keys SET role = $2 WHERE name = $1 AND revoked_at IS NULL",
                    name,
                    role.value,
                )
                return "rotated"
            if current is not None:
                await conn.execute(
                    "UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
                    name,
                )
            try:
                await conn.execute(
                    "INSERT INTO api_keys (name, role, key_hash) VALUES ($1, $2, $3)",
                    name,
                    role.value,
                    digest,
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists("this key was stored before; supply a new one") from None
        return "created" if current is None else "rotated"

    async def list(self) -> list[ApiKey]:
        """Every key, active or revoked, by name."""
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY name, id")
        return [_api_key(r) for r in rows]

    async def page(self, after: tuple[str, int] | None, limit: int) -> Sequence[ApiKey]:
        """Up to `limit` keys by (name, id) after the position `after` (None: from the start)."""
        name, id_ = after if after is not None else ("", 0)
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM api_keys WHERE (name, id) > ($1, $2)
                ORDER BY name, id LIMIT $3""",
            name,
            id_,
            limit,
        )
        return [_api_key(r) for r in rows]

    async def revoke(self, name: str) -> ApiKey:
        """Revokes the key named `name` and returns it; NotFound when there is no active one."""
        row = await self._pool.fetchrow(
            f"""UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
                RETURNING {_COLUMNS}""",
            name,
        )
        if row is None:
            raise NotFound(f"no active API key named {name!r}")
        return _api_key(row)

    async def revoke_if_active(self, name: str) -> bool:
        """Revokes the active key named `name` if there is one; True when one was revoked."""
        done = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
        )
        return not done.endswith(" 0")

    async def active_hashes(self) -> dict[bytes, tuple[str, Role]]:
        """Hash to (name, role) of every active key: what the key ring serves from memory."""
        rows = await self._pool.fetch(
            "SELECT key_hash, name, role FROM api_keys WHERE revoked_at IS NULL"
        )
        return {bytes(r["key_hash"]): (r["name"], Role(r["role"])) for r in rows}


_COLUMNS = "id, name, role, created_at, revoked_at"


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        id=row["id"],
    )
