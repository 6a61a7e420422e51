"""Each call's request id: the caller's ``x-request-id`` where it is sane, else one made here."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

from audiogan_client.request_ids import REQUEST_ID_KEY, is_sane, new_request_id

T = TypeVar("T")

# The id of the call this task serves: gRPC runs each call in a task of its own, and what is set here stays
# in that task's context (never reset: a stream's generator may be closed from another context).
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id_of(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's first ``x-request-id``, or a new id where it sent none or one that is not sane (too
    long, empty, not visible ASCII): a caller's junk never reaches the log."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            return value if is_sane(value) else new_request_id()
    return new_request_id()


def request_id_metadata(request_id: str) -> tuple[tuple[str, str], ...]:
    return ((REQUEST_ID_KEY, request_id),)


class RequestIdFilter(logging.Filter):
    """Puts the id of the call a record comes from on it, as ``record.request_id`` ("" outside any call), so
    that whatever a call causes (a conversion's warning, a text's) can be tied to it. A record that brings
    its own (a call's line, written where its stream may already be closed from another context) keeps it.
    Work batched across calls runs outside any call's context: its lines carry none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = current.get()
        return True


async def run_in_call(executor: Executor, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on ``executor`` for this call alone, in a copy of its context (as ``asyncio.to_thread``
    runs its work; ``run_in_executor`` alone runs it in none), so that the lines it logs carry the call's id."""
    return await asyncio.get_running_loop().run_in_executor(executor, contextvars.copy_context().run, work, *args)
