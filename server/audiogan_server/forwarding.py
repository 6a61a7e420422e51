"""The AudioGan service as gRPC knows it from the start: the server listens while torch and the models' code
are still being imported (seconds), which the real servicer needs, and gRPC takes no servicer once it has
started. Until the real one is handed over, a call is refused UNAVAILABLE with a pushback, counted and
logged as any call is; after, every call goes to it, which counts, logs and guards it itself."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc

from audiogan_server.errors import RequestError, rpc
from audiogan_server.metrics import Metrics
from audiogan_server.overload import spread

# Seconds from this servicer's making (the server's first step) until the service exists, the imports of torch
# and the models' code: about 1.5 s on 2 idle CPU cores, 3.0-3.4 s at a load average of 3.6, up to 7 s on a
# busier machine (2026-12-08). A guess for the pushback, as LoadProgress's first rate is for the load.
STARTING_S = 2.0
# The least pushback while starting: around the guess the estimate falls to nothing, and a client that took it
# at its word would call again at once, and again, until the imports end.
STARTING_FLOOR_S = 0.25


class ForwardingServicer(pb_grpc.AudioGanServicer):
    """Registered with gRPC in the real servicer's place; ``service`` is set once the real one exists. Until
    then it is what ``rpc``'s guard asks of a servicer (``admit``, ``metrics``, ``cut_off``), and admits no
    call."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.service: pb_grpc.AudioGanServicer | None = None
        self.began = time.perf_counter()

    @contextlib.asynccontextmanager
    async def admit(self, method: str) -> AsyncIterator[None]:
        raise RequestError(grpc.StatusCode.UNAVAILABLE, "the server is starting; retry shortly", self.pushback())
        yield  # a generator all the same, as asynccontextmanager needs

    def cut_off(self) -> bool:
        return False  # no call is ever let in, so none is cut off

    def pushback(self) -> float:
        """When the service is expected to exist: past the guess, as long again as it has taken beyond it (as
        ``LoadProgress`` expects of a step that overruns)."""
        return spread(max(STARTING_FLOOR_S, abs(STARTING_S - (time.perf_counter() - self.began))))


def _refusal(name: str, streams: bool) -> Callable[..., Any]:
    """A handler for method ``name`` whose body never runs: ``rpc``'s guard refuses the call at admission,
    which counts it, logs it and sends the pushback as for every other call."""
    if streams:
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            return
            yield
    else:
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[misc]
            return None
    handler.__name__ = name
    return rpc(handler)


def _forwarding(name: str, streams: bool) -> Callable[..., Any]:
    """Method ``name`` of ``ForwardingServicer``: the real servicer's, or the refusal before it exists. The
    request is handed on as it came, a message or (client streaming) the iterator of them; a reply stream is
    an async generator, as gRPC tells the kinds of handler apart by that."""
    refusal = _refusal(name, streams)

    def handler(self: ForwardingServicer) -> Callable[..., Any]:
        return getattr(self.service, name) if self.service is not None else functools.partial(refusal, self)

    if streams:
        async def stream(self: ForwardingServicer, request: Any,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # aclosing: a stream that gRPC closes early closes the real one now, which runs its clean-up
            async with contextlib.aclosing(handler(self)(request, context)) as items:
                async for item in items:
                    yield item
        stream.__name__ = name
        return stream

    async def unary(self: ForwardingServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await handler(self)(request, context)
    unary.__name__ = name
    return unary


for _method in pb.DESCRIPTOR.services_by_name["AudioGan"].methods:
    setattr(ForwardingServicer, _method.name, _forwarding(_method.name, _method.server_streaming))
