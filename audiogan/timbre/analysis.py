"""A monophonic recording -> its notes: pitch, onsets, velocity, and each note's pitch and loudness contours.

pYIN f0 (``audiogan.audio.pitch``: librosa's model, decoded a piece at a time) for pitch and voicing, YIN
for each note's pitch contour (vibrato, bends, intonation), onset detection to split repeated notes, RMS
for velocity and each note's loudness contour. Polyphonic and unpitched input is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiogan.audio.pitch import PitchTracker, yin
from audiogan.timbre.expression import BEND_HOP, LEVEL_WINDOW, frame_rms
from audiogan.timbre.spectral import midi_to_hz

HOP = BEND_HOP  # one contour value per analysis frame
MIN_NOTE_SECONDS = 0.06
RELEASE_SECONDS = 0.08  # a note sounds on this long past its offset, fading
POLYPHONY_THRESHOLD = 0.65
PYIN_FRAME = 2048
# pYIN's voicing probability on clean single notes falls with the periods its frame holds: the median over
# FluidR3 notes of 11 instruments, by periods in the frame (MIDI 24, 26, ... 52 at 16 kHz), flat above. A plain
# mean under 0.65 refused 69 of their 207 notes, all below MIDI 40 (python -m benchmarks.conversion_analysis
# --voicing).
CLEAN_VOICING = ((4.2, 4.7, 5.3, 5.9, 6.6, 7.5, 8.4, 9.4, 10.5, 11.8, 13.3, 14.9, 16.7, 18.8, 21.1),
                 (0.28, 0.34, 0.40, 0.49, 0.55, 0.59, 0.66, 0.71, 0.76, 0.79, 0.82, 0.85, 0.87, 0.91, 0.92))
LOW_HARMONICS_SHARE = 0.01
MAX_BEND_CENTS = 100.0
SHORT_WINDOW = 1024  # YIN's frame for a note's vibrato (samples)
SEARCH_DOWN, SEARCH_UP = 2 ** (-1.5 / 12), 2 ** (1.5 / 12)  # YIN looks for a note's f0 within 1.5 semitones
# pYIN's pitch grid, in semitones. Segmentation needs semitones (the contour comes from YIN), and 20-cent
# bins instead of the default 10 make the analysis 4x faster: on 39 test inputs (melodies, a violin
# performance, 36 soundfont notes) the notes found differed only by one frame in two onsets.
PYIN_RESOLUTION = 0.2




@dataclass
class NoteEvent:
    onset: float      # seconds
    offset: float     # seconds
    pitch: int        # MIDI
    velocity: int     # 1..127
    bend: np.ndarray | None = None   # cents from ``pitch``, one per BEND_HOP samples from the onset (held after)
    level: np.ndarray | None = None  # the performance's frame RMS over the note, on the same frames
    gain: np.ndarray | None = None   # a gain to apply (MIDI volume and expression), on the same frames
    legato: bool = False  # continues the previous note with no new attack (a glide or slur): crossfaded into it


class Analysis:
    """``analyse`` a piece of the recording at a time: pYIN's frames in pieces (a caller may show progress
    or stop between them, see ``step``), then the notes (``notes``)."""

    def __init__(self, wave: np.ndarray, rate: int, pitch_range: tuple[int, int] = (24, 96)) -> None:
        if wave.ndim != 1:
            raise ValueError(f"input must be mono audio, got an array of shape {list(wave.shape)}")
        if len(wave) < rate // 10:
            raise ValueError(f"input lasts {len(wave) / rate:.3f} s; the analysis needs at least 0.1 s")
        self.wave, self.rate, self.pitch_range = wave, rate, pitch_range
        fmin = max(32.0, float(midi_to_hz(pitch_range[0] - 1)))
        fmax = float(midi_to_hz(pitch_range[1] + 1))
        self.tracker = PitchTracker(wave, rate, fmin, fmax, frame_length=PYIN_FRAME, hop=HOP,
                                    resolution=PYIN_RESOLUTION)

    @property
    def share(self) -> float:
        """The share of the recording's pitch tracked so far."""
        return self.tracker.share

    def step(self) -> bool:
        """Track the next piece of the recording's pitch; True once all of it is tracked."""
        return self.tracker.step()

    def notes(self) -> list[NoteEvent]:
        """The notes, once ``step`` has returned True. Raises ValueError when nothing pitched is found or
        the input looks polyphonic / unpitched (most loud frames have no single f0).

        Notes are runs of loud frames (short-window RMS within 35 dB of the peak), cut where the rounded
        pYIN pitch changes for two frames or where the level dips by half and rises again (a repeated
        note). A note cut from the previous one by its pitch alone is ``legato``: a glide passes through
        one such note per semitone, too short ones (under ``MIN_NOTE_SECONDS``) joining the note before.
        Each note's ``bend`` is its f0 in cents from its semitone (see ``contour``) and its ``level`` its
        frame RMS.
        """
        wave, rate, pitch_range = self.wave, self.rate, self.pitch_range
        f0, voiced, probability = self.tracker.result()
        rms = frame_rms(wave, HOP, LEVEL_WINDOW)
        n = min(len(f0), len(rms))
        f0, voiced, probability, rms = f0[:n], voiced[:n], probability[:n], rms[:n]
        active = rms > max(1e-4, float(rms.max()) * 10 ** (-35 / 20))
        share = clear_pitch_share(wave, rate, f0, voiced, probability, active)
        if share < POLYPHONY_THRESHOLD:
            raise ValueError(f"pYIN finds one clear pitch in only {100 * share:.0f} % of the loud audio: the input "
                             "looks polyphonic or unpitched; the note model follows one pitched note at a time")
        midi = np.where(voiced, np.round(69 + 12 * np.log2(np.nan_to_num(f0, nan=440.0) / 440)), -1).astype(int)
        events: list[NoteEvent] = []
        starts: list[int] = []  # each event's first frame
        release = int(np.ceil(RELEASE_SECONDS * rate / HOP))
        start, pitch, peak, dip, legato = None, -1, 0.0, np.inf, False

        def note_event(first: int, end: int, note: int, tied: bool) -> NoteEvent:
            level = 20 * np.log10(max(float(rms[first:end].max()), 1e-5))
            velocity = int(np.clip(127 * (1 + level / 50), 1, 127))
            # The contour runs on through the release: under a legato note's entry, the pitch goes on gliding.
            bend = contour(wave, rate, first, min(n, end + release), voiced, note)
            return NoteEvent(first * HOP / rate, end * HOP / rate, note, velocity, bend, rms[first:end].copy(),
                             legato=tied)

        def close(end: int) -> None:
            if start is None:
                return
            pitches = midi[start:end][midi[start:end] >= 0]
            joins = legato and events and events[-1].offset == start * HOP / rate
            if (end - start) * HOP / rate < MIN_NOTE_SECONDS or not len(pitches):
                if joins:  # a semitone a fast glide passes through: the note before bends on through it
                    events[-1] = note_event(starts[-1], end, events[-1].pitch, events[-1].legato)
                return
            note = int(np.median(pitches))
            if pitch_range[0] <= note <= pitch_range[1]:
                events.append(note_event(start, end, note, bool(joins)))
                starts.append(start)

        for t in range(n + 1):
            loud = t < n and active[t]
            tied = False
            if start is not None:
                changed = (t + 1 < n and midi[t] >= 0 and pitch >= 0 and midi[t] != pitch
                           and midi[t + 1] == midi[t])
                repeated = loud and dip < 0.5 * peak and rms[t] > 1.5 * dip
                if not loud or changed or repeated:
                    close(t)
                    start, tied = None, loud and not repeated
            if start is None and loud:
                start, pitch, peak, dip, legato = t, -1, float(rms[t]), np.inf, tied
            if start is not None:
                if pitch < 0 and midi[t] >= 0:  # the first voiced frame sets the note's pitch
                    pitch = int(midi[t])
                peak = max(peak, float(rms[t]))
                dip = min(dip, float(rms[t])) if rms[t] < peak else np.inf
        if not events:
            raise ValueError("no pitched note found in the input")
        return events


