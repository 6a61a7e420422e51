"""Request errors carry their gRPC status; handlers raise them, one decorator turns them into aborts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from audiogan.audio.io import AudioError

log = logging.getLogger("audiogan.server")


class RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


def unimplemented(what: str) -> RequestError:
    return RequestError(grpc.StatusCode.UNIMPLEMENTED, what)


def _status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, (AudioError, ValueError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


@contextlib.asynccontextmanager
async def _guarded(servicer: Any, name: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Admission, exceptions mapped to status codes, and the request's metrics, around one call."""
    start, code = time.perf_counter(), "OK"
    try:
        async with servicer.admit():
            yield
    except asyncio.CancelledError:
        remaining = context.time_remaining()
        code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        raise
    except GeneratorExit:  # gRPC closed the stream before its end: not an OK call
        code = "CANCELLED"
        raise
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        status, message = _status(exc)
        code = status.name
        log.info("%s -> %s: %s", name, code, message)
        await context.abort(status, message)
    finally:
        servicer.metrics.observe_request(name, code, time.perf_counter() - start)


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method, coroutine or async generator, in ``_guarded``."""
    name = method.__name__
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # aclosing: a stream closed early runs the method's own clean-up now, not whenever it is collected.
            async with _guarded(self, name, context), contextlib.aclosing(method(self, request, context)) as items:
                async for item in items:
                    yield item
        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _guarded(self, name, context):
            return await method(self, request, context)
    return unary
