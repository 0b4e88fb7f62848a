"""The server interceptor every service installs: authentication, authorization, error mapping.

It wraps each method handler once (cached by method), so the per-call cost is one metadata scan,
one SHA-256 and one dict lookup. Inside a handler, `current_principal()` tells who is calling (the
audit log records its name).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from verdict_platform.keyring import KeyRing, Principal
from verdict_platform.roles import is_public
from verdict_platform.status import to_failure

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "verdict_principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being served; raises outside an authenticated handler."""
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("no authenticated principal in this context")
    return principal


def _authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    failure = to_failure(error)
    context.set_trailing_metadata(failure.trailing_metadata)
    await context.abort(failure.code, failure.message)


class Guard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every non-public RPC and maps domain errors to status codes."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or is_public(method):
            return handler
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = wrapped
        return wrapped

    def _enter(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        _principal.set(self._keyring.authorize(_authorization(context), method))

    def _wrap(self, method: str, h: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        enter = self._enter
        if h.unary_unary or h.stream_unary:
            inner = h.unary_unary or h.stream_unary

            async def unary_response(request: Any, context: Any) -> Any:
                try:
                    enter(context, method)
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
                request_deserializer=h.request_deserializer,
                response_serializer=h.response_serializer,
            )

        inner_stream = h.unary_stream or h.stream_stream

        async def stream_response(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                enter(context, method)
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
            request_deserializer=h.request_deserializer,
            response_serializer=h.response_serializer,
        )
