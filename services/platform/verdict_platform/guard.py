"""The guard every service's handlers pass through: authentication, authorization, request limits,
error mapping.

`guarded_server` returns a grpc.aio server whose `add_generic_rpc_handlers` and
`add_registered_method_handlers` wrap each method handler once, at registration. A wrapped call
checks the API key and the role matrix, records the caller (`current_principal()`, used by the
audit log), refuses bytes that are no valid request message and requests over the documented
limits (`verdict.limits`) with INVALID_ARGUMENT naming the field, runs the handler, and maps domain
errors to status codes. Health and reflection stay unwrapped (public).

Why not a `grpc.aio.ServerInterceptor`: grpc.aio runs every interceptor as an extra coroutine per
call, which measured about 13 µs of CPU per RPC here; wrapping at registration costs one function
layer and keeps the call on grpc's direct dispatch path.

Where the key is read: grpc looks the handler up by calling the generic handler's `service()`
with the call's metadata already converted to Python, inside the task that then runs the handler
(one task per RPC). `context.invocation_metadata()` would convert it a second time, which measured
~7 µs per call in a loaded server (callgrind: ~15k instructions), so `service()` notes the
`authorization` value together with the current task, and the handler uses it only when it runs
in that same task; anywhere else (a grpc that looks handlers up elsewhere, a direct call) it reads
the context's metadata as before.
"""

from __future__ import annotations

import contextvars
from asyncio import current_task
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

import grpc
from google.protobuf.message import Message

from verdict.limits import SELF_CHECKED, RequestLimits
from verdict_platform.errors import FieldViolation, InvalidArgument
from verdict_platform.keyring import KeyRing, Principal
from verdict_platform.roles import allowed_roles, is_public
from verdict_platform.status import to_failure

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "verdict_principal", default=None
)


_seen_authorization: contextvars.ContextVar[tuple[object, str | None] | None] = (
    contextvars.ContextVar("verdict_seen_authorization", default=None)
)
"""(task, authorization value) noted by `service()` for the RPC that task serves."""


def current_principal() -> Principal:
    """The caller of the RPC being served; raises outside an authenticated handler."""
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("no authenticated principal in this context")
    return principal


