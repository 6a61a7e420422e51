"""Instrument note data: render NSynth-style notes from a General MIDI soundfont, or read real NSynth.

Each note: program P, MIDI pitch, velocity; note-on for ``hold`` seconds, then release, cut to ``seconds``;
mono at the model's rate. Loudness is normalised per (instrument, velocity) layer — every note of one layer
gets the same gain, so a layer's pitches keep their natural relative loudness and velocities stay distinct.
Metadata follows NSynth's ``examples.json`` so that the same loader reads both.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from audiogan.workers import children_ignore_ctrl_c

log = logging.getLogger(__name__)
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# General MIDI programs (0-based) -> (name, NSynth instrument family). 34 programs over the NSynth families.
GM_PROGRAMS: dict[int, tuple[str, str]] = {
    0: ("acoustic_grand_piano", "keyboard"), 4: ("electric_piano", "keyboard"), 6: ("harpsichord", "keyboard"),
    8: ("celesta", "mallet"), 11: ("vibraphone", "mallet"), 12: ("marimba", "mallet"), 13: ("xylophone", "mallet"),
    16: ("drawbar_organ", "organ"), 19: ("church_organ", "organ"), 21: ("accordion", "organ"),
    24: ("nylon_guitar", "guitar"), 25: ("steel_guitar", "guitar"), 26: ("jazz_guitar", "guitar"),
    29: ("overdriven_guitar", "guitar"), 32: ("acoustic_bass", "bass"), 33: ("finger_bass", "bass"),
    38: ("synth_bass", "bass"), 40: ("violin", "string"), 42: ("cello", "string"), 48: ("string_ensemble", "string"),
    56: ("trumpet", "brass"), 57: ("trombone", "brass"), 60: ("french_horn", "brass"), 61: ("brass_section", "brass"),
    64: ("soprano_sax", "reed"), 66: ("tenor_sax", "reed"), 68: ("oboe", "reed"), 71: ("clarinet", "reed"),
    73: ("flute", "flute"), 75: ("pan_flute", "flute"), 79: ("ocarina", "flute"),
    80: ("square_lead", "synth_lead"), 81: ("saw_lead", "synth_lead"), 89: ("warm_pad", "vocal"),
}
# Instruments the plain half-harmonic comb does not fit, with their own (expression.CombConfig, as a card
# holds it): export_timbre writes those of a model's instruments into its card's "combs". FluidR3's drawbar
# organ sounds a 16' and a 5 1/3' stop with the 8': f0 / 2 at +4.2 dB and 1.5 f0 at -5.4 dB relative to f0
# (median of pitches 24-84, every velocity alike), which the note model does not learn; it makes blurred
# energy between f0 / 2 and f0 instead, which pYIN heard 6 of 16 notes at. So the organ's comb keeps only
# narrow lobes around the harmonics and nothing under f0 / 2, and adds the two stops 25.2 dB below their
# measured level, where pitch trackers still hear f0: 3 dB louder, conversion's analysis refused 3 more of
# 16 notes as unpitched, 9 dB louder pYIN heard 6 of 16 an octave down (benchmarks/RESULTS.md, "the
# drawbar organ's sub-octave").
GM_COMBS: dict[str, dict[str, Any]] = {
    "drawbar_organ": {"sharpness": 4.0, "below": 0.0, "partials": [[0.5, -21.0], [1.5, -30.6]]},
}
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


MAX_NOTE_SECONDS = 60.0  # far past any instrument's note; an infinite one overflowed the buffer size


@dataclass(frozen=True)
class RenderSpec:
    soundfont: str
    sample_rate: int = 16000
    seconds: float = 4.0
    hold: float = 3.0
    peak: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= MAX_NOTE_SECONDS:
            raise ValueError(f"note length {self.seconds} s: must be above 0 and at most {MAX_NOTE_SECONDS:g} s")
        if round(self.seconds * self.sample_rate) < 1:  # no sample at all: an empty data set, "done"
            raise ValueError(f"note length {self.seconds} s is shorter than one sample at {self.sample_rate} Hz")
        if not 0 < self.hold <= self.seconds:
            raise ValueError(f"hold {self.hold} s: must be above 0 and at most the note length, {self.seconds} s")


def _write_float(synth: Any, frames: int) -> np.ndarray:
    """Float samples straight from FluidSynth (get_samples() dithers to int16), mixed to mono."""
    import fluidsynth

    fn = fluidsynth._fl.fluid_synth_write_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                   ctypes.c_int, ctypes.c_int]
    left, right = np.zeros(frames, np.float32), np.zeros(frames, np.float32)
    fn(synth.synth, frames, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
    return (left + right) / 2


class NoteRenderer:
    """One FluidSynth with the soundfont loaded once (loading FluidR3 takes ~0.7 s; a note ~2 ms).

    Between notes every voice is stopped and the synth reset, so a note does not hear the last one's
    release; the remaining state difference to a fresh synth is around -65 dB (TOOLING.md).
    """

    def __init__(self, spec: RenderSpec) -> None:
        import fluidsynth

        self.spec = spec
        self.synth = fluidsynth.Synth(gain=0.5, samplerate=float(spec.sample_rate),
                                      **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        self.sfid = self.synth.sfload(spec.soundfont)
        if self.sfid < 0:
            self.synth.delete()
            raise RuntimeError(f"cannot load soundfont {spec.soundfont}")

    def note(self, program: int, pitch: int, velocity: int) -> np.ndarray:
        spec = self.spec
        self.synth.system_reset()
        self.synth.program_select(0, self.sfid, 0, program)
        hold = int(spec.hold * spec.sample_rate)
        self.synth.noteon(0, pitch, velocity)
        on = _write_float(self.synth, hold)
        self.synth.noteoff(0, pitch)
        off = _write_float(self.synth, int(spec.seconds * spec.sample_rate) - hold)
        self.synth.all_sounds_off(0)
        _write_float(self.synth, 256)  # let the stopped voices leave the mixer
        return np.concatenate([on, off])

    def close(self) -> None:
        self.synth.delete()


def note_key(program: int, pitch: int, velocity: int) -> str:
    family = GM_PROGRAMS.get(program, ("", "other"))[1]
    return f"{family}_synthetic_{program:03d}-{pitch:03d}-{velocity:03d}"


def _note_row(program: int, pitch: int, velocity: int, sample_rate: int) -> dict[str, Any]:
    """A note's entry in examples.json, as NSynth writes it."""
    name, family = GM_PROGRAMS.get(program, (f"program_{program}", "other"))
    return {"note_str": note_key(program, pitch, velocity), "pitch": pitch, "velocity": velocity,
            "instrument_str": name, "instrument": program, "instrument_family_str": family,
            "instrument_source_str": "synthetic", "sample_rate": sample_rate, "qualities_str": []}


