"""Log lines written while a render job is worked on name the job: a warning such as "dropped characters
the voice cannot say" or "notes moved by octaves" otherwise does not say which of a manifest's lines it is
about."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from audiogan.render.manifest import Job

_SHOWN = 3  # jobs a batch's label names; a batch of 64 notes would fill the line
_WORKING_ON: ContextVar[str | None] = ContextVar("render job", default=None)


def label(jobs: Sequence[Job]) -> str:
    """'line 3 (a.wav)', or for a batch its first jobs and how many more."""
    shown = ", ".join(f"line {job.line} ({job.output})" for job in jobs[:_SHOWN])
    return shown + (f" and {len(jobs) - _SHOWN} more of its batch" if len(jobs) > _SHOWN else "")


@contextlib.contextmanager
def working_on(jobs: Sequence[Job]) -> Iterator[None]:
    """Log records made inside (in this thread) are about ``jobs``; the innermost ``working_on`` names them."""
    token = _WORKING_ON.set(label(jobs))
    try:
        yield
    finally:
        _WORKING_ON.reset(token)


@contextlib.contextmanager
def labelled_records() -> Iterator[None]:
    """While inside, a log record made within ``working_on`` starts with its jobs' label (and carries it as
    ``record.render_job``), whatever logger or handler prints it."""
    made_by = logging.getLogRecordFactory()

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made_by(*args, **kwargs)
        if (jobs := _WORKING_ON.get()) is not None:
            record.render_job = jobs
            # With arguments the message is a %-format: a '%' in an output name must stay a '%'.
            record.msg = f"{jobs.replace('%', '%%') if record.args else jobs}: {record.msg}"
        return record

    logging.setLogRecordFactory(make)
    try:
        yield
    finally:
        logging.setLogRecordFactory(made_by)
