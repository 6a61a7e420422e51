"""Where rendered audio goes: encoded once, written atomically, recorded in a resume log."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import torch

from audiogan.audio.io import encode_audio, fsync_dir, remove_stale_temp_files, resample, write_atomic
from audiogan.render.manifest import SIDECAR_SUFFIXES, ManifestError, beside

STATE_FILE = ".audiogan-render.jsonl"
LOCK_FILE = ".audiogan-render.lock"
ERRORS_FILE = "errors.jsonl"
PREVIOUS_ERRORS_FILE = "errors.prev.jsonl"
log = logging.getLogger("audiogan.render")


def encode_file(wave: torch.Tensor, native_rate: int, rate: int | None, suffix: str) -> tuple[bytes, float]:
    """Audio -> complete WAV or FLAC file bytes (16-bit), resampled to ``rate``; also its duration."""
    rate = rate or native_rate
    wave = resample(wave.detach().float().cpu(), native_rate, rate)
    return encode_audio(wave, rate, suffix), wave.numel() / rate


class OutputBusyError(RuntimeError):
    """Two renders into one folder would interleave their resume logs."""


class DiskFullError(RuntimeError):
    """No room left where --out is: every job after would fail the same way after its rendering, so the run
    stops (it once went on computing every remaining job). ``summary`` is what the run did until then."""

    def __init__(self, path: str | Path, exc: OSError) -> None:
        super().__init__(f"{exc.strerror or 'no space left on the device'} writing {path}: the run stopped; "
                         "make room and run the same command again, it resumes where this one stopped")
        self.summary: Any = None


@contextlib.contextmanager
def _room(path: str | Path) -> Iterator[None]:
    """OSErrors of a full disk or quota as DiskFullError; others as they are."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path, exc) from exc  # the output, not its temp file
        raise