def _render_layer(args: tuple[RenderSpec, int, int, Sequence[int], str]) -> list[dict[str, Any]]:
    """All pitches of one (program, velocity) layer, normalised with one gain, written as 16-bit WAV."""
    import soundfile as sf

    spec, program, velocity, pitches, out = args
    renderer = NoteRenderer(spec)
    try:
        notes = {p: renderer.note(program, p, velocity) for p in pitches}
    finally:
        renderer.close()
    top = max(float(np.abs(n).max()) for n in notes.values())
    if top <= 0:
        return []
    gain = spec.peak / top
    rows = []
    for pitch, audio in notes.items():
        if np.abs(audio).max() * gain < 1e-3:  # the soundfont has no sample at this pitch
            continue
        row = _note_row(program, pitch, velocity, spec.sample_rate)
        sf.write(Path(out) / "audio" / f"{row['note_str']}.wav", audio * gain, spec.sample_rate, subtype="PCM_16")
        rows.append(row)
    return rows


# Beside examples.json (which NSynth's loaders read alone): the settings a folder's notes were rendered with,
# and the layers finished with them, each with the pitches its one gain was set over.
RENDER_RECORD = "render.json"
# The settings that change a note's audio, by the option that sets each.
_SETTING_OPTIONS = {"soundfont": "--soundfont", "sample_rate": "--sample-rate", "seconds": "--seconds",
                    "hold": "--hold", "peak": "peak"}


def _settings(spec: RenderSpec) -> dict[str, Any]:
    return {"soundfont": str(Path(spec.soundfont).resolve()), "sample_rate": spec.sample_rate,
            "seconds": spec.seconds, "hold": spec.hold, "peak": spec.peak}