def _authorization_in(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None


def _authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """This call's `authorization` value: as `service()` noted it in this task, else read."""
    seen = _seen_authorization.get()
    if seen is not None:
        # Forget it: the task's context holding the task is a reference cycle, which would keep
        # every finished RPC's task alive until a garbage collection.
        _seen_authorization.set(None)
        if seen[0] is current_task():
            return seen[1]
    return _authorization_in(context.invocation_metadata())


def _note_authorization(metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
    try:
        task = current_task()
    except RuntimeError:  # no running loop: nothing to serve, nothing to note
        return
    if task is not None:
        _seen_authorization.set((task, _authorization_in(metadata)))


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    failure = to_failure(error)
    context.set_trailing_metadata(failure.trailing_metadata)
    await context.abort(failure.code, failure.message)


class _Malformed:
    """What the guard's deserializer gives for bytes that are no valid request message."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The deserializer, returning `_Malformed` instead of raising: grpc answers a raising
    deserializer with UNKNOWN ("Unexpected DecodeError"); the handler answers INVALID_ARGUMENT."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Malformed(f"{type(error).__name__}: {error}")

    return decode


class Guard:
    """Wraps method handlers so that each call is authenticated, authorized, checked against the
    request limits (`verdict.limits`) and error-mapped."""

    def __init__(self, keyring: KeyRing, limits: RequestLimits | None = None) -> None:
        self._keyring = keyring
        self._limits = limits or RequestLimits()

    def _checker(self, method: str) -> Callable[[Any], None]:
        """Raises InvalidArgument for a malformed request, or one over the limits."""
        limits = None if method in SELF_CHECKED else self._limits

        def check(request: Any) -> None:
            if type(request) is _Malformed:
                raise InvalidArgument.of(
                    "request", f"not a valid request message ({request.error})"
                )
            if limits is not None and isinstance(request, Message):
                violations = limits.problems(request)
                if violations:
                    raise InvalidArgument(
                        [FieldViolation(v.field, v.description) for v in violations]
                    )

        return check

    def wrap(self, method: str, h: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The guarded version of handler `h` for the full method path `method`."""
        if is_public(method):
            return h
        keyring = self._keyring
        allowed = allowed_roles(method)
        check = self._checker(method)
        deserializer = _tolerant(h.request_deserializer)

        def enter(context: Any) -> None:
            _principal.set(keyring.authorize(_authorization(context), method, allowed))

        async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                check(request)
                yield request

        if h.unary_unary or h.stream_unary:
            inner = h.unary_unary or h.stream_unary
            streaming_request = h.stream_unary is not None

            async def unary_response(request: Any, context: Any) -> Any:
                try:
                    enter(context)
                    if streaming_request:
                        return await inner(checked(request), context)
                    check(request)
                    return await inner(request, context)
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await _abort(context, exc)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if h.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary_response,
                request_deserializer=deserializer,
                response_serializer=h.response_serializer,
            )

        inner_stream = h.unary_stream or h.stream_stream
        streaming_requests = h.stream_stream is not None

        async def stream_response(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                enter(context)
                if streaming_requests:
                    request = checked(request)
                else:
                    check(request)
                async for item in inner_stream(request, context):
                    yield item
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _abort(context, exc)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if h.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            stream_response,
            request_deserializer=deserializer,
            response_serializer=h.response_serializer,
        )


class _GuardedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Looks up the inner generic handler, guarding (once per method) what it returns."""

    def __init__(self, inner: grpc.GenericRpcHandler, guard: Guard) -> None:
        self._inner = inner
        self._guard = guard
        # method -> (guarded handler, whether it reads the caller's key)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, bool]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        found = self._wrapped.get(method)
        if found is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            wrapped = self._guard.wrap(method, handler)  # public methods come back as they are
            found = self._wrapped[method] = (wrapped, wrapped is not handler)
        wrapped, authenticated = found
        if authenticated:
            _note_authorization(handler_call_details.invocation_metadata)
        return wrapped


class _CallDetails(grpc.HandlerCallDetails):  # type: ignore[misc]
    """What a generic handler's `service` reads: the method path (and metadata)."""

    def __init__(self, method: str, invocation_metadata: tuple[Any, ...]) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _GuardedServer:
    """A grpc.aio server whose handler registrations go through the guard."""

    def __init__(self, server: grpc.aio.Server, guard: Guard) -> None:
        self._server = server
        self._guard = guard
        self._generic: list[_GuardedGenericHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        guarded = [_GuardedGenericHandler(h, self._guard) for h in handlers]
        self._generic.extend(guarded)
        self._server.add_generic_rpc_handlers(guarded)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Serves `method_handlers` through a generic handler, never as grpc "registered methods".

        Measured with grpcio 1.85: a server holding registered methods pays for them on every
        call, whatever the method: registering ExperimentService's methods this way added
        ~75,000 instructions to each (generic) Assign call (callgrind, ~12 % of the call). The
        generated `add_*_to_server` functions add the same handlers as a generic handler first,
        so this only adds them when no generic handler serves the service yet.
        """
        first = next(iter(method_handlers), None)
        if first is not None and self._serves(f"/{service_name}/{first}"):
            return
        generic = grpc.method_handlers_generic_handler(service_name, method_handlers)
        self.add_generic_rpc_handlers([generic])

    def _serves(self, method: str) -> bool:
        details = _CallDetails(method, ())
        return any(h.service(details) is not None for h in self._generic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def guarded_server(
    keyring: KeyRing, limits: RequestLimits | None = None, **server_kwargs: Any
) -> grpc.aio.Server:
    """A grpc.aio server (same arguments as `grpc.aio.server`) that guards every service added."""
    server = grpc.aio.server(**server_kwargs)
    return cast(grpc.aio.Server, _GuardedServer(server, Guard(keyring, limits)))
