"""One training run per run folder: a lock while it trains, and no silent restart over a run's checkpoint."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the checkpoint check below still applies
    fcntl = None  # type: ignore[assignment]

from audiogan.audio.io import remove_stale_temp_files

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_HELD: dict[str, IO[str]] = {}  # run folders this process holds: a notebook's next trainer there may go on


def claim_run_dir(run_dir: Path, resume: str | None) -> IO[str]:
    """Create ``run_dir`` and hold its lock for the life of the process.

    Refused, before any data is read: a folder another process is training in (their metrics, checkpoints
    and export would interleave), and a folder holding a checkpoint when this is not ``--resume`` (rerunning
    the same command used to start again at step 0 and overwrite that checkpoint)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(run_dir)
    lock = _HELD.get(real) or (run_dir / LOCK_NAME).open("a+")  # an unwritable folder fails here, not later
    if fcntl is not None and real not in _HELD:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise ValueError(f"{run_dir} is in use by another training run (pid {holder}); give each run its "
                             f"own --run-dir") from None
    _HELD[real] = lock
    # A run killed while it wrote a checkpoint or an export leaves that file's temp copy, as large as a
    # checkpoint; every such kill (a preempted job, a lease's end) would leave one more.
    if removed := remove_stale_temp_files(run_dir):
        log.info("%s: removed %d temp file(s) of writes cut short by a killed run", run_dir, removed)
    existing = run_dir / "checkpoint.pt"
    if existing.is_file() and not resume:
        raise ValueError(f"{run_dir} holds a run's checkpoint already: continue it with --resume {existing}, "
                         f"or start afresh with another --run-dir (or after deleting this one)")
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
