"""The session store: the key stays server-side, sessions expire when idle or old, sign-out and
revocation end them, and their number is bounded."""

from __future__ import annotations

from verdict_dashboard.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_opaque_id_which_is_not_the_key() -> None:
    store = SessionStore(idle_s=60, max_age_s=3600, clock=Clock())
    session = store.create("vdk_secret", "alice", "admin", admin=True)
    assert "vdk_secret" not in session.id and len(session.id) >= 40
    assert store.get(session.id) is session
    assert "vdk_secret" not in repr(session)
    assert session.csrf_token and session.csrf_token != session.id


def test_idle_sessions_expire_and_use_restarts_the_idle_timer() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_age_s=3600, clock=clock)
    session = store.create("k", "alice", "read", admin=False)
    clock.now += 50
    assert store.get(session.id) is session
    clock.now += 50  # 100 s after creation, 50 s after the last use
    assert store.get(session.id) is session
    clock.now += 61
    assert store.get(session.id) is None
    assert len(store) == 0


def test_sessions_end_at_their_maximum_age_even_when_used() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_age_s=100, clock=clock)
    session = store.create("k", "alice", "read", admin=False)
    for _ in range(3):
        clock.now += 40
        found = store.get(session.id)
    assert found is None


def test_sign_out_and_revocation_end_sessions() -> None:
    store = SessionStore(idle_s=60, max_age_s=3600, clock=Clock())
    first = store.create("k1", "alice", "admin", admin=True)
    second = store.create("k1", "alice", "admin", admin=True)
    other = store.create("k2", "bob", "read", admin=False)
    store.end(first.id)
    assert store.get(first.id) is None and store.get(second.id) is second
    assert store.end_for_name("alice") == 1
    assert store.get(second.id) is None and store.get(other.id) is other
    store.end("unknown")
    store.end(None)


def test_the_number_of_sessions_is_bounded_oldest_first() -> None:
    store = SessionStore(idle_s=60, max_age_s=3600, clock=Clock(), max_sessions=2)
    a, b, c = (store.create(f"k{i}", f"n{i}", "read", admin=False) for i in range(3))
    assert store.get(a.id) is None and store.get(b.id) is b and store.get(c.id) is c


def test_unknown_or_missing_ids_find_nothing() -> None:
    store = SessionStore(idle_s=60, max_age_s=3600, clock=Clock())
    assert store.get(None) is None and store.get("") is None and store.get("nope") is None