def clear_pitch_share(wave: np.ndarray, rate: int, f0: np.ndarray, voiced: np.ndarray, probability: np.ndarray,
                      active: np.ndarray) -> float:
    """pYIN's mean voicing probability over the loud (``active``) frames, each voiced one relative to a clean
    single note's at its pitch (``CLEAN_VOICING``) where the note's own low harmonics are heard: about 1 for
    one note, 0.01-0.15 for most chords, 0.01 for white noise; 1 when nothing is loud.

    Why the harmonics: a chord is often tracked at the pitch its notes are harmonics of (C4-E4-G4 at C2,
    as harmonics 4, 5 and 6), where a note is expected to be less clearly voiced; nothing sounds at that
    pitch's first two harmonics, which hold at least 1 % of the first eight's power in single notes.
    """
    if not active.any():
        return 1.0
    frames = np.flatnonzero(active)
    relative = probability[frames].astype(np.float64)
    periods = PYIN_FRAME * np.nan_to_num(f0[frames], nan=np.inf) / rate
    low = np.flatnonzero(voiced[frames] & (periods < CLEAN_VOICING[0][-1]))
    if len(low) and relative.mean() < POLYPHONY_THRESHOLD:  # only then is the relative figure needed
        heard = low[fundamental_heard(wave, rate, frames[low], f0[frames[low]])]
        relative[heard] *= CLEAN_VOICING[1][-1] / np.interp(periods[heard], *CLEAN_VOICING)
    return float(relative.mean())


