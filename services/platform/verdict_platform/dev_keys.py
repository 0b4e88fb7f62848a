"""The keys `verdict up` makes for a local platform: one admin key for people (`dev-admin`) and
one key per service identity, each with the least role it needs, so the audit log tells a rule's
automated stop (`svc-analysis`) from a person's.

Each key lives in clear in a file of the data folder (mode 0600) and only as a hash in the
database. Running `up` again reuses a key whose file matches an active key; otherwise it
revokes the active key of that name (its secret is lost) and creates a new one: reruns are
idempotent and a lost file is repaired, never a crash on "name exists".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from verdict_platform.keys import KeyStore, hash_key
from verdict_platform.roles import Role


@dataclass(frozen=True)
class Identity:
    """A key `up` keeps for someone: its name, role and file (relative to the data folder)."""

    name: str
    role: Role
    file: str


DEV_ADMIN = Identity("dev-admin", Role.ADMIN, "dev-admin-key")
SERVICE_IDENTITIES: dict[str, Identity] = {
    "assignment": Identity("svc-assignment", Role.INGEST, "keys/svc-assignment"),
    "analysis": Identity("svc-analysis", Role.ANALYSIS, "keys/svc-analysis"),
}
"""The key each service process calls other services with (VERDICT_SERVICE_API_KEY):
assignment sends exposures to ingest; analysis stops experiments through ExperimentService."""


async def ensure_key(store: KeyStore, data_dir: Path, identity: Identity) -> str:
    """The identity's key in clear: the one in its file if still active, else a new one."""
    path = data_dir / identity.file
    if path.exists():
        key = path.read_text().strip()
        active = await store.active_hashes()
        if active.get(hash_key(key), ("", None))[0] == identity.name:
            return key
    await store.revoke_if_active(identity.name)
    key = await store.create(identity.name, identity.role)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return key
