"""Load and save audio files; resample; normalise level."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from audiogan.audio.errors import AudioError
from audiogan.config import is_int

try:
    import fcntl
except ImportError:  # Windows: temp files go unlocked, and none is taken for stale
    fcntl = None  # type: ignore[assignment]

# torchaudio's sinc kernel has about (orig/g) x (target/g) taps (g = gcd): under a million for the usual rates,
# gigabytes for an odd one (8001 -> 16000 Hz). Past this size the rate ratio is approximated by a nearby one
# with a small kernel: from 1 Hz-800 kHz to 16 or 22.05 kHz that was within 5e-4 (0.9 cents, inaudible).
MAX_KERNEL_TAPS = 1_000_000
MAX_RATIO_ERROR = 1e-3


def resample(wave: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    check_rate(orig_sr, "orig_sr")
    check_rate(target_sr, "target_sr")
    if orig_sr == target_sr or wave.shape[-1] == 0:  # torchaudio fails on 0 samples
        return wave
    kernel_in, kernel_out = kernel_rates(orig_sr, target_sr)
    out = AF.resample(wave, kernel_in, kernel_out)
    if (kernel_in, kernel_out) == (orig_sr, target_sr):
        return out
    length = -(-wave.shape[-1] * target_sr // orig_sr)  # what the exact ratio gives, as torchaudio counts
    return F.pad(out, (0, max(0, length - out.shape[-1])))[..., :length]


def kernel_rates(orig_sr: int, target_sr: int) -> tuple[int, int]:
    """The rate pair to hand torchaudio's resampler: the true one, or for an odd pair a nearby ratio
    whose kernel stays small (see MAX_KERNEL_TAPS)."""
    g = math.gcd(orig_sr, target_sr)
    if (orig_sr // g) * (target_sr // g) <= MAX_KERNEL_TAPS:
        return orig_sr, target_sr
    ratio = Fraction(target_sr, orig_sr)
    near = ratio.limit_denominator(max(1, math.isqrt(int(MAX_KERNEL_TAPS / ratio))))
    if near == 0 or abs(near / ratio - 1) > MAX_RATIO_ERROR:
        raise AudioError(f"cannot resample {orig_sr} Hz to {target_sr} Hz (no close rate ratio with a kernel "
                         "of bounded size); convert the file to a common rate first")
    return near.denominator, near.numerator


def load_audio(
    source: str | Path | bytes | BinaryIO, sample_rate: int | None = None, *, allow_empty: bool = False,
    name: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Read any file soundfile understands (WAV, FLAC, OGG, ...) as mono float32: from a path, the file's
    bytes, or an open binary file (an upload, a member of an archive). ``name``: what errors call bytes or a
    file object (default: "(uploaded bytes)", the object's name).

    Returns ``(wave [samples], sample_rate)``; with ``sample_rate`` given the audio is resampled to it.
    """
    if sample_rate is not None:  # before the file is read: "16000" failed inside the resampler as a TypeError
        check_rate(sample_rate)
    opened = hasattr(source, "read")
    if isinstance(source, bytes):
        name = name or "(uploaded bytes)"
    elif opened:
        name = name or str(getattr(source, "name", "(file object)"))
    else:
        name = str(source)
        if not Path(source).is_file():
            raise AudioError(f"{name} is a folder, not an audio file" if Path(source).is_dir()
                             else f"audio file not found: {name}")
    try:
        data, sr = sf.read(io.BytesIO(source) if isinstance(source, bytes) else source if opened else name,
                           dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        # libsndfile's message starts with the repr of the file object; keep only its reason.
        reason = str(exc) if isinstance(source, (str, Path)) else str(exc).rsplit(": ", 1)[-1]
        raise AudioError(f"cannot read audio {name}: {reason}") from exc
    if sr <= 0:
        raise AudioError(f"audio {name} declares a sample rate of {sr} Hz")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if wave.numel() == 0 and not allow_empty:
        raise AudioError(f"audio {name} is empty (0 samples)")
    if not torch.isfinite(wave).all():
        raise AudioError(f"audio {name} contains NaN or Inf samples")
    if sample_rate is not None:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave, sr


def encode_audio(wave: torch.Tensor | np.ndarray, sample_rate: int, suffix: str) -> bytes:
    """Mono audio -> the bytes of a complete 16-bit WAV or FLAC file (by ``suffix``: '.wav' / '.flac')."""
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(suffix.lower())
    if fmt is None:
        raise AudioError(f"unsupported output format {suffix!r}: use .wav or .flac")
    check_rate(sample_rate)
    data = mono_samples(wave)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(data, -1.0, 1.0), sample_rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


# Integer PCM as soundfile reads it into floats: divided by its full scale.
_PCM_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31,
              torch.int16: 2.0**15, torch.int32: 2.0**31}


