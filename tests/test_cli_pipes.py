"""`audiogan` in shell pipelines: `-` reads an input from standard input, `-o -` writes a WAV to standard output.
Each command runs as a process of its own, with the bundled models on the CPU, as a shell pipeline runs it."""

from __future__ import annotations

import io
import os
import pty
import struct
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiogan.audio.stdio import STREAMED_DATA_SIZE, PcmStream, wav_header

SAMPLES = Path(__file__).parent.parent / "audiogan" / "samples"
DEMO_FLAC = SAMPLES / "demo.flac"
DEMO_MEL = SAMPLES / "demo_mel.npy"
HOP = 256


def audiogan(*argv: str, stdin: bytes | int = b"", stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess:
    """`audiogan ARGV` with ``stdin`` piped in (bytes) or as that descriptor (a terminal's)."""
    piped = isinstance(stdin, bytes)
    return subprocess.run([sys.executable, "-m", "audiogan.cli", *argv, "--device", "cpu"],
                          input=stdin if piped else None, stdin=None if piped else stdin, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=300)


def melody_wav() -> bytes:
    """test_timbre's melody, as a 48 kHz stereo WAV: a stream whose format and rate are told from its bytes."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_timbre import melody

    buffer = io.BytesIO()
    wave = np.repeat(melody(48000)[:, None], 2, axis=1)
    sf.write(buffer, wave, 48000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def midi_file() -> bytes:
    import pretty_midi

    score = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(100, p, 0.5 * i, 0.5 * i + 0.4) for i, p in enumerate((60, 64, 67))]
    score.instruments.append(piano)
    buffer = io.BytesIO()
    score.write(buffer)
    return buffer.getvalue()


# name: (the command, its input {} given as - or as a file of the same bytes; those bytes; their file's suffix;
# the samples the output should have, within a hop)
PIPES = {
    "vocode": (["vocode", "{}"], DEMO_FLAC.read_bytes, ".flac", lambda data: sf.info(DEMO_FLAC).frames),
    "vocode --mel": (["vocode", "--mel", "{}"], DEMO_MEL.read_bytes, ".npy",
                     lambda data: np.load(DEMO_MEL).shape[-1] * HOP),
    "convert": (["convert", "{}", "--to", "violin"], melody_wav, ".wav",
                lambda data: sf.info(io.BytesIO(data)).frames // 3),  # 48 kHz in, 16 kHz out
    "render-midi": (["render-midi", "{}", "--instrument", "violin"], midi_file, ".mid",
                    lambda data: (1.4 + 0.5) * 16000),  # the last note ends at 1.4 s; then 0.5 s to ring
}


@pytest.mark.parametrize("name", PIPES)
def test_audio_piped_in_and_out_is_what_files_give(tmp_path, name):
    """`... | audiogan CMD - -o - | ...`: standard input is decoded from memory (its format told from its
    bytes), and standard output carries a WAV alone, byte for byte the file `-o out.wav` writes."""
    argv, data, suffix, samples = PIPES[name]
    stdin = data()
    done = audiogan(*(a.format("-") for a in argv), "-o", "-", stdin=stdin)
    assert done.returncode == 0, done.stderr.decode()
    assert b"wrote a WAV to standard output" in done.stderr
    wave, rate = sf.read(io.BytesIO(done.stdout))
    assert rate == 16000 and wave.ndim == 1 and np.abs(wave).max() > 0.01
    assert abs(len(wave) - samples(stdin)) < HOP
    given = tmp_path / f"in{suffix}"
    given.write_bytes(stdin)
    filed = audiogan(*(a.format(given) for a in argv), "-o", str(tmp_path / "out.wav"))
    assert filed.returncode == 0, filed.stderr.decode()
    assert done.stdout == (tmp_path / "out.wav").read_bytes()


def test_a_note_and_a_plot_beside_audio_on_standard_output(tmp_path):
    """Other outputs are files as ever, and their reports go to standard error, out of the WAV's way."""
    done = audiogan("note", "--instrument", "violin", "--seconds", "0.5", "-o", "-")
    assert done.returncode == 0, done.stderr.decode()
    assert sf.info(io.BytesIO(done.stdout)).frames == 8000
    png = tmp_path / "mels.png"
    done = audiogan("vocode", "-", "-o", "-", "--plot", str(png), stdin=DEMO_FLAC.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}".encode() in done.stderr
    assert done.stdout[:4] == b"RIFF" and len(sf.read(io.BytesIO(done.stdout))[0]) > 0
    done = audiogan("vocode", "-", "-o", str(tmp_path / "o.wav"), "--plot", "-", stdin=DEMO_FLAC.read_bytes())
    assert done.returncode == 2 and b"--plot -: name a .png" in done.stderr  # a plot is no WAV to pipe


def test_a_note_piped_into_invert_gives_its_timbre(tmp_path):
    """`audiogan note ... -o - | audiogan invert - -o timbre.npy`: a latent, reported as standard input's."""
    note = audiogan("note", "--instrument", "violin", "--seconds", "1", "-o", "-")
    assert note.returncode == 0, note.stderr.decode()
    done = audiogan("invert", "-", "--pitch", "60", "--steps", "2", "-o", str(tmp_path / "t.npy"), stdin=note.stdout)
    assert done.returncode == 0, done.stderr.decode()
    assert np.isfinite(np.load(tmp_path / "t.npy")).all()
    assert b"the timbre of (standard input) at pitch 60" in done.stdout


@pytest.mark.parametrize(("argv", "what"), [(["vocode", "-", "--vocoder", "no-such-vocoder"], "audio"),
                                             (["vocode", "--mel", "-", "--vocoder", "no-such-vocoder"], "a mel"),
                                             (["convert", "-", "--to", "violin", "--model", "nothing"], "audio"),
                                             (["render-midi", "-", "--instrument", "violin", "--model", "nothing"],
                                              "a MIDI file")])
def test_an_empty_pipe_is_refused_before_the_model_loads(tmp_path, argv, what):
    # A model that cannot load: its error would come first were standard input read after the load.
    done = audiogan(*argv, "-o", str(tmp_path / "o.wav"))
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.strip().splitlines() == [f"audiogan: error: standard input is empty: - reads {what} from it, "
                                        "and none was piped in"], err
    assert not (tmp_path / "o.wav").exists()


def test_a_stream_that_is_not_audio_is_named_standard_input(tmp_path):
    done = audiogan("vocode", "-", "-o", str(tmp_path / "o.wav"), stdin=b"not audio at all\n")
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        "audiogan: error: cannot read audio (standard input): Format not recognised."]


