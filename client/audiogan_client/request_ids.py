"""Request ids: what matches a call's failure, as its caller saw it, to the server's log line for it.

A call carries its id in the ``x-request-id`` metadata (the header's common name); ``audiogan-server`` takes
the caller's where it passes :func:`check_request_id`, makes one with :func:`new_request_id` where not, and
sends the id it used back in the reply's trailers (and a stream's headers).
"""

from __future__ import annotations

import re
import secrets
from typing import TypeGuard

REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID_CHARS = 128
# Visible ASCII, no space: an id is one word in a text log line, and a value of gRPC's ASCII metadata.
_SANE = re.compile(rf"[!-~]{{1,{MAX_REQUEST_ID_CHARS}}}")


def new_request_id() -> str:
    """16 hex digits: 64 random bits, short enough to read out, too many to repeat in any server's logs."""
    return secrets.token_hex(8)


def is_sane(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SANE.fullmatch(value) is not None


def check_request_id(value: str) -> str:
    """``value``, or ValueError saying why a server would not take it (and would log another id instead)."""
    if is_sane(value):
        return value
    if not isinstance(value, str):
        raise ValueError(f"request_id {value!r}: not a string")
    shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
    if not value or len(value) > MAX_REQUEST_ID_CHARS:
        raise ValueError(f"request_id {shown}: {len(value)} characters; give 1..{MAX_REQUEST_ID_CHARS}")
    raise ValueError(f"request_id {shown}: holds a space or a character that is not visible ASCII")