def fundamental_heard(wave: np.ndarray, rate: int, frames: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Per frame (centred every HOP samples): do the first two harmonics of ``f0`` hold at least
    ``LOW_HARMONICS_SHARE`` of the power of the first eight (each a +-3 % band of a PYIN_FRAME spectrum)?"""
    padded = np.pad(wave.astype(np.float32), PYIN_FRAME // 2)
    window = np.hanning(PYIN_FRAME).astype(np.float32)
    out = np.zeros(len(frames), bool)
    for start in range(0, len(frames), 512):  # 512 spectra (4 MB) at a time
        part = frames[start:start + 512]
        segments = np.lib.stride_tricks.sliding_window_view(padded, PYIN_FRAME)[part * HOP]
        power = np.abs(np.fft.rfft(segments * window, axis=1)) ** 2
        cumulative = np.concatenate([np.zeros((len(part), 1)), np.cumsum(power, axis=1)], axis=1)
        bins = f0[start:start + 512, None] * np.arange(1, 9) * PYIN_FRAME / rate
        lo = np.clip(np.floor(0.97 * bins), 0, power.shape[1]).astype(int)
        hi = np.clip(np.ceil(1.03 * bins) + 1, 0, power.shape[1]).astype(int)
        rows = np.arange(len(part))[:, None]
        bands = cumulative[rows, hi] - cumulative[rows, lo]
        out[start:start + 512] = bands[:, :2].sum(1) >= LOW_HARMONICS_SHARE * np.maximum(bands.sum(1), 1e-20)
    return out


def analyse(wave: np.ndarray, rate: int, pitch_range: tuple[int, int] = (24, 96)) -> list[NoteEvent]:
    """A monophonic performance -> its notes (see ``Analysis.notes``), all at once."""
    analysis = Analysis(wave, rate, pitch_range)
    while not analysis.step():
        pass
    return analysis.notes()


def contour(wave: np.ndarray, rate: int, start: int, end: int, voiced: np.ndarray,
            pitch: int) -> np.ndarray | None:
    """Frames ``start:end`` of a note -> its f0 in cents from ``pitch``.

    YIN within a semitone and a half of the note. Its tuning and slow bends come from the shortest
    power-of-two frame of at least 1024 samples that spans 7 periods (1024 at 16 kHz from MIDI 45 up,
    4096 at MIDI 24-32): on steady harmonic tones that kept YIN within 4 cents, where a 1024 frame is 24
    cents off at MIDI 28. Its faster movement (vibrato) comes from a 1024 frame, which a longer one
    averages away (see ``unsmooth``).
    Frames more than a semitone off (the tracker slipping to a neighbouring note at a legato boundary)
    and unvoiced ones are filled from their neighbours.
    """
    centre = midi_to_hz(pitch)
    long = max(SHORT_WINDOW, 1 << int(np.ceil(np.log2(7 * rate / centre))))
    tracks = {window: _yin_cents(wave, rate, start, end, centre, window) for window in {long, SHORT_WINDOW}}
    known = np.flatnonzero(voiced[start:start + end - start] & (np.abs(tracks[long]) <= MAX_BEND_CENTS))
    if not len(known):
        return None
    frames = np.arange(end - start)
    slow = np.interp(frames, known, tracks[long][known])
    fast = tracks[SHORT_WINDOW]
    near = known[np.abs(fast[known] - slow[known]) <= MAX_BEND_CENTS]  # the short frame slips more often
    fast = np.interp(frames, near, fast[near]) if len(near) else slow
    return unsmooth(slow, averaged(long, centre, rate), fast, averaged(SHORT_WINDOW, centre, rate), rate / HOP)


def averaged(window: int, centre: float, rate: int) -> float:
    """The span (seconds) YIN's f0 is in effect the mean over, on a ``window``-sample frame searched around
    ``centre`` (Hz): the frame less part of the longest period searched. Fitted to how deep a 3-8 Hz vibrato
    came out on steady tones at MIDI 28-60: 0.94 x 1024 samples less 0.52 of the longest period."""
    return (0.94 * window - 0.52 * rate / (centre * SEARCH_DOWN)) / rate


def _yin_cents(wave: np.ndarray, rate: int, start: int, end: int, centre: float, window: int) -> np.ndarray:
    """YIN's f0 within 1.5 semitones of ``centre``, in cents from it, on frames ``start:end``."""
    fmin, fmax = centre * SEARCH_DOWN, centre * SEARCH_UP
    # Each frame centred on its sample with the recording around it, not zero padding: a short note's
    # edge frames would otherwise be measured on half a window (+27..80 cents on a 3-frame E1).
    lo, hi = start * HOP - window // 2, (end - 1) * HOP + window // 2
    segment = np.pad(wave[max(lo, 0):max(hi, 0)], (max(-lo, 0), max(hi - len(wave), 0)))
    f0 = yin(segment, rate, fmin, fmax, window, HOP, center=False)[: end - start]
    return 1200 * np.log2(f0 / centre)


def unsmooth(slow: np.ndarray, slow_span: float, fast: np.ndarray, fast_span: float,
             frame_rate: float) -> np.ndarray:
    """One contour from two YIN contours of a note, with their averaging over spans (seconds) undone.

    YIN reads about the mean f0 over a span (``averaged``), which passes a movement of f Hz at
    sinc(f span) of its depth (measured: 0.86 of a 5 Hz vibrato and 0.66 of an 8 Hz one at MIDI 60 on a
    1024-sample frame at 16 kHz; a 4096-sample frame inverts a 6 Hz one). Each movement is taken from
    ``slow`` while its span passes it at 0.7 or more, else from ``fast`` while its span passes it at 0.4 or
    more, else dropped rather than amplified further.
    """
    if len(slow) < 8:
        return slow
    pad = min(len(slow) - 1, 64)  # mirrored, so that the ends do not wrap into each other
    spectra = [np.fft.rfft(np.pad(x, pad, mode="reflect")) for x in (slow, fast)]
    freqs = np.fft.rfftfreq(len(slow) + 2 * pad, 1 / frame_rate)

    def passed(span: float) -> np.ndarray:  # up to the first zero only: past it YIN inverts the movement
        return np.where(freqs * span < 1, np.sinc(freqs * span), 0.0)

    from_slow, from_fast = passed(slow_span), passed(fast_span)
    use_slow = from_slow >= 0.7
    spectrum = np.where(use_slow, spectra[0] / np.maximum(from_slow, 0.7),
                        np.where(from_fast >= 0.4, spectra[1] / np.maximum(from_fast, 0.4), 0.0))
    return np.fft.irfft(spectrum, n=len(slow) + 2 * pad)[pad:pad + len(slow)]
