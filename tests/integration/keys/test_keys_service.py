"""ApiKeyService in the real assignment process (one for the module): the caller's identity, keys
listed by pages without secrets, a created key usable at once, a revoked one refused, and the
errors named."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_status import rpc_status

from support.eventually import eventually
from support.processes import start_service_process
from verdict.v1 import keys_pb2, keys_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings
from verdict_platform.status import field_violations

Metadata = tuple[tuple[str, str]]


def bearer(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(scope="module")
def keys_stub(settings: Settings) -> Iterator[keys_pb2_grpc.ApiKeyServiceStub]:
    service = start_service_process(settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    try:
        with grpc.insecure_channel(service.target) as channel:
            yield keys_pb2_grpc.ApiKeyServiceStub(channel)
    finally:
        service.stop()


def known(stub: keys_pb2_grpc.ApiKeyServiceStub, key: str) -> Metadata:
    """The key's credentials, once the service has learnt of the key."""
    metadata = bearer(key)
    eventually(lambda: stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=metadata))
    return metadata


@pytest.fixture
def admin(keys_stub: keys_pb2_grpc.ApiKeyServiceStub, make_key_sync: str) -> Metadata:
    return known(keys_stub, make_key_sync)


@pytest.fixture
def reader(keys_stub: keys_pb2_grpc.ApiKeyServiceStub, key_sync: Callable[[Role], str]) -> Metadata:
    return known(keys_stub, key_sync(Role.READ))


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def create(
    stub: keys_pb2_grpc.ApiKeyServiceStub,
    admin: Metadata,
    name: str,
    role: int = keys_pb2.API_KEY_ROLE_READ,
) -> keys_pb2.CreateApiKeyResponse:
    reply: keys_pb2.CreateApiKeyResponse = stub.CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name=name, role=role),  # type: ignore[arg-type]
        metadata=admin,
    )
    return reply


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.READ, keys_pb2.API_KEY_ROLE_READ),
        (Role.ADMIN, keys_pb2.API_KEY_ROLE_ADMIN),
        (Role.ASSIGN, keys_pb2.API_KEY_ROLE_ASSIGN),
        (Role.INGEST, keys_pb2.API_KEY_ROLE_INGEST),
        (Role.QA, keys_pb2.API_KEY_ROLE_QA),
    ],
    ids=["read", "admin", "assign", "ingest", "qa"],
)
def test_get_caller_names_the_key_and_its_role(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub,
    key_sync: Callable[[Role], str],
    role: Role,
    expected: int,
) -> None:
    metadata = bearer(key_sync(role))
    caller = eventually(lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=metadata))
    assert caller.role == expected
    assert caller.name.startswith(f"test-sync-{role.value}-")


def test_an_unknown_key_is_unauthenticated(keys_stub: keys_pb2_grpc.ApiKeyServiceStub) -> None:
    error = refusal(
        lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer("vdk_nope"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_created_key_can_be_used_with_its_name_and_role(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    name = unique("console-reader")
    created = create(keys_stub, admin, name)
    assert created.secret.startswith("vdk_")
    assert created.api_key.name == name and not created.api_key.HasField("revoke_time")
    caller = eventually(
        lambda: keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer(created.secret))
    )
    assert caller.name == name and caller.role == keys_pb2.API_KEY_ROLE_READ


def test_keys_are_listed_once_each_by_pages_without_their_secret(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    name = unique("listed")
    created = create(keys_stub, admin, name)
    names: list[str] = []
    seen: list[tuple[str, int]] = []
    token = ""
    while True:
        page = keys_stub.ListApiKeys(
            keys_pb2.ListApiKeysRequest(page_size=1, page_token=token), metadata=admin
        )
        assert len(page.api_keys) <= 1
        assert created.secret not in str(page)
        names.extend(k.name for k in page.api_keys)
        seen.extend((k.name, k.create_time.ToNanoseconds()) for k in page.api_keys)
        token = page.next_page_token
        if not token:
            break
    # A rotated key's name appears once per key (revoked ones stay listed); no key twice.
    assert name in names and len(seen) == len(set(seen))


def test_a_revoked_key_is_refused(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    name = unique("revoked")
    created = create(keys_stub, admin, name)
    known(keys_stub, created.secret)
    revoked = keys_stub.RevokeApiKey(keys_pb2.RevokeApiKeyRequest(name=name), metadata=admin)
    assert revoked.api_key.HasField("revoke_time")

    def refused() -> bool:
        try:
            keys_stub.GetCaller(keys_pb2.GetCallerRequest(), metadata=bearer(created.secret))
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    eventually(refused)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (keys_pb2.CreateApiKeyRequest(name="", role=keys_pb2.API_KEY_ROLE_READ), "name"),
        (keys_pb2.CreateApiKeyRequest(name="x"), "role"),
    ],
    ids=["no name", "no role"],
)
def test_a_key_without_name_or_role_is_invalid_argument_naming_it(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub,
    admin: Metadata,
    request_: keys_pb2.CreateApiKeyRequest,
    field: str,
) -> None:
    error = refusal(lambda: keys_stub.CreateApiKey(request_, metadata=admin))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(rpc_status.from_call(error))


def test_a_name_in_use_is_already_exists(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    name = unique("twice")
    create(keys_stub, admin, name)
    error = refusal(lambda: create(keys_stub, admin, name))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def test_revoking_an_unknown_key_is_not_found(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    error = refusal(
        lambda: keys_stub.RevokeApiKey(keys_pb2.RevokeApiKeyRequest(name="nobody"), metadata=admin)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_keys_page_token_not_ours_is_invalid_argument(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata
) -> None:
    error = refusal(
        lambda: keys_stub.ListApiKeys(
            keys_pb2.ListApiKeysRequest(page_token="garbage"), metadata=admin
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in field_violations(rpc_status.from_call(error))


@pytest.mark.parametrize("rpc", ["ListApiKeys", "CreateApiKey", "RevokeApiKey"])
def test_a_reader_may_not_see_or_change_keys(
    keys_stub: keys_pb2_grpc.ApiKeyServiceStub, admin: Metadata, reader: Metadata, rpc: str
) -> None:
    name = unique("guarded")
    create(keys_stub, admin, name)
    requests = {
        "ListApiKeys": keys_pb2.ListApiKeysRequest(),
        "CreateApiKey": keys_pb2.CreateApiKeyRequest(name="r", role=keys_pb2.API_KEY_ROLE_ADMIN),
        "RevokeApiKey": keys_pb2.RevokeApiKeyRequest(name=name),
    }
    error = refusal(lambda: getattr(keys_stub, rpc)(requests[rpc], metadata=reader))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
