"""Worker processes that leave Ctrl-C to the command that started them."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def children_ignore_ctrl_c() -> Iterator[None]:
    """Processes started inside ignore SIGINT for life (a disposition a child inherits, and Python keeps).

    A terminal's Ctrl-C reaches every process of the command, not only the one that can stop it cleanly:
    spawned workers caught it in their imports or mid-job and each printed a traceback beneath the command's
    own "interrupted" line. The parent stops the run; its workers go with their pool.
    """
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