def test_terminals_are_refused_for_stdin_and_for_a_wav_on_stdout(tmp_path):
    """A terminal on standard input would wait for typing; a WAV onto one is noise. Both: one line, exit 2,
    before any model loads (the model named here would fail to load)."""
    main_end, terminal = pty.openpty()
    try:
        done = audiogan("vocode", "-", "-o", str(tmp_path / "o.wav"), "--vocoder", "no-such-vocoder",
                        stdin=terminal)
        assert done.returncode == 2
        assert done.stderr.decode().strip() == ("audiogan: error: - reads audio from standard input, which is a "
                                                "terminal: pipe it in (... | audiogan ... -) or name a file")
        for args, option in ((["vocode", "-o", "-", "--vocoder", "no-such-vocoder"], "-o -"),
                             (["say", "Hello.", "-o", "-", "--voice", "no-such-voice"], "-o -"),
                             (["say", "Hello.", "--raw", "--voice", "no-such-voice"], "--raw")):
            done = audiogan(*args, stdout=terminal)
            assert done.returncode == 2
            assert done.stderr.decode().strip() == (
                f"audiogan: error: {option}: standard output is a terminal, not a place for audio's bytes; pipe "
                "it on (| aplay) or redirect it (> out.wav)")
    finally:
        os.close(main_end)
        os.close(terminal)


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """`audiogan vocode - -o - | head -c 100`: exit 1, as `say -o -` and audiogan-client do, and no
    traceback. The clip's WAV (160 kB) is more than a pipe holds, so the write meets the closed pipe."""
    with DEMO_FLAC.open("rb") as clip:  # `< demo.flac`
        proc = subprocess.Popen([sys.executable, "-m", "audiogan.cli", "vocode", "-", "-o", "-", "--device", "cpu"],
                                stdin=clip, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()  # as `head -c 100` does
    err = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err, err
    assert "wrote" not in err  # the audio was not all written, and is not said to be


SPOKEN = "Piped speech. It plays as it is made."


def test_say_streams_a_wav_to_standard_output_with_the_samples_a_file_gets(tmp_path):
    """`audiogan say ... -o - | aplay`: a WAV header with the voice's rate and the sizes of a length not yet
    known (a pipe cannot be rewound to fill them in), then the samples `-o said.wav` holds; --raw the same
    samples bare. Before, `-o -` streamed raw PCM16 too, which aplay played as 8 kHz noise."""
    filed = audiogan("say", SPOKEN, "-o", str(tmp_path / "said.wav"))
    assert filed.returncode == 0, filed.stderr.decode()
    expected, rate = sf.read(tmp_path / "said.wav", dtype="int16")
    done = audiogan("say", SPOKEN, "-o", "-")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout[:4] == b"RIFF" and f"streamed {len(expected) / rate:.2f} s of a WAV at {rate} Hz" in \
        done.stderr.decode()
    with wave.open(io.BytesIO(done.stdout)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == STREAMED_DATA_SIZE // 2  # "unknown": readers go on to the pipe's end
        streamed = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(streamed) == len(expected)
    assert np.abs(streamed.astype(int) - expected).max() <= 2  # PCM16 rounding, and 32767 against 32768 scales
    assert np.array_equal(sf.read(io.BytesIO(done.stdout), dtype="int16")[0], streamed)
    raw = audiogan("say", SPOKEN, "--raw")
    assert raw.returncode == 0, raw.stderr.decode()
    assert raw.stdout == done.stdout[44:] and "of raw PCM16 at 16000 Hz" in raw.stderr.decode()


def test_say_redirected_to_a_file_gets_exact_wav_sizes(tmp_path):
    """`audiogan say ... -o - > said.wav`: standard output is a file, so the header is rewritten at the end
    and the file is a WAV like `-o said.wav`'s."""
    redirected = tmp_path / "redirected.wav"
    with redirected.open("wb") as out:
        done = audiogan("say", SPOKEN, "-o", "-", stdout=out.fileno())
    assert done.returncode == 0, done.stderr.decode()
    data = redirected.read_bytes()
    with wave.open(str(redirected)) as w:
        assert w.getframerate() == 16000 and w.getnframes() == (len(data) - 44) // 2 > 16000
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8


def test_a_streamed_wav_on_stdout_is_made_exact_only_where_it_can_be(tmp_path):
    """The header is rewritten where the file was when it started (a file that already held something), and
    left saying "unknown" in a file opened to append (`>> out.wav`), where a rewrite would land at the end."""
    pcm = np.arange(-500, 500, dtype="<i2").tobytes()
    path = tmp_path / "after.bin"
    with path.open("wb") as out:
        out.write(b"earlier bytes")
        out.flush()
        stream = PcmStream(out.fileno(), 22050)
        stream.write(pcm[:600])
        stream.write(pcm[600:])
        stream.close()
    with wave.open(io.BytesIO(path.read_bytes()[len(b"earlier bytes"):])) as w:
        assert (w.getframerate(), w.getnframes()) == (22050, 1000)
        assert w.readframes(1000) == pcm
    path = tmp_path / "appended.wav"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        stream = PcmStream(fd, 22050)
        stream.write(pcm)
        stream.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == wav_header(22050) + pcm
    read, pipe_in = os.pipe()
    stream = PcmStream(pipe_in, 8000)
    stream.close()  # no audio: still a WAV, of nothing
    os.close(pipe_in)
    with os.fdopen(read, "rb") as pipe, wave.open(pipe) as w:
        assert w.getframerate() == 8000 and w.readframes(10) == b""


def test_the_client_streams_the_same_wav_header_to_stdout():
    """audiogan_client has its own copy of the header (it is installed without audiogan): the two agree."""
    from audiogan_client.stdio import wav_header as client_header

    for rate, size in [(16000, STREAMED_DATA_SIZE), (22050, 0), (48000, 123456)]:
        assert client_header(rate, size) == wav_header(rate, size)
    with wave.open(io.BytesIO(wav_header(24000, 4) + b"\x01\x00\x02\x00")) as w:
        assert (w.getframerate(), w.getnframes(), w.readframes(2)) == (24000, 2, b"\x01\x00\x02\x00")


def test_a_closed_stdout_or_stdin_is_one_line_not_a_traceback(tmp_path):
    """`audiogan vocode -o - >&-` and `audiogan say --file - <&-`: a shell started the command with that
    descriptor closed (Python's sys.stdout or sys.stdin is then None), which ended in an AttributeError's
    traceback. Now one line, exit 2, before any model loads (the model named would fail to load)."""
    closed = subprocess.run([sys.executable, "-m", "audiogan.cli", "vocode", "-o", "-", "--vocoder",
                             "no-such-vocoder"], stderr=subprocess.PIPE, timeout=300, stdout=None,
                            pass_fds=(), preexec_fn=lambda: os.close(1))
    assert closed.returncode == 2, closed.stderr
    assert closed.stderr.decode().strip() == ("audiogan: error: -o -: standard output is closed: pipe it on "
                                              "(| aplay) or redirect it (> out.wav)")
    said = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--file", "-", "-o",
                           str(tmp_path / "s.wav")], stderr=subprocess.PIPE, timeout=300,
                          preexec_fn=lambda: os.close(0))
    assert said.returncode == 2, said.stderr
    assert said.stderr.decode().strip().splitlines() == [
        "audiogan: error: standard input is empty: - reads text from it, and none was piped in"]


