"""Standard input and output as the command line's ``-``: an input piped in whole, audio piped out as a WAV.

``sox in.mp3 -t wav - | audiogan vocode - -o - | aplay``: the input is read to its end before any model
loads (an empty pipe or a terminal is refused at once, not after the load), and while a command's audio
is bound for standard output everything else it prints goes to standard error, so the pipe carries the
WAV's bytes alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line parses its arguments with this module, before torch is imported
    import numpy as np
    import torch

STDIO = "-"
STDIN_NAME = "(standard input)"  # as load_audio names the other sources that are not paths: "(uploaded bytes)"
STDOUT_NAME = "a WAV to standard output"  # as reports say it: "wrote a WAV to standard output (2.00 s ...)"


def is_stdio(path: str | None) -> bool:
    return path == STDIO


def read_stdin(what: str) -> bytes:
    """All of standard input, given as ``-`` for ``what`` ("audio", "a mel"). A terminal is refused rather
    than waited on (the user meant a file, or forgot the pipe), and so is a pipe that brought nothing."""
    stream = sys.stdin
    if stream is not None and stream.isatty():
        raise ValueError(f"- reads {what} from standard input, which is a terminal: pipe it in "
                         "(... | audiogan ... -) or name a file")
    data = stream.buffer.read() if stream is not None else b""  # None: started with standard input closed
    if not data:
        raise ValueError(f"standard input is empty: - reads {what} from it, and none was piped in")
    return data


def source(path: str, what: str) -> tuple[str | bytes, str]:
    """An input as the readers take it (a path, or for ``-`` standard input's bytes, read now) and the
    name its errors give it."""
    return (read_stdin(what), STDIN_NAME) if is_stdio(path) else (path, path)


def check_stdout(option: str = "-o") -> None:
    """Refuse ``-o -`` onto a terminal before any work: a WAV's bytes there are noise, and can upset it."""
    if os.isatty(1):
        raise ValueError(f"{option} -: standard output is a terminal, not a place for a WAV's bytes; pipe it on "
                         "(| aplay) or redirect it (> out.wav)")


class AudioOutput:
    """Where a command's audio goes: a .wav or .flac file, written whole (see ``write_atomic``), or for
    ``-`` a 16-bit WAV on the file descriptor that was standard output."""

    def __init__(self, path: str, fd: int | None = None) -> None:
        self.path, self._fd = path, fd

    def write(self, wave: torch.Tensor | np.ndarray, sample_rate: int) -> str:
        """Write the audio; the name to report it by (the file's path, or STDOUT_NAME)."""
        from audiogan.audio.io import encode_audio, save_audio  # torch: imported by the command's work alone

        if self._fd is None:
            return str(save_audio(self.path, wave, sample_rate))
        # Unbuffered: nothing is left in a buffer to be flushed at exit, into a pipe its reader has closed.
        view = memoryview(encode_audio(wave, sample_rate, ".wav"))
        while view:
            view = view[os.write(self._fd, view):]
        return STDOUT_NAME


@contextlib.contextmanager
def audio_output(path: str) -> Iterator[AudioOutput]:
    """The output of a command, open for its whole run. For ``-`` standard output's descriptor is kept for
    the audio and descriptor 1 points at standard error meanwhile: reports, a library's own prints (Python's
    or a C library's) and progress bars stay out of the WAV."""
    if not is_stdio(path):
        yield AudioOutput(path)
        return
    sys.stdout.flush()
    audio = os.dup(1)
    os.dup2(2, 1)
    try:
        yield AudioOutput(path, audio)
    finally:
        sys.stdout.flush()  # into standard error, where it was printed, before descriptor 1 is given back
        os.dup2(audio, 1)
        os.close(audio)
