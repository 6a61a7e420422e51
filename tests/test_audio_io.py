"""Audio files: load/save round trips, mixdown, resampling, level normalisation and clear errors."""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogan.audio import AudioError, load_audio, normalize_loudness, normalize_peak, resample, save_audio
from audiogan.audio.io import encode_audio, float32_le, pcm16

PCM16_STEP = 1 / 32768


def rms_dbfs(wave: torch.Tensor) -> float:
    return 20 * math.log10(wave.pow(2).mean().sqrt().item())


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_then_load_round_trip(tmp_path, demo_wave, suffix):
    wave = demo_wave * 0.731  # off the PCM16 grid, so the round trip really quantises
    path = save_audio(tmp_path / f"out{suffix}", wave, 16000)
    assert path == tmp_path / f"out{suffix}"
    info = sf.info(path)
    assert (info.format, info.subtype, info.channels) == (suffix[1:].upper(), "PCM_16", 1)
    loaded, sr = load_audio(path)
    assert sr == 16000
    assert loaded.dtype == torch.float32
    assert loaded.shape == wave.shape
    assert (loaded - wave).abs().max() <= PCM16_STEP
    # Atomic write: nothing but the output is left in the folder.
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]
    # ...and the temp file's private 0600 mode does not leak into the output.
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_save_accepts_numpy_clips_to_full_scale_and_creates_folders(tmp_path, demo_wave):
    loud = demo_wave.numpy() * 4
    path = save_audio(tmp_path / "a" / "b" / "loud.wav", loud, 16000)
    loaded, _ = load_audio(path)
    assert loaded.abs().max() == pytest.approx(1.0, abs=2 * PCM16_STEP)
    quiet = np.abs(loud) < 0.9
    np.testing.assert_allclose(loaded.numpy()[quiet], loud[quiet], atol=PCM16_STEP)


def test_save_rejects_unknown_format(tmp_path, demo_wave):
    with pytest.raises(AudioError, match=r"unsupported output format '\.mp3'"):
        save_audio(tmp_path / "out.mp3", demo_wave, 16000)
    assert list(tmp_path.iterdir()) == []


def test_load_from_bytes_equals_load_from_file(demo_path):
    from_file, sr_file = load_audio(demo_path)
    from_bytes, sr_bytes = load_audio(demo_path.read_bytes())
    with demo_path.open("rb") as f:
        from_object, sr_object = load_audio(f)
    assert sr_file == sr_bytes == sr_object == 16000
    assert torch.equal(from_file, from_bytes) and torch.equal(from_file, from_object)


def test_stereo_is_mixed_down_to_mono(tmp_path, demo_wave):
    left = demo_wave.numpy()
    right = -0.5 * left
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono, sr = load_audio(tmp_path / "stereo.wav")
    assert sr == 16000
    assert mono.shape == demo_wave.shape
    torch.testing.assert_close(mono, 0.25 * demo_wave, atol=1e-7, rtol=0)


def test_resampling_22050_to_16000_keeps_the_signal(tmp_path, demo_wave):
    up = resample(demo_wave, 16000, 22050)
    assert abs(up.numel() - demo_wave.numel() * 22050 / 16000) <= 1
    sf.write(tmp_path / "ljlike.wav", up.numpy(), 22050, subtype="FLOAT")
    native, sr_native = load_audio(tmp_path / "ljlike.wav")
    assert sr_native == 22050 and native.numel() == up.numel()
    down, sr = load_audio(tmp_path / "ljlike.wav", 16000)
    assert sr == 16000
    assert abs(down.numel() - native.numel() * 16000 / 22050) <= 1
    # Speech at 16 kHz is band-limited below 8 kHz, so 16k -> 22.05k -> 16k gives the clip back.
    n = min(down.numel(), demo_wave.numel())
    margin = 200  # filter edge effects
    ref, got = demo_wave[margin:n - margin], down[margin:n - margin]
    assert np.corrcoef(ref.numpy(), got.numpy())[0, 1] > 0.999
    assert abs(rms_dbfs(got) - rms_dbfs(ref)) < 0.1


def test_resampling_a_real_22050_clip(speech_dir):
    clip = sorted((speech_dir / "dctts_lj_prompts" / "wavs").glob("*.flac"))[0]
    native, sr = load_audio(clip)
    assert sr == 22050
    down, sr16 = load_audio(clip, 16000)
    assert sr16 == 16000
    assert abs(down.numel() - native.numel() * 16000 / 22050) <= 1
    assert abs(rms_dbfs(down) - rms_dbfs(native)) < 0.5


