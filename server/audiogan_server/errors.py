"""Request errors carry their gRPC status; handlers raise them, one decorator turns them into aborts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client.client import PUSHBACK_KEY  # the key the client reads the pushback from

from audiogan.audio.io import AudioError

log = logging.getLogger("audiogan.server")
DEADLINE_SLACK_S = 0.25


class RequestError(Exception):
    """A call refused with ``code``. ``pushback_s`` is set only where retrying later is expected to work (see
    ``overloaded``, and UNAVAILABLE while the models load); it then goes back to the caller as gRPC's
    pushback. UNAVAILABLE as the server shuts down carries none: it is going away, not coming back."""

    def __init__(self, code: grpc.StatusCode, message: str, pushback_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.pushback_s = pushback_s


def overloaded(message: str, pushback_s: float) -> RequestError:
    """The one way a refusal says it is transient: the server is busy now (a limit on calls, queued work or
    conversions under way), and the same call ``pushback_s`` from now may well go through. A request too
    big for this server ever to take is a plain RESOURCE_EXHAUSTED ``RequestError``, with no pushback, so
    that clients do not retry it."""
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, pushback_s)


def invalid(field: str, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


def unimplemented(what: str) -> RequestError:
    return RequestError(grpc.StatusCode.UNIMPLEMENTED, what)


def _trailers(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """A refusal's pushback as gRPC carries it: whole milliseconds, at least 1 (0 would say "at once")."""
    if isinstance(exc, RequestError) and exc.pushback_s is not None:
        return ((PUSHBACK_KEY, str(max(1, round(exc.pushback_s * 1000)))),)
    return ()


def _status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, (AudioError, ValueError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


def _ended_early(context: grpc.aio.ServicerContext | None) -> str:
    """Why a call stopped before its end: its deadline passed, or else its caller went away. A client whose
    own deadline timer fires first cancels the call a little before the server's timer, which starts
    later (when the request arrives): a call ended this close to its deadline counts as past it."""
    remaining = context.time_remaining() if context is not None else None
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= DEADLINE_SLACK_S else "CANCELLED"


async def ended_by_its_caller(context: grpc.aio.ServicerContext) -> None:
    """Raises CancelledError unless the request stream that just ended was ended by its caller. gRPC ends
    the stream of a call its caller cancels (or whose deadline passes) as it ends a finished one, and the
    cancellation itself may reach the handler much later or not at all (not within 2 s, measured on a
    cancelled upload): a cut-short upload was taken for a whole one, failed as INVALID_ARGUMENT or was
    converted for nobody. The reply's headers go out only while the call is live, so sending them tells
    the two apart; ``_guarded`` records the CancelledError as the call's end (CANCELLED or
    DEADLINE_EXCEEDED), as it does a cancellation that gRPC delivers."""
    try:
        await context.send_initial_metadata(())
    except grpc.aio.InternalError:  # the batch that would send them failed: the call is gone
        raise asyncio.CancelledError from None


@dataclass
class _Call:
    """What one call's log line says beyond its method and time."""

    code: str = "OK"
    message: str = ""
    audio_seconds: float = 0.0

    def saw(self, response: Any) -> None:
        if isinstance(response, pb.AudioChunk):  # a stream's chunks end where the audio so far ends
            self.audio_seconds = max(self.audio_seconds, _chunk_end(response))
        elif isinstance(response, pb.Audio):
            self.audio_seconds = response.duration_seconds
        elif isinstance(response, (pb.GenerateNotesResponse, pb.InterpolateTimbreResponse)):
            self.audio_seconds = sum(note.duration_seconds for note in response.notes)


def _chunk_end(chunk: pb.AudioChunk) -> float:
    width = 4 if chunk.encoding == pb.FLOAT32 else 2  # streams are raw FLOAT32 or PCM16
    return (chunk.sample_offset + len(chunk.audio) // width) / chunk.sample_rate_hz if chunk.sample_rate_hz else 0.0


def _log_call(name: str, call: _Call, seconds: float) -> None:
    """One line per finished call, successes and abandoned calls included: what an operator looks for."""
    audio = f", {call.audio_seconds:.2f} s of audio" if call.audio_seconds else ""
    message = f": {call.message}" if call.message else ""
    log.info("%s %s in %.0f ms%s%s", name, call.code, seconds * 1000, audio, message)


@contextlib.asynccontextmanager
async def _guarded(servicer: Any, name: str, context: grpc.aio.ServicerContext) -> AsyncIterator[_Call]:
    """Admission, exceptions mapped to status codes, and the request's metrics and log line, around one call."""
    start, call = time.perf_counter(), _Call()
    try:
        async with servicer.admit():
            yield call
    except asyncio.CancelledError:
        call.code = _ended_early(context)
        raise
    except GeneratorExit:  # gRPC closed the stream before its end (its deadline, or the caller): not an OK call
        call.code = _ended_early(context)
        raise
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        status, call.message = _status(exc)
        call.code = status.name
        await context.abort(status, call.message, _trailers(exc))
    finally:
        elapsed = time.perf_counter() - start
        servicer.metrics.observe_request(name, call.code, elapsed)
        _log_call(name, call, elapsed)


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method, coroutine or async generator, in ``_guarded``."""
    name = method.__name__
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # aclosing: a stream closed early runs the method's own clean-up now, not whenever it is collected.
            async with _guarded(self, name, context) as call, \
                    contextlib.aclosing(method(self, request, context)) as items:
                async for item in items:
                    call.saw(item)
                    yield item
        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _guarded(self, name, context) as call:
            response = await method(self, request, context)
            call.saw(response)
            return response
    return unary
