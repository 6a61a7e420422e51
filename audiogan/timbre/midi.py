"""MIDI rendering with the note model, optionally morphing the timbre from A to B across the piece
(GANSynth's Bach-prelude demo): each note takes the timbre at its onset's position in the piece."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from audiogan.timbre.convert import NoteEvent, overlap_add
from audiogan.timbre.inference import Timbre, TimbreModel

log = logging.getLogger(__name__)
BATCH = 64


def read_notes(path: str | Path, max_seconds: float = 1800.0) -> tuple[list[NoteEvent], float]:
    """Every non-drum note of a MIDI file, sorted by onset, and the piece's length in seconds."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for a broken file
        raise ValueError(f"cannot read MIDI {path}: {exc}") from None
    notes = sorted((n for inst in midi.instruments if not inst.is_drum for n in inst.notes), key=lambda n: n.start)
    if not notes:
        raise ValueError(f"MIDI {path} has no (non-drum) notes")
    end = float(midi.get_end_time())
    if end > max_seconds:
        raise ValueError(f"MIDI {path} lasts {end:.0f} s; the limit is {max_seconds:g} s")
    events = [NoteEvent(float(n.start), float(n.end), int(n.pitch), max(1, int(n.velocity))) for n in notes]
    return events, end


def fold_into_range(pitch: int, lo: int, hi: int) -> int:
    """Move a pitch by octaves into [lo, hi] (the model's range), keeping its pitch class."""
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def render_midi(model: TimbreModel, path: str | Path, instrument: Timbre, to: Timbre | None = None,
                mode: str = "slerp", seed: int = 0) -> np.ndarray:
    events, end = read_notes(path)
    lo, hi = model.cfg.pitch_min, model.cfg.pitch_max
    folded = [fold_into_range(e.pitch, lo, hi) for e in events]
    moved = sum(f != e.pitch for f, e in zip(folded, events, strict=True))
    if moved:
        log.warning("%d of %d notes moved by octaves into the model's range %d..%d", moved, len(events), lo, hi)
    alphas = [e.onset / end for e in events] if to is not None else [0.0] * len(events)
    timbres = list(model.mix(instrument, to if to is not None else instrument, alphas, mode))
    notes = np.concatenate([
        model.generate(folded[i:i + BATCH], timbres[i:i + BATCH], [e.velocity for e in events[i:i + BATCH]],
                       [seed + j for j in range(i, min(i + BATCH, len(events)))])
        for i in range(0, len(events), BATCH)])
    rate = model.sample_rate
    out = overlap_add(events, notes, int((end + 0.5) * rate), rate)
    peak = np.abs(out).max()
    return out * (0.9 / peak) if peak > 0 else out
