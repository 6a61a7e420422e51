"""MIDI rendering with the note model, optionally morphing the timbre from A to B across the piece
(GANSynth's Bach-prelude demo): each note takes the timbre at its onset's place between the first note
(A) and the last (B).

Pitch bends move the sounding notes (range from RPN 0, else the General MIDI default of 2 semitones), the
modulation wheel (CC 1) adds vibrato, up to 50 cents at 5.5 Hz, each note's starting at its onset, volume
(CC 7) and expression (CC 11) shape the level, and the sustain pedal (CC 64) holds notes on.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audiogan.timbre.analysis import RELEASE_SECONDS, NoteEvent
from audiogan.timbre.convert import Mixdown, morph_timbres
from audiogan.timbre.expression import BEND_HOP, MAX_CENTS
from audiogan.timbre.inference import Timbre, TimbreModel, note_seeds

log = logging.getLogger(__name__)
BATCH = 64
DEFAULT_BEND_RANGE = 2.0  # semitones, General MIDI
VIBRATO_CENTS = 50.0      # at full modulation wheel
VIBRATO_HZ = 5.5


def bend_range(instrument: Any) -> float:
    """The pitch-bend range in semitones the track sets with RPN 0 (CC 101/100 = 0, then CC 6 and 38)."""
    rpn, semitones, cents = [None, None], DEFAULT_BEND_RANGE, 0.0
    # At one instant the RPN select goes first: pretty_midi's writer reorders simultaneous events.
    for cc in sorted(instrument.control_changes, key=lambda c: (c.time, c.number not in (100, 101))):
        if cc.number in (101, 100):
            rpn[cc.number == 100] = cc.value
        elif cc.number == 6 and rpn == [0, 0]:
            semitones = float(cc.value)
        elif cc.number == 38 and rpn == [0, 0]:
            cents = float(cc.value)
    return semitones + cents / 100


def _steps(times: list[float], values: list[float], initial: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """A step function (each value holds from its time on, ``initial`` before the first), sorted once and
    then read at any array of times."""
    order = np.argsort(times, kind="stable")
    t = np.asarray(times, dtype=np.float64)[order]
    v = np.concatenate([[initial], np.asarray(values, dtype=np.float64)[order]])
    return lambda at: v[np.searchsorted(t, at, side="right")]


def _controller(instrument: Any, number: int, initial: float = 0.0,
                scale: float = 1.0) -> Callable[[np.ndarray], np.ndarray] | None:
    """A controller's value over time (times ``scale``), or None when the track never sends it."""
    changes = [c for c in instrument.control_changes if c.number == number]
    return _steps([c.time for c in changes], [c.value * scale for c in changes], initial) if changes else None


def sustained_ends(instrument: Any, piece_end: float) -> list[float]:
    """Each note's end with the sustain pedal (CC 64 >= 64): a note released while the pedal is down
    sounds on until the pedal lifts, its key is struck again, or the piece ends."""
    pedal = sorted(((c.time, c.value >= 64) for c in instrument.control_changes if c.number == 64),
                   key=lambda p: p[0])
    if not pedal:
        return [float(n.end) for n in instrument.notes]
    t, down = np.array([p[0] for p in pedal]), np.array([p[1] for p in pedal])
    lifts = np.flatnonzero(~down)  # indices of the pedal-up events
    onsets = {pitch: np.sort([m.start for m in instrument.notes if m.pitch == pitch])
              for pitch in {n.pitch for n in instrument.notes}}
    ends = []
    for n in instrument.notes:
        i = int(np.searchsorted(t, n.end, side="right")) - 1
        if i < 0 or not down[i]:
            ends.append(float(n.end))
            continue
        candidates = [piece_end]
        lift = int(np.searchsorted(lifts, i, side="right"))  # the first pedal-up after event i
        if lift < len(lifts):
            candidates.append(float(t[lifts[lift]]))
        strike = int(np.searchsorted(onsets[n.pitch], n.end, side="left"))
        if strike < len(onsets[n.pitch]):
            candidates.append(float(onsets[n.pitch][strike]))
        ends.append(min(candidates))
    return ends


def _contours(instrument: Any, spans: list[tuple[float, float]],
              rate: int) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """Each note's (pitch contour in cents, gain) over BEND_HOP frames from its onset through its release.
    Gain is volume and expression as General MIDI 2 gives them, 40 log10(cc7 / 127) + 40 log10(cc11 / 127)
    dB, relative to the GM defaults 100 and 127: a track that sends none (gain None) plays as loud as one
    that sends the defaults, not 4.2 dB louder."""
    scale = bend_range(instrument) * 100 / 8192
    bend = _steps([b.time for b in instrument.pitch_bends], [b.pitch * scale for b in instrument.pitch_bends]) \
        if instrument.pitch_bends else None
    wheel = _controller(instrument, 1, scale=VIBRATO_CENTS / 127)
    volume, expression = _controller(instrument, 7, 100.0), _controller(instrument, 11, 127.0)
    out: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    for start, end in spans:
        frames = int((end - start + RELEASE_SECONDS) * rate / BEND_HOP) + 2
        since = np.arange(frames) * BEND_HOP / rate
        at = start + since
        cents = np.zeros(frames) if bend is None else bend(at)
        if wheel is not None:
            cents = cents + wheel(at) * np.sin(2 * np.pi * VIBRATO_HZ * since)
        gain = None
        if volume is not None or expression is not None:
            gain = ((volume(at) if volume else np.full(frames, 100.0)) / 100) ** 2 \
                * ((expression(at) if expression else np.full(frames, 127.0)) / 127) ** 2
        out.append((cents if np.any(cents) else None, gain))
    return out


