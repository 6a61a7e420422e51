"""Memory for whole replies: a unary call holds its audio at the model's rate, resampled and encoded, at
once, so calls that each pass ``limits.max_audio_seconds`` could together still take more memory than the
machine has (64 calls for 600 s at 96 kHz: about 50 GB). Streams hold a chunk at a time and are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

import grpc
from audiogan_client._proto import audiogan_pb2 as pb

from audiogan_server.errors import RequestError

# The server's peak memory growth per sample of reply, counting the model's rate and the output rate once
# each: measured 700 MB for a 600 s Vocode at 96 kHz (PCM16 or float32; 16 kHz model), 440 MB at 48 kHz
# FLAC, 115-270 MB at 16 kHz, 240-400 MB for 64 notes at 96 kHz (benchmarks/RESULTS.md, 2026-12-07).
BYTES_PER_SAMPLE = 12
# gRPC's limit on one message the server sends (set in main.serve). A unary reply is one message: one over it
# failed only once made, after minutes of work, as "Sent message larger than max", and was logged OK.
MAX_MESSAGE_BYTES = 256 * 2**20
MESSAGE_HEADROOM = 4 * 2**20  # for a reply's other fields: timings take a few tens of bytes a word


def reply_bytes(seconds: float, native_rate: int, output_rate: int) -> int:
    """The memory a unary reply of ``seconds`` of audio takes to make and send."""
    return int(BYTES_PER_SAMPLE * seconds * (native_rate + output_rate))


def check_message_size(seconds: float, rate: int, encoding: int, what: str) -> None:
    """Refuses a unary reply whose audio, ``seconds`` at ``rate`` in ``encoding``, would not fit one message."""
    size = int(seconds * rate) * (4 if encoding == pb.FLOAT32 else 2)  # WAV and FLAC: about PCM16's size
    if size > MAX_MESSAGE_BYTES - MESSAGE_HEADROOM:
        raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"{what} would be a reply of about {size / 2**20:.0f} MB, over gRPC's "
                           f"{MAX_MESSAGE_BYTES // 2**20} MB message limit; ask for PCM16 rather than FLOAT32, a "
                           "lower sample rate or less audio per call, or stream it (SynthesizeStream)")


class ReplyBudget:
    """At most ``megabytes`` of replies in the making at once. A call that does not fit waits its turn,
    first come first served (a small call does not overtake a large one that waits, which would starve
    it); one that could never fit is refused at once. A caller that gives up while waiting leaves the queue."""

    def __init__(self, megabytes: float, report: Callable[[int, int], None] | None = None) -> None:
        self.capacity = int(megabytes * 2**20)
        self.used = 0
        self.waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.report = report  # (bytes held, calls waiting), after each change: the server's metrics

    @contextlib.asynccontextmanager
    async def hold(self, size: int, what: str) -> AsyncIterator[None]:
        if size > self.capacity:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{what} takes about {size / 2**20:.0f} MB to make, more than this server's "
                               f"limits.max_reply_mb ({self.capacity / 2**20:.0f}); ask for less audio or a "
                               "lower sample rate, or stream it")
        if self.waiting or self.used + size > self.capacity:
            turn = asyncio.get_running_loop().create_future()
            entry = (size, turn)
            self.waiting.append(entry)
            self._reported()
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # granted just as its caller left: give it back
                    self._release(size)
                else:
                    self.waiting.remove(entry)
                    self._wake()
                raise
        else:
            self.used += size
            self._reported()
        try:
            yield
        finally:
            self._release(size)

    def _release(self, size: int) -> None:
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        while self.waiting and self.used + self.waiting[0][0] <= self.capacity:
            size, turn = self.waiting.popleft()
            self.used += size
            turn.set_result(None)
        self._reported()

    def _reported(self) -> None:
        if self.report is not None:
            self.report(self.used, len(self.waiting))
