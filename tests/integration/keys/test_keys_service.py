"""ApiKeyService in the real assignment process: the caller's identity, keys listed by pages
without secrets, a created key usable at once, a revoked one refused, and the errors named."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_status import rpc_status

from support.eventually import eventually
from support.processes import RunningService
from verdict.v1 import keys_pb2, keys_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.status import field_violations


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
def keys_stub(
    start_service: Callable[..., RunningService],
) -> Iterator[keys_pb2_grpc.ApiKeyServiceStub]:
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    with grpc.insecure_channel(service.target) as channel:
        yield keys_pb2_grpc.ApiKeyServiceStub(channel)


def code_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_get_caller_names_the_key_and_its_role_for_every_role(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, key_sync: Callable[[Role], str]
) -> None:
    for role, expected in (
        (Role.READ, keys_pb2.API_KEY_ROLE_READ),
        (Role.ADMIN, keys_pb2.API_KEY_ROLE_ADMIN),
        (Role.ASSIGN, keys_pb2.API_KEY_ROLE_ASSIGN),
        (Role.INGEST, keys_pb2.API_KEY_ROLE_INGEST),
    ):
        key = key_sync(role)
        caller = eventually(
            lambda k=key: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer(k))
        )
        assert caller.role == expected
        assert caller.name.startswith(f"test-sync-{role.value}-")
    error = code_of(
        lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer("vdk_nope"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_created_key_works_at_once_is_listed_without_secret_and_revocation_refuses_it(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, make_key_sync: str
) -> None:
    admin = bearer(make_key_sync)
    eventually(lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=admin))
    created = keys_stub.CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="console-reader", role=keys_pb2.API_KEY_ROLE_READ),
        metadata=admin,
    )
    assert created.secret.startswith("vdk_")
    assert created.api_key.name == "console-reader" and not created.api_key.HasField("revoke_time")
    caller = eventually(
        lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer(created.secret))
    )
    assert caller.name == "console-reader" and caller.role == keys_pb2.API_KEY_ROLE_READ

    # Pages of one: every key appears once, and no page carries a secret.
    names: list[str] = []
    token = ""
    while True:
        page = keys_stub.ListApiKeys(
            keys_pb2.ListApiKeysRequest(page_size=1, page_token=token), metadata=admin
        )
        assert len(page.api_keys) <= 1
        assert created.secret not in str(page)
        names.extend(k.name for k in page.api_keys)
        token = page.next_page_token
        if not token:
            break
    assert "console-reader" in names and len(names) == len(set(names))

    revoked = keys_stub.RevokeApiKey(
        keys_pb2.RevokeApiKeyRequest(name="console-reader"), metadata=admin
    )
    assert revoked.api_key.HasField("revoke_time")

    def refused() -> bool:
        try:
            keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer(created.secret))
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    eventually(refused)


def test_bad_requests_are_named_and_readers_may_not_change_keys(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, make_key_sync: str, key_sync: Callable[[Role], str]
) -> None:
    admin = bearer(make_key_sync)
    reader = bearer(key_sync(Role.READ))
    eventually(lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=reader))

    error = code_of(
        lambda: keys_stub.CreateApiKey(
            keys_pb2.CreateApiKeyRequest(name="", role=keys_pb2.API_KEY_ROLE_READ),
            metadata=admin,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(rpc_status.from_call(error))

    error = code_of(
        lambda: keys_stub.CreateApiKey(keys_pb2.CreateApiKeyRequest(name="x"), metadata=admin)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role" in field_violations(rpc_status.from_call(error))

    keys_stub.CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="twice", role=keys_pb2.API_KEY_ROLE_READ),
        metadata=admin,
    )
    error = code_of(
        lambda: keys_stub.CreateApiKey(
            keys_pb2.CreateApiKeyRequest(name="twice", role=keys_pb2.API_KEY_ROLE_READ),
            metadata=admin,
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS

    error = code_of(
        lambda: keys_stub.RevokeApiKey(keys_pb2.RevokeApiKeyRequest(name="nobody"), metadata=admin)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND

    error = code_of(
        lambda: keys_stub.ListApiKeys(
            keys_pb2.ListApiKeysRequest(page_token="garbage"), metadata=admin
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in field_violations(rpc_status.from_call(error))

    for call in (
        lambda: keys_stub.ListApiKeys(keys_pb2.ListApiKeysRequest(), metadata=reader),
        lambda: keys_stub.CreateApiKey(
            keys_pb2.CreateApiKeyRequest(name="r", role=keys_pb2.API_KEY_ROLE_ADMIN),
            metadata=reader,
        ),
        lambda: keys_stub.RevokeApiKey(keys_pb2.RevokeApiKeyRequest(name="twice"), metadata=reader),
    ):
        assert code_of(call).code() == grpc.StatusCode.PERMISSION_DENIED
