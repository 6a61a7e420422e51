"""Standard input and output as the command line's ``-``: an input piped in whole, audio piped out as a WAV.

Speech is piped out as it is made (``audiogan say "Hi" -o - | aplay``): a WAV header whose sizes say "length
unknown", then each sentence's samples as soon as it is vocoded; into a regular file the sizes are made exact
at the end.

``sox in.mp3 -t wav - | audiogan vocode - -o - | aplay``: the input is read to its end before any model
loads (an empty pipe or a terminal is refused at once, not after the load), and while a command's audio
is bound for standard output everything else it prints goes to standard error, so the pipe carries the
WAV's bytes alone.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # the command line parses its arguments with this module, before torch is imported
    import numpy as np
    import torch

STDIO = "-"
STDIN_NAME = "(standard input)"  # as load_audio names the other sources that are not paths: "(uploaded bytes)"
STDOUT_NAME = "a WAV to standard output"  # as reports say it: "wrote a WAV to standard output (2.00 s ...)"

# A streamed WAV's data size, when its header goes out before the audio is made: the one sox writes into a
# pipe. Not 0xFFFFFFFF, the other size in use for "unknown": 0x7FFFF000 is positive for readers that hold
# sizes as signed 32-bit numbers, it leaves room for the RIFF size to be, as the format has it, the data's size
# plus the 36 header bytes after it, and it is whole samples. Readers stop where the pipe ends, before it
# (soundfile, Python's wave, sox and aplay do, tried); one that believed it would stop after 18.6 hours of
# 16 kHz speech. 0 would say "no audio".
STREAMED_DATA_SIZE = 0x7FFFF000

# The most standard input that ``-`` takes: far more than any input these commands can use (an hour of 48 kHz
# stereo WAV is 0.65 GiB), so that only a stream without end (``cat /dev/zero |``) or a wrong one meets it, and
# is refused once this much has come, before it takes the machine's memory. Files have no such bound.
MAX_STDIN_BYTES = 1 << 30
STDIN_CHUNK_BYTES = 1 << 20  # read a piece at a time, so the bound is met without reading past it

# The client package (client/audiogan_client/stdio.py) has its own copies of this function, of rewritable_at,
# of the bounded stdin reading (read_stdin, _read_bounded) and of the writer that waits for room: it is
# installed without audiogan (and torch) and must not import it; a test checks that the two headers agree.


def wav_header(sample_rate: int, data_size: int = STREAMED_DATA_SIZE) -> bytes:
    """The 44 bytes before the samples of a mono 16-bit PCM WAV holding ``data_size`` bytes of them."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)  # PCM, mono, rates, 2-byte frames
    return b"".join((b"RIFF", struct.pack("<I", data_size + 36), b"WAVE", b"fmt ", struct.pack("<I", len(fmt)),
                     fmt, b"data", struct.pack("<I", data_size)))


def is_stdio(path: str | None) -> bool:
    return path == STDIO


def read_stdin(what: str) -> bytes:
    """All of standard input, given as ``-`` for ``what`` ("audio", "a mel"), up to MAX_STDIN_BYTES. A terminal
    is refused rather than waited on (the user meant a file, or forgot the pipe), and so is a pipe that brought
    nothing or more than the bound."""
    stream = sys.stdin
    if stream is not None and stream.isatty():
        raise ValueError(f"- reads {what} from standard input, which is a terminal: pipe it in "
                         "(... | audiogan ... -) or name a file")
    data = _read_bounded(stream.buffer, what) if stream is not None else b""  # None: started with it closed
    if not data:
        raise ValueError(f"standard input is empty: - reads {what} from it, and none was piped in")
    return data


def _read_bounded(stream: BinaryIO, what: str) -> bytes:
    data = bytearray()
    while chunk := stream.read(min(STDIN_CHUNK_BYTES, MAX_STDIN_BYTES + 1 - len(data))):
        data += chunk
        if len(data) > MAX_STDIN_BYTES:
            raise ValueError(f"standard input brought more than {_bytes(MAX_STDIN_BYTES)}, the most - takes: "
                             f"was it {what}? Save it to a file and name that")
    return bytes(data)


