"""audiogan's pYIN (audiogan.audio.pitch) against librosa's, and in pieces against at once."""

from __future__ import annotations

import numpy as np
import pytest
from test_timbre import melody

from audiogan.audio.pitch import PitchTracker, pyin, yin
from audiogan.timbre.analysis import HOP, PYIN_RESOLUTION

RATE = 16000
FMIN, FMAX = 32.70, 2217.46  # conversion's range: MIDI 23-97


def performance() -> np.ndarray:
    """A melody with vibrato, a wide leap (two octaves up, then down), silence, and noise between notes."""
    rng = np.random.default_rng(3)
    t = np.arange(int(0.5 * RATE)) / RATE
    leap = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) * np.minimum(1, t / 0.01) for f in (110.0, 440.0, 110.0)])
    noise = rng.normal(0, 0.02, RATE // 4)
    return np.concatenate([melody(vibrato_cents=35), np.zeros(RATE // 5), leap, noise,
                           melody()]).astype(np.float32)


def test_pyin_decodes_as_librosa_pyin():
    import librosa

    wave = performance()
    f0, voiced, probability = librosa.pyin(wave, fmin=FMIN, fmax=FMAX, sr=RATE, frame_length=2048, hop_length=HOP,
                                           resolution=PYIN_RESOLUTION)
    ours = pyin(wave, RATE, FMIN, FMAX, 2048, HOP, PYIN_RESOLUTION)
    assert voiced.sum() > 0.5 * len(voiced) and (~voiced).sum() > 20  # both kinds of frame are there
    np.testing.assert_array_equal(ours[1], voiced)
    np.testing.assert_array_equal(ours[0], f0)  # NaN where unvoiced, in both
    np.testing.assert_allclose(ours[2], probability, atol=1e-9)


@pytest.mark.parametrize(("fmin", "fmax", "frame", "resolution", "center"), [
    (60.0, 500.0, 1024, 0.1, True),   # the TTS trainer's pitch targets
    (50.0, 600.0, 1024, 0.1, False),  # the harmonic vocoder's, framed like the mel
])
def test_pyin_decodes_speech_settings_as_librosa_pyin(fmin, fmax, frame, resolution, center):
    import librosa

    wave = performance()
    expected = librosa.pyin(wave, fmin=fmin, fmax=fmax, sr=RATE, frame_length=frame, hop_length=256,
                            resolution=resolution, center=center)
    ours = pyin(wave, RATE, fmin, fmax, frame, 256, resolution, center)
    np.testing.assert_array_equal(ours[1], expected[1])
    np.testing.assert_array_equal(ours[0], expected[0])


@pytest.mark.parametrize(("fmin", "fmax", "frame", "center"), [
    (200.0, 400.0, 1024, False),  # conversion's note contour: 1.5 semitones around a note
    (32.7, 2217.46, 2048, True)])
def test_yin_is_librosas(fmin, fmax, frame, center):
    import librosa

    wave = performance()
    expected = librosa.yin(wave, fmin=fmin, fmax=fmax, sr=RATE, frame_length=frame, hop_length=256, center=center)
    np.testing.assert_array_equal(yin(wave, RATE, fmin, fmax, frame, 256, center=center), expected)


@pytest.mark.parametrize(("bins", "width"), [(370, 36), (431, 71), (61, 11), (61, 12), (5, 3), (10, 1)])
def test_the_transition_window_is_librosas(bins, width):
    import librosa

    from audiogan.audio.pitch import _local

    np.testing.assert_array_equal(_local(bins, width),
                                  librosa.sequence.transition_local(bins, width, window="triangle", wrap=False))


def test_the_banded_decoder_finds_the_dense_decoders_path():
    """Random observations, each state likely somewhere: the band holds every transition the model allows,
    so the dense search over all 2 x bins states and the banded one agree state for state."""
    import librosa

    from audiogan.audio import pitch

    bins, width, frames = 60, 11, 400
    rng = np.random.default_rng(0)
    observed = rng.dirichlet(np.full(2 * bins, 0.3), size=frames)
    local = librosa.sequence.transition_local(bins, width, window="triangle", wrap=False)
    dense = librosa.sequence.viterbi(observed.T, np.kron(librosa.sequence.transition_loop(2, 0.99), local),
                                     p_init=np.full(2 * bins, 1 / (2 * bins)))
    lows, band = pitch._band(bins, width)
    log_observed = np.log(observed + pitch.TINY)
    pointers = np.zeros((frames, 2 * bins), dtype=np.uint16)
    value = pitch._kernels()[1](log_observed[1:], np.log(1 / (2 * bins) + pitch.TINY) + log_observed[0], lows, band,
                                pointers[1:])
    states = [int(np.argmax(value))]
    for t in range(frames - 1, 0, -1):
        states.append(int(pointers[t, states[-1]]))
    assert len(set(states)) > 20  # a path that moves
    np.testing.assert_array_equal(states[::-1], dense)


def test_tracking_in_pieces_equals_tracking_at_once():
    wave = performance()
    whole = PitchTracker(wave, RATE, FMIN, FMAX, hop=HOP, resolution=PYIN_RESOLUTION, piece=10**6)
    assert whole.step()
    pieces = PitchTracker(wave, RATE, FMIN, FMAX, hop=HOP, resolution=PYIN_RESOLUTION, piece=7)
    with pytest.raises(RuntimeError, match="not tracked yet"):
        pieces.result()
    shares = []
    while not pieces.step():
        shares.append(pieces.share)
    assert len(shares) == -(-pieces.frames // 7) - 1 and shares == sorted(shares) and 0 < shares[0] < shares[-1] < 1
    for a, b in zip(whole.result(), pieces.result(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("fmin", "fmax", "message"), [
    (500.0, 400.0, "fmin < fmax"), (0.0, 400.0, "fmin < fmax"), (100.0, 9000.0, r"fmax <= 8000"),
    (5.0, 400.0, "holds no period")])
def test_impossible_ranges_are_refused(fmin, fmax, message):
    with pytest.raises(ValueError, match=message):
        PitchTracker(np.zeros(RATE, np.float32), RATE, fmin, fmax)


def test_a_recording_shorter_than_a_frame_needs_centring():
    assert PitchTracker(np.zeros(1000, np.float32), RATE, 60.0, 500.0, 2048).frames == 1 + 1000 // 512
    with pytest.raises(ValueError, match="hold no 2048-sample frame"):
        PitchTracker(np.zeros(1000, np.float32), RATE, 60.0, 500.0, 2048, center=False)