def test_a_stream_without_end_on_stdin_is_refused_at_the_bound_not_read_until_memory_runs_out(tmp_path):
    """`cat /dev/zero | audiogan vocode -`, with the bound lowered to 1000 bytes for the test: one line, exit 2,
    once the bound is passed (/dev/zero never ends: a reader without one never returns)."""
    # The assert: code without the bound (another copy of the package on the path) fails, not eats memory.
    run = ("import sys; import audiogan.audio.stdio as stdio; assert stdio.MAX_STDIN_BYTES; "
           "stdio.MAX_STDIN_BYTES = 1000; "
           "from audiogan.cli import main; sys.argv[0] = 'audiogan'; sys.exit(main())")
    with open(os.devnull if sys.platform == "win32" else "/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-c", run, "vocode", "-", "-o", str(tmp_path / "o.wav")],
                              stdin=zeros, capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr.decode()
    assert done.stderr.decode().strip().splitlines() == [
        "audiogan: error: standard input brought more than 1000 bytes, the most - takes: was it audio? "
        "Save it to a file and name that"]
    assert not (tmp_path / "o.wav").exists()


def test_the_bound_on_stdin_is_met_reading_a_piece_at_a_time(monkeypatch):
    """Reads ask for at most a piece each, so a stream just over the bound is refused after bound + 1 bytes."""
    from audiogan.audio import stdio

    asked: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            asked.append(-1 if size is None else size)
            return super().read(size)

    stream = Counting(b"\0" * 5000)
    monkeypatch.setattr(stdio, "MAX_STDIN_BYTES", 4000)
    monkeypatch.setattr(stdio, "STDIN_CHUNK_BYTES", 1024)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    with pytest.raises(ValueError, match="more than 4000 bytes"):
        stdio.read_stdin("audio")
    assert all(0 < size <= 1024 for size in asked) and stream.tell() == 4001
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\1" * 4000)))
    assert stdio.read_stdin("audio") == b"\1" * 4000  # at the bound: taken


