"""Standard input as the command line's ``-``, with the rules of the ``audiogan`` CLI's pipes.

``sox in.mp3 -t wav - | audiogan-client convert - --to violin -o - | aplay``: an input given as ``-`` is read
to its end before the server is called, so a terminal or an empty pipe is a usage error said at once, and
nothing is sent. Standard input can be read once, so at most one of a command's inputs may be ``-``.

Streamed speech goes out as a streamed WAV (``audiogan-client say "Hi" --stream -o - | aplay``): the header
with the first chunk, its sizes saying "length unknown", then each chunk as it arrives; into a regular file
the sizes are made exact at the end.
"""

from __future__ import annotations

import os
import select
import stat
import struct
import sys
from typing import BinaryIO

STDIO = "-"
STDIN_NAME = "(standard input)"  # the name errors give the input, as `audiogan` names it


# A streamed WAV's data size, as `audiogan`'s, and the one sox writes into a pipe: positive as a signed 32-bit
# number (not 0xFFFFFFFF, the other "unknown" in use), with room for the RIFF size to be the data's plus 36 as
# the format has it, whole samples. Readers stop where the pipe ends, before it (Python's wave, sox, aplay).
STREAMED_DATA_SIZE = 0x7FFFF000

# The most standard input that ``-`` takes, as `audiogan`'s: only a stream without end (``cat /dev/zero |``)
# or a wrong one meets it, refused once this much has come rather than when memory runs out. A server refuses
# much less (limits.max_upload_bytes: 50 MiB by default, its operator's to raise), and says so; the client
# does not know a server's limit, so it holds files and standard input alike to nothing tighter.
MAX_STDIN_BYTES = 1 << 30
STDIN_CHUNK_BYTES = 1 << 20  # read a piece at a time, so the bound is met without reading past it


# The same header as audiogan.audio.stdio.wav_header builds; below, the same test of a file for rewriting
# (rewritable_at there), writer that waits for room and bounded stdin reader: this package is installed
# without audiogan (and torch) and cannot import it, so it has these copies; a test of audiogan's checks that
# the two headers agree.
def wav_header(sample_rate: int, data_size: int = STREAMED_DATA_SIZE) -> bytes:
    """The 44 bytes before the samples of a mono 16-bit PCM WAV holding ``data_size`` bytes of them."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)  # PCM, mono, rates, 2-byte frames
    return b"".join((b"RIFF", struct.pack("<I", data_size + 36), b"WAVE", b"fmt ", struct.pack("<I", len(fmt)),
                     fmt, b"data", struct.pack("<I", data_size)))


class WavStream:
    """A mono 16-bit WAV written to descriptor ``fd`` a chunk at a time, each at once (unbuffered) so that a
    player downstream starts with the first: the header goes with the first chunk, whose rate is the stream's.
    Closed, a WAV that went into a regular file (``> out.wav``) gets its exact sizes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.sample_rate = 0
        self._bytes = 0
        self._header_at: int | None = None  # where the header went, in a file that can be rewritten there

    def write(self, pcm: bytes, sample_rate: int) -> None:
        if not self.sample_rate:
            self.sample_rate = sample_rate
            self._header_at = _rewritable_at(self._fd)
            write_all(self._fd, wav_header(sample_rate))
        write_all(self._fd, pcm)
        self._bytes += len(pcm)

    def close(self) -> None:
        """The end of the audio: in a file, the header's sizes made exact (past 4 GiB they cannot be)."""
        if self._header_at is None or self._bytes > 0xFFFFFFFF - 36:
            return
        end = os.lseek(self._fd, 0, os.SEEK_CUR)
        os.lseek(self._fd, self._header_at, os.SEEK_SET)
        write_all(self._fd, wav_header(self.sample_rate, self._bytes))
        os.lseek(self._fd, end, os.SEEK_SET)


def write_stdout(data: bytes) -> None:
    """Audio's bytes onto standard output, whole: after what Python holds for it, unbuffered."""
    sys.stdout.flush()
    write_all(sys.stdout.fileno(), data)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``, as `audiogan`'s writer: where a parent made the descriptor non-blocking
    (node's child pipes, some process managers) and it is full, wait until it takes more, not fail mid-WAV."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            _wait_writable(fd)


def _wait_writable(fd: int) -> None:
    """Until ``fd`` takes more bytes (or its reader is gone, which the next write says)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.poll()
    else:  # Windows, whose pipes are not made non-blocking this way
        select.select([], [fd], [])


def _rewritable_at(fd: int) -> int | None:
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


def is_stdio(path: str | None) -> bool:
    return path == STDIO


def name_of(path: str) -> str:
    """The name an input's errors give it: its path, or STDIN_NAME for ``-``."""
    return STDIN_NAME if is_stdio(path) else path


def one_reader(inputs: dict[str, str | None]) -> None:
    """Refuse two inputs (keyed by the option that names each) given as ``-``: the first would take all of
    standard input and leave the second nothing. Checked before either is read."""
    readers = [option for option, path in inputs.items() if is_stdio(path)]
    if len(readers) > 1:
        raise ValueError(f"{' and '.join(readers)} are both -, and standard input can be read once: "
                         "pipe in one of them and name a file for the other")


def read_stdin(what: str) -> bytes:
    """All of standard input, given as ``-`` for ``what`` ("audio", "a mel"), up to MAX_STDIN_BYTES. A terminal
    is refused rather than waited on (the user meant a file, or forgot the pipe), and so is a pipe that brought
    nothing or more than the bound."""
    stream = sys.stdin
    if stream is not None and stream.isatty():
        raise ValueError(f"- reads {what} from standard input, which is a terminal: pipe it in "
                         "(... | audiogan-client ... -) or name a file")
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


def check_stdout(option: str) -> None:
    """Refuse audio bound for standard output where that is a terminal, before the call: its bytes there
    are noise and can upset the terminal (``option``: what sent it there, "-o -" or "--raw"). A closed
    standard output (``>&-``, which leaves Python's sys.stdout None) is refused too: there is nowhere to write."""
    if sys.stdout is None:
        raise ValueError(f"{option}: standard output is closed: pipe it on (| aplay) or redirect it (> out.wav)")
    if sys.stdout.isatty():
        raise ValueError(f"{option}: standard output is a terminal, not a place for audio's bytes; pipe it on "
                         "(| aplay) or redirect it (> out.wav)")
