"""`verdict keys put`: a deployment supplies its own keys (Kubernetes Secrets) and the
migration job stores them; reruns change nothing, a new secret rotates the key."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys

import asyncpg
import pytest

from support.processes import service_env
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def put(settings: Settings, name: str, role: str, key: str, *, stdin: bool = False) -> str:
    env = service_env(settings)
    if not stdin:
        env["VERDICT_KEY"] = key
    done = subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", "keys", "put", "--role", role,
         "--name", name],
        env=env, input=key + "\n" if stdin else "", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else f"error {done.stderr.strip()}"


async def active(pool: asyncpg.Pool, name: str) -> list[tuple[bytes, str]]:
    rows = await pool.fetch(
        "SELECT key_hash, role FROM api_keys WHERE name = $1 AND revoked_at IS NULL", name
    )
    return [(bytes(r["key_hash"]), r["role"]) for r in rows]


async def test_supplied_key_is_stored_hashed_and_rerun_changes_nothing(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    name = f"svc-put-{secrets.token_hex(3)}"
    key = secrets.token_urlsafe(32)
    assert put(settings, name, "ingest", key) == f"{name}: created"
    assert put(settings, name, "ingest", key, stdin=True) == f"{name}: unchanged"
    assert await active(pool, name) == [(hashlib.sha256(key.encode()).digest(), "ingest")]


async def test_new_secret_rotates_the_key_and_revokes_the_old(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    name = f"svc-rot-{secrets.token_hex(3)}"
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    put(settings, name, "analysis", old)
    assert put(settings, name, "analysis", new) == f"{name}: rotated"
    assert await active(pool, name) == [(hashlib.sha256(new.encode()).digest(), "analysis")]
    revoked = await pool.fetchval(
        "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_hash = $1",
        hashlib.sha256(old.encode()).digest(),
    )
    assert revoked is True
    # Going back to a key that was revoked is refused: a leaked old key stays dead.
    assert put(settings, name, "analysis", old).startswith("error")


async def test_short_or_blank_key_is_refused(settings: Settings, pool: asyncpg.Pool) -> None:
    name = f"svc-short-{secrets.token_hex(3)}"
    assert "key" in put(settings, name, "ingest", "too-short")
    assert "key" in put(settings, name, "ingest", "")
    assert await active(pool, name) == []
