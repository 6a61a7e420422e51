"""Dynamic batching: requests of one kind that arrive within a few milliseconds share one forward pass."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc

from audiogan_server.errors import RequestError, overloaded
from audiogan_server.overload import Durations

log = logging.getLogger("audiogan.server")
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


@dataclass
class _Waiting(Generic[I]):
    item: I
    future: asyncio.Future[Any]
    enqueued: float = field(default=0.0)


class DynamicBatcher(Generic[I, O]):
    """``await batcher.submit(item)`` returns ``run([... item ...])``'s result for that item.

    The first item of a batch waits at most ``max_wait_s`` for others; while a batch runs on the executor
    new items queue up, so under load batches grow on their own. An item whose caller went away
    (cancelled, deadline) is dropped before the batch runs. With ``due``, a pass takes the most urgent
    items first (earliest due; ties in arrival order) instead of the longest waiting. ``run`` returns one
    result per item, or an ``Exception`` for an item that failed alone; when a whole pass fails, its items
    are rerun one by one so that only the bad one fails. Should the loop itself die, every waiting and later
    caller gets an error.
    """

    def __init__(self, name: str, run: Callable[[list[I]], Sequence[O | Exception]], executor: Executor,
                 max_batch: int, max_wait_s: float, max_queue: int,
                 on_batch: Callable[[str, int], None] | None = None,
                 due: Callable[[I], float] | None = None) -> None:
        self.name = name
        self.run = run
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.due = due
        self.queue: collections.deque[_Waiting[I]] = collections.deque()
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.running: list[_Waiting[I]] = []  # taken off the queue, results not yet handed out
        self.ended: tuple[grpc.StatusCode, str] | None = None  # set once the loop is gone
        # A full queue has room again once the pass under way ends and the next takes its items: a caller
        # refused for it is told to come back then (before any pass has ended, a tenth of a second is taken
        # for one: a stream chunk's on 2 cores).
        self.passes = Durations(initial_s=0.1)
        self.pass_started: float | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")
        self.task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """Without this a dead loop is silent and its callers, present and future, wait forever."""
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            self.ended = (grpc.StatusCode.UNAVAILABLE, f"{self.name} has stopped: the server is shutting down")
        else:
            log.error("batcher %s died; its calls fail from now on", self.name, exc_info=exc)
            self.ended = (grpc.StatusCode.INTERNAL, f"internal error: {self.name} stopped ({type(exc).__name__})")
        for waiting in [*self.running, *self.queue]:
            if not waiting.future.done():
                waiting.future.set_exception(RequestError(*self.ended))
        self.running.clear()
        self.queue.clear()

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def submit(self, item: I) -> O:
        if self.ended:
            raise RequestError(*self.ended)
        loop = asyncio.get_running_loop()
        if len(self.queue) >= self.max_queue:
            under_way = [] if self.pass_started is None else [loop.time() - self.pass_started]
            raise overloaded(f"{self.name} queue is full ({self.max_queue} waiting); retry later",
                             self.passes.pushback(under_way))
        waiting = _Waiting(item, loop.create_future(), loop.time())
        self.queue.append(waiting)
        self.arrived.set()
        return await waiting.future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.arrived.clear()
                await self.arrived.wait()
            wait = self.queue[0].enqueued + self.max_wait_s - loop.time()
            while len(self.queue) < self.max_batch and wait > 0:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), wait)
                except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
                    break
                wait = self.queue[0].enqueued + self.max_wait_s - loop.time() if self.queue else 0
            batch = self.running  # so that, should the loop die mid-pass, _loop_ended fails these callers too
            self._take(batch)
            if not batch:
                continue
            try:
                results = await self._pass([w.item for w in batch])
            except Exception as exc:
                # One bad item must not fail the calls that merely shared its pass: each is rerun alone
                # (unless its caller has gone meanwhile).
                results = [exc if len(batch) == 1 or w.future.done() else await self._alone(w.item) for w in batch]
            for waiting, result in zip(batch, results, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(result, Exception):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)
            batch.clear()

    def _take(self, batch: list[_Waiting[I]]) -> None:
        """Moves the next pass's items from the queue into ``batch``; callers that have gone are dropped."""
        if self.due:  # only an ordered batcher looks at its whole queue: a first-come one takes from the front
            due = self.due
            self.queue = collections.deque(sorted((w for w in self.queue if not w.future.done()),
                                                  key=lambda w: due(w.item)))  # stable: ties keep arrival order
        while self.queue and len(batch) < self.max_batch:
            waiting = self.queue.popleft()
            if not waiting.future.done():
                batch.append(waiting)

    async def _pass(self, items: list[I]) -> Sequence[O | Exception]:
        if self.on_batch:
            self.on_batch(self.name, len(items))
        loop = asyncio.get_running_loop()
        self.pass_started = start = loop.time()
        try:
            return await loop.run_in_executor(self.executor, self.run, items)
        finally:
            self.pass_started = None
            self.passes.observe(loop.time() - start)

    async def _alone(self, item: I) -> O | Exception:
        try:
            (result,) = await self._pass([item])
        except Exception as exc:
            return exc
        return result


K = TypeVar("K")


def run_grouped(items: list[I], key: Callable[[I], K], run: Callable[[K, list[I]], Sequence[O]]) -> list[O]:
    """One ``run`` per distinct key (items a single forward pass cannot mix), results in the items' order."""
    groups: dict[K, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    out: list[O | None] = [None] * len(items)
    for k, index in groups.items():
        for i, result in zip(index, run(k, [items[i] for i in index]), strict=True):
            out[i] = result
    return out  # type: ignore[return-value]