def slow_reader(fd: int) -> tuple[threading.Thread, bytearray]:
    """A reader that takes a pipe's bytes a little at a time, so the writer finds it full."""
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(fd, 4096):
            got.extend(chunk)
            time.sleep(0.001)

    reader = threading.Thread(target=drain)
    reader.start()
    return reader, got


def test_a_wav_reaches_a_non_blocking_stdout_whole():
    """Standard output made non-blocking by the parent (as node's child pipes are), read slowly: the WAV
    arrives whole, the bytes a blocking pipe gets, where os.write's BlockingIOError cut it short before."""
    argv = [sys.executable, "-m", "audiogan.cli", "vocode", "-", "-o", "-", "--device", "cpu"]
    blocking = subprocess.run(argv, input=DEMO_FLAC.read_bytes(), capture_output=True, timeout=300)
    assert blocking.returncode == 0 and len(blocking.stdout) > 1 << 17  # more than a pipe holds
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    reader, got = slow_reader(read_end)
    with open(DEMO_FLAC, "rb") as clip:
        done = subprocess.run(argv, stdin=clip, stdout=write_end, stderr=subprocess.PIPE, timeout=300)
    os.close(write_end)
    reader.join()
    os.close(read_end)
    assert done.returncode == 0, done.stderr.decode()
    assert bytes(got) == blocking.stdout


def test_a_streamed_wav_reaches_a_non_blocking_pipe_whole():
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    reader, got = slow_reader(read_end)
    pcm = np.arange(200_000, dtype="<i2").tobytes()
    stream = PcmStream(write_end, 16000)
    for start in range(0, len(pcm), 100_000):
        stream.write(pcm[start:start + 100_000])
    stream.close()
    os.close(write_end)
    reader.join()
    os.close(read_end)
    assert bytes(got) == wav_header(16000) + pcm