def float_samples(wave: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Samples as float32: floats as they are, int16/int32 PCM scaled to [-1, 1]; anything else refused (as
    floats, int16 PCM would be 32,767 times too loud; complex would lose its imaginary part)."""
    tensor = wave.detach() if isinstance(wave, torch.Tensor) else torch.from_numpy(np.asarray(wave))
    if tensor.dtype in _PCM_SCALE:
        return tensor.float() / _PCM_SCALE[tensor.dtype]
    if not tensor.dtype.is_floating_point or tensor.is_complex():
        raise AudioError(f"audio holds {tensor.dtype} values; give float samples in [-1, 1] or int16/int32 PCM")
    return tensor.float()


def mono_samples(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float32 samples of one mono clip, or AudioError: what every encoder may write."""
    data = float_samples(wave).cpu().numpy()
    if data.ndim == 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 1:  # flattened, a batch or channels would play one after another as one mono clip
        raise AudioError(f"expected mono audio [samples] or [1, samples], got shape {list(data.shape)}")
    if not np.isfinite(data).all():  # NaN would be written as arbitrary PCM values
        raise AudioError("audio contains NaN or Inf samples")
    return data


def check_rate(rate: int, argument: str = "sample_rate") -> None:
    """That the ``argument`` named is a sample rate: 1.5 or "16000" failed deep in torchaudio or soundfile."""
    if not is_int(rate) or rate <= 0:
        raise AudioError(f"{argument} {rate!r} must be a positive whole number of Hz")


def recording(wave: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """A mono recording handed to an analysis (pitch tracking, resampling) as float32 samples, or a clear
    error here instead of one from deep inside an analysis."""
    check_rate(rate, "rate")
    return mono_samples(wave)


def pcm16(wave: torch.Tensor | np.ndarray) -> bytes:
    """Mono samples in [-1, 1] -> raw little-endian 16-bit PCM (clipped, rounded): streams and pipes."""
    return (np.clip(mono_samples(wave), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def float32_le(wave: torch.Tensor | np.ndarray) -> bytes:
    """Mono samples -> raw little-endian 32-bit floats, unclipped."""
    return mono_samples(wave).astype("<f4").tobytes()


# write_atomic's temp files: '.NAME.' + mkstemp's 8 random characters + this suffix, which nothing else
# writes: `audiogan render` removes what a killed run left, and once also took a user's '.x.json.20240101.tmp'.
TEMP_SUFFIX = ".audiogan.tmp"
TEMP_NAME = re.compile(rf"\..*\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}", re.DOTALL)
NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, APFS; NTFS counts 255 UTF-16 units)
# What fsync on a folder raises where its filesystem or OS cannot sync one: the rename is then left as it is.
_NO_FOLDER_SYNC = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP}


def temp_prefix(name: str) -> str:
    """'.NAME.' for the temp file of ``name``, NAME cut short so that the whole temp name fits in NAME_MAX
    bytes: an output name of 242-255 bytes, valid itself, failed as 'File name too long' at its write."""
    room = NAME_MAX - len(TEMP_SUFFIX) - 8 - 2  # 8: mkstemp's random part; 2: the dots around NAME
    return "." + os.fsencode(name)[:room].decode("utf-8", "ignore") + "."


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write a file via temp file + rename, so readers never see half of it; usual umask permissions.
    ``data`` is the bytes, or a function that writes them into the open temp file (``torch.save``: a
    checkpoint of hundreds of MB need not be held in memory twice).
    The bytes reach the disk before the rename, and the rename before this returns: after a power cut the
    name is on the whole file or on what it was before, not on an empty or cut-short file (ext4 and others
    may commit the rename first), and a file said written is there (its folder's entry is synced too).
    The temp file is locked (flock) while it is written: ``remove_stale_temp_files`` takes only unlocked
    ones, whose writer was killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(path)
    try:
        with naming(path), os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
            if fcntl is None:
                f.close()  # Windows renames no open file (and there is no lock to hold)
            os.replace(tmp, path)  # still open and locked: no cleaner takes it before it has its name
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """An OSError inside names ``path`` where it names no file: a write that finds the disk full (or a file
    size limit) raises "[Errno 28] No space left on device" without saying which file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _locked_temp(path: Path) -> tuple[int, str]:
    """A new temp file beside ``path``, open and locked. A cleaner may take the lock in the moment between
    the file's creation and its locking, and remove it: then another one is made."""
    while True:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX)
        except OSError as exc:  # it named the temp file, which the caller never asked for
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks (some network ones): written unlocked, as before
            return fd, tmp
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)


def remove_stale_temp_files(root: str | Path) -> int:
    """Remove write_atomic's temp files under ``root`` that no live process is writing; how many.

    A writer holds its temp file's lock until the file has its name, and the kernel drops the locks of a
    process that dies, SIGKILL included: a temp file whose lock can be taken is a killed writer's. Locks, not
    process ids: a writer's pid may be another process's by now, or mean nothing here (a container or
    another host writing into the same folder), and flock holds across containers and, on Linux, NFS.
    A file whose lock cannot be tried (a filesystem without locks) is left: it may be in use. Only files
    named as write_atomic names its own are looked at (``TEMP_NAME``); symlinks never are (it makes none).
    Temp files of versions before the lock count as unlocked: such a version writing here at the same time
    could lose a file in the making, never a finished one."""
    if fcntl is None:
        return 0
    removed = 0
    for stale in Path(root).rglob(f".*{TEMP_SUFFIX}"):
        if TEMP_NAME.fullmatch(stale.name) and _remove_unlocked(stale):
            removed += 1
    return removed


def _remove_unlocked(path: Path) -> bool:
    try:
        # Open for writing: NFS emulates flock with byte-range locks, and an exclusive one needs it.
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a symlink (ELOOP), not ours to write, or gone since it was listed
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it (EWOULDBLOCK), or it cannot be told (ENOLCK): left
            return False
        # Still the file that was locked: a writer that renamed it away leaves this name to no one.
        if not os.path.samestat(info, os.lstat(path)):
            return False
        os.unlink(path)  # under the lock: a writer that locks it after sees it unlinked and starts again
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Make the renames and new names in ``folder`` durable: fsync on the folder itself (a file's own fsync
    leaves its name to the filesystem's next commit). Skipped where folders cannot be opened or synced
    (Windows; some network and FUSE filesystems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows opens no folder; a folder without read permission
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_SYNC:
            raise
    finally:
        os.close(fd)


def save_audio(path: str | Path, wave: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write mono audio as WAV (PCM16) or FLAC by extension, atomically."""
    path = Path(path)
    return write_atomic(path, encode_audio(wave, sample_rate, path.suffix))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normalize_peak(wave: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    top = wave.abs().max()
    return wave if top <= 0 else wave * (peak / top)


def normalize_loudness(wave: torch.Tensor, target_dbfs: float = -23.0, peak: float = 0.99) -> torch.Tensor:
    """Scale to an RMS level in dBFS (a simple loudness proxy), never past ``peak``."""
    rms = wave.pow(2).mean().sqrt()
    if rms <= 0:
        return wave
    gain = 10 ** (target_dbfs / 20) / rms
    top = wave.abs().max() * gain
    if top > peak:
        gain = gain * peak / top
    return wave * gain
