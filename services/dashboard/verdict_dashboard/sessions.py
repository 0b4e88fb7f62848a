"""Server-side sessions: the signed-in user's API key never leaves this process.

The browser holds only an opaque, random session id (a cookie); the id maps to the key, the key's
name and role, and the session's CSRF token. Sessions live in this process's memory, so replicas
of the console need sticky sessions (or users sign in again on another replica), and a restart
signs everyone out. Pure: no I/O; the clock is injected for tests.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000
"""Bound on live sessions, so sign-ins cannot grow memory without limit; the oldest go first."""


@dataclass
class Session:
    """One signed-in user."""

    id: str
    api_key: str = field(repr=False)
    """The user's key, sent as `authorization: Bearer` on their calls; never rendered or logged."""
    name: str
    """The key's name, as the audit log shows it."""
    admin: bool
    """True when the key's role may change things."""
    role: str
    """The role's name (assign, ingest, read, admin)."""
    csrf_token: str
    created: float
    last_seen: float


class SessionStore:
    """Live sessions by id, with idle and absolute expiry."""

    def __init__(
        self,
        idle_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._idle_s = idle_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, api_key: str, name: str, role: str, admin: bool) -> Session:
        """A new session for a verified key."""
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            api_key=api_key,
            name=name,
            admin=admin,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with that id (its idle timer restarts), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle_s or now - session.created > self._max_age_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def end(self, session_id: str | None) -> None:
        """Ends a session (sign-out); unknown ids are ignored."""
        if session_id:
            self._sessions.pop(session_id, None)

    def end_for_name(self, name: str) -> int:
        """Ends every session signed in with the key named `name` (it was revoked)."""
        ids = [s.id for s in self._sessions.values() if s.name == name]
        for session_id in ids:
            del self._sessions[session_id]
        return len(ids)