def read_notes(path: str | Path | bytes, rate: int = 16000, max_seconds: float = 1800.0,
               name: str | None = None) -> tuple[list[NoteEvent], float]:
    """Every non-drum note of a MIDI file (held on while the sustain pedal is down) with its pitch contour
    and gain at ``rate``, sorted by onset, and the piece's length in seconds. ``path`` may be the file's
    bytes (piped in), which errors call ``name``."""
    import pretty_midi

    if isinstance(path, bytes):
        name = name or "(MIDI bytes)"
    elif not Path(path).is_file():  # else the reader's own error was followed by "not a Standard MIDI File?"
        raise FileNotFoundError(f"MIDI file not found: {path}" if not Path(path).exists() else
                                f"MIDI {path} is a folder, not a file")
    else:
        name = str(path)
    try:
        midi = pretty_midi.PrettyMIDI(_midi_file(path))
    except Exception as exc:  # pretty_midi/mido raise many types for a broken file
        reason = str(exc) or type(exc).__name__  # mido's EOFError for a file cut short says nothing
        raise ValueError(f"cannot read MIDI {name}: {reason} (not a Standard MIDI File?)") from None
    end = float(midi.get_end_time())
    if end > max_seconds:
        raise ValueError(f"MIDI {name} lasts {end:.0f} s; the limit is {max_seconds:g} s")
    events = []
    for inst in (i for i in midi.instruments if not i.is_drum):
        spans = [(float(n.start), e) for n, e in zip(inst.notes, sustained_ends(inst, end), strict=True)]
        for n, (a, b), (bend, gain) in zip(inst.notes, spans, _contours(inst, spans, rate), strict=True):
            events.append(NoteEvent(a, b, int(n.pitch), max(1, int(n.velocity)), bend, gain=gain))
    if not events:
        raise ValueError(f"MIDI {name} has no (non-drum) notes")
    struck = _note_ons(path)
    if struck > len(events):  # pretty_midi drops them without a word
        log.warning("%d of %d notes struck in %s are not rendered: a note-on without a note-off, or a note of "
                    "zero length", struck - len(events), struck, name)
    bent = sum(e.bend is not None and float(np.abs(e.bend).max()) > MAX_CENTS for e in events)
    if bent:
        log.warning("%d note(s) bend further than the %g semitones a note can move: held there", bent,
                    MAX_CENTS / 100)
    return sorted(events, key=lambda e: e.onset), end


def _note_ons(path: str | Path | bytes) -> int:
    """The file's note-ons outside the drum channel: what its notes would number were every one closed and
    of some length."""
    import mido

    midi = _midi_file(path)
    tracks = (mido.MidiFile(file=midi) if isinstance(midi, io.BytesIO) else mido.MidiFile(midi)).tracks
    return sum(1 for track in tracks for m in track if m.type == "note_on" and m.velocity > 0 and m.channel != 9)


def _midi_file(path: str | Path | bytes) -> str | io.BytesIO:
    """What pretty_midi and mido open: a path as a string, or bytes as a file in memory."""
    return io.BytesIO(path) if isinstance(path, bytes) else str(path)


def fold_into_range(pitch: int, lo: int, hi: int) -> int:
    """Move a pitch by octaves into [lo, hi] (the model's range), keeping its pitch class."""
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def render_midi(model: TimbreModel, path: str | Path | bytes, instrument: Timbre, to: Timbre | None = None,
                mode: str = "slerp", seed: int = 0, progress: bool = False, name: str | None = None) -> np.ndarray:
    """``path``: a MIDI file, or its bytes (named ``name`` in errors); ``progress``: a bar over the notes as
    they are made."""
    from tqdm import tqdm

    events, end = read_notes(path, model.sample_rate, name=name)
    lo, hi = model.cfg.pitch_min, model.cfg.pitch_max
    folded = [fold_into_range(e.pitch, lo, hi) for e in events]
    moved = sum(f != e.pitch for f, e in zip(folded, events, strict=True))
    if moved:
        log.warning("%d of %d notes moved by octaves into the model's range %d..%d", moved, len(events), lo, hi)
    timbres = morph_timbres(model, instrument, to, [e.onset for e in events], mode)
    mix = Mixdown(int((end + 0.5) * model.sample_rate), model.sample_rate)
    with tqdm(total=len(events), desc="render-midi", unit="note", disable=not progress) as bar:
        for i in range(0, len(events), BATCH):
            notes = model.generate(folded[i:i + BATCH], timbres[i:i + BATCH], [e.velocity for e in events[i:i + BATCH]],
                                   note_seeds(seed, i, len(events[i:i + BATCH])))
            mix.add(events[i:i + BATCH], notes)
            bar.update(len(notes))
    out = mix.result()
    peak = np.abs(out).max()
    return out * (0.9 / peak) if peak > 0 else out