def test_same_rate_resample_is_identity_and_bad_rates_are_rejected(demo_wave):
    assert resample(demo_wave, 16000, 16000) is demo_wave
    with pytest.raises(AudioError, match="orig_sr 0 must be a positive whole number of Hz"):
        resample(demo_wave, 0, 16000)
    with pytest.raises(AudioError, match=r"target_sr 8000\.5 must be a positive whole number of Hz"):
        resample(demo_wave, 16000, 8000.5)


@pytest.mark.parametrize("rate", ["16000", 0, -16000, 1.5, 16000.0])
def test_loading_at_a_rate_that_is_not_one_names_the_argument(demo_path, rate):
    # Once a TypeError from inside the resampler ('<=' not supported between 'str' and 'int'; gcd of a float).
    with pytest.raises(ValueError, match=rf"^sample_rate {re.escape(repr(rate))} must be a positive whole number"):
        load_audio(demo_path, rate)


def test_normalize_peak_hits_its_target(demo_wave):
    for peak in (0.5, 0.95):
        out = normalize_peak(demo_wave, peak)
        assert out.abs().max().item() == pytest.approx(peak, rel=1e-6)
        # A pure gain: the shape of the waveform is unchanged.
        torch.testing.assert_close(out / out.abs().max(), demo_wave / demo_wave.abs().max())
    silence = torch.zeros(100)
    assert torch.equal(normalize_peak(silence), silence)


def test_normalize_loudness_hits_its_target(demo_wave):
    quiet = normalize_loudness(demo_wave, target_dbfs=-30.0)
    assert rms_dbfs(quiet) == pytest.approx(-30.0, abs=0.01)
    assert quiet.abs().max() < 0.99
    # A target that would push the peak past 0.99 is limited by the peak instead.
    loud = normalize_loudness(demo_wave, target_dbfs=-3.0, peak=0.99)
    assert loud.abs().max().item() == pytest.approx(0.99, rel=1e-5)
    assert rms_dbfs(loud) < -3.0
    silence = torch.zeros(100)
    assert torch.equal(normalize_loudness(silence), silence)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty \(0 samples\)"):
        load_audio(path)
    wave, sr = load_audio(path, allow_empty=True)
    assert wave.numel() == 0 and sr == 16000
    wave, sr = load_audio(path, 22050, allow_empty=True)  # nothing to resample
    assert wave.numel() == 0 and sr == 22050


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError, match=r"cannot read audio .*noise\.wav"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"cannot read audio \(uploaded bytes\)"):
        load_audio(path.read_bytes())
    with path.open("rb") as f, pytest.raises(AudioError, match=r"cannot read audio .*noise\.wav: "):
        load_audio(f)  # named by its file, its reason without the file object's repr


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AudioError, match=r"audio file not found: .*nothing\.flac"):
        load_audio(tmp_path / "nothing.flac")
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        load_audio(tmp_path)


def test_non_finite_samples_are_a_clear_error(tmp_path, demo_wave):
    data = demo_wave.numpy().copy()
    data[1000] = np.nan
    sf.write(tmp_path / "nan.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio(tmp_path / "nan.wav")


@pytest.mark.parametrize("rate", [8001, 11127, 44101])
def test_odd_source_rates_resample_fast_to_the_right_length(tmp_path, rate):
    """gcd(8001, 16000) = 1: the exact sinc kernel would take gigabytes; a nearby ratio takes a small one."""
    n = int(0.05 * rate)
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / rate).astype(np.float32)
    sf.write(tmp_path / "odd.wav", tone, rate, subtype="FLOAT")
    start = time.monotonic()
    wave, sr = load_audio(tmp_path / "odd.wav", 16000)
    assert time.monotonic() - start < 5
    assert sr == 16000 and wave.numel() == math.ceil(n * 16000 / rate)
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(wave.numel())))
    assert abs(spectrum.argmax() * 16000 / wave.numel() - 1000) < 16000 / wave.numel()  # the tone stays at 1 kHz


def test_saving_refuses_what_would_not_play_as_the_mono_clip_given(tmp_path):
    with pytest.raises(AudioError, match="NaN or Inf"):
        save_audio(tmp_path / "nan.wav", torch.tensor([0.1, float("nan"), 0.2]), 16000)
    with pytest.raises(AudioError, match=r"mono audio .*got shape \[2, 100\]"):
        save_audio(tmp_path / "stereo.wav", torch.zeros(2, 100), 16000)
    with pytest.raises(AudioError, match=r"got shape \[100, 1\]"):
        encode_audio(np.zeros((100, 1), np.float32), 16000, ".flac")
    assert list(tmp_path.iterdir()) == []
    path = save_audio(tmp_path / "one.wav", torch.full((1, 100), 0.25), 16000)  # [1, samples] is one clip
    assert sf.info(path).frames == 100


