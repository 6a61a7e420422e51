"""The ``audiogan-server`` command's entry point, in a module of its own so that it runs before the server's
imports (gRPC, then torch while the server listens): a Ctrl-C at any moment of start-up ends the server with
one line and exit status 130, the shell's for an interrupt, never a KeyboardInterrupt's traceback.

Which ending an interrupt gets depends on when it comes: until the server has installed its own signal
handlers (imports, configuration, binding its port) the one below, exit 130; after, while torch is imported
and the models load, the server's "stopped while loading the models" (exit 0, as for SIGTERM then); once
serving, a drain and exit 0."""

from __future__ import annotations

import os
import signal
from types import FrameType


def quiet_interrupts() -> None:
    """Make an interrupt before the server's own handlers one line and exit 130."""
    signal.signal(signal.SIGINT, _interrupted)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # Wherever start-up was (inside an import, maybe), nothing of it needs undoing: no call has been taken.
    os.write(2, b"audiogan-server: interrupted while starting\n")
    os._exit(128 + signum)


def main() -> None:
    quiet_interrupts()
    from audiogan_server.main import main as serve

    serve()
