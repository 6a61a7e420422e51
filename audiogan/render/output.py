"""Where rendered audio goes: encoded once, written atomically, recorded in a resume log."""

from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path
from typing import TextIO

import torch

from audiogan.audio.io import encode_audio, resample, write_atomic

STATE_FILE = ".audiogan-render.jsonl"
LOCK_FILE = ".audiogan-render.lock"
ERRORS_FILE = "errors.jsonl"
PREVIOUS_ERRORS_FILE = "errors.prev.jsonl"


def encode_file(wave: torch.Tensor, native_rate: int, rate: int | None, suffix: str) -> tuple[bytes, float]:
    """Audio -> complete WAV or FLAC file bytes (16-bit), resampled to ``rate``; also its duration."""
    rate = rate or native_rate
    wave = resample(wave.detach().float().cpu(), native_rate, rate)
    return encode_audio(wave, rate, suffix), wave.numel() / rate


class OutputBusyError(RuntimeError):
    """Two renders into one folder would interleave their resume logs."""


class OutputDir:
    """``--out``: atomic file writes plus two logs: the resume state, appended across runs, and errors.jsonl,
    this run's failures (the last run's become errors.prev.jsonl).

    A job counts as done only once its file is in place *and* its key is logged, so a run killed at
    any point leaves every logged output complete; anything else is rendered again.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.root / LOCK_FILE, "w")  # noqa: SIM115 -- held for the run
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise OutputBusyError(f"another render is writing into {self.root}") from None
        # Alone in the folder: temp files are leftovers of a killed run.
        for stale in self.root.rglob(".*.tmp"):
            stale.unlink()
        # Failures of an earlier run may since have been rendered: errors.jsonl lists only this run's.
        errors = self.root / ERRORS_FILE
        if errors.is_file():
            errors.replace(self.root / PREVIOUS_ERRORS_FILE)
        self.lock = threading.Lock()
        self.done: dict[str, str] = {}
        self.sidecars: dict[str, list[str]] = {}  # output -> files written beside it (captions)
        state = self.root / STATE_FILE
        if state.is_file():
            for line in state.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.done[entry["output"]] = entry["key"]
                    self.sidecars[entry["output"]] = list(entry.get("sidecars", []))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a kill
        self._state = open(state, "a", encoding="utf-8")  # noqa: SIM115 -- held for the run
        self._errors: TextIO | None = None

    def path(self, output: str) -> Path:
        target = (self.root / output).resolve()
        if not target.is_relative_to(self.root):  # manifest checks refuse this already; symlinks could not
            raise ValueError(f"output {output!r} resolves outside {self.root}")
        return target

    def is_done(self, output: str, key: str) -> bool:
        files = [output, *self.sidecars.get(output, [])]
        return self.done.get(output) == key and all(self.path(f).is_file() for f in files)

    def write(self, output: str, key: str, data: bytes, sidecars: dict[str, bytes] | None = None) -> None:
        """The output and any files beside it; the sidecars first, so a logged output has them all."""
        for name, content in (sidecars or {}).items():
            write_atomic(self.path(name), content)
        write_atomic(self.path(output), data)
        with self.lock:
            self.done[output] = key
            self.sidecars[output] = list(sidecars or {})
            entry = {"output": output, "key": key, **({"sidecars": list(sidecars)} if sidecars else {})}
            self._state.write(json.dumps(entry) + "\n")
            self._state.flush()

    def error(self, line: int, output: str | None, kind: str | None, reason: str) -> None:
        with self.lock:
            if self._errors is None:
                self._errors = open(self.root / ERRORS_FILE, "a", encoding="utf-8")  # noqa: SIM115
            self._errors.write(json.dumps({"line": line, "output": output, "kind": kind, "error": reason}) + "\n")
            self._errors.flush()

    def close(self) -> None:
        self._state.close()
        if self._errors is not None:
            self._errors.close()
        self._lockfile.close()