class OutputDir:
    """``--out``: atomic file writes plus two logs: the resume state, appended across runs, and errors.jsonl,
    this run's failures (the last run's become errors.prev.jsonl).

    A job counts as done only once its file is in place *and* its key is logged, so a run killed at
    any point leaves every logged output complete; anything else is rendered again.
    """

    def __init__(self, root: str | Path) -> None:
        with _room(root):
            self._open(root)

    def _open(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.root / LOCK_FILE, "w")  # noqa: SIM115 -- held for the run
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise OutputBusyError(f"another render is writing into {self.root}") from None
        # Not only this folder's renders write here (one into a subfolder, `audiogan vocode -o`): only temp
        # files no live process writes are taken.
        if removed := remove_stale_temp_files(self.root):
            log.info("removed %d temp file%s that a killed run left in %s", removed, "s" * (removed != 1), self.root)
        # Failures of an earlier run may since have been rendered: errors.jsonl lists only this run's.
        errors = self.root / ERRORS_FILE
        if errors.is_file():
            errors.replace(self.root / PREVIOUS_ERRORS_FILE)
            fsync_dir(self.root)  # or a power cut could bring the last run's failures back as this run's
        self.lock = threading.Lock()
        self.done: dict[str, str] = {}
        self.sizes: dict[str, dict[str, int]] = {}  # output -> the bytes of each file its rendering wrote
        self.sidecars: dict[str, list[str]] = {}  # output -> files its logged rendering wrote beside it (captions)
        # output -> every file beside it a render here wrote or began to write: the only ones it may remove.
        self.written: dict[str, set[str]] = {}
        state = self.root / STATE_FILE
        if state.is_file():
            for line in state.read_text().splitlines():
                try:
                    self._replay(json.loads(line))
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    continue  # a line cut short by a kill
        self._state = open(state, "a", encoding="utf-8")  # noqa: SIM115 -- held for the run
        self._errors: TextIO | None = None

    def _replay(self, entry: dict[str, Any]) -> None:
        """One line of the resume log: a finished output, or the sidecars a write was about to put beside one."""
        output = entry["output"]
        if "writing" in entry:
            self.written.setdefault(output, set()).update(entry["writing"])
            return
        self.done[output] = entry["key"]
        self.sizes[output] = dict(entry.get("sizes", {}))  # none in logs of older versions: presence only
        self.sidecars[output] = list(entry.get("sidecars", []))
        self.written[output] = set(self.sidecars[output])  # as write() leaves it: older ones were removed

    def _log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._state.write(json.dumps(entry) + "\n")
            self._state.flush()

    def path(self, output: str) -> Path:
        target = (self.root / output).resolve()
        if not target.is_relative_to(self.root):  # manifest checks refuse this already; symlinks could not
            raise ValueError(f"output {output!r} resolves outside {self.root}")
        return target

    def is_done(self, output: str, key: str) -> bool:
        """Logged with this key, and every file still there with the size it was written with: an output
        cut short or emptied since (a power cut, a full disk, a copy) is rendered again."""
        files = [output, *self.sidecars.get(output, [])]
        sizes = self.sizes.get(output, {})
        return self.done.get(output) == key and all(self._intact(f, sizes.get(f)) for f in files)

    def _intact(self, name: str, size: int | None) -> bool:
        path = self.path(name)
        try:
            return path.is_file() and (size is None or path.stat().st_size == size)
        except OSError:
            return False

    def write(self, output: str, key: str, data: bytes, sidecars: dict[str, bytes] | None = None) -> None:
        """The output and any files beside it; the sidecars first, so a logged output has them all, and
        none left from an earlier rendering of it. Raises DiskFullError where there is no room."""
        target = self.path(output)  # first: it also checks the folder the sidecars are dropped from
        with _room(target):
            self._write(output, target, key, data, sidecars or {})

    def _write(self, output: str, target: Path, key: str, data: bytes, sidecars: dict[str, bytes]) -> None:
        if sidecars:  # logged before they exist: a run killed mid-write still knows they are its own
            self._log({"output": output, "writing": list(sidecars)})
            with self.lock:
                self.written.setdefault(output, set()).update(sidecars)
        for name, content in sidecars.items():
            write_atomic(self.path(name), content)
        self._drop_stale_sidecars(output, set(sidecars))
        write_atomic(target, data)
        sizes = {output: len(data), **{name: len(content) for name, content in sidecars.items()}}
        with self.lock:
            self.done[output] = key
            self.sizes[output] = sizes
            self.sidecars[output] = list(sidecars)
            self.written[output] = set(sidecars)
        self._log({"output": output, "key": key, **({"sidecars": list(sidecars)} if sidecars else {}),
                   "sizes": sizes})

    def _drop_stale_sidecars(self, output: str, keep: set[str]) -> None:
        """Captions an earlier rendering of ``output`` wrote beside it describe the old audio. Only files the
        resume log says a render here wrote are removed: a same-stem .json, .vtt or .srt the user put there is
        theirs, and so is another output's (a.wav's a.vtt beside a.flac)."""
        with self.lock:
            claimed = {name for other, names in self.sidecars.items() if other != output for name in names}
            ours = set(self.written.get(output, ()))
        allowed = {beside(output, suffix) for suffix in SIDECAR_SUFFIXES}  # whatever the log says
        for name in sorted(ours & allowed - keep - claimed):
            stale = self.root / name  # not resolved: write_atomic never leaves a symlink, so one is the user's
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()

    def error(self, line: int, output: str | None, kind: str | None, reason: str) -> None:
        with self.lock, _room(self.root / ERRORS_FILE):
            if self._errors is None:
                self._errors = open(self.root / ERRORS_FILE, "a", encoding="utf-8")  # noqa: SIM115
            self._errors.write(json.dumps({"line": line, "output": output, "kind": kind, "error": reason}) + "\n")
            self._errors.flush()

    def invalid(self, errors: Iterable[ManifestError]) -> None:
        """Manifest lines refused as invalid, listed with this run's failures (``output`` and ``kind`` null)."""
        for error in errors:
            self.error(error.line, None, None, f"invalid: {error.reason}")

    def close(self) -> None:
        self._state.close()
        if self._errors is not None:
            self._errors.close()
        self._lockfile.close()


def record_invalid(out_dir: str | Path, errors: Iterable[ManifestError]) -> None:
    """A run refused for invalid manifest lines renders nothing, yet errors.jsonl must then list this run's
    problems, not the last run's failures: under the folder's lock, rotate it and list the invalid lines.
    Raises OutputBusyError while another render writes there."""
    out = OutputDir(out_dir)
    try:
        out.invalid(errors)
    finally:
        out.close()