def _layer_key(layer: tuple[int, int]) -> str:
    """(program, velocity) as render.json names it."""
    return f"{layer[0]:03d}-{layer[1]:03d}"


def _read_json(path: Path, expected: str = "a JSON object") -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected {expected}")
    return value


def _earlier_layers(out: Path, spec: RenderSpec) -> dict[tuple[int, int], list[int]]:
    """The layers earlier runs finished in ``out``; refused where they were rendered otherwise than ``spec``
    says, since adding to them would make a data set of two kinds of note without a word."""
    record_path = out / RENDER_RECORD
    if not record_path.is_file():
        if (out / "examples.json").exists():
            raise ValueError(f"{out} holds a data set with no {RENDER_RECORD} (not rendered by this version of "
                             f"`data notes`), so its notes' settings are unknown: pass --replace to start it "
                             f"over, or choose another --out")
        return {}
    record = _read_json(record_path)
    try:
        earlier = record["settings"]
        layers: dict[tuple[int, int], list[int]] = {}
        for key, pitches in record["layers"].items():
            program, velocity = key.split("-")
            layers[int(program), int(velocity)] = [int(p) for p in pitches]
        differing = [name for name, value in _settings(spec).items() if earlier.get(name) != value]
    except (KeyError, AttributeError, TypeError, ValueError):
        raise ValueError(f"{record_path} is not a record of `data notes` settings: pass --replace to start the "
                         f"data set over, or choose another --out") from None
    if differing:
        name = differing[0]
        raise ValueError(f"{out} holds notes rendered with {_SETTING_OPTIONS[name]} {earlier.get(name)} (now "
                         f"{_settings(spec)[name]}): pass --replace to start the data set over, or choose another "
                         f"--out")
    return layers


def render_dataset(out: str | Path, programs: Sequence[int], pitches: Sequence[int], velocities: Sequence[int],
                   spec: RenderSpec, workers: int = 2, replace: bool = False) -> Path:
    """Render every (program, pitch, velocity) in parallel into audio/*.wav, and list them in examples.json.

    A folder that holds notes rendered with the same settings is added to: its layers that already have
    every pitch asked for are skipped (so an interrupted run, rerun, renders only what it had left), and a
    layer given new pitches is rendered again over all of them, to keep one gain. Other settings are refused
    unless ``replace``, which starts the data set over (earlier files that are not rendered again stay in
    audio/, unlisted).
    """
    if Path(spec.soundfont).is_dir():
        raise ValueError(f"soundfont {spec.soundfont} is a folder; name an .sf2 or .sf3 file")
    if not Path(spec.soundfont).is_file():
        raise FileNotFoundError(f"soundfont not found: {spec.soundfont} (apt-get install fluid-soundfont-gm)")
    # Imported here: the spawned render workers import this module, and need no torch (which audio.io brings).
    from audiogan.audio.io import write_atomic

    out = Path(out)
    listing = out / "examples.json"
    layers = {} if replace else _earlier_layers(out, spec)
    examples: dict[str, Any] = {} if replace or not listing.is_file() else _read_json(listing)
    for (program, velocity), done in layers.items():  # finished by a run interrupted before it listed them
        for pitch in done:
            row = _note_row(program, pitch, velocity, spec.sample_rate)
            if (out / "audio" / f"{row['note_str']}.wav").is_file():
                examples.setdefault(row["note_str"], row)
    jobs = []
    for program in programs:
        for velocity in velocities:
            done = set(layers.get((program, velocity), ()))
            if not set(pitches) <= done:
                jobs.append((spec, program, velocity, sorted(done | set(pitches)), str(out)))
                layers.pop((program, velocity), None)  # unfinished until its new rendering is
    if replace:  # first: a listing of the earlier notes must not outlive their settings' record
        listing.unlink(missing_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)

    def record() -> None:
        body = {"settings": _settings(spec), "layers": {_layer_key(k): v for k, v in sorted(layers.items())}}
        write_atomic(out / RENDER_RECORD, json.dumps(body, indent=1).encode())

    record()  # before any audio: whatever is rendered from here on is rendered with these settings
    # spawn, not fork: a forked child inherits FluidSynth's threads half-initialised and hangs.
    context = multiprocessing.get_context("spawn")
    bar = tqdm(total=sum(len(job[3]) for job in jobs), unit="note", desc="render notes")
    with ProcessPoolExecutor(max(1, workers), mp_context=context) as pool, bar:
        with children_ignore_ctrl_c():  # the processes start as jobs are submitted
            futures = [pool.submit(_render_layer, job) for job in jobs]
        try:
            for job, future in zip(jobs, futures, strict=True):
                rows = future.result()
                examples.update({r["note_str"]: r for r in rows})
                layers[job[1], job[2]] = job[3]
                record()  # a rerun after an interruption skips this layer
                bar.update(len(job[3]))
        except KeyboardInterrupt:
            # The layers under way finish their files whole (their workers ignore Ctrl-C); none starts after.
            pool.shutdown(cancel_futures=True)
            raise
    if not examples:  # an empty data set is no data set: say so rather than "done"
        raise ValueError(f"no note made a sound: {spec.seconds:g} s notes held {spec.hold:g} s are too short, or "
                         f"the soundfont has nothing at these programs and pitches")
    # Last and whole: the loader takes a folder by it.
    write_atomic(listing, json.dumps(dict(sorted(examples.items())), indent=1).encode())
    log.info("%d notes in %s: %d layer(s) rendered now, %d already there", len(examples), out, len(jobs),
             len(programs) * len(velocities) - len(jobs))
    return listing