@pytest.mark.parametrize("encode", [pcm16, float32_le])
def test_raw_stream_encoders_refuse_what_a_player_would_mishear(encode):
    """Raw chunks carry no header: two channels flattened would play as one clip at half speed, NaN as noise."""
    with pytest.raises(AudioError, match="NaN or Inf"):
        encode(torch.tensor([0.1, float("nan")]))
    with pytest.raises(AudioError, match=r"got shape \[2, 3\]"):
        encode(np.zeros((2, 3), np.float32))
    samples = np.frombuffer(encode(torch.tensor([[0.5, -2.0, 1.0]])), "<i2" if encode is pcm16 else "<f4")
    expected = [16384, -32767, 32767] if encode is pcm16 else [0.5, -2.0, 1.0]  # PCM16 clips, floats do not
    assert samples.tolist() == expected


def test_integer_pcm_is_scaled_and_other_types_are_refused(tmp_path, demo_wave, default_vocoder):
    """int16 as floats would be 32,767 times too loud: saved, it was a clipped square wave."""
    pcm = (demo_wave.numpy() * 32767).astype(np.int16)
    wave, _ = load_audio(save_audio(tmp_path / "pcm.wav", pcm, 16000))
    assert (wave - demo_wave).abs().max() < 2 / 32768
    quiet_to_loud = default_vocoder.mel(demo_wave) > -6  # above int16's quantisation floor
    assert (default_vocoder.mel(pcm) - default_vocoder.mel(demo_wave))[quiet_to_loud].abs().max() < 0.05
    for bad, message in [(np.zeros(100, np.complex64), "complex64"), (np.zeros(100, bool), "bool"),
                         (np.full(100, np.nan, np.float32), "NaN or Inf")]:
        with pytest.raises(AudioError if message != "NaN or Inf" else ValueError, match=message):
            default_vocoder.mel(bad)


@pytest.mark.parametrize("rate", [0, -1, 16000.0])
def test_saving_at_a_rate_that_is_not_one_is_a_clear_error(tmp_path, rate):
    with pytest.raises(AudioError, match=rf"^sample_rate {rate!r} must be a positive whole number of Hz"):
        save_audio(tmp_path / "x.wav", np.zeros(10, np.float32), rate)


def test_a_write_syncs_its_folder_where_it_can_and_goes_on_where_it_cannot(tmp_path, monkeypatch):
    """Folder fsync: EINVAL on some filesystems, and Windows opens no folder; an I/O error stays an error."""
    from audiogan.audio import io

    open_file, fsync = os.open, os.fsync

    def failing(errno_: int) -> None:
        def sync(fd: int) -> None:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno_, os.strerror(errno_))
            fsync(fd)
        monkeypatch.setattr(os, "fsync", sync)

    def no_folders(path: str, flags: int, *args: int) -> int:
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return open_file(path, flags, *args)

    failing(errno.EINVAL)
    assert io.write_atomic(tmp_path / "a.bin", b"one").read_bytes() == b"one"
    monkeypatch.setattr(os, "open", no_folders)
    assert io.write_atomic(tmp_path / "b.bin", b"two").read_bytes() == b"two"
    monkeypatch.setattr(os, "open", open_file)
    failing(errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        io.write_atomic(tmp_path / "c.bin", b"three")


def test_a_temp_file_removed_before_its_writer_locked_it_is_made_again(tmp_path, monkeypatch):
    """The moment between a temp file's creation and its lock: a cleaner then takes it for a killed
    writer's and removes it, and the write must not go on into the removed file (its rename would fail)."""
    from audiogan.audio import io

    made: list[str] = []
    mkstemp = io.tempfile.mkstemp

    def cleaned_at_once(**kwargs: str) -> tuple[int, str]:
        fd, name = mkstemp(**kwargs)
        made.append(name)
        if len(made) == 1:  # another render's start-up, in that moment
            assert io.remove_stale_temp_files(tmp_path) == 1
        return fd, name

    monkeypatch.setattr(io.tempfile, "mkstemp", cleaned_at_once)
    assert io.write_atomic(tmp_path / "a.wav", b"whole").read_bytes() == b"whole"
    assert len(made) == 2 and not any(os.path.exists(name) for name in made)
    assert io.remove_stale_temp_files(tmp_path) == 0
