"""Audio bytes <-> numpy for the wire formats, with the standard library only (FLAC needs soundfile)."""

from __future__ import annotations

import importlib.util
import io
import os
import wave
from pathlib import Path

import numpy as np

from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client.stdio import write_stdout

ENCODINGS = {"pcm16": pb.PCM16, "float32": pb.FLOAT32, "wav": pb.WAV, "flac": pb.FLAC}


def encoding_value(name: str | int) -> int:
    if isinstance(name, int):
        return name
    try:
        return ENCODINGS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; choose from {', '.join(ENCODINGS)}") from None


def sample_width(encoding: int) -> int:
    """Bytes per sample of raw streamed audio (streams carry PCM16 or FLOAT32 only)."""
    return 4 if encoding == pb.FLOAT32 else 2


def decode(data: bytes, encoding: int) -> np.ndarray:
    """Wire bytes -> float32 samples in [-1, 1]."""
    if encoding in (pb.PCM16, pb.AUDIO_ENCODING_UNSPECIFIED):
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if encoding == pb.FLOAT32:
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if encoding == pb.WAV:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError("expected a mono 16-bit WAV")
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if encoding == pb.FLAC:
        try:
            import soundfile
        except ImportError:
            raise RuntimeError("decoding FLAC needs soundfile: pip install 'audiogan-client[flac]'") from None
        samples, _ = soundfile.read(io.BytesIO(data), dtype="float32")
        return samples
    raise ValueError(f"unknown encoding {encoding}")


def to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def check_output(path: str | Path) -> str:
    """The format an output path asks for, from its suffix: "wav" ('-' too: a WAV on stdout) or "flac"
    (with soundfile); any other suffix is an error before the server is called, not WAV bytes under a
    name that says otherwise."""
    if str(path) == "-":
        return "wav"
    suffix = Path(path).suffix.lower()
    if suffix == ".wav":
        return "wav"
    if suffix == ".flac":
        if importlib.util.find_spec("soundfile") is None:
            raise ValueError(f"{path}: writing FLAC needs soundfile: pip install 'audiogan-client[flac]'")
        return "flac"
    raise ValueError(f"{path}: the client writes .wav or .flac files, not {suffix or 'a file without a suffix'}")


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono audio in the format the path's suffix names (see :func:`check_output`)."""
    if check_output(path) == "wav":
        return write_wav(path, samples, sample_rate)
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16", format="FLAC")
    return write_atomic(Path(path), buffer.getvalue())


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono 16-bit WAV; '-' writes to stdout."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(to_pcm16(samples))
    if str(path) == "-":
        write_stdout(buffer.getvalue())
        return Path("-")
    return write_atomic(Path(path), buffer.getvalue())


def write_atomic(path: Path, data: bytes) -> Path:
    """``data`` into a file beside ``path``, renamed over it once whole: a write cut short (a full disk, the
    command stopped) leaves the file that was there, or none, not a WAV whose header promises more audio
    than follows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(part, "wb") as f:  # not mkstemp: the file gets the umask's permissions, as before
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


def mel_message(mel: np.ndarray) -> pb.Mel:
    mel = np.asarray(mel, dtype="<f4")
    if mel.ndim != 2:
        raise ValueError(f"mel must be [n_mels, frames], got shape {mel.shape}")
    return pb.Mel(n_mels=mel.shape[0], data=np.ascontiguousarray(mel).tobytes())