@dataclass
class NoteRecord:
    path: Path
    pitch: int
    velocity: int
    instrument: str
    family: str


def load_examples(root: str | Path) -> list[NoteRecord]:
    """An NSynth-format folder (examples.json + audio/NOTE.wav): real NSynth or ``audiogan data notes``.
    NOTE.flac is read too: a third of the size, for carrying notes to a GPU machine."""
    root = Path(root)
    meta = root / "examples.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{root} has no examples.json (NSynth format expected; `audiogan data notes --out "
                                f"DIR` renders one from a soundfont)")
    listing = _read_json(meta, "an object of notes by name (NSynth's examples.json)")
    records, missing = [], []
    for key, row in listing.items():
        path = root / "audio" / f"{key}.wav"
        if not path.is_file():
            path = path.with_suffix(".flac")
        if not path.is_file():
            missing.append(key)
            continue
        try:
            records.append(NoteRecord(path, _midi_number(row["pitch"]), _midi_number(row["velocity"]),
                                      str(row["instrument_str"]), str(row.get("instrument_family_str", ""))))
        except KeyError as exc:
            raise ValueError(f"{meta}: note {key!r} has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{meta}: note {key!r}: {exc}") from None
    if missing:
        log.warning("%s: %d listed note(s) have no audio in %s, skipped: %s%s", meta, len(missing), root / "audio",
                    ", ".join(missing[:5]), " ..." if len(missing) > 5 else "")
    if not records:
        raise ValueError(f"{meta} lists no note whose audio exists in {root / 'audio'}")
    return records


def _midi_number(value: object) -> int:
    """A pitch or velocity as NSynth writes it: a whole number 0..127 (60, or 60.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 127 or value != int(value):
        raise ValueError(f"{value!r} is not a MIDI number (a whole number 0..127)")
    return int(value)


def parse_range(text: str, least: int = 0, most: int = 127, what: str = "values") -> list[int]:
    """'24-84' or '40,56,73' or '24-84:12' (step) -> ints, each in least..most (MIDI's 0..127 by default)."""
    values: list[int] = []
    for part in text.split(","):
        span, _, step = part.strip().partition(":")
        lo, _, hi = span.partition("-")
        try:
            first, last, stride = int(lo), int(hi or lo), int(step or 1)
        except ValueError:
            raise ValueError(f"{what} {text!r}: {part!r} is not N, N-M or N-M:STEP") from None
        if first > last or stride < 1:
            raise ValueError(f"{what} {text!r}: {part!r} is empty (a range runs low-high, with a step of 1 or more)")
        if first < least or last > most:
            raise ValueError(f"{what} {text!r}: {part!r} leaves {least}..{most}")
        values += list(range(first, last + 1, stride))
    return values
