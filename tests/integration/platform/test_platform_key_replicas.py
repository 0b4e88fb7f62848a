"""Key rotation and revocation through the `verdict keys` command reach every assignment
replica within 1 s (Redis announces the change; the periodic reload is set to a minute here, so
only the announcement can make it in time)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable

import grpc
import redis

from support.eventually import eventually
from support.processes import RunningService, service_env
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_platform import redis_conn
from verdict_platform.settings import Settings

PROPAGATION_S = 1.0
"""The bound the platform promises for a key change to reach every replica."""


def verdict_keys(settings: Settings, *args: str) -> str:
    """Runs `verdict keys ...` as an operator would, against the session's servers."""
    env = service_env(settings)
    env["PATH"] = os.environ.get("PATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def announce(settings: Settings) -> None:
    """What `verdict keys` publishes after a change."""
    client = redis.Redis.from_url(settings.require_redis_url())
    try:
        client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"changed")
    finally:
        client.close()


def answers(replica: RunningService, key: str) -> grpc.StatusCode:
    """The status of an Assign with `key` on `replica`."""
    with grpc.insecure_channel(replica.target) as channel:
        try:
            assignment_pb2_grpc.AssignmentServiceStub(channel).Assign(
                assignment_pb2.AssignRequest(unit_id="u", skip_exposure_logging=True),
                metadata=(("authorization", f"Bearer {key}"),),
                timeout=5,
            )
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def everywhere(replicas: list[RunningService], key: str, code: grpc.StatusCode) -> bool:
    return all(answers(r, key) == code for r in replicas)


def test_a_revoked_or_rotated_key_is_refused_by_both_replicas_within_a_second(
    settings: Settings, start_service: Callable[..., RunningService]
) -> None:
    replicas = [
        start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT", VERDICT_KEY_REFRESH_S="60")
        for _ in range(2)
    ]
    name = f"rot-{secrets.token_hex(3)}"
    old = verdict_keys(settings, "create", "--role", "assign", "--name", name)

    def reached() -> bool:
        if everywhere(replicas, old, grpc.StatusCode.OK):
            return True
        announce(settings)  # a replica may have subscribed after the first announcement
        return False

    eventually(reached)  # from here on, both replicas listen

    # Rotation: a new key for the same holder, then the old one revoked.
    new = verdict_keys(settings, "create", "--role", "assign", "--name", name + "-2")
    eventually(lambda: everywhere(replicas, new, grpc.StatusCode.OK), timeout=PROPAGATION_S)
    verdict_keys(settings, "revoke", name)
    eventually(
        lambda: everywhere(replicas, old, grpc.StatusCode.UNAUTHENTICATED), timeout=PROPAGATION_S
    )
    assert everywhere(replicas, new, grpc.StatusCode.OK)

    # Revocation of the holder's remaining key.
    verdict_keys(settings, "revoke", name + "-2")
    eventually(
        lambda: everywhere(replicas, new, grpc.StatusCode.UNAUTHENTICATED), timeout=PROPAGATION_S
    )
