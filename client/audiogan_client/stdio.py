"""Standard input as the command line's ``-``, with the rules of the ``audiogan`` CLI's pipes.

``sox in.mp3 -t wav - | audiogan-client convert - --to violin -o - | aplay``: an input given as ``-`` is read
to its end before the server is called, so a terminal or an empty pipe is a usage error said at once, and
nothing is sent. Standard input can be read once, so at most one of a command's inputs may be ``-``.
"""

from __future__ import annotations

import sys

STDIO = "-"
STDIN_NAME = "(standard input)"  # the name errors give the input, as `audiogan` names it


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
    """All of standard input, given as ``-`` for ``what`` ("audio", "a mel"). A terminal is refused rather
    than waited on (the user meant a file, or forgot the pipe), and so is a pipe that brought nothing."""
    stream = sys.stdin
    if stream is not None and stream.isatty():
        raise ValueError(f"- reads {what} from standard input, which is a terminal: pipe it in "
                         "(... | audiogan-client ... -) or name a file")
    data = stream.buffer.read() if stream is not None else b""  # None: started with standard input closed
    if not data:
        raise ValueError(f"standard input is empty: - reads {what} from it, and none was piped in")
    return data


def check_stdout(option: str) -> None:
    """Refuse audio bound for standard output where that is a terminal, before the call: its bytes there
    are noise and can upset the terminal (``option``: what sent it there, "-o -" or "--raw")."""
    if sys.stdout is not None and sys.stdout.isatty():
        raise ValueError(f"{option}: standard output is a terminal, not a place for audio's bytes; pipe it on "
                         "(| aplay) or redirect it (> out.wav)")
