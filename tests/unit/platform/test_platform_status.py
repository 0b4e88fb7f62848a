"""The one mapping from errors to status codes: an RPC a server does not implement yet is
UNIMPLEMENTED (what the generated base servicer raises), not INTERNAL."""

from __future__ import annotations

import grpc

from verdict_platform import errors
from verdict_platform.status import status_code_of, to_failure


def test_a_method_the_server_lacks_is_unimplemented() -> None:
    failure = to_failure(NotImplementedError("Method not implemented!"))
    assert failure.code is grpc.StatusCode.UNIMPLEMENTED
    assert failure.message == "not implemented by this server"


def test_programming_errors_stay_internal_and_domain_errors_keep_their_codes() -> None:
    assert status_code_of(KeyError("x")) is grpc.StatusCode.INTERNAL
    assert status_code_of(errors.NotFound("x")) is grpc.StatusCode.NOT_FOUND
