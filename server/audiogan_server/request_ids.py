"""Each call's request id: the caller's ``x-request-id`` where it is sane, else one made here."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

from audiogan_client.request_ids import REQUEST_ID_KEY, is_sane, new_request_id

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
