"""Request errors carry their gRPC status; handlers raise them, one decorator turns them into aborts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client.client import PUSHBACK_KEY  # the key the client reads the pushback from

from audiogan.audio.errors import AudioError
from audiogan_server import request_ids

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


def _trailers(exc: BaseException, request_id: str) -> tuple[tuple[str, str], ...]:
    """A refusal's trailers: its request id, and its pushback as gRPC carries it, whole milliseconds, at
    least 1 (0 would say "at once")."""
    trailers = request_ids.request_id_metadata(request_id)
    if isinstance(exc, RequestError) and exc.pushback_s is not None:
        return (*trailers, (PUSHBACK_KEY, str(max(1, round(exc.pushback_s * 1000)))))
    return trailers


def _status(exc: BaseException) -> tuple[grpc.StatusCode, str, bool]:
    """The status a caller gets for ``exc``, and whether it is a bug (logged with its traceback)."""
    if isinstance(exc, RequestError):
        return exc.code, exc.message, False
    if isinstance(exc, (AudioError, ValueError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc), False
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}", True


def _ended_early(servicer: Any, context: grpc.aio.ServicerContext | None) -> tuple[str, str]:
    """Why a call stopped before its end, as its caller was told: the server's shutdown cut it off
    (UNAVAILABLE), its deadline passed, or else its caller went away. A client whose own deadline timer
    fires first cancels the call a little before the server's timer, which starts later (when the request
    arrives): a call ended this close to its deadline counts as past it."""
    if servicer.cut_off():
        return "UNAVAILABLE", "cut off: the server is shutting down and its grace period is over"
    remaining = context.time_remaining() if context is not None else None
    return ("DEADLINE_EXCEEDED" if remaining is not None and remaining <= DEADLINE_SLACK_S else "CANCELLED"), ""


async def _send_headers(context: grpc.aio.ServicerContext, request_id: str) -> None:
    """The reply's headers, which carry the call's request id; CancelledError where the call is gone."""
    try:
        await context.send_initial_metadata(request_ids.request_id_metadata(request_id))
    except grpc.aio.InternalError:  # the batch that would send them failed: the call is gone
        raise asyncio.CancelledError from None


async def ended_by_its_caller(context: grpc.aio.ServicerContext) -> None:
    """Raises CancelledError unless the request stream that just ended was ended by its caller. gRPC ends
    the stream of a call its caller cancels (or whose deadline passes) as it ends a finished one, and the
    cancellation itself may reach the handler much later or not at all (not within 2 s, measured on a
    cancelled upload): a cut-short upload was taken for a whole one, failed as INVALID_ARGUMENT or was
    converted for nobody. The reply's headers go out only while the call is live, so sending them tells
    the two apart (which is why an upload's headers, and its request id, wait for its end); ``_guarded``
    records the CancelledError as the call's end (CANCELLED or DEADLINE_EXCEEDED), as it does a
    cancellation that gRPC delivers."""
    await _send_headers(context, request_ids.current.get())


@dataclass
class _Call:
    """What one call's log line says beyond its method and time."""

    peer: str = ""
    request_id: str = ""
    start: float = field(default_factory=time.perf_counter)
    code: str = "OK"
    message: str = ""
    audio_seconds: float = 0.0
    responses: int = 0
    level: int = logging.INFO  # whatever the caller did wrong; higher where the server failed it
    failure: BaseException | None = None  # a bug's exception, whose traceback goes with the call's line

    def saw(self, response: Any) -> None:
        self.responses += 1
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
    """One line per finished call, successes and abandoned calls included: what an operator looks for. Its
    fields also go, one by one, to the JSON log (``extra`` "call"); its request id goes as every record's does
    (``request_ids.RequestIdFilter``), given here since a stream may be closed from another context."""
    peer = f" from {call.peer}" if call.peer else ""
    audio = f", {call.audio_seconds:.2f} s of audio" if call.audio_seconds else ""
    message = f": {call.message}" if call.message else ""
    fields = {"method": name, "code": call.code, "peer": call.peer, "duration_ms": round(seconds * 1000, 1),
              "audio_seconds": round(call.audio_seconds, 3)}
    if call.message:
        fields["error"] = call.message
    log.log(call.level, "%s %s in %.0f ms%s, request id %s%s%s", name, call.code, seconds * 1000, peer,
            call.request_id, audio, message, exc_info=call.failure,
            extra={"call": fields, "request_id": call.request_id})


@contextlib.asynccontextmanager
async def _guarded(servicer: Any, name: str, context: grpc.aio.ServicerContext,
                   headers_first: bool) -> AsyncIterator[_Call]:
    """Admission, exceptions mapped to status codes, and the request's metrics and log line, around one call.
    The call's request id goes back in its trailers, and with ``headers_first`` in its headers, sent at once
    (``rpc`` says which calls)."""
    peer, metadata = (context.peer(), context.invocation_metadata()) if context is not None else ("", None)
    call = _Call(peer=peer, request_id=request_ids.request_id_of(metadata))
    request_ids.current.set(call.request_id)
    try:
        if context is not None:
            context.set_trailing_metadata(request_ids.request_id_metadata(call.request_id))
            if headers_first:
                await _send_headers(context, call.request_id)
        async with servicer.admit(name):
            yield call
    except (asyncio.CancelledError, GeneratorExit):  # GeneratorExit: gRPC closed the stream before its end
        call.code, call.message = _ended_early(servicer, context)
        if call.code == "UNAVAILABLE":  # cut off by the shutdown: the server let its caller down
            call.level = logging.WARNING
        raise
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        status, call.message, bug = _status(exc)
        call.code = status.name
        if status == grpc.StatusCode.INTERNAL:  # with the traceback, unless a batcher that died logged it
            call.level, call.failure = logging.ERROR, exc if bug else None
        await context.abort(status, call.message, _trailers(exc, call.request_id))
    finally:
        elapsed = time.perf_counter() - call.start
        servicer.metrics.observe_request(name, call.code, elapsed)
        servicer.metrics.observe_audio(name, call.audio_seconds)
        _log_call(name, call, elapsed)


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method, coroutine or async generator, in ``_guarded``."""
    name = method.__name__
    described = pb.DESCRIPTOR.services_by_name["AudioGan"].methods_by_name.get(name)
    # The request id in headers sent at once where a caller has a use for them before the call's end: a
    # stream's, whose first chunk may play long before its trailers come. A unary reply brings its headers
    # with its trailers, and headers of their own cost a unary call 0.15 ms (benchmarks/RESULTS.md); an
    # upload's wait for its end (``ended_by_its_caller``).
    headers_first = described is not None and described.server_streaming and not described.client_streaming
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # aclosing: a stream closed early runs the method's own clean-up now, not whenever it is collected.
            async with _guarded(self, name, context, headers_first) as call, \
                    contextlib.aclosing(method(self, request, context)) as items:
                async for item in items:
                    if not call.responses:  # a stream's first chunk: when its caller can start to play
                        self.metrics.first_audio.labels(name).observe(time.perf_counter() - call.start)
                    call.saw(item)
                    yield item
        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _guarded(self, name, context, headers_first) as call:
            response = await method(self, request, context)
            call.saw(response)
            return response
    return unary