def _bytes(size: int) -> str:
    return f"{size >> 30} GiB" if size % (1 << 30) == 0 else f"{size} bytes"


def source(path: str, what: str) -> tuple[str | bytes, str]:
    """An input as the readers take it (a path, or for ``-`` standard input's bytes, read now) and the
    name its errors give it."""
    return (read_stdin(what), STDIN_NAME) if is_stdio(path) else (path, path)


def check_stdout(option: str = "-o -") -> None:
    """Refuse audio onto a terminal before any work (``option``: what sent it there, ``-o -`` or ``--raw``):
    its bytes there are noise, and can upset the terminal. A closed standard output (``>&-``) is refused
    too: there is nowhere to write."""
    try:
        os.fstat(1)
    except OSError:
        raise ValueError(f"{option}: standard output is closed: pipe it on (| aplay) or redirect it "
                         "(> out.wav)") from None
    if os.isatty(1):
        raise ValueError(f"{option}: standard output is a terminal, not a place for audio's bytes; pipe it on "
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
        _write_all(self._fd, encode_audio(wave, sample_rate, ".wav"))
        return STDOUT_NAME

    def stream(self, sample_rate: int, *, wav: bool = True) -> PcmStream:
        """Standard output as a stream of 16-bit PCM (a WAV, or raw with ``wav=False``) for audio that comes
        a piece at a time."""
        if self._fd is None:
            raise ValueError(f"{self.path} is a file; only standard output (-) takes audio as it comes")
        return PcmStream(self._fd, sample_rate, wav=wav)


class PcmStream:
    """Mono 16-bit PCM written to a descriptor piece by piece, each piece at once (unbuffered), so that a
    player downstream starts with the first sentence: a WAV (its header with the first piece, see
    STREAMED_DATA_SIZE), or raw (``wav=False``, ``--raw``). Closed, a WAV that went into a regular file
    (``> out.wav``) gets its exact sizes: the file is then a WAV like any other."""

    def __init__(self, fd: int, sample_rate: int, *, wav: bool = True) -> None:
        self._fd, self.sample_rate = fd, sample_rate
        self.samples = 0
        self._header_at: int | None = None  # where the header went, in a file that can be rewritten there
        self._headed = not wav

    def write(self, pcm: bytes) -> None:
        if not self._headed:
            self._header_at = rewritable_at(self._fd)
            _write_all(self._fd, wav_header(self.sample_rate))
            self._headed = True
        _write_all(self._fd, pcm)
        self.samples += len(pcm) // 2

    def close(self) -> None:
        """The end of the audio: an empty WAV is still a WAV; in a file, the sizes are made exact."""
        self.write(b"")
        size = 2 * self.samples
        if self._header_at is None or size > 0xFFFFFFFF - 36:  # past 4 GiB the sizes cannot say it
            return
        end = os.lseek(self._fd, 0, os.SEEK_CUR)
        os.lseek(self._fd, self._header_at, os.SEEK_SET)
        _write_all(self._fd, wav_header(self.sample_rate, size))
        os.lseek(self._fd, end, os.SEEK_SET)


def rewritable_at(fd: int) -> int | None:
    """Where the next write to ``fd`` lands, if it is a regular file that can be written there again later;
    None for a pipe, a terminal or a socket, and for a file opened to append (``>> out.wav``), where every
    write lands at the end."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if sys.platform != "win32":
            import fcntl

            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
                return None
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    # Unbuffered: nothing is left in a buffer to be flushed at exit, into a pipe its reader has closed.
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a descriptor its parent made non-blocking (node's child pipes), and full
            _wait_writable(fd)


def _wait_writable(fd: int) -> None:
    """Until ``fd`` takes more bytes (or its reader is gone, which the next write says)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.poll()
    else:  # Windows, whose pipes are not made non-blocking this way
        select.select([], [fd], [])


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
